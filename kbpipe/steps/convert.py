"""Step 0.5: vf-eval rollouts (JSONL) -> the evals table (Parquet).

The row semantics (reasoning out of the trajectory, the newer verifiers
layout, which fields are required) live in `kbpipe.io.rollouts`. This module
streams: the file is read in chunks of lines, so memory stays flat however
large the input; each chunk becomes one Arrow record batch appended to the
Parquet file as its own row group, inside `atomic_output`, so a bad line
anywhere leaves no output. When a chunk widens the schema (a key first met
late), the rows written so far are re-streamed into the wider schema.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError
from kbpipe.io.lineage import StepResult
from kbpipe.io.rollout_batches import to_batch
from kbpipe.io.rollouts import SCHEMA, BadRow, Chunk, read_chunks
from kbpipe.io.tables import (
    ROW_GROUP_ROWS,
    BatchWriter,
    atomic_output,
    sidecar,
    table_format,
)
from kbpipe.io.vfeval import RowReader, detect_file_layout

EXAMPLES = """examples:
  kbpipe convert outputs/kernelbook-env.jsonl --no-upload
  kbpipe convert run.jsonl -o evals.parquet --skip-bad --no-upload
  DATA_MODEL=kimi_k2 kbpipe convert outputs/kernelbook-env.jsonl   # and publish -evals"""


