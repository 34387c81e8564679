"""Write DuckDB results to Parquet or JSONL files, atomically and in bounded memory.

Parquet is written by DuckDB's own COPY, which streams and encodes row groups
on every core. JSONL leaves DuckDB as Arrow batches, since DuckDB's JSON
writer runs out of memory on wide rows. `write_ordered` puts wide rows in a
given order; past a size where DuckDB's sort runs out of memory instead of
spilling (rows holding ~60 KB strings), it takes them out as Arrow batches and
sorts them through bucket files. pyarrow and polars are imported only on those
paths, to keep a step's start-up short.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from kbpipe.io import sql
from kbpipe.io.tables import (
    ROW_GROUP_ROWS,
    BatchWriter,
    atomic_output,
    scratch_dir,
    table_format,
)

if TYPE_CHECKING:
    import pyarrow as pa

# DuckDB's Parquet writer. Row groups are capped by bytes as well as rows, so
# a group of 60 KB rows stays small enough for a reader to hold. A string
# column gives up its dictionary once the dictionary passes 1 MB (Parquet's
# usual page size): short repeated values (role, module_name, difficulty) keep
# theirs, and unique 60 KB reasoning strings are not hashed into one for
# nothing, which took a fifth of merge's time.
COPY_TO_PARQUET = (
    "copy (select * from kbpipe_output) to {path} (format parquet, compression zstd, "
    f"row_group_size {ROW_GROUP_ROWS}, row_group_size_bytes {32 * 1024 * 1024}, "
    f"string_dictionary_page_size_limit {1024 * 1024})"
)

# write_ordered sorts this much of a table in memory at a time: larger buckets
# raise peak memory without making it faster (bench/bench_tables.py measures it).
SORT_BUCKET_BYTES = 32 * 1024 * 1024
# Up to this much, write_ordered lets DuckDB sort the rows: for small tables the
# bucket files cost more than the sort.
IN_MEMORY_SORT_BYTES = 64 * 1024 * 1024


def write_relation(rel: duckdb.DuckDBPyRelation, dest: Path) -> int:
    """Write a relation to Parquet or JSONL (by extension) atomically; return its row count."""
    with atomic_output(dest) as tmp:
        n_rows = write_relation_to(rel, tmp, table_format(dest))
    return n_rows


def write_relation_to(rel: duckdb.DuckDBPyRelation, path: Path, fmt: str) -> int:
    """Write a relation to `path` (no rename); for callers that check before publishing.

    Parquet goes through DuckDB's COPY, which encodes and compresses row groups
    in parallel and keeps the relation's order (connections preserve insertion
    order). It marks a column REQUIRED when DuckDB can prove it holds no nulls;
    readers treat that as the same type.
    """
    if fmt == "parquet":
        # The relation API binds no parameters; the path is quoted instead.
        copy = COPY_TO_PARQUET.format(path=sql.quote_literal(str(path)))
        [(n_rows,)] = rel.query("kbpipe_output", copy).fetchall()
        return n_rows
    # DuckDB's JSON writer buffers rows and ran out of memory at the 512 MB
    # limit on the 18k-row table; Arrow batches stream in bounded memory.
    reader = rel.to_arrow_reader(ROW_GROUP_ROWS)
    return _write_batches(reader, reader.schema, path, fmt)


def iter_dicts(
    con: duckdb.DuckDBPyConnection, name: str, batch_rows: int = ROW_GROUP_ROWS, **params: Any
) -> Iterator[dict[str, Any]]:
    """The rows of `sql/<name>.sql` as dicts, streamed batch_rows at a time.

    DuckDB decodes the next batch on a helper thread while the caller turns
    this one into JSON (strip-reasoning's rejects: 568 rows holding 34 MB of
    reasoning took 0.40-0.50 s this way, 0.46-0.53 s fetched then encoded).
    """
    reader = sql.run(con, name, **params).to_arrow_reader(batch_rows)
    for batch in _prefetched(reader):
        yield from batch.to_pylist()


def write_ordered(
    con: duckdb.DuckDBPyConnection,
    rel: duckdb.DuckDBPyRelation,
    dest: Path,
    *,
    n_rows: int,
    row_bytes: int,
) -> int:
    """Write `rel` atomically in the order of its `output_row` column (0..n-1), then drop it.

    `n_rows` rows of about `row_bytes` each (uncompressed). Up to
    IN_MEMORY_SORT_BYTES in all, DuckDB sorts them itself. Beyond that its sort
    runs out of memory instead of spilling on rows holding ~60 KB strings, so
    the rows are dealt into buckets of consecutive output rows, each about
    SORT_BUCKET_BYTES, kept as uncompressed Arrow files in the run's scratch
    folder beside `dest`; each bucket is then memory-mapped and read out in
    order, ROW_GROUP_ROWS rows at a time. One pass over the relation, one over
    the buckets, and memory stays bounded.
    """
    if n_rows * row_bytes <= IN_MEMORY_SORT_BYTES:
        return write_relation(rel.order("output_row").project("* exclude (output_row)"), dest)
    import pyarrow as pa
    import pyarrow.compute as pc

    rel.create_view("ordered_rows", replace=True)
    bucketed = sql.run(con, "ordered_rows_bucketed", bucket_rows=_bucket_rows(row_bytes))
    reader = bucketed.to_arrow_reader(ROW_GROUP_ROWS)
    helper_columns = ["output_row", "output_bucket"]
    schema = pa.schema([f for f in reader.schema if f.name not in helper_columns])
    with scratch_dir(dest, "sort-") as folder, atomic_output(dest) as tmp:
        buckets = _deal_into_buckets(reader, Path(folder))

        def in_order() -> Iterator[pa.RecordBatch]:
            for key in sorted(buckets):
                with pa.memory_map(str(buckets[key])) as source:
                    table = pa.ipc.open_file(source).read_all()  # mapped, not copied
                    order = pc.sort_indices(table["output_row"])
                    table = table.drop_columns(helper_columns)
                    for start in range(0, len(order), ROW_GROUP_ROWS):
                        chunk = table.take(order.slice(start, ROW_GROUP_ROWS))
                        yield from chunk.combine_chunks().to_batches()

        return _write_batches(in_order(), schema, tmp, table_format(dest))


def _bucket_rows(row_bytes: int) -> int:
    return max(1, SORT_BUCKET_BYTES // max(row_bytes, 1))


def _deal_into_buckets(reader: pa.RecordBatchReader, folder: Path) -> dict[int, Path]:
    import pyarrow as pa
    import pyarrow.compute as pc

    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    try:
        for batch in _prefetched(reader):
            keys = batch["output_bucket"]
            distinct = pc.unique(keys)
            for key in distinct:
                name = key.as_py()
                if name not in writers:
                    writers[name] = pa.ipc.new_file(str(folder / f"{name}.arrow"), reader.schema)
                # Copying 60 KB strings is the cost here: skip it when the batch is one bucket.
                part = batch if len(distinct) == 1 else batch.filter(pc.equal(keys, key))
                writers[name].write_batch(part)
    finally:
        for writer in writers.values():
            writer.close()
    return {name: folder / f"{name}.arrow" for name in writers}


def _prefetched(batches: Iterable[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Pull batches on a helper thread, so DuckDB decodes the next while this one is written.

    Writing (encoding, compressing) and reading (decompressing, filtering) take
    about as long each on ~60 KB rows; overlapping them saves a third of a step.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def pump() -> None:
        try:
            for batch in batches:
                put(batch)
            put(end)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    helper = threading.Thread(target=pump, name="kbpipe-prefetch", daemon=True)
    helper.start()
    try:
        while (item := slots.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        helper.join()


def _write_batches(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path, fmt: str
) -> int:
    import pyarrow as pa

    batches = _prefetched(batches)
    if fmt == "parquet":
        writer = BatchWriter(path, schema, "parquet")
        try:
            for batch in batches:
                writer.write(pa.Table.from_batches([batch], schema=schema))
        finally:
            writer.close()
        return writer.rows
    import polars as pl  # only JSONL output needs it; keeps step start-up short

    n_rows = 0
    with open(path, "wb") as fh:
        for batch in batches:
            pl.from_arrow(batch).write_ndjson(fh)
            n_rows += batch.num_rows
    return n_rows
