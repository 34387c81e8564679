"""`kbpipe merge {source,filtered,unique}`: one table from a base and a synthetic-prompt run.

A synthetic-prompt run is the same pipeline run with USE_SYNTHETIC_PROMPTS=true
(outputs in `outputs/{DATA_MODEL}-synthetic-prompts/`, Hub repos suffixed
`-synthetic-prompts`). The merged table has the base rows first, then the
synthetic ones, each in input order, and a last column `data_source` =
base|synthetic that the Hub card turns into the configs base / synthetic / all.
Columns are matched by name; one only a run has is null in the other's rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.hub.pull import resolve_input
from kbpipe.io import sql, sql_output
from kbpipe.io.lineage import ResolvedInput, StepInput, StepResult, as_resolved

TABLES = ("source", "filtered", "unique")

EXAMPLES = """examples:
  kbpipe merge filtered --no-upload     # both runs' folders -> $DATA_MODEL/filtered_merged.parquet
  kbpipe merge unique -i base.parquet --synthetic synth.parquet -o merged.parquet --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=TABLES, help="which table to merge")
    parser.add_argument(
        "--synthetic",
        metavar="PATH",
        help="the synthetic-prompt run's table (local or hf://); default: its output "
        "folder, else its Hub repo. -i names the base run's table the same way",
    )


def merge(
    base: StepInput,
    synthetic: StepInput,
    output: Path,
    settings: Settings,
    *,
    limit: int | None = None,
) -> StepResult:
    """Write base rows then synthetic rows with a `data_source` column; nothing is dropped."""
    runs = {"base": as_resolved(base), "synthetic": as_resolved(synthetic)}
    output = Path(output)
    result = StepResult(
        "merge",
        output=output,
        inputs=[{**entry, "run": run} for run, r in runs.items() for entry in r.lineage()],
        params={"limit": limit},
    )
    with sql.session(output) as con:
        # One scan over the base files then the synthetic ones keeps the order
        # without a union, and lets DuckDB encode the output on every core.
        table = sql.open_input(con, [p for r in runs.values() for p in r.paths])
        with sql.reading(table.label):
            first_synthetic_row = table.first_input_row(len(runs["base"].paths))
            bounds = {
                run: (n_rows, last_row)
                for run, n_rows, last_row in sql.run(
                    con, "merge_run_bounds", first_synthetic_row=first_synthetic_row, limit=limit
                ).fetchall()
            }
            counts = {run: bounds.get(run, (0, None))[0] for run in runs}
            for run, r in runs.items():
                if not counts[run]:
                    raise InputError(
                        f"{sql.paths_label(r.paths)}: no rows (empty input) in the {run} run"
                    )
            merged = sql.run(
                con,
                "merged",
                first_synthetic_row=first_synthetic_row,
                last_base_row=bounds["base"][1] if limit else None,
                last_synthetic_row=bounds["synthetic"][1] if limit else None,
            )
            result.rows_out = sql_output.write_relation(merged, output)
    result.rows_in = sum(counts.values())
    result.metrics = {f"n_{run}": n for run, n in counts.items()}
    return result.finish(settings)


def default_input(given: str | None, which: str, settings: Settings, run: str) -> ResolvedInput:
    """A run's table: the given path, else that run's output folder, else its Hub repo."""
    run_settings = settings.replace(use_synthetic_prompts=run == "synthetic")
    return resolve_input(
        given,
        default_local=run_settings.table_path(which),
        default_repo=run_settings.repo_id(which),
        settings=run_settings,
    )


READS = None


def WRITES(args: argparse.Namespace) -> tuple[str, str]:  # noqa: N802 - the runner's contract
    return (args.which, "merged")


def execute(args: argparse.Namespace, inputs: None, output: Path, settings: Settings) -> StepResult:
    base = default_input(args.input, args.which, settings, "base")
    synthetic = default_input(args.synthetic, args.which, settings, "synthetic")
    return merge(base, synthetic, output, settings, limit=settings.limit(args.limit))


def report_lines(result: StepResult) -> list[str]:
    m = result.metrics
    return [
        f"Merged: {m['n_base']:,} base + {m['n_synthetic']:,} synthetic = {result.rows_out:,} rows"
    ]
