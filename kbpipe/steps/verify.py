"""Extra step `kbpipe verify` (GPU): re-run every row's kernel against its PyTorch reference.

The work is `kbpipe.verify.table.verify_table` (see docs/verify.md): each row's
solution runs in isolated worker processes, one pool per GPU, against the
reference `{module}` from `info.python_code`, at `--atol`/`--rtol` over several
input seeds, and is timed. The output is the input table plus `verified`,
`verify_error`, the errors, the timings and the environment; rows that are not
verified are listed in the rejects file with their reason, and `--drop-failed`
also leaves them out of the table. Results are journaled under
`{run}/journal/verify.jsonl`, so an interrupted run resumes and a rerun is free.

The same run works without the kbpipe CLI (no polars or duckdb) as
`PYTHONPATH=. python -m kbpipe.verify INPUT -o OUTPUT` on a GPU machine.

The step also draws measured speed-up against the harness's `speedup_reward`
(the report's chart) as `<stem>.speedup.png` beside the output, when
matplotlib is installed; `python -m kbpipe.verify` does not, as the report
sits above the verify package.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kbpipe.config import Settings
from kbpipe.io.lineage import ResolvedInput, StepResult
from kbpipe.io.scratch import staged_file
from kbpipe.io.tables import atomic_output, discard, sidecar, table_format
from kbpipe.verify.cliargs import add_verify_arguments, options_from_args, summary_lines
from kbpipe.verify.table import verify_table

FAILED = "verify_failed"

EXAMPLES = """examples:
  kbpipe verify --no-upload                        # outputs/$DATA_MODEL/filtered -> verified
  kbpipe verify --gpus 0,1 --atol 1e-3 --rtol 1e-3 --no-upload
  kbpipe verify -i unique_dataset.parquet -o unique_verified.parquet --drop-failed --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_verify_arguments(parser)


def verify(
    inputs: ResolvedInput, output: Path, settings: Settings, args: argparse.Namespace
) -> StepResult:
    options = options_from_args(args, settings.limit(args.limit))
    if options.journal_path is None:
        # beside the rater's journals: one per run, kept when the output is rebuilt
        journal = settings.model_dir / "journal" / "verify.jsonl"
        options = dataclasses.replace(options, journal_path=journal)
    output = Path(output)
    params = {
        **options.job_settings(),
        "gpus": list(options.gpus),
        "workers_per_gpu": options.workers_per_gpu,
        "timeout_s": options.timeout_s,
        "answer_format": options.answer_format,
        "drop_failed": options.drop_failed,
        "limit": options.limit,
    }
    result = StepResult("verify", output=output, inputs=inputs.lineage(), params=params)
    summary = verify_table(inputs.paths, output, options)
    result.rows_in, result.rows_out = summary["rows_in"], summary["rows_out"]
    if options.drop_failed:  # the reasons are in the rejects file and in metrics
        result.drop(FAILED, summary["n_failed"])
    result.rejects = sidecar(output, "rejects") if summary["n_rejects"] else None
    result.metrics = {k: v for k, v in summary.items() if k not in ("rows_in", "rows_out")}
    result.metrics["speedup_plot"] = write_speedup_plot(output)
    return result.finish(settings)


def write_speedup_plot(output: Path) -> dict[str, Any]:
    """Draw the verified rows' measured speed-up against their `speedup_reward` beside
    `output`; `{"path", "n_rows"}`, or `{"skipped": why}`."""
    dest = output.with_name(f"{output.stem}.speedup.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        skipped = "matplotlib is not installed (pip install 'kbpipe[plot]')"
    else:
        measured, reward = _speedup_points(output)
        skipped = "" if measured.size else "no verified row has speedup_measured and speedup_reward"
    if skipped:
        discard(dest)  # one left by an earlier run would describe other rows
        return {"skipped": skipped}
    import kbpipe.report.charts as charts

    with charts.style():
        chart = charts.speedup_scatter(measured, reward)
    with atomic_output(dest) as tmp:
        tmp.write_bytes(chart.png)
    return {"path": str(dest), "n_rows": len(measured)}


def _speedup_points(output: Path) -> tuple[np.ndarray, np.ndarray]:
    """Measured speed-up and speedup_reward of the verified rows where both are finite."""
    table = _read_columns(output, ("verified", "speedup_measured", "speedup_reward"))
    if table.num_columns < 3:  # an input without speedup_reward (not from the harness)
        return np.zeros(0), np.zeros(0)
    measured, reward = (pc.cast(table[c], pa.float64()) for c in table.column_names[1:])
    keep = pc.fill_null(
        pc.and_(table["verified"], pc.and_(pc.is_finite(measured), pc.is_finite(reward))), False
    )
    return measured.filter(keep).to_numpy(), reward.filter(keep).to_numpy()


def _read_columns(output: Path, names: tuple[str, ...]) -> pa.Table:
    """`names` of the output just written (those it has, in that order), read where it
    waits to be published."""
    path = staged_file(output)
    if path.stat().st_size == 0:  # an empty JSONL table, which pyarrow refuses to read
        return pa.table({})
    if table_format(output) == "jsonl":
        import pyarrow.json as pj

        table = pj.read_json(path)
    else:
        table = pq.read_table(path, columns=[n for n in names if n in pq.read_schema(path).names])
    return table.select([n for n in names if n in table.column_names])


READS = "filtered"
WRITES = ("verified", "")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return verify(inputs, output, settings, args)


def report_lines(result: StepResult) -> list[str]:
    plot = result.metrics.get("speedup_plot") or {}
    if "path" in plot:
        line = f"speedup plot: {plot['path']} ({plot['n_rows']:,} verified rows)"
    else:
        line = f"speedup plot: skipped, {plot.get('skipped', 'not drawn')}"
    return [*summary_lines({**result.metrics, "rows_in": result.rows_in}), line]
