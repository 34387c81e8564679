"""Step 1's rating stage: the reward-filtered rows in, the same rows rated out.

`rate_kept` reads the kept rows twice from DuckDB, in the same input order:
first only what the judge needs (module name, PyTorch code, the completion's
roles and contents), then, after every row has an outcome, all columns in
record batches, to which it appends `difficulty` and `evaluation_raw`.

The judge rates the solution `kbpipe.verify.extract.extract_solution` finds:
the last *assistant* message holding one in `--answer-format` (auto: answer
tags, BEGIN_PYTHON/END_PYTHON, a fenced python block). A multi-turn rollout
that ends with the environment's `user` feedback is therefore judged on its
code, not on "Compilation succeeded". With no solution found, the judge sees
the last assistant message whole (the seed's fallback).

A row that ends without a rating (no tag after the re-asks, a per-row HTTP
error, retries exhausted) passed the reward filter, so by default
(`--on-unrated keep`, the seed's behaviour) it stays in the table with
`difficulty` null and `evaluation_raw` holding the last answer; `drop` leaves
it out. Either way it is listed in the rejects with the reason and the raw
answer, and counted in the stats. Rejects carry the row's identity
(example_id, module_name, position), not its reasoning, so a failed run cannot
produce a rejects file the size of the input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kbpipe.config import RATING_COLUMNS, Settings
from kbpipe.io import sql
from kbpipe.io.lineage import StepResult
from kbpipe.io.tables import (
    ROW_GROUP_ROWS,
    BatchWriter,
    atomic_output,
    check_writable,
    table_format,
)
from kbpipe.rater.judge import JUDGE
from kbpipe.rater.prices import Price
from kbpipe.rater.tasks import DryRunPlan, RaterOptions, TaskRun, plan_task, run_task
from kbpipe.verify.extract import AUTO, extract_solution, formats_for, message_text

# `--on-unrated`: what becomes of a row the judge gave no rating.
ON_UNRATED = ("keep", "drop")
# The answer_format count of rows where no format matched.
NO_SOLUTION = "none"


@dataclass(frozen=True)
class JudgeOptions:
    answer_format: str = AUTO
    on_unrated: str = "keep"

    def __post_init__(self) -> None:
        formats_for(self.answer_format)
        if self.on_unrated not in ON_UNRATED:
            raise ValueError(f"on_unrated must be one of {ON_UNRATED}, got {self.on_unrated!r}")


@dataclass
class Rated:
    rows_in: int
    rows_out: int
    run: TaskRun
    options: JudgeOptions
    formats: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    unrated_kept: Counter[str] = field(default_factory=Counter)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def record(self, result: StepResult) -> None:
        """Add this stage's drops, parameters and report to a step's result."""
        for reason, n in self.dropped.items():
            result.drop(reason, n)
        result.params.update({f"judge_{k}": v for k, v in self.run.params.items()})
        result.params["answer_format"] = self.options.answer_format
        result.params["on_unrated"] = self.options.on_unrated
        result.metrics["judge"] = self.run.metrics()
        result.metrics["judge_answer_formats"] = dict(sorted(self.formats.items()))
        result.metrics["judge_unrated_kept"] = dict(sorted(self.unrated_kept.items()))


def judge_payloads(
    con: duckdb.DuckDBPyConnection,
    kept: duckdb.DuckDBPyRelation,
    answer_format: str = AUTO,
    formats: Counter[str] | None = None,
) -> list[dict[str, Any]]:
    """What the judge needs from each kept row, in input order; `formats` counts
    which answer format each row's solution came in."""
    kept.create_view("reward_kept", replace=True)
    rows = sql.run(con, "judge_inputs").to_arrow_table().to_pylist()
    payloads = []
    for r in rows:
        solution, fmt = judged_solution(r["messages"], answer_format)
        if formats is not None:
            formats[fmt] += 1
        payloads.append(
            {
                "example_id": r["example_id"],
                "module_name": r["module_name"],
                "python_code": r["python_code"],
                "solution": solution,
            }
        )
    return payloads


def judged_solution(messages: list[dict[str, Any]] | None, answer_format: str) -> tuple[str, str]:
    """(code the judge reads, the answer format it came in or NO_SOLUTION).

    Stripped as the seed's judge stripped its `<answer>` text, so single-turn
    rows build the same prompts as before and reuse the request journal.
    """
    found = extract_solution(messages, answer_format)
    if found is not None:
        return found.code.strip(), found.format
    last = next((m for m in reversed(messages or []) if m.get("role") == "assistant"), None)
    return (message_text(last).strip() if last else ""), NO_SOLUTION


