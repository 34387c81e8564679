"""A step's input with the chat messages cut down to a few fields, read by pyarrow.

DuckDB reads a list of structs whole: for `completion[1].content` it also
materializes the ~60 KB `reasoning` beside it, a gigabyte on 18k rows.
pyarrow reads Parquet leaf by leaf, so `open_lean_input` hands DuckDB an
Arrow stream of only the leaves a step needs (strip-reasoning: role and
content), numbered as `kbpipe.io.sql.open_input` numbers rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kbpipe.errors import InputError
from kbpipe.io.sql import INPUT_ROW, PARQUET_FILE_STRIDE, InputTable, quote_identifier
from kbpipe.io.tables import ROW_GROUP_ROWS, _first_line, table_format


def open_lean_input(table: InputTable, view: str, *, messages: str, fields: Sequence[str]) -> bool:
    """Make `view`: `table`'s rows, with each message of column `messages` cut to `fields`.

    DuckDB reads a list of structs whole: for `completion[1].content` it also
    materializes the ~60 KB `reasoning` beside it, a gigabyte on 18k rows.
    pyarrow reads Parquet leaf by leaf, so for Parquet inputs the view is an
    Arrow stream of only the leaves kept, with input_row numbered as
    open_input numbers it. DuckDB can scan it once (a second scan is an error,
    not an empty result). JSONL inputs, and Parquet files whose schemas
    differ (DuckDB unions those by name), get a plain view over `table.view`.
    Either way the other columns are untouched. Returns whether it streams.
    """
    batches = _lean_parquet_batches(table, messages, fields)
    if batches is None:
        rel = table.con.sql(f"select * from {quote_identifier(table.view)}")
        rel.create_view(view, replace=True)
        return False
    import pyarrow as pa

    first = next(batches)  # the stream's schema, with input_row added
    stream = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    table.con.register(view, stream)
    return True


def _lean_parquet_batches(
    table: InputTable, messages: str, fields: Sequence[str]
) -> Iterator[Any] | None:
    """Batches of the kept leaves of every file, or None when pyarrow cannot read them alike."""
    if table_format(table.paths[0]) != "parquet":
        return None
    import pyarrow.parquet as pq

    files = [pq.ParquetFile(p) for p in table.paths]
    if any(not f.schema_arrow.equals(files[0].schema_arrow) for f in files[1:]):
        return None
    columns = [_lean_columns(f, messages, fields) for f in files]
    if any(c is None for c in columns):
        return None
    return _numbered_batches(table.paths, files, columns, table.limit)


def _lean_columns(parquet_file: Any, messages: str, fields: Sequence[str]) -> list[str] | None:
    """The columns to read from one file: `messages` as its kept leaves, the rest whole.

    Leaves are named as the file spells them, `completion.list.element.content`
    or `list.item` in the middle depending on the writer; pyarrow skips a name
    that matches nothing, so each file's own names are used.
    """
    schema = parquet_file.schema
    leaves = [schema.column(i).path for i in range(len(schema))]
    kept = [p for p in leaves if p.split(".")[0] == messages and p.split(".")[-1] in fields]
    if len(kept) != len(fields) or any(p.count(".") != 3 for p in kept):
        return None  # not a plain list of structs holding every field
    columns: list[str] = []
    for name in parquet_file.schema_arrow.names:
        columns += kept if name == messages else [name]
    return columns


def _numbered_batches(
    paths: Sequence[Path], files: Sequence[Any], columns: Sequence[list[str]], limit: int | None
) -> Iterator[Any]:
    import array

    import pyarrow as pa

    left = limit
    for number, (path, parquet_file, names) in enumerate(zip(paths, files, columns, strict=True)):
        start = number * PARQUET_FILE_STRIDE
        batches = parquet_file.iter_batches(batch_size=ROW_GROUP_ROWS, columns=names)
        while True:
            try:
                batch = next(batches, None)
            except (OSError, pa.ArrowException) as exc:
                # A damaged page: name the file, as DuckDB's own reader would.
                raise InputError(f"{path}: unreadable Parquet data ({_first_line(exc)})") from exc
            if batch is None:
                break
            if left is not None:
                if left <= 0:
                    return
                batch = batch.slice(0, left)
                left -= batch.num_rows
            # From a buffer: pa.array() on Python ints imports pandas, 0.2 s.
            rows = array.array("q", range(start, start + batch.num_rows))
            numbers = pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])
            start += batch.num_rows
            yield batch.append_column(INPUT_ROW, numbers)
