"""Writing a table out as Hub Parquet shards, one config and split at a time.

Shards follow ``datasets.push_to_hub``: ``{dir}/{split}-{i:05d}-of-{n:05d}.parquet``,
contiguous, of about ``max_shard_bytes`` of Parquet each. Rows are read in
record batches (in order from the Parquet row groups, or through a memory-mapped
Arrow file when the order is a permutation), so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.errors import InputError
from kbpipe.hub.splits import (
    MERGED_CONFIGS,
    SPLIT_COLUMN,
    Planner,
    SplitPlan,
    iter_batches,
    plan_splits,
    read_column,
    split_sort_key,
)
from kbpipe.io.tables import ROW_GROUP_ROWS, BatchWriter, parquet_schema

# The Hub's guidance and datasets' own default: shards of at most ~500 MB.
MAX_SHARD_BYTES = 500 * 1024 * 1024


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


class _SequentialRows:
    """Rows asked for in ascending order, from one forward pass over the Parquet file.

    The shard writer asks for each split in turn; a request behind the current
    position (the next split) starts a new pass.
    """

    def __init__(self, source: Path) -> None:
        self._source = source
        self._restart()

    def _restart(self) -> None:
        self._iter = iter(iter_batches(self._source))
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
            for batch in iter_batches(source):
                for start in range(0, batch.num_rows, per_batch):
                    piece = batch.slice(start, per_batch)
                    w.write_batch(piece)
                    rows.append(piece.num_rows)
        yield _RandomRows(ipc, rows)
