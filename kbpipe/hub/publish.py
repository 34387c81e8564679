"""Publish tables to the Hugging Face Hub.

Stage the folder ``datasets.push_to_hub`` would write (Parquet shards
under ``data/`` or one folder per config, README.md with the card), then send
it in one ``HfApi.create_commit`` that adds the new files and deletes shards
the new layout no longer has. ``--hub-dry-run DIR`` (``--dry-run`` for
``kbpipe upload``) writes that folder to ``DIR/<repo-name>/`` and the commit
to ``DIR/<repo-name>.operations.json`` and sends nothing; the staged folder
stands for the repo, so a second dry run lists deletes of shards the first
one staged and the new one does not have.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbpipe.config import Settings
from kbpipe.errors import InputError, KbpipeError
from kbpipe.hub.cards import CardContext, render_readme
from kbpipe.hub.carry import carried_label, planner_for
from kbpipe.hub.pull import transport_errors
from kbpipe.hub.rowsummary import RowSummary
from kbpipe.hub.shards import MAX_SHARD_BYTES, StagedConfig, hub_schema, write_configs
from kbpipe.hub.splits import SPLIT_COLUMN, Planner, plan_splits
from kbpipe.io.scratch import replace_folder
from kbpipe.io.tables import (
    file_sha256,
    parquet_schema,
    scratch_dir,
    table_format,
    write_json,
)


def _default_api_factory(token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token, library_name="kbpipe")


# Builds the HfApi used to publish; tests replace it with a recording fake.
api_factory: Callable[[str | None], Any] = _default_api_factory


# --- publish ------------------------------------------------------------------------


@dataclass
class PublishReport:
    """What a publish did (or would do): the repo, its configs and the commit operations."""

    repo_id: str
    folder: Path | None
    configs: list[StagedConfig]
    operations: list[dict[str, Any]]
    dry_run: bool
    notes: list[str] = field(default_factory=list)

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


# Card images: (folder to draw into) -> drawn charts with .path, .title and .alt
# (kbpipe.report.card_images, which sits above this layer, is passed in).
ImageMaker = Callable[[Path], list[Any]]
NO_LICENSE = (
    "LICENSE is not set, so the card declares no license; set it (e.g. LICENSE=apache-2.0) "
    "once you know the terms the model's outputs may be shared under"
)


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
    images: ImageMaker | None = None,
) -> PublishReport:
    """Stage ``path`` as a Hub dataset folder and commit it (or only stage it, for a dry run)."""
    variant = "no_reasoning" if no_reasoning else "merged" if merged else ""
    repo_id = settings.repo_id(table, variant)
    if dry_run_dir is None and api is None:
        settings.require_hf_token(f"publishing {repo_id}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file to publish")
    stage_parent = Path(dry_run_dir) if dry_run_dir is not None else path.parent
    stage_parent.mkdir(parents=True, exist_ok=True)
    # In the run's scratch folder beside the staged repo folder: swept if killed.
    with scratch_dir(stage_parent / repo_id.split("/", 1)[1], "stage-") as tmp:
        staging = Path(tmp) / "repo"
        source = _as_parquet(path, Path(tmp))
        ctx = CardContext(
            repo_id=repo_id,
            table=table,
            data_model=settings.data_model,
            stats=stats,
            split_mode=_split_label(source, split, path),
            no_reasoning=no_reasoning,
            merged=merged,
            seqlen=_seqlen_report(settings, table, path, no_reasoning or merged),
            license=settings.license,
        )
        configs = stage_folder(
            source,
            staging,
            ctx,
            split=split,
            merged=merged,
            max_shard_bytes=max_shard_bytes,
            token=settings.hf_token,
            # A derived table keeps its parent's split (kbpipe.hub.carry).
            planner=planner_for(path),
            images=images,
        )
        notes = [] if settings.license else [NO_LICENSE]
        new_files = _list_files(staging)
        if dry_run_dir is not None:
            dest = Path(dry_run_dir) / repo_id.split("/", 1)[1]
            ops = _stage_dry_run(staging, dest, new_files, repo_id, private, stats)
            return PublishReport(repo_id, dest, configs, ops, dry_run=True, notes=notes)
        hub = api if api is not None else api_factory(settings.hf_token)
        from huggingface_hub.errors import HfHubHTTPError

        try:
            ops = _commit(hub, repo_id, staging, new_files, private=private, stats=stats)
        except (HfHubHTTPError, *transport_errors()) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            flags = " --no-reasoning" * no_reasoning + " --merged" * merged
            later = settings.hint(f"`kbpipe upload {table}{flags}`", "`make publish`")
            raise KbpipeError(
                f"publishing {repo_id} failed ({first}); no commit was made and {path} is "
                f"kept: publish it later with {later}"
            ) from None
        return PublishReport(repo_id, None, configs, ops, dry_run=False, notes=notes)


def unpublished_marker(table: Path) -> Path:
    """The file beside a table whose upload failed after it was written."""
    table = Path(table)
    return table.with_name(table.name + ".unpublished")


def mark_unpublished(table: Path, repo_id: str, error: str) -> Path:
    """Leave the marker that `kbpipe status` reports and `kbpipe upload` clears.
    `error` must be redacted already: the marker is a file anyone may read."""
    marker = unpublished_marker(table)
    write_json({"repo_id": repo_id, "error": error}, marker)
    return marker


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
    replace_folder(staging, dest)
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
    planner: Planner = plan_splits,
    images: ImageMaker | None = None,
) -> list[StagedConfig]:
    """Write the shards, the card's images and README.md of one Hub dataset repo into
    ``folder``."""
    schema = hub_schema(parquet_schema(source))
    rows = RowSummary()
    configs = write_configs(
        source,
        folder,
        split,
        merged=merged,
        max_shard_bytes=max_shard_bytes,
        observer=rows.observer,
        planner=planner,
    )
    if images is not None:
        drawn = images(folder / "images")
        ctx.images = [(i.path.relative_to(folder).as_posix(), i.title, i.alt) for i in drawn]
    readme = render_readme(ctx, configs, schema, rows)
    if token and token in readme:
        # The card quotes the command line and parameters; a token must never reach the Hub.
        readme = readme.replace(token, "****")
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return configs


def _split_label(source: Path, split: str, built: Path) -> str:
    """How the card describes the split: a split column in the table decides when present,
    then the table it was made from."""
    if split != "none" and SPLIT_COLUMN in parquet_schema(source).names:
        return "column"
    return carried_label(built, split)


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
