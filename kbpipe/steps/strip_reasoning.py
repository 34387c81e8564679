"""Step 5, `kbpipe strip-reasoning {source,filtered,unique}`: keep only the answer.

The completion becomes one message `{role, content: "<answer>…</answer>"}`;
the `reasoning` key goes and every other column, a split column included, is
kept. Where the answer comes from is `--answer-format`:

- `answer-tags` is the seed exactly: the first non-greedy
  `<answer>(.*?)</answer>` of `completion[0].content` (dot matches newline, as
  the seed's `re.search(..., re.DOTALL)`), cut out in DuckDB SQL.
- `auto` (default), `begin-python`, `fenced`: the solution
  `kbpipe.verify.extract.extract_solution` finds, the one the judge rated and
  verify runs: the last assistant message holding one; `auto` tries answer
  tags, then BEGIN_PYTHON/END_PYTHON lines, then a fenced python block. A
  tagged answer keeps the seed's content `<answer>…</answer>` byte for byte;
  code in the other formats is written as `<answer>\n{code}\n</answer>`, so the
  stripped table has one shape whatever format each rollout answered in.
  The stats count rows per format (`answer_format`).

A row without an answer is an error listing the offending example_ids, as the
seed raised; `--on-missing drop` instead moves those rows to the rejects file.
The happy path reads the input once, and from Parquet only the messages'
role and content, never the reasoning (`sql_lean.open_lean_input`): rows are
written to a temp file, and only when fewer rows came out than went in is the
whole input scanned for the rows that had no answer.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError
from kbpipe.io import sql, sql_lean, sql_output
from kbpipe.io.lineage import ResolvedInput, StepInput, StepResult, as_resolved
from kbpipe.io.tables import ROW_GROUP_ROWS, BatchWriter, atomic_output, table_format
from kbpipe.verify.extract import (
    ANSWER_FORMATS,
    AUTO,
    Solution,
    add_answer_format_argument,
    extract_solution,
    formats_for,
)

TABLES = ("source", "filtered", "unique")
ON_MISSING = ("error", "drop")
MISSING_ANSWER = "missing_answer"
SEED_FORMAT = "answer-tags"
ANSWER_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

EXAMPLES = """examples:
  kbpipe strip-reasoning filtered --no-upload    # -> $DATA_MODEL/filtered_no_reasoning.parquet
  kbpipe strip-reasoning source --on-missing drop --no-upload
  kbpipe strip-reasoning filtered --answer-format answer-tags --no-upload   # the seed exactly
  kbpipe strip-reasoning unique -i unique.parquet -o unique_nr.jsonl --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=TABLES, help="which table to strip")
    parser.add_argument(
        "--on-missing",
        choices=ON_MISSING,
        default="error",
        help="a row without an answer: fail listing the example_ids (default), "
        "or drop it into <output>.rejects.jsonl",
    )
    add_answer_format_argument(
        parser,
        help="where the answer is: auto (default: <answer> tags, BEGIN_PYTHON/END_PYTHON "
        "lines or a fenced python block, in the last assistant message holding one), one "
        "of those, or answer-tags for the seed's rule exactly (completion[0] only)",
    )


def strip_reasoning(
    inputs: StepInput,
    output: Path,
    settings: Settings,
    *,
    on_missing: str = "error",
    answer_format: str = AUTO,
    limit: int | None = None,
) -> StepResult:
    """Write the table with each completion cut down to its answer, as `<answer>…</answer>`."""
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    try:
        formats_for(answer_format)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    resolved = as_resolved(inputs)
    output = Path(output)
    result = StepResult(
        "strip-reasoning",
        output=output,
        inputs=resolved.lineage(),
        params={"on_missing": on_missing, "answer_format": answer_format, "limit": limit},
    )
    with sql.session(output) as con:
        table = sql.open_input(con, resolved.paths, limit=limit)
        table.require("example_id")
        table.require_messages("completion")
        sql.define(con, "has_answer_block", "answer_block")
        result.rows_in = table.n_rows
        with sql.reading(table.label), atomic_output(output) as tmp:
            sql_lean.open_lean_input(
                table, "input_rows_lean", messages="completion", fields=("role", "content")
            )
            if answer_format == SEED_FORMAT:
                result.rows_out = sql_output.write_relation_to(
                    sql.run(con, "completion_answer_only"), tmp, table_format(output)
                )
                stripped = Stripped({SEED_FORMAT: result.rows_out} if result.rows_out else {})
            else:
                stripped = _strip_with_extractor(con, tmp, table_format(output), answer_format)
                result.rows_out = stripped.rows_out
            n_missing = result.rows_in - result.rows_out
            if n_missing:
                _handle_missing(con, table, result, n_missing, on_missing, stripped, answer_format)
    result.metrics["answer_format"] = {f: stripped.formats.get(f, 0) for f in ANSWER_FORMATS}
    result.drop(MISSING_ANSWER, n_missing)
    if not n_missing:
        result.write_rejects([])  # removes a stale rejects file
    return result.finish(settings)


