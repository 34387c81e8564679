"""Train/validation assignment and writing a table out as Hub Parquet shards.

Three ways to split (``--split``):

- ``module`` (default): a module goes to validation when the sha256 of its
  ``info.module_name`` falls in the lowest 10 % of the hash space. The choice
  depends on the name alone, so every rollout of a module lands on the same
  side, adding rows or re-sorting the table never moves a module, and any
  machine computes the same split. Rows without a module name go to train:
  they cannot be checked for leakage, so they stay out of the held-out set.
  Near-identical code under different names (KernelBook has one ``ReLU`` per
  repo) must not straddle the split either: in a table with a
  ``module_cluster`` column (``kbpipe dedupe --near-duplicates``), modules
  whose code falls in one cluster are split as one, by the smallest module
  name among them. A module alone in its cluster keeps its own name, so
  clusters move only the modules that have near-duplicates.
- ``legacy``: exactly ``datasets.Dataset.train_test_split(test_size=0.1,
  seed=42)`` as the seed scripts called it, with ``test`` renamed
  ``validation``; both sides keep the permutation order, as datasets does.
- ``none``: one ``train`` split.

A table that already carries a ``split`` column (a Hub dataset pulled with its
train/validation files) keeps that assignment under ``module`` and ``legacy``;
the column itself is not published, the file names carry it.

Splits are decided once: a table made from another (unique, no-reasoning,
merged, ...) is split as the table it was made from, row by row through
``example_id``; see kbpipe.hub.carry.

Shards follow ``datasets.push_to_hub``: ``{dir}/{split}-{i:05d}-of-{n:05d}.parquet``,
contiguous, of about ``max_shard_bytes`` of Parquet each. Rows are read in
record batches (in order from the Parquet row groups, or through a memory-mapped
Arrow file when the order is a permutation), so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.errors import ConfigError, InputError
from kbpipe.io.tables import ROW_GROUP_ROWS, BatchWriter, parquet_schema

SPLIT_MODES = ("module", "legacy", "none")
VALIDATION_FRACTION = 0.1
LEGACY_SEED = 42
SPLIT_COLUMN = "split"
# The Hub's guidance and datasets' own default: shards of at most ~500 MB.
MAX_SHARD_BYTES = 500 * 1024 * 1024
_SPLIT_ORDER = ("train", "validation", "test")
MERGED_CONFIGS = ("base", "synthetic")
_SPLIT_NAME_RE = re.compile(r"^(train|validation|valid|val|dev|test)(?=[-_.]|$)")
_SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation"}
# split name -> row indices into the source table, in output order.
SplitPlan = dict[str, np.ndarray]
# (table, mode, rows or None for all) -> their plan; plan_splits, or one that follows a parent.
Planner = Callable[[Path, str, "np.ndarray | None"], SplitPlan]


def module_in_validation(module_name: str | None, fraction: float = VALIDATION_FRACTION) -> bool:
    """True when a module belongs to validation under ``--split module``."""
    if module_name is None:
        return False
    digest = hashlib.sha256(module_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def legacy_split_indices(
    n: int, test_size: float = VALIDATION_FRACTION, seed: int = LEGACY_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices exactly as ``Dataset.train_test_split(test_size, seed)``."""
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0:
        raise InputError(
            f"--split legacy needs at least 2 rows (got {n}): train_test_split would leave "
            "train empty; use --split none"
        )
    permutation = np.random.default_rng(seed).permutation(n)
    return permutation[n_test : n_test + n_train], permutation[:n_test]


def module_names(path: Path) -> list[str | None]:
    """``info.module_name`` per row (or a top-level ``module_name``), read without other columns."""
    schema = parquet_schema(path)
    if "info" in schema.names and _has_child(schema.field("info").type, "module_name"):
        return read_column(path, "info.module_name")
    if "module_name" in schema.names:
        return read_column(path, "module_name")
    raise InputError(
        f"{path}: --split module needs info.module_name (or a module_name column); "
        "use --split legacy or --split none for this table"
    )


def split_keys(path: Path) -> list[str | None]:
    """The name each row is split by under ``module``: its module name, merged with
    the names of every module whose code is in the same near-duplicate cluster."""
    names = module_names(path)
    clusters = _module_clusters(path)
    if clusters is None:
        return names
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for name, cluster in zip(names, clusters, strict=True):
        if name is not None and cluster is not None:
            a, b = find("name:" + name), find("cluster:" + cluster)
            parent[max(a, b)] = min(a, b)  # "cluster:" < "name:": roots are clusters
    smallest: dict[str, str] = {}
    for name in names:
        if name is not None:
            root = find("name:" + name)
            smallest[root] = min(smallest.get(root, name), name)
    return [None if n is None else smallest[find("name:" + n)] for n in names]


