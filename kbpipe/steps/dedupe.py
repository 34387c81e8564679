"""Step 3, `kbpipe dedupe`: keep the best-reward rollout per module.

Exactly the seed's rules (sql/unique_best_per_module.sql): group by
`info.module_name`, keep the highest reward, the first row in input order on a
tie; output sorted by reward descending, equal rewards in the order their
modules first appear in the input. A null or NaN reward cannot be ranked (the
seed would have crashed on it), so it is an error naming the example_ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import duckdb

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io import sql, sql_output
from kbpipe.io.lineage import ResolvedInput, StepResult

DUPLICATE = "duplicate_module"
TOP_N = 10

EXAMPLES = """examples:
  kbpipe dedupe --no-upload                 # outputs/$DATA_MODEL/filtered -> unique
  kbpipe dedupe -i filtered.parquet -o unique.parquet --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """dedupe takes only the common step options."""


def dedupe(
    inputs: sql.StepInput, output: Path, settings: Settings, *, limit: int | None = None
) -> StepResult:
    """Write the best-reward row per `info.module_name`; metrics hold the seed's statistics."""
    resolved = sql.as_resolved(inputs)
    output = Path(output)
    result = StepResult("dedupe", output=output, inputs=resolved.lineage(), params={"limit": limit})
    with sql.session(output) as con:
        table = sql.open_input(con, resolved.paths, limit=limit)
        table.require("example_id")
        table.require_number("reward")
        table.require_struct_field("info", "module_name")
        with sql.reading(table.label):
            _refuse_missing_rewards(con, table)
            result.rows_in = table.n_rows
            sql.run(con, "unique_winners").create("unique_winners")
            [(n_unique,)] = con.table("unique_winners").count("*").fetchall()
            best = sql.run(con, "unique_best_per_module")
            result.rows_out = sql_output.write_ordered(
                con, best, output, n_rows=n_unique, row_bytes=table.row_bytes
            )
            result.drop(DUPLICATE, result.rows_in - result.rows_out)
            result.metrics = _summary(con)
    return result.finish(settings)


def _refuse_missing_rewards(con: duckdb.DuckDBPyConnection, table: sql.InputTable) -> None:
    ids = [row[0] for row in sql.run(con, "rows_missing_reward").fetchall()]
    if ids:
        raise InputError(
            f"{table.label}: column 'reward' is null or NaN for {len(ids)} row(s), so no best "
            f"row can be chosen: example_id {sql.format_ids(ids)}"
        )


def _summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The seed's statistics over the unique rows, from the input's narrow columns."""
    stats = sql.fetch_one(con, "unique_summary")
    rows = sql.run(con, "unique_top_rows", n=TOP_N)
    difficulty = "difficulty" if "difficulty" in rows.columns else "null"
    top = rows.project(f"info.module_name, reward, {difficulty}").fetchall()
    return {
        **stats,
        "top": [{"module_name": n, "reward": r, "difficulty": d} for n, r, d in top],
    }


def summary_lines(result: StepResult) -> list[str]:
    """The seed's FILTERING RESULTS block; top rows name the module (the seed printed 'Unknown')."""
    m = result.metrics
    lines = [
        f"Original entries:          {result.rows_in:,}",
        f"Unique modules (kept):     {result.rows_out:,}",
        f"Entries removed:           {result.rows_in - result.rows_out:,}",
        f"Reduction:                 {(1 - result.rows_out / result.rows_in) * 100:.1f}%",
        "",
        f"Entries with valid score:  {m['n_valid_score']:,}",
        f"Entries with score = 0:    {m['n_zero_score']:,}",
    ]
    if m["n_valid_score"]:
        lines += [
            "",
            "Score statistics (valid only):",
            f"  Min score:   {m['valid_score_min']:.2f}",
            f"  Max score:   {m['valid_score_max']:.2f}",
            f"  Avg score:   {m['valid_score_mean']:.2f}",
        ]
    lines += ["", f"Top {TOP_N} entries by score:"]
    for i, row in enumerate(m["top"], 1):
        name = row["module_name"] if row["module_name"] is not None else "Unknown"
        difficulty = row["difficulty"] if row["difficulty"] is not None else "N/A"
        lines.append(f"  {i:2d}. {name:40s} score={row['reward']:.2f} d={difficulty}")
    return lines


READS = "filtered"
WRITES = ("unique", "")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return dedupe(inputs, output, settings, limit=settings.limit(args.limit))


report_lines = summary_lines
