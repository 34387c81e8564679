"""Pull a Hub dataset's data files for a step to read, and pick a step's input.

``snapshot_download(repo_type="dataset")`` of the data files only (Parquet,
else JSON/JSONL) plus README.md, so the Hub cache makes reruns work offline
(``HF_HUB_OFFLINE=1``). The resolved commit is recorded as the input's
revision. A repo with several splits (train/validation) is combined into one
local Parquet file with a ``split`` column, so publishing it again keeps the
assignment; a one-split repo is handed to the step as its shard files.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from pathlib import Path
from typing import Any

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.lineage import ResolvedInput

# pyarrow and the card/split modules load only when a Hub dataset is pulled:
# a step reading a local file resolves its input without them.

_URI_RE = re.compile(r"^hf://datasets/([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(.+))?$")
_PARQUET_PATTERNS = ["*.parquet", "README.md"]
_JSON_PATTERNS = ["*.jsonl", "*.json", "README.md"]
# JSON files in dataset repos that are metadata, not rows.
_NOT_DATA = {"dataset_infos.json", "dataset_info.json", "dataset_dict.json", "state.json"}


class HubUnreachable(InputError):
    """The Hub cannot be reached and nothing is cached: a step may use a local stand-in."""


def resolve_input(
    given: str | Path | None,
    *,
    default_local: Path | None,
    default_repo: str | None,
    settings: Settings,
    make_hint: str | None = None,
) -> ResolvedInput:
    """Pick a step's input: -i (local or hf://), else the local default, else the Hub default.

    Mirrors the seed: a step reads the previous step's Hub dataset when nothing
    local exists.
    """
    if given is not None and str(given).startswith("hf://"):
        return pull_table(str(given), settings)
    if given is not None:
        p = Path(given)
        if not p.exists():
            raise InputError(f"{p}: no such file")
        return ResolvedInput([p], str(p))
    if default_local is not None and default_local.exists():
        return ResolvedInput([default_local], str(default_local))
    if default_repo is not None:
        return pull_table(f"hf://datasets/{default_repo}", settings, make_hint=make_hint)
    raise InputError(f"{default_local}: no such file; pass -i PATH")


def parse_hub_uri(uri: str) -> tuple[str, str | None]:
    """``hf://datasets/ORG/NAME[@revision]`` -> (repo_id, revision)."""
    match = _URI_RE.match(uri)
    if not match:
        raise InputError(f"{uri}: not a Hub dataset address; expected hf://datasets/ORG/NAME[@rev]")
    return match.group(1), match.group(2)


def pull_table(uri: str, settings: Settings, *, make_hint: str | None = None) -> ResolvedInput:
    """Download (or find in the cache) a Hub dataset's data files for a step to read.

    `make_hint` names the make variable that gives a local file instead (`INPUT=...`),
    for the messages of a run started by make.
    """
    repo_id, revision = parse_hub_uri(uri)
    local = _local_hint(settings, make_hint)
    folder = _snapshot(uri, repo_id, revision, _PARQUET_PATTERNS, settings, local)
    files = _data_files(folder)
    if not files:
        folder = _snapshot(uri, repo_id, revision, _JSON_PATTERNS, settings, local)
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


def _local_hint(settings: Settings, make_hint: str | None) -> str:
    if make_hint and settings.from_make:
        return f"set {make_hint}"
    return "pass a local file with -i PATH (.parquet or .jsonl)"


def _snapshot(
    uri: str,
    repo_id: str,
    revision: str | None,
    patterns: list[str],
    settings: Settings,
    local: str,
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
            f"or {local}"
        ) from None
    except (hf_errors.LocalEntryNotFoundError, *transport_errors()):
        raise HubUnreachable(
            f"{uri}: the Hugging Face Hub cannot be reached and nothing is cached for it; {local}"
        ) from None
    except hf_errors.HfHubHTTPError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{uri}: the Hub answered with an error: {first}") from None


def transport_errors() -> tuple[type[BaseException], ...]:
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
    from kbpipe.hub.cardyaml import read_data_files
    from kbpipe.hub.splits import split_from_path, split_sort_key

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
    import pyarrow as pa

    from kbpipe.hub.splits import SPLIT_COLUMN
    from kbpipe.io.tables import BatchWriter, atomic_output

    writer: BatchWriter | None = None
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
                        writer = BatchWriter(tmp, schema, "parquet")
                    try:
                        table = table.select(schema.names).cast(schema)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
                        raise InputError(
                            f"{uri}: {path.name} has a different schema from the first data "
                            f"file ({exc})"
                        ) from None
                    writer.write(table)
            if writer is None:
                raise InputError(f"{uri}: the dataset's data files hold no rows")
        finally:
            if writer is not None:
                writer.close()


def _batches(path: Path) -> Any:
    import pyarrow.parquet as pq

    from kbpipe.io.tables import ROW_GROUP_ROWS

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