def _module_clusters(path: Path) -> list[str | None] | None:
    """Per row, its code's near-duplicate cluster; None when the table has no clusters."""
    if "module_cluster" not in parquet_schema(path).names:
        return None
    return read_column(path, "module_cluster")


def plan_splits(path: Path, mode: str, rows: np.ndarray | None = None) -> SplitPlan:
    """Assign the rows of a Parquet table (or the subset ``rows``) to splits.

    Splits with no rows are left out, since a split without files cannot be
    loaded; an empty table yields an empty ``train``.
    """
    if mode not in SPLIT_MODES:
        raise ConfigError(f"unknown split mode {mode!r}; expected one of {', '.join(SPLIT_MODES)}")
    n_total = pq.ParquetFile(path).metadata.num_rows
    rows = np.arange(n_total, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    if mode == "none" or len(rows) == 0:
        return {"train": rows}
    if SPLIT_COLUMN in parquet_schema(path).names:
        values = read_column(path, SPLIT_COLUMN)
        return plan_from_labels(path, [values[i] for i in rows], rows)
    if mode == "legacy":
        train, test = legacy_split_indices(len(rows))
        plan = {"train": rows[train], "validation": rows[test]}
    else:
        names = split_keys(path)
        in_validation = _validation_mask([names[i] for i in rows])
        plan = {"train": rows[~in_validation], "validation": rows[in_validation]}
    return {name: idx for name, idx in plan.items() if len(idx)}


def _validation_mask(names: list[str | None]) -> np.ndarray:
    # Hash each distinct name once: a module has many rollouts.
    verdict = {name: module_in_validation(name) for name in set(names)}
    return np.fromiter((verdict[n] for n in names), dtype=bool, count=len(names))


def plan_from_labels(path: Path, labels: list[str | None], rows: np.ndarray) -> SplitPlan:
    """``rows`` grouped by their split label, splits in their usual order."""
    if any(label is None for label in labels):
        raise InputError(f"{path}: the {SPLIT_COLUMN!r} column has empty values")
    names = sorted(set(labels), key=split_sort_key)
    array = np.asarray(labels, dtype=object)
    return {name: rows[array == name] for name in names}


def split_sort_key(name: str) -> tuple[int, str]:
    """train, validation, test first, then any other split by name."""
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def split_from_path(rel_path: str) -> str:
    """The split a data file belongs to by datasets' naming convention (train when unnamed)."""
    for part in reversed(rel_path.split("/")):
        match = _SPLIT_NAME_RE.match(part)
        if match:
            return _SPLIT_ALIASES.get(match.group(1), match.group(1))
    return "train"


def _has_child(kind: pa.DataType, name: str) -> bool:
    return pa.types.is_struct(kind) and kind.get_field_index(name) >= 0


# --- writing shards -----------------------------------------------------------


@dataclass
class SplitFiles:
    """What was written for one split: shard paths (relative to the folder) and sizes."""

    name: str
    files: list[str] = field(default_factory=list)
    num_examples: int = 0
    # In-memory Arrow size, the figure datasets reports as a split's num_bytes.
    num_bytes: int = 0
    download_size: int = 0


@dataclass
class StagedConfig:
    """One Hub config: its splits as written and the file patterns that select them."""

    name: str
    splits: list[SplitFiles]
    data_files: dict[str, list[str]]
    default: bool = False


# Called with (split name, batch) for every batch written, e.g. to summarise columns.
BatchObserver = Callable[[str, pa.Table], None]


def write_configs(
    source: Path,
    folder: Path,
    mode: str,
    *,
    merged: bool = False,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    observer: Callable[[str], BatchObserver] | None = None,
    planner: Planner = plan_splits,
) -> list[StagedConfig]:
    """Write a table's shards as Hub configs: ``default`` under data/, or for a merged table
    ``base`` and ``synthetic`` (by ``data_source``) plus ``all``, which names both.
    ``planner`` assigns rows to splits (kbpipe.hub.carry's for a derived table).
    """
    options = (mode, max_shard_bytes, observer, planner)
    if not merged:
        return [_write_config(source, folder, "default", "data", None, *options)]
    if "data_source" not in parquet_schema(source).names:
        raise InputError(f"{source}: a merged table needs a data_source column (base|synthetic)")
    labels = np.asarray(read_column(source, "data_source"), dtype=object)
    unknown = sorted({str(v) for v in labels} - set(MERGED_CONFIGS))
    if unknown:
        raise InputError(f"{source}: data_source has {', '.join(unknown)}; expected base|synthetic")
    configs = [
        _write_config(
            source,
            folder,
            name,
            name,
            np.flatnonzero(labels == name),
            *options,
        )
        for name in MERGED_CONFIGS
    ]
    return [*configs, _union_config("all", configs)]


def _write_config(
    source: Path,
    folder: Path,
    name: str,
    data_dir: str,
    rows: np.ndarray | None,
    mode: str,
    max_shard_bytes: int,
    observer: Callable[[str], BatchObserver] | None,
    planner: Planner,
) -> StagedConfig:
    splits = write_split_shards(
        source,
        planner(source, mode, rows),
        folder,
        data_dir,
        max_shard_bytes=max_shard_bytes,
        observe=observer(name) if observer else None,
    )
    return StagedConfig(name, splits, {s.name: [f"{data_dir}/{s.name}-*"] for s in splits})


def _union_config(name: str, parts: list[StagedConfig]) -> StagedConfig:
    """A config made of other configs' files (no copies), the default one."""
    merged: dict[str, SplitFiles] = {}
    patterns: dict[str, list[str]] = {}
    for cfg in parts:
        for s in cfg.splits:
            into = merged.setdefault(s.name, SplitFiles(s.name))
            into.files += s.files
            into.num_examples += s.num_examples
            into.num_bytes += s.num_bytes
            into.download_size += s.download_size
            patterns.setdefault(s.name, []).extend(cfg.data_files[s.name])
    ordered = sorted(merged, key=split_sort_key)
    return StagedConfig(
        name, [merged[n] for n in ordered], {n: patterns[n] for n in ordered}, default=True
    )


def hub_schema(schema: pa.Schema) -> pa.Schema:
    """The published schema: no split column, 32-bit offsets as ``datasets`` writes them.

    Polars writes large_string/large_list; the seed's datasets had string/list,
    so the published shards (and their features) look the same as before.
    """
    fields = [f for f in schema if f.name != SPLIT_COLUMN]
    return pa.schema([f.with_type(_small_type(f.type)) for f in fields])


def _small_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
        return pa.list_(kind.value_field.with_type(_small_type(kind.value_type)))
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_small_type(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_small_type(f.type)) for f in kind])
    return kind