def check_judge_inputs(table: sql.InputTable) -> None:
    """The evals columns the judge reads, checked before any work is done."""
    table.require("example_id")
    table.require_struct_field("info", "module_name")
    table.require_struct_field("info", "python_code")
    table.require_messages("completion")


def plan_judge(
    con: duckdb.DuckDBPyConnection,
    kept: duckdb.DuckDBPyRelation,
    settings: Settings,
    options: RaterOptions,
    *,
    judge_options: JudgeOptions | None = None,
    price: Price | None = None,
) -> DryRunPlan:
    """`kbpipe filter --dry-run`: the judge requests the journal does not answer yet for
    the rows the reward filter kept. Sends nothing and writes nothing."""
    fmt = (judge_options or JudgeOptions()).answer_format
    return plan_task(JUDGE, judge_payloads(con, kept, fmt), settings, options, price)


def rate_kept(
    con: duckdb.DuckDBPyConnection,
    kept: duckdb.DuckDBPyRelation,
    output: Path,
    settings: Settings,
    options: RaterOptions,
    judge_options: JudgeOptions | None = None,
) -> Rated:
    """Rate every kept row and write them to `output` (Parquet or JSONL); unrated rows
    follow `judge_options.on_unrated`."""
    judge_options = judge_options or JudgeOptions()
    check_writable(output)  # before paying for answers there would be nowhere to put
    formats: Counter[str] = Counter()
    payloads = judge_payloads(con, kept, judge_options.answer_format, formats)
    run = run_task(JUDGE, payloads, settings, options)
    rated = Rated(
        rows_in=len(payloads), rows_out=0, run=run, options=judge_options, formats=formats
    )
    keep_unrated = judge_options.on_unrated == "keep"
    for payload, outcome in zip(payloads, run.outcomes, strict=True):
        if outcome.ok:
            continue
        reason = f"judge_{outcome.reason}"
        (rated.unrated_kept if keep_unrated else rated.dropped)[reason] += 1
        rated.rejects.append(
            {
                "reason": f"difficulty judge failed: {outcome.reason}",
                "detail": outcome.detail,
                "raw_answer": outcome.text,
                "example_id": payload["example_id"],
                "module_name": payload["module_name"],
                "kept_row": outcome.ref,
                "kept_in_output": keep_unrated,
            }
        )
    rated.rows_out = _write_rated(kept, run, payloads, output, keep_unrated)
    return rated


def _write_rated(
    kept: duckdb.DuckDBPyRelation,
    run: TaskRun,
    payloads: list[dict[str, Any]],
    output: Path,
    keep_unrated: bool,
) -> int:
    reader = kept.to_arrow_reader(ROW_GROUP_ROWS)
    base = [f.name for f in reader.schema if f.name not in RATING_COLUMNS]
    schema = pa.schema(
        [
            *(reader.schema.field(n) for n in base),
            pa.field("difficulty", pa.string()),
            pa.field("evaluation_raw", pa.string()),
        ]
    )
    written = position = 0
    with atomic_output(output) as tmp:
        sink = BatchWriter(tmp, schema, table_format(output))
        try:
            for batch in reader:
                n = batch.num_rows
                outcomes = run.outcomes[position : position + n]
                _check_alignment(batch, payloads[position : position + n])
                position += n
                table = pa.Table.from_batches([batch]).select(base)
                table = table.append_column(
                    "difficulty", pa.array([o.value for o in outcomes], pa.string())
                )
                table = table.append_column(
                    "evaluation_raw", pa.array([o.text for o in outcomes], pa.string())
                )
                if not keep_unrated:
                    table = table.filter(pa.array([o.ok for o in outcomes], pa.bool_()))
                sink.write(table)
                written += table.num_rows
        finally:
            sink.close()
    if position != len(run.outcomes):
        raise AssertionError(f"rated {len(run.outcomes)} rows but re-read {position}")
    return written


def _check_alignment(batch: pa.RecordBatch, payloads: list[dict[str, Any]]) -> None:
    # The two reads must see the rows in the same order, or ratings land on the wrong rows.
    ids = batch.column(batch.schema.get_field_index("example_id")).to_pylist()
    if ids != [p["example_id"] for p in payloads]:
        raise AssertionError("the kept rows came back in a different order on the second read")