@dataclass
class Stripped:
    """What a strip pass wrote: rows per answer format, and (Python path) the rows it left."""

    formats: dict[str, int]
    rows_out: int = 0
    # (input_row, example_id) of each row without an answer, in input order.
    missing: list[tuple[int, Any]] = field(default_factory=list)


def answer_content(solution: Solution) -> str:
    """The stripped message's text: the seed's `<answer>…</answer>` for tagged answers,
    the other formats' code wrapped in the same tags so every row has one shape."""
    if solution.format == SEED_FORMAT:
        return f"<answer>{solution.code}</answer>"
    return f"<answer>\n{solution.code.strip(chr(10))}\n</answer>"


def _strip_with_extractor(
    con: duckdb.DuckDBPyConnection, tmp: Path, fmt: str, answer_format: str
) -> Stripped:
    """Each row's solution by `extract_solution`, batch by batch from the lean rows."""
    reader = sql.run(con, "rows_lean").to_arrow_reader(ROW_GROUP_ROWS)
    schema = pa.schema(
        [
            pa.field("completion", pa.list_(ANSWER_MESSAGE)) if f.name == "completion" else f
            for f in reader.schema
            if f.name != "input_row"
        ]
    )
    where = schema.get_field_index("completion")
    out = Stripped({})
    formats: Counter[str] = Counter()
    with BatchWriter(tmp, schema, fmt) as writer:
        for batch in reader:
            answers, found = _answers(batch.column("completion").to_pylist(), answer_format)
            formats.update(f for f in found if f is not None)
            keep = [f is not None for f in found]
            ids = zip(batch["input_row"].to_pylist(), batch["example_id"].to_pylist(), strict=True)
            out.missing += [pair for pair, kept in zip(ids, keep, strict=True) if not kept]
            table = pa.Table.from_batches([batch]).drop_columns(["input_row"])
            column = pa.array(answers, schema.field(where).type)
            table = table.set_column(where, schema.field(where), column)
            table = table.filter(pa.array(keep, pa.bool_()))
            writer.write(table)
            out.rows_out += table.num_rows
    out.formats = dict(formats)
    return out


def _answers(
    completions: list[list[dict[str, Any]] | None], answer_format: str
) -> tuple[list[list[dict[str, str]] | None], list[str | None]]:
    """Each completion cut to its answer message (None without one), and its format."""
    answers: list[list[dict[str, str]] | None] = []
    found: list[str | None] = []
    for completion in completions:
        solution = extract_solution(completion, answer_format)
        if solution is None or completion is None:
            answers.append(None)
            found.append(None)
            continue
        role = completion[solution.message_index]["role"]
        answers.append([{"role": role, "content": answer_content(solution)}])
        found.append(solution.format)
    return answers, found


def _handle_missing(
    con: duckdb.DuckDBPyConnection,
    table: sql.InputTable,
    result: StepResult,
    n_missing: int,
    on_missing: str,
    stripped: Stripped,
    answer_format: str,
) -> None:
    """Fail naming the rows without an answer, or write them to the rejects file."""
    seed = answer_format == SEED_FORMAT
    if on_missing == "error":
        if seed:
            rows = sql.run(con, "rows_missing_answer").project("example_id").limit(sql.SHOW_IDS)
            first = [example_id for (example_id,) in rows.fetchall()]
        else:
            first = [example_id for _, example_id in stripped.missing[: sql.SHOW_IDS]]
        what = (
            "no <answer>...</answer> in completion[0].content"
            if seed
            else f"no solution ({answer_format}: {', '.join(formats_for(answer_format))}) "
            "in any assistant message"
        )
        raise InputError(
            f"{table.label}: {n_missing} row(s) have {what}: example_id "
            f"{sql.format_ids(first, n_missing)}; pass --on-missing drop to move them to a "
            "rejects file"
        )
    rejects = (
        sql_output.iter_dicts(con, "missing_answer_rejects")
        if seed
        else sql_output.iter_dicts(
            con,
            "missing_solution_rejects",
            input_rows=[row for row, _ in stripped.missing],
            answer_format=answer_format,
        )
    )
    n_rejects = result.write_rejects(rejects)
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
        inputs,
        output,
        settings,
        on_missing=args.on_missing,
        answer_format=args.answer_format,
        limit=settings.limit(args.limit),
    )


def report_lines(result: StepResult) -> list[str]:
    counts = result.metrics.get("answer_format", {})
    found = ", ".join(f"{name} {n:,}" for name, n in counts.items() if n)
    return [
        f"Stripped reasoning: {result.rows_out:,} of {result.rows_in:,} rows"
        + (f" (answers: {found})" if found else "")
    ]
