"""Pull datasets from and publish them to the Hugging Face Hub.

Pull: ``snapshot_download(repo_type="dataset")`` of the data files only
(Parquet, else JSON/JSONL) plus README.md, so the Hub cache makes reruns work
offline (``HF_HUB_OFFLINE=1``). The resolved commit is recorded as the input's
revision. A repo with several splits (train/validation) is combined into one
local Parquet file with a ``split`` column, so publishing it again keeps the
assignment; a one-split repo is handed to the step as its shard files.

Publish: stage the folder ``datasets.push_to_hub`` would write (Parquet shards
under ``data/`` or one folder per config, README.md with the card), then send
it in one ``HfApi.create_commit`` that adds the new files and deletes shards
the new layout no longer has. ``--hub-dry-run DIR`` (``--dry-run`` for
``kbpipe upload``) writes that folder to ``DIR/<repo-name>/`` and the commit
to ``DIR/<repo-name>.operations.json`` and sends nothing; the staged folder
stands for the repo, so a second dry run lists deletes of shards the first
one staged and the new one does not have.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError, KbpipeError
from kbpipe.hub.cards import CardContext, RowSummary, read_data_files, render_readme
from kbpipe.hub.splits import (
    MAX_SHARD_BYTES,
    SPLIT_COLUMN,
    StagedConfig,
    hub_schema,
    split_from_path,
    split_sort_key,
    write_configs,
)
from kbpipe.io.lineage import ResolvedInput, StepResult
from kbpipe.io.tables import (
    ROW_GROUP_ROWS,
    atomic_output,
    file_sha256,
    parquet_schema,
    table_format,
    write_json,
)

_URI_RE = re.compile(r"^hf://datasets/([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(.+))?$")
_PARQUET_PATTERNS = ["*.parquet", "README.md"]
_JSON_PATTERNS = ["*.jsonl", "*.json", "README.md"]
# JSON files in dataset repos that are metadata, not rows.
_NOT_DATA = {"dataset_infos.json", "dataset_info.json", "dataset_dict.json", "state.json"}


def _default_api_factory(token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token, library_name="kbpipe")


# Builds the HfApi used to publish; tests replace it with a recording fake.
api_factory: Callable[[str | None], Any] = _default_api_factory


# --- pull -------------------------------------------------------------------------


def parse_hub_uri(uri: str) -> tuple[str, str | None]:
    """``hf://datasets/ORG/NAME[@revision]`` -> (repo_id, revision)."""
    match = _URI_RE.match(uri)
    if not match:
        raise InputError(f"{uri}: not a Hub dataset address; expected hf://datasets/ORG/NAME[@rev]")
    return match.group(1), match.group(2)


def pull_table(uri: str, settings: Settings) -> ResolvedInput:
    """Download (or find in the cache) a Hub dataset's data files for a step to read."""
    repo_id, revision = parse_hub_uri(uri)
    folder = _snapshot(uri, repo_id, revision, _PARQUET_PATTERNS, settings)
    files = _data_files(folder)
    if not files:
        folder = _snapshot(uri, repo_id, revision, _JSON_PATTERNS, settings)
        files = _data_files(folder)
    if not files:
        raise InputError(f"{uri}: the dataset has no Parquet or JSON data files")
    if any(p.suffix == ".parquet" for _, p in files):
        # A repo with both (KernelBook has a .json and a .parquet copy) is read from Parquet.
        files = [(split, p) for split, p in files if p.suffix == ".parquet"]
    commit = folder.name
    splits = {split for split, _ in files}
    paths = [path for _, path in files]
    if len(splits) == 1 and all(p.suffix == ".parquet" for p in paths):
        return ResolvedInput(paths, uri, revision=commit)
    cache = settings.output_dir / ".hub-cache" / repo_id.replace("/", "--") / f"{commit}.parquet"
    if not cache.exists():
        _combine(files, cache, with_split=len(splits) > 1, uri=uri)
    return ResolvedInput([cache], uri, revision=commit)