class _ParquetOut:
    """Parquet file under construction whose schema may widen as new keys appear."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schema = SCHEMA
        self._writer: BatchWriter | None = None
        self.rewrites = 0

    def write(self, batch: pa.RecordBatch, rows: list[dict[str, Any]]) -> None:
        if self._writer is not None and batch.schema != self.schema:
            self._widen(batch.schema)
        if self._writer is None:
            self.schema = batch.schema
            self._writer = BatchWriter(self.path, self.schema, "parquet")
        self._writer.write(pa.Table.from_batches([batch]))

    def _widen(self, schema: pa.Schema) -> None:
        """Re-stream the rows written so far into the wider schema (rare: a new key)."""
        assert self._writer is not None
        self._writer.close()
        old = self.path.with_name(self.path.name + ".narrow")
        os.replace(self.path, old)
        try:
            self._writer = BatchWriter(self.path, schema, "parquet")
            for batch in pq.ParquetFile(old).iter_batches(batch_size=ROW_GROUP_ROWS):
                self._writer.write(pa.Table.from_batches([batch]).cast(schema))
        finally:
            old.unlink(missing_ok=True)
        self.schema = schema
        self.rewrites += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _JsonlOut:
    """JSONL export of the same rows (the seed's format); rows are checked as for Parquet."""

    def __init__(self, path: Path) -> None:
        self.schema = SCHEMA
        self._writer = BatchWriter(path, fmt="jsonl")

    def write(self, batch: pa.RecordBatch, rows: list[dict[str, Any]]) -> None:
        self.schema = batch.schema
        self._writer.write_rows(rows)

    def close(self) -> None:
        self._writer.close()


# -- the step --------------------------------------------------------------


def convert(
    input_path: Path | str,
    output: Path | str,
    settings: Settings,
    *,
    skip_bad: bool = False,
    limit: int | None = None,
    batch_rows: int = ROW_GROUP_ROWS,
    reward_field: str | None = None,
    allow_missing_reasoning: bool = False,
) -> StepResult:
    """Convert a vf-eval JSONL file into the evals table at `output` (.parquet or .jsonl).

    The file's layout (the seed's, verifiers 0.3.x results.jsonl, 0.4.x
    traces.jsonl, see kbpipe.io.vfeval) is detected from its first line and
    recorded in the stats, with how many rows have each optional field null.
    A bad line (not JSON, a required field missing, a wrong type, no
    reasoning unless `allow_missing_reasoning`) stops the step with an
    InputError naming the line and example_id, and nothing is written; with
    `skip_bad` the good rows are written and the bad lines go to
    `<stem>.rejects.jsonl`. `limit` keeps the first N (non-blank) lines.
    `reward_field` takes the reward from another score or metric by name.
    """
    input_path, output = Path(input_path), Path(output)
    fmt = table_format(output)
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file")
    result = StepResult(
        "convert",
        output=output,
        params={
            "skip_bad": skip_bad,
            "limit": limit,
            "batch_rows": batch_rows,
            "reward_field": reward_field,
            "allow_missing_reasoning": allow_missing_reasoning,
        },
    )
    reader = RowReader(
        detect_file_layout(input_path),
        reward_field=reward_field,
        allow_missing_reasoning=allow_missing_reasoning,
    )
    rejects_path = sidecar(output, "rejects")
    tally = _Tally()
    # The input is fingerprinted as it is read, with xxh3 (~10 GB/s), not hashed
    # again with SHA-256 on a thread (~1 GB/s), which would take the writer's core.
    hasher = xxhash.xxh3_128()
    # One helper thread writes (Parquet encoding and zstd release the GIL) while
    # the main thread parses, which holds the GIL: both cores busy.
    with _no_cyclic_gc(), ThreadPoolExecutor(1) as pool:
        with atomic_output(output) as tmp:
            out = _ParquetOut(tmp) if fmt == "parquet" else _JsonlOut(tmp)
            try:
                _stream(
                    input_path,
                    out,
                    pool,
                    tally,
                    result,
                    skip_bad,
                    limit,
                    batch_rows,
                    hasher,
                    reader,
                )
            except BaseException:
                # The temp file is discarded; a failure to finish it must not
                # hide the error that stopped the step.
                with contextlib.suppress(OSError, pa.ArrowException):
                    out.close()
                raise
            out.close()
            if result.rows_in == 0:
                raise InputError(f"{input_path}: no rows (the file is empty)")
            if result.rows_out == 0:
                result.write_rejects(tally.rejects)
                raise InputError(
                    f"{input_path}: all {result.rows_in:,} rows are bad, nothing written; "
                    f"see {rejects_path}"
                )
        result.inputs = [
            {"path": str(input_path), "xxh3_128": hasher.hexdigest(), "bytes": _size(input_path)}
        ]
    result.write_rejects(tally.rejects)
    result.metrics = tally.metrics(out.schema)
    result.metrics["layout"] = reader.layout
    result.metrics["layout_notes"] = dict(sorted(reader.notes.items()))
    if isinstance(out, _ParquetOut):
        result.metrics["schema_widenings"] = out.rewrites
    return result.finish(settings)


def _size(path: Path) -> int:
    return path.stat().st_size


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector: parsed JSON holds no cycles, yet the millions of
    dicts and lists it allocates trigger collections that cost ~half the run time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _stream(
    path: Path,
    out: _ParquetOut | _JsonlOut,
    pool: ThreadPoolExecutor,
    tally: _Tally,
    result: StepResult,
    skip_bad: bool,
    limit: int | None,
    batch_rows: int,
    hasher: xxhash.xxh3_128,
    reader: RowReader,
) -> None:
    """Parse chunk N+1 while chunk N is written; at most two chunks are alive at once."""
    schema = SCHEMA
    pending: Future[None] | None = None
    try:
        for lines in read_chunks(path, batch_rows=batch_rows, limit=limit, hasher=hasher):
            result.rows_in += len(lines)
            chunk = Chunk(lines, reader, reader.read_keys)
            del lines
            batch = to_batch(chunk, schema)
            if chunk.bad and not skip_bad:
                first = min(chunk.bad, key=lambda bad: bad[0])
                raise _bad_line_error(path, first, sidecar(result.output, "rejects"))
            tally.add_bad(path, chunk, result)
            if batch is None:
                continue
            # The schema only widens; the writer follows it batch by batch.
            schema = batch.schema
            tally.add_rows(chunk)
            result.rows_out += batch.num_rows
            if pending is not None:
                pending.result()
            pending = pool.submit(out.write, batch, chunk.rows)
            del chunk, batch
    finally:
        # Never leave a write running on a file that is about to be closed or removed.
        if pending is not None:
            wait([pending])
    if pending is not None:
        pending.result()


_OPTIONAL_FIELDS = (
    "task",
    "answer",
    "generation_ms",
    "scoring_ms",
    "total_ms",
    "speedup_reward",
    "num_turns",
)


class _Tally:
    """Figures gathered chunk by chunk: reward stats, layouts, dropped keys, rejects."""

    def __init__(self) -> None:
        self.reward_min = math.inf
        self.reward_max = -math.inf
        self.reward_sum = 0.0
        self.rows = 0
        self.with_trajectory = 0
        self.without_reasoning = 0
        self.dropped_keys: Counter[str] = Counter()
        self.nulls: Counter[str] = Counter()
        self.rejects: list[dict[str, Any]] = []

    def add_rows(self, chunk: Chunk) -> None:
        rewards = [row["reward"] for row in chunk.rows]
        self.reward_min = min(self.reward_min, *rewards)
        self.reward_max = max(self.reward_max, *rewards)
        self.reward_sum += math.fsum(rewards)
        self.rows += len(rewards)
        self.with_trajectory += sum(chunk.with_trajectory)
        self.without_reasoning += sum(
            all(m["reasoning"] is None for m in row["completion"]) for row in chunk.rows
        )
        self.dropped_keys.update(chunk.dropped_keys)
        # A field a layout does not have comes out null: counted, never silent.
        for name in _OPTIONAL_FIELDS:
            self.nulls[name] += sum(row[name] is None for row in chunk.rows)

    def add_bad(self, path: Path, chunk: Chunk, result: StepResult) -> None:
        for lineno, example_id, error, raw in sorted(chunk.bad, key=lambda b: b[0]):
            result.drop(error.kind)
            self.rejects.append(
                {
                    "line": lineno,
                    "example_id": example_id,
                    "reason": error.kind,
                    "detail": error.detail,
                    "excerpt": bytes(raw[:200]).decode("utf-8", errors="replace"),
                    "source": str(path),
                }
            )

    def metrics(self, schema: pa.Schema) -> dict[str, Any]:
        return {
            "reward_min": self.reward_min if self.rows else None,
            "reward_max": self.reward_max if self.rows else None,
            "reward_mean": self.reward_sum / self.rows if self.rows else None,
            "rows_with_trajectory": self.with_trajectory,
            "rows_verifiers_layout": self.rows - self.with_trajectory,
            "rows_without_reasoning": self.without_reasoning,
            "null_fields": {k: n for k, n in sorted(self.nulls.items()) if n},
            "dropped_input_fields": dict(sorted(self.dropped_keys.items())),
            "columns": schema.names,
            "info_fields": schema.field("info").type.names,
        }


def _bad_line_error(path: Path, bad: tuple[int, Any, BadRow, bytes], rejects: Path) -> InputError:
    lineno, example_id, error, _raw = bad
    who = "example_id unknown" if example_id is None else f"example_id {example_id}"
    return InputError(
        f"{path} line {lineno} ({who}): {error.detail}; nothing was written "
        f"(--skip-bad writes the good rows and lists the bad ones in {rejects.name})"
    )


# -- command line ----------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input_path", nargs="?", metavar="IN.jsonl", help="vf-eval output JSONL (or -i IN.jsonl)"
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="write the good rows and list bad lines in <output stem>.rejects.jsonl "
        "instead of stopping at the first bad line",
    )
    parser.add_argument(
        "--allow-missing-reasoning",
        action="store_true",
        help="keep rows with no reasoning anywhere (reasoning: null, counted in the stats) "
        "instead of treating them as bad lines, as the seed did",
    )
    parser.add_argument(
        "--reward-field",
        metavar="NAME",
        help="take `reward` from this score or metric (a verifiers 0.4 reward function's name, "
        "or a column/metrics key) instead of the rubric's total",
    )


