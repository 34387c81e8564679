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
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from kbpipe.config import Settings
from kbpipe.io.lineage import ResolvedInput, StepResult
from kbpipe.io.tables import sidecar
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
    return result.finish(settings)


READS = "filtered"
WRITES = ("verified", "")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return verify(inputs, output, settings, args)


def report_lines(result: StepResult) -> list[str]:
    return summary_lines({**result.metrics, "rows_in": result.rows_in})