def _snapshot(
    uri: str, repo_id: str, revision: str | None, patterns: list[str], settings: Settings
) -> Path:
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=revision,
                allow_patterns=patterns,
                token=settings.hf_token or None,
            )
        )
    except hf_errors.RevisionNotFoundError:
        raise InputError(f"{uri}: revision {revision!r} does not exist on the Hub") from None
    except hf_errors.RepositoryNotFoundError:
        raise InputError(
            f"{uri}: no such dataset on the Hub (or it is private and HF_TOKEN cannot read it)"
        ) from None
    except hf_errors.IncompleteSnapshotError:
        raise InputError(
            f"{uri}: the cached copy is incomplete and the Hub cannot be reached; rerun online "
            "or pass a local file with -i PATH (.parquet or .jsonl)"
        ) from None
    except (hf_errors.LocalEntryNotFoundError, *_transport_errors()):
        raise InputError(
            f"{uri}: the Hugging Face Hub cannot be reached and nothing is cached for it; "
            "pass a local file with -i PATH (.parquet or .jsonl)"
        ) from None
    except hf_errors.HfHubHTTPError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{uri}: the Hub answered with an error: {first}") from None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection failures, including those of the HTTP client huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _data_files(folder: Path) -> list[tuple[str, Path]]:
    """(split, path) of the data files, from the README's configs or the file names."""
    candidates = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".jsonl", ".json") and p.name not in _NOT_DATA
    )
    rel = {p.relative_to(folder).as_posix(): p for p in candidates}
    declared = read_data_files(folder / "README.md")
    found: list[tuple[str, Path]] = []
    if declared:
        for split, patterns in declared.items():
            matched = sorted(
                {r for r in rel for pattern in patterns if fnmatch.fnmatch(r, pattern)}
            )
            found += [(split, rel[r]) for r in matched]
    else:
        found = [(split_from_path(r), p) for r, p in rel.items()]
    return sorted(found, key=lambda sp: (split_sort_key(sp[0]), str(sp[1])))


def _combine(files: list[tuple[str, Path]], dest: Path, *, with_split: bool, uri: str) -> None:
    """Stream several data files into one Parquet file, adding ``split`` when there are several."""
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    with atomic_output(dest) as tmp:
        try:
            for split, path in files:
                for batch in _batches(path):
                    table = pa.Table.from_batches([batch])
                    if with_split:
                        table = table.append_column(
                            SPLIT_COLUMN, pa.array([split] * table.num_rows, pa.string())
                        )
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                    try:
                        table = table.select(schema.names).cast(schema)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
                        raise InputError(
                            f"{uri}: {path.name} has a different schema from the first data "
                            f"file ({exc})"
                        ) from None
                    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            if writer is None:
                raise InputError(f"{uri}: the dataset's data files hold no rows")
        finally:
            if writer is not None:
                writer.close()


def _batches(path: Path) -> Any:
    if path.suffix == ".parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS)
        return
    import polars as pl

    try:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    except pl.exceptions.ComputeError:
        # A .json file may hold one JSON array instead of one object per line.
        frame = pl.read_json(path, infer_schema_length=None)
    yield from frame.to_arrow().to_batches(max_chunksize=ROW_GROUP_ROWS)


# --- publish ------------------------------------------------------------------------


@dataclass
class PublishReport:
    """What a publish did (or would do): the repo, its configs and the commit operations."""

    repo_id: str
    folder: Path | None
    configs: list[StagedConfig]
    operations: list[dict[str, Any]]
    dry_run: bool

    def summary_lines(self) -> list[str]:
        verb = "staged" if self.dry_run else "published"
        where = f" in {self.folder}" if self.dry_run else ""
        lines = [f"{verb} {self.repo_id}{where}"]
        for cfg in self.configs:
            sizes = ", ".join(f"{s.name} {s.num_examples:,}" for s in cfg.splits)
            label = "" if cfg.name == "default" else f"{cfg.name}: "
            lines.append(f"  {label}{sizes}")
        n_del = sum(op["op"] == "delete" for op in self.operations)
        lines.append(f"  {len(self.operations) - n_del} files added, {n_del} stale deleted")
        return lines


