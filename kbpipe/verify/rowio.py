"""Read a table in batches and write it back with new columns, with pyarrow only.

Shared by `verify` and `audit`, which annotate every input row. Both must run
on the GPU machine, which has pyarrow but not polars or duckdb, so neither
uses the polars-backed writers of `kbpipe.io.tables` for JSONL.

Parquet is streamed batch by batch. pyarrow's JSON reader does not stream, so
a JSONL input is read whole (vf-eval exports are converted to Parquet by
`kbpipe convert` before any step that annotates them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.errors import InputError
from kbpipe.io.tables import atomic_output

READ_BATCH_ROWS = 256


def read_batches(
    paths: Path | Sequence[Path], columns: Sequence[str] | None = None, limit: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of one or more files in order (only `columns` that exist), at most `limit`."""
    left = limit
    for path in [paths] if isinstance(paths, Path) else paths:
        for batch in _file_batches(Path(path), columns):
            if left is not None:
                batch = batch.slice(0, left)
                left -= batch.num_rows
            yield batch
            if left is not None and left <= 0:
                return


def _file_batches(path: Path, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix in (".jsonl", ".json"):
            import pyarrow.json as pj

            table = pj.read_json(path)
            names = [c for c in columns if c in table.column_names] if columns else None
            yield from (table.select(names) if names is not None else table).to_batches(
                READ_BATCH_ROWS
            )
        else:
            pf = pq.ParquetFile(path)
            names = [c for c in columns if c in pf.schema_arrow.names] if columns else None
            yield from pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read it as a table: {exc}") from exc


def column(batch: pa.RecordBatch, name: str) -> list[Any]:
    """A column as Python values; all None when the input lacks it."""
    if name not in batch.schema.names:
        return [None] * batch.num_rows
    return batch.column(name).to_pylist()


def write_annotated(
    inputs: Path | Sequence[Path],
    output: Path,
    columns: dict[str, pa.DataType],
    values: Sequence[dict[str, Any]],
    keep: Sequence[bool] | None = None,
    limit: int | None = None,
) -> int:
    """Write every input column plus `columns` (row i's values from `values[i]`).

    Input columns named like a new one are replaced, so a table can be
    annotated again. `keep[i]` False leaves row i out. Returns the rows written.
    """
    writer: _Writer | None = None
    offset = rows_out = 0
    with atomic_output(output) as tmp:
        try:
            for batch in read_batches(inputs, None, limit):
                rows = values[offset : offset + batch.num_rows]
                table = _annotated(pa.Table.from_batches([batch]), columns, rows)
                if keep is not None:
                    table = table.filter(pa.array(keep[offset : offset + batch.num_rows]))
                offset += batch.num_rows
                writer = writer or _Writer(tmp, output.suffix, table.schema)
                writer.write(table)
                rows_out += table.num_rows
            if writer is None:  # no input rows: still a file with the new columns
                writer = _Writer(tmp, output.suffix, _annotated(pa.table({}), columns, []).schema)
        finally:
            if writer is not None:
                writer.close()
    return rows_out


def _annotated(
    table: pa.Table, columns: dict[str, pa.DataType], rows: Sequence[dict[str, Any]]
) -> pa.Table:
    table = table.select([c for c in table.column_names if c not in columns])
    for name, kind in columns.items():
        table = table.append_column(
            pa.field(name, kind), pa.array([r.get(name) for r in rows], type=kind)
        )
    return table


class _Writer:
    """Parquet (zstd) or JSONL by the output's suffix."""

    def __init__(self, path: Path, suffix: str, schema: pa.Schema) -> None:
        self._jsonl = suffix == ".jsonl"
        if self._jsonl:
            self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        else:
            self._parquet = pq.ParquetWriter(path, schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        if not self._jsonl:
            self._parquet.write_table(table)
            return
        for row in table.to_pylist():
            self._fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        (self._fh if self._jsonl else self._parquet).close()