def write_split_shards(
    source: Path,
    plan: SplitPlan,
    folder: Path,
    data_dir: str,
    *,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    observe: BatchObserver | None = None,
) -> list[SplitFiles]:
    """Write each split of ``plan`` as ``data_dir/{split}-{i:05d}-of-{n:05d}.parquet`` shards."""
    schema = hub_schema(parquet_schema(source))
    row_bytes = _row_size_estimate(source)
    ordered = all(_ascending(idx) for idx in plan.values())
    written: list[SplitFiles] = []
    folder.mkdir(parents=True, exist_ok=True)
    with _open_rows(source, ordered, folder) as reader:
        for split, indices in plan.items():
            n_shards = _shard_count(int(row_bytes[indices].sum()), len(indices), max_shard_bytes)
            out = SplitFiles(split)
            for shard, shard_rows in enumerate(_contiguous_shards(indices, n_shards)):
                rel = f"{data_dir}/{split}-{shard:05d}-of-{n_shards:05d}.parquet"
                dest = folder / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with BatchWriter(dest, schema, "parquet") as writer:
                    for start in range(0, len(shard_rows), ROW_GROUP_ROWS):
                        batch = reader.take(shard_rows[start : start + ROW_GROUP_ROWS])
                        batch = batch.select(schema.names).cast(schema)
                        writer.write(batch)
                        out.num_examples += batch.num_rows
                        out.num_bytes += batch.nbytes
                        if observe is not None:
                            observe(split, batch)
                out.files.append(rel)
                out.download_size += dest.stat().st_size
            written.append(out)
    return written


def _shard_count(est_bytes: int, n_rows: int, max_shard_bytes: int) -> int:
    return max(1, min(n_rows, math.ceil(est_bytes / max_shard_bytes)))


def _contiguous_shards(indices: np.ndarray, n_shards: int) -> Iterator[np.ndarray]:
    # Same boundaries as datasets' Dataset.shard(num_shards, index, contiguous=True).
    div, mod = divmod(len(indices), n_shards)
    for i in range(n_shards):
        start = div * i + min(i, mod)
        yield indices[start : start + div + (1 if i < mod else 0)]