READS = None
WRITES = ("source", "")


def execute(args: argparse.Namespace, inputs: None, output: Path, settings: Settings) -> StepResult:
    given = [p for p in (args.input_path, args.input) if p is not None]
    if not given:
        raise ConfigError("name the vf-eval JSONL to convert: kbpipe convert IN.jsonl")
    if len(given) == 2 and given[0] != given[1]:
        raise ConfigError(f"two inputs given ({given[0]} and {given[1]}); pass one")
    if given[0].startswith("hf://"):
        raise ConfigError("convert reads a local vf-eval JSONL file, not a Hub dataset")
    return convert(
        given[0],
        output,
        settings,
        skip_bad=args.skip_bad,
        limit=settings.limit(args.limit),
        reward_field=args.reward_field,
        allow_missing_reasoning=args.allow_missing_reasoning,
    )


def report_lines(result: StepResult) -> list[str]:
    m = result.metrics
    lines = [
        f"Loaded {result.rows_in:,} rows from {result.inputs[0]['path']}",
        f"Reward: min {m['reward_min']:.4f}  max {m['reward_max']:.4f}  "
        f"mean {m['reward_mean']:.4f}",
        f"Columns: {', '.join(m['columns'])}",
    ]
    if "layout" in m:
        lines.insert(1, f"Layout: {m['layout']}")
    if m["rows_without_reasoning"]:
        lines.append(f"  note: {m['rows_without_reasoning']:,} rows kept without reasoning")
    for name, n in m.get("null_fields", {}).items():
        lines.append(f"  note: {name} is null in {n:,} rows (the input does not have it)")
    return lines
