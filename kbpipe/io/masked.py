"""Writing the rows of a table that a boolean mask keeps, streamed where the formats allow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.io.tables import (
    ROW_GROUP_ROWS,
    BatchWriter,
    atomic_output,
    parquet_schema,
    read_table,
    table_format,
    write_table,
)


def write_kept_rows(inputs: Sequence[Path], output: Path, keep: np.ndarray) -> None:
    """Rows `i` of the inputs (read in order, as one table) where `keep[i]`, to `output`."""
    n_rows = len(keep)
    if table_format(output) == "parquet" and all(table_format(p) == "parquet" for p in inputs):
        _stream_parquet(inputs, output, keep)
    elif table_format(output) == "jsonl" and all(table_format(p) == "jsonl" for p in inputs):
        _copy_jsonl_lines(inputs, output, keep)
    else:
        # Mixed formats go through one in-memory table; fine for the sizes that mix them.
        import polars as pl

        frames = [read_table(p) for p in inputs]
        table = pl.concat(frames, how="diagonal_relaxed").head(n_rows)
        write_table(table.filter(pl.Series(keep)), output)


def _stream_parquet(inputs: Sequence[Path], output: Path, keep: np.ndarray) -> None:
    offset = 0
    with atomic_output(output) as tmp:
        writer: BatchWriter | None = None
        try:
            for path in inputs:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS):
                    if offset >= len(keep):
                        break
                    batch = batch.slice(0, len(keep) - offset)
                    mask = pa.array(keep[offset : offset + batch.num_rows])
                    offset += batch.num_rows
                    table = pa.Table.from_batches([batch]).filter(mask)
                    if writer is None:
                        writer = BatchWriter(tmp, table.schema, "parquet")
                    writer.write(table)
            if writer is None:
                schema = parquet_schema(inputs[0]) if inputs else pa.schema([])
                writer = BatchWriter(tmp, schema, "parquet")
        finally:
            if writer is not None:
                writer.close()


def _copy_jsonl_lines(inputs: Sequence[Path], output: Path, keep: np.ndarray) -> None:
    index = 0
    with atomic_output(output) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for path in inputs:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    if index >= len(keep):
                        return
                    if keep[index]:
                        out.write(line if line.endswith("\n") else line + "\n")
                    index += 1