def publish_step(
    result: StepResult,
    settings: Settings,
    *,
    table: str,
    split: str = "module",
    private: bool = False,
    dry_run_dir: Path | None = None,
    no_reasoning: bool = False,
    merged: bool = False,
    api: Any = None,
) -> PublishReport:
    """Publish a finished step's output (called after each step unless --no-upload)."""
    if result.output is None:
        raise ConfigError(f"{result.step}: nothing to publish, the step wrote no table")
    report = publish_table(
        result.output,
        settings,
        table=table,
        stats=result.to_dict(settings),
        split=split,
        private=private,
        dry_run_dir=dry_run_dir,
        no_reasoning=no_reasoning,
        merged=merged,
        api=api,
    )
    for line in report.summary_lines():
        print(line)
    return report


def publish_table(
    path: Path,
    settings: Settings,
    *,
    table: str,
    stats: dict[str, Any],
    split: str = "module",
    private: bool = False,
    dry_run_dir: Path | None = None,
    no_reasoning: bool = False,
    merged: bool = False,
    api: Any = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> PublishReport:
    """Stage ``path`` as a Hub dataset folder and commit it (or only stage it, for a dry run)."""
    repo_id = settings.repo_id(table, no_reasoning=no_reasoning, merged=merged)
    if dry_run_dir is None and api is None and not settings.hf_token:
        raise ConfigError(
            f"publishing {repo_id} needs HF_TOKEN (in .env or the environment); "
            "pass --no-upload to keep the result local or --hub-dry-run DIR to stage it"
        )
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file to publish")
    stage_parent = Path(dry_run_dir) if dry_run_dir is not None else path.parent
    stage_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".kbpipe-stage-", dir=stage_parent) as tmp:
        staging = Path(tmp) / "repo"
        source = _as_parquet(path, Path(tmp))
        ctx = CardContext(
            repo_id=repo_id,
            table=table,
            data_model=settings.data_model,
            stats=stats,
            split_mode=_split_label(source, split),
            no_reasoning=no_reasoning,
            merged=merged,
            seqlen=_seqlen_report(settings, table, path, no_reasoning or merged),
        )
        configs = stage_folder(
            source,
            staging,
            ctx,
            split=split,
            merged=merged,
            max_shard_bytes=max_shard_bytes,
            token=settings.hf_token,
        )
        new_files = _list_files(staging)
        if dry_run_dir is not None:
            dest = Path(dry_run_dir) / repo_id.split("/", 1)[1]
            ops = _stage_dry_run(staging, dest, new_files, repo_id, private, stats)
            return PublishReport(repo_id, dest, configs, ops, dry_run=True)
        hub = api if api is not None else api_factory(settings.hf_token)
        from huggingface_hub.errors import HfHubHTTPError

        try:
            ops = _commit(hub, repo_id, staging, new_files, private=private, stats=stats)
        except (HfHubHTTPError, *_transport_errors()) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            flags = " --no-reasoning" * no_reasoning + " --merged" * merged
            raise KbpipeError(
                f"publishing {repo_id} failed ({first}); no commit was made and {path} is "
                f"kept: publish it later with `kbpipe upload {table}{flags}`"
            ) from None
        return PublishReport(repo_id, None, configs, ops, dry_run=False)


def _stage_dry_run(
    staging: Path,
    dest: Path,
    new_files: list[str],
    repo_id: str,
    private: bool,
    stats: dict[str, Any],
) -> list[dict[str, Any]]:
    """Put the staged folder at ``dest`` (it stands for the repo) and write the commit beside it."""
    ops = _operations(new_files, _list_files(dest) if dest.is_dir() else [])
    _replace_dir(staging, dest)
    write_json(
        _commit_record(repo_id, private, stats, ops, dest),
        dest.with_name(dest.name + ".operations.json"),
    )
    return ops


