"""Step 5, `kbpipe strip-reasoning {source,filtered,unique}`: keep only the answer.

The completion becomes one message `{role, content: "<answer>…</answer>"}`
holding the first non-greedy `<answer>(.*?)</answer>` of `completion[0].content`
(dot matches newline, as the seed's `re.search(..., re.DOTALL)`); the
`reasoning` key goes and every other column, a split column included, is kept.

A row without the tags is an error listing the offending example_ids, as the
seed raised; `--on-missing drop` instead moves those rows to the rejects file.
The happy path reads the input once, and from Parquet only the messages'
role and content, never the reasoning (`sql.open_lean_input`): rows are
written to a temp file, and only when fewer rows came out than went in is the
whole input scanned for the rows that had no answer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io import sql, sql_output
from kbpipe.io.lineage import ResolvedInput, StepResult
from kbpipe.io.tables import atomic_output, table_format

TABLES = ("source", "filtered", "unique")
ON_MISSING = ("error", "drop")
MISSING_ANSWER = "missing_answer"

EXAMPLES = """examples:
  kbpipe strip-reasoning filtered --no-upload    # -> $DATA_MODEL/filtered_no_reasoning.parquet
  kbpipe strip-reasoning source --on-missing drop --no-upload
  kbpipe strip-reasoning unique -i unique.parquet -o unique_nr.jsonl --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=TABLES, help="which table to strip")
    parser.add_argument(
        "--on-missing",
        choices=ON_MISSING,
        default="error",
        help="a row without <answer>...</answer>: fail listing the example_ids (default), "
        "or drop it into <output>.rejects.jsonl",
    )


def strip_reasoning(
    inputs: sql.StepInput,
    output: Path,
    settings: Settings,
    *,
    on_missing: str = "error",
    limit: int | None = None,
) -> StepResult:
    """Write the table with each completion cut down to its `<answer>` block."""
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    resolved = sql.as_resolved(inputs)
    output = Path(output)
    result = StepResult(
        "strip-reasoning",
        output=output,
        inputs=resolved.lineage(),
        params={"on_missing": on_missing, "limit": limit},
    )
    with sql.session(output) as con:
        table = sql.open_input(con, resolved.paths, limit=limit)
        table.require("example_id")
        table.require_messages("completion")
        sql.define(con, "has_answer_block", "answer_block")
        result.rows_in = table.n_rows
        with sql.reading(table.label), atomic_output(output) as tmp:
            sql.open_lean_input(
                table, "input_rows_lean", messages="completion", fields=("role", "content")
            )
            result.rows_out = sql_output.write_relation_to(
                sql.run(con, "completion_answer_only"), tmp, table_format(output)
            )
            n_missing = result.rows_in - result.rows_out
            if n_missing:
                _handle_missing(con, table, result, n_missing, on_missing)
    result.drop(MISSING_ANSWER, n_missing)
    if not n_missing:
        result.write_rejects([])  # removes a stale rejects file
    return result.finish(settings)


def _handle_missing(
    con: duckdb.DuckDBPyConnection,
    table: sql.InputTable,
    result: StepResult,
    n_missing: int,
    on_missing: str,
) -> None:
    """Fail naming the rows without an answer, or write them to the rejects file."""
    if on_missing == "error":
        rows = sql.run(con, "rows_missing_answer").project("example_id").limit(sql.SHOW_IDS)
        first = [example_id for (example_id,) in rows.fetchall()]
        raise InputError(
            f"{table.label}: {n_missing} row(s) have no <answer>...</answer> in "
            f"completion[0].content: example_id {sql.format_ids(first, n_missing)}; "
            "pass --on-missing drop to move them to a rejects file"
        )
    n_rejects = result.write_rejects(sql_output.iter_dicts(con, "missing_answer_rejects"))
    if n_rejects != n_missing:
        raise AssertionError(f"{n_missing} rows had no answer but {n_rejects} were rejected")


def READS(args: argparse.Namespace) -> str:  # noqa: N802 - the runner's contract
    return args.which


def WRITES(args: argparse.Namespace) -> tuple[str, str]:  # noqa: N802
    return (args.which, "no_reasoning")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return strip_reasoning(
        inputs, output, settings, on_missing=args.on_missing, limit=settings.limit(args.limit)
    )


def report_lines(result: StepResult) -> list[str]:
    return [f"Stripped reasoning: {result.rows_out:,} of {result.rows_in:,} rows"]