def _ascending(indices: np.ndarray) -> bool:
    return len(indices) < 2 or bool(np.all(indices[1:] > indices[:-1]))


def _row_size_estimate(source: Path) -> np.ndarray:
    """Compressed bytes per row, from each row group's size (Parquet on disk, as shards are)."""
    meta = pq.ParquetFile(source).metadata
    sizes = [
        (meta.row_group(i).num_rows, _compressed_size(meta.row_group(i)))
        for i in range(meta.num_row_groups)
    ]
    if not sizes:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.full(n, size / max(n, 1)) for n, size in sizes])


def _compressed_size(row_group: pq.RowGroupMetaData) -> int:
    return sum(row_group.column(j).total_compressed_size for j in range(row_group.num_columns))


def _parquet(source: Path) -> pq.ParquetFile:
    # Page by page, one thread: memory follows the batch being read, not the row group.
    return pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20)


def _batches(source: Path, columns: list[str] | None = None, size: int = ROW_GROUP_ROWS) -> Any:
    return _parquet(source).iter_batches(batch_size=size, columns=columns, use_threads=False)


def read_column(path: Path, column: str) -> list[Any]:
    """One column (``a.b`` for a struct field) as Python values, read in batches."""
    values: list[Any] = []
    for batch in _batches(path, [column], 8192):
        array = batch.column(0)
        for name in column.split(".")[1:]:
            # flatten() merges the struct's own nulls into its fields.
            array = array.flatten()[array.type.get_field_index(name)]
        values += array.to_pylist()
    return values


class _SequentialRows:
    """Rows asked for in ascending order, from one forward pass over the Parquet file.

    The shard writer asks for each split in turn; a request behind the current
    position (the next split) starts a new pass.
    """

    def __init__(self, source: Path) -> None:
        self._source = source
        self._restart()

    def _restart(self) -> None:
        self._iter = iter(_batches(self._source))
        self._batch: pa.RecordBatch | None = None
        self._start = self._end = 0

    def take(self, indices: np.ndarray) -> pa.Table:
        if indices[0] < self._start:
            self._restart()
        parts = []
        i = 0
        while i < len(indices):
            while indices[i] >= self._end:
                self._batch = next(self._iter)
                self._start, self._end = self._end, self._end + self._batch.num_rows
            j = int(np.searchsorted(indices, self._end))
            parts.append(self._batch.take(pa.array(indices[i:j] - self._start)))
            i = j
        return pa.Table.from_batches(parts)


class _RandomRows:
    """Rows in any order, from an Arrow IPC copy cut into batches of about 64 KB.

    Each take reads only the small batches holding the rows it needs, from
    disk (through the page cache), so memory stays at a few batches whatever
    the table size; a permutation of the Parquet file itself would decode every
    row group for every batch of output.
    """

    def __init__(self, ipc_path: str, rows: list[int]) -> None:
        self._reader = pa.ipc.open_file(pa.OSFile(ipc_path))
        self._offsets = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])

    def take(self, indices: np.ndarray) -> pa.Table:
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        which = np.searchsorted(self._offsets, sorted_idx, side="right") - 1
        parts = [
            self._reader.get_batch(int(b)).take(pa.array(sorted_idx[which == b] - self._offsets[b]))
            for b in np.unique(which)
        ]
        # Back from sorted order to the order asked for.
        return pa.Table.from_batches(parts).take(pa.array(np.argsort(order, kind="stable")))


@contextlib.contextmanager
def _open_rows(source: Path, ordered: bool, scratch: Path) -> Iterator[Any]:
    """Row access for the shard writer: a forward pass, or a random-access Arrow copy."""
    if ordered:
        yield _SequentialRows(source)
        return
    meta = pq.ParquetFile(source).metadata
    raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    per_batch = int(np.clip((64 << 10) * max(meta.num_rows, 1) // max(raw, 1), 1, ROW_GROUP_ROWS))
    with tempfile.TemporaryDirectory(prefix=".kbpipe-rows-", dir=scratch) as tmp:
        ipc = str(Path(tmp) / "rows.arrow")
        rows = []
        with (
            pa.OSFile(ipc, "wb") as sink,
            pa.ipc.new_file(sink, meta.schema.to_arrow_schema()) as w,
        ):
            for batch in _batches(source):
                for start in range(0, batch.num_rows, per_batch):
                    piece = batch.slice(start, per_batch)
                    w.write_batch(piece)
                    rows.append(piece.num_rows)
        yield _RandomRows(ipc, rows)
