"""Step 1's rating stage: the reward-filtered rows in, the same rows rated out.

`rate_kept` reads the kept rows twice from DuckDB, in the same input order:
first only what the judge needs (module name, PyTorch code, final message),
then, after every row has an outcome, all columns in record batches, to which
it appends `difficulty` and `evaluation_raw`. Rows that end without a rating
(no tag after the re-asks, a permanent HTTP error, retries exhausted) are left
out of the table and listed in the rejects with the reason and the raw answer;
rejects carry the row's identity (example_id, module_name, reward, position),
not its reasoning, so a failed run cannot produce a rejects file the size of
the input.
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
from kbpipe.io.tables import ROW_GROUP_ROWS, BatchWriter, atomic_output, table_format
from kbpipe.rater.judge import JUDGE, solution_from_completion
from kbpipe.rater.tasks import DryRunPlan, RaterOptions, TaskRun, plan_task, run_task
from kbpipe.steps.filter.reward import filter_by_reward


@dataclass
class Rated:
    rows_in: int
    rows_out: int
    run: TaskRun
    dropped: Counter[str] = field(default_factory=Counter)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def record(self, result: StepResult) -> None:
        """Add this stage's drops, parameters and report to a step's result."""
        for reason, n in self.dropped.items():
            result.drop(reason, n)
        result.params.update({f"judge_{k}": v for k, v in self.run.params.items()})
        result.metrics["judge"] = self.run.metrics()


def judge_payloads(
    con: duckdb.DuckDBPyConnection, kept: duckdb.DuckDBPyRelation
) -> list[dict[str, Any]]:
    """What the judge needs from each kept row, in input order."""
    kept.create_view("reward_kept", replace=True)
    rows = sql.run(con, "judge_inputs").to_arrow_table().to_pylist()
    return [
        {
            "example_id": r["example_id"],
            "module_name": r["module_name"],
            "python_code": r["python_code"],
            "solution": solution_from_completion(r["final_message"]),
        }
        for r in rows
    ]


def check_judge_inputs(table: sql.InputTable) -> None:
    """The evals columns the judge reads, checked before any work is done."""
    table.require("example_id")
    table.require_struct_field("info", "module_name")
    table.require_struct_field("info", "python_code")
    table.require_messages("completion")


def plan_judge(
    inputs: sql.StepInput,
    near: Path,
    settings: Settings,
    options: RaterOptions,
    *,
    limit: int | None = None,
) -> DryRunPlan:
    """`kbpipe filter --dry-run`: reward-filter, then count the judge requests the journal
    does not answer yet. Sends nothing and writes nothing."""
    resolved = sql.as_resolved(inputs)
    with sql.session(near) as con:
        table = sql.open_input(con, resolved.paths)
        with sql.reading(table.label):
            check_judge_inputs(table)
            reward = filter_by_reward(con, table, threshold=settings.reward_threshold, limit=limit)
            return plan_task(JUDGE, judge_payloads(con, reward.kept), settings, options)


def rate_kept(
    con: duckdb.DuckDBPyConnection,
    kept: duckdb.DuckDBPyRelation,
    output: Path,
    settings: Settings,
    options: RaterOptions,
) -> Rated:
    """Rate every kept row and write the rated ones to `output` (Parquet or JSONL)."""
    payloads = judge_payloads(con, kept)
    run = run_task(JUDGE, payloads, settings, options)
    rated = Rated(rows_in=len(payloads), rows_out=0, run=run)
    for payload, outcome in zip(payloads, run.outcomes, strict=True):
        if not outcome.ok:
            rated.dropped[f"judge_{outcome.reason}"] += 1
            rated.rejects.append(
                {
                    "reason": f"difficulty judge failed: {outcome.reason}",
                    "detail": outcome.detail,
                    "raw_answer": outcome.text,
                    "example_id": payload["example_id"],
                    "module_name": payload["module_name"],
                    "kept_row": outcome.ref,
                }
            )
    rated.rows_out = _write_rated(kept, run, payloads, output)
    return rated


def _write_rated(
    kept: duckdb.DuckDBPyRelation, run: TaskRun, payloads: list[dict[str, Any]], output: Path
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