def stage_folder(
    source: Path,
    folder: Path,
    ctx: CardContext,
    *,
    split: str = "module",
    merged: bool = False,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    token: str | None = None,
) -> list[StagedConfig]:
    """Write the shards and README.md of one Hub dataset repo into ``folder``."""
    schema = hub_schema(parquet_schema(source))
    rows = RowSummary()
    configs = write_configs(
        source,
        folder,
        split,
        merged=merged,
        max_shard_bytes=max_shard_bytes,
        observer=rows.observer,
    )
    readme = render_readme(ctx, configs, schema, rows)
    if token and token in readme:
        # The card quotes the command line and parameters; a token must never reach the Hub.
        readme = readme.replace(token, "****")
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return configs


def _split_label(source: Path, split: str) -> str:
    """How the card describes the split: a split column in the table decides when present."""
    if split != "none" and SPLIT_COLUMN in parquet_schema(source).names:
        return "column"
    return split


def _as_parquet(path: Path, scratch: Path) -> Path:
    if table_format(path) == "parquet":
        return path
    import polars as pl

    out = scratch / "table.parquet"
    pl.scan_ndjson(path, infer_schema_length=None).sink_parquet(out)
    return out


def _seqlen_report(
    settings: Settings, table: str, published: Path, skip: bool
) -> dict[str, Any] | None:
    """The seqlen step's report for this table, if it was computed on this very file."""
    if skip or table == "synthetic":
        return None
    which = "source" if table in ("source", "evals") else table
    path = settings.seqlen_json_path(which)
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if not isinstance(report, dict):
        return None
    digests = {e.get("sha256") for e in report.get("inputs") or [] if isinstance(e, dict)}
    digests.discard(None)
    # A report of an older version of the table would put wrong figures on the card.
    if digests and file_sha256(published) not in digests:
        return None
    return report


def _list_files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.relative_to(folder).as_posix().startswith(".")
    )


def _operations(new_files: list[str], existing: list[str]) -> list[dict[str, Any]]:
    """Adds for every staged file; deletes for old files in the data folders we write."""
    managed = {f.rsplit("/", 1)[0] + "/" for f in new_files if "/" in f} | {"data/"}
    new = set(new_files)
    stale = [f for f in existing if f not in new and any(f.startswith(d) for d in managed)]
    return [{"op": "add", "path_in_repo": f} for f in new_files] + [
        {"op": "delete", "path_in_repo": f} for f in stale
    ]


def _commit(
    hub: Any,
    repo_id: str,
    staging: Path,
    new_files: list[str],
    *,
    private: bool,
    stats: dict[str, Any],
) -> list[dict[str, Any]]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    hub.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    existing = list(hub.list_repo_files(repo_id, repo_type="dataset"))
    ops = _operations(new_files, existing)
    operations = [
        CommitOperationAdd(
            path_in_repo=op["path_in_repo"], path_or_fileobj=str(staging / op["path_in_repo"])
        )
        if op["op"] == "add"
        else CommitOperationDelete(path_in_repo=op["path_in_repo"])
        for op in ops
    ]
    hub.create_commit(
        repo_id,
        operations=operations,
        commit_message=_commit_message(stats),
        repo_type="dataset",
    )
    return ops


def _commit_message(stats: dict[str, Any]) -> str:
    rows = stats.get("rows_out") or 0
    return f"kbpipe {stats.get('kbpipe_version')}: {stats.get('step')} ({rows:,} rows)"


def _commit_record(
    repo_id: str, private: bool, stats: dict[str, Any], ops: list[dict[str, Any]], folder: Path
) -> dict[str, Any]:
    for op in ops:
        if op["op"] == "add":
            op["bytes"] = (folder / op["path_in_repo"]).stat().st_size
    return {
        "repo_id": repo_id,
        "repo_type": "dataset",
        "create_repo": {"private": private, "exist_ok": True},
        "commit_message": _commit_message(stats),
        "operations": ops,
    }


def _replace_dir(new: Path, dest: Path) -> None:
    """Put a staged folder in place of the previous one, never leaving a half folder."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
