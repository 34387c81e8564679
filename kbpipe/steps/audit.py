"""Extra step `kbpipe audit`: a static reward-hack audit of every row's solution (CPU, no torch).

Each row's solution (`kbpipe.verify.extract`, every answer format) is parsed
with `ast` and checked for the hacks listed in `kbpipe.verify.rules.FLAGS`:
no Triton kernel, kernels never launched from `{module}New.forward`, torch
doing the work, fallbacks to the reference, and so on. The output is the
input table plus `audit_flags` (list of flag names), `audit_ok` (no flag
other than the informational `partial_torch_compute`) and `answer_format`
(the format the solution was found in; null when there is none).

Rows are only annotated by default. `--drop-flagged` moves rows that are not
`audit_ok` to the rejects file, with their flags as the reason. The stats
count rows per flag and per answer format either way.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from kbpipe.config import Settings
from kbpipe.io.lineage import ResolvedInput, StepResult
from kbpipe.verify.audit import audit_code
from kbpipe.verify.extract import AUTO, add_answer_format_argument, extract_solution
from kbpipe.verify.rowio import column, read_batches, write_annotated
from kbpipe.verify.rules import FLAGS

AUDIT_COLUMNS: dict[str, pa.DataType] = {
    "audit_flags": pa.list_(pa.string()),
    "audit_ok": pa.bool_(),
    "answer_format": pa.string(),
}
FLAGGED = "audit_flagged"
AUDIT_PROCESSES = min(8, os.cpu_count() or 1)

EXAMPLES = """examples:
  kbpipe audit --no-upload                    # outputs/$DATA_MODEL/filtered -> audited
  kbpipe audit --drop-flagged --no-upload     # flagged rows to audited_dataset.rejects.jsonl
  kbpipe audit -i rollouts.parquet -o audited.parquet --answer-format fenced --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--drop-flagged",
        action="store_true",
        help="move rows that fail the audit to the rejects file (default: annotate only)",
    )
    add_answer_format_argument(parser)


def audit(
    inputs: ResolvedInput,
    output: Path,
    settings: Settings,
    *,
    drop_flagged: bool = False,
    answer_format: str = AUTO,
    limit: int | None = None,
) -> StepResult:
    """Annotate every row with its audit; with `drop_flagged`, reject the rows that fail it."""
    output = Path(output)
    params = {"drop_flagged": drop_flagged, "answer_format": answer_format, "limit": limit}
    result = StepResult("audit", output=output, inputs=inputs.lineage(), params=params)
    audits, ids = [], []
    # spawn, not fork: the step has threads running (input hashing), which fork can deadlock
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=AUDIT_PROCESSES, mp_context=spawn) as pool:
        for batch in read_batches(inputs.paths, ["example_id", "completion", "info"], limit):
            ids += column(batch, "example_id")
            audits += _audit_batch(batch, answer_format, pool)
    keep = [a["audit_ok"] for a in audits] if drop_flagged else None
    result.rows_in = len(audits)
    result.rows_out = write_annotated(inputs.paths, output, AUDIT_COLUMNS, audits, keep, limit)
    if drop_flagged:
        rejects = [_reject(i, a) for i, a in zip(ids, audits, strict=True) if not a["audit_ok"]]
        result.drop(FLAGGED, len(rejects))
        result.write_rejects(rejects)
    result.metrics = _metrics(audits)
    return result.finish(settings)


def _audit_batch(
    batch: pa.RecordBatch, answer_format: str, pool: ProcessPoolExecutor
) -> list[dict[str, Any]]:
    """The batch's audits. Solutions are found here and parsed in `pool`: `ast.parse`
    is most of the cost (~5 ms a row), and the processes get code, not reasoning."""
    modules = [(info or {}).get("module_name") or "" for info in column(batch, "info")]
    solutions = [extract_solution(c or [], answer_format) for c in column(batch, "completion")]
    codes = [s.code if s else None for s in solutions]
    verdicts = pool.map(audit_code, codes, modules, chunksize=16)
    return [
        {
            "audit_flags": list(verdict.flags),
            "audit_ok": verdict.ok,
            "answer_format": solution.format if solution else None,
            "module_name": module,
        }
        for verdict, solution, module in zip(verdicts, solutions, modules, strict=True)
    ]


def _reject(example_id: Any, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "example_id": example_id,
        "module_name": row["module_name"],
        "reason": ",".join(row["audit_flags"]),
        "audit_flags": row["audit_flags"],
    }


def _metrics(audits: list[dict[str, Any]]) -> dict[str, Any]:
    flags = Counter(f for a in audits for f in a["audit_flags"])
    return {
        "n_ok": sum(a["audit_ok"] for a in audits),
        "n_flagged": sum(not a["audit_ok"] for a in audits),
        "flags": {f: flags[f] for f in FLAGS if flags[f]},
        "answer_format": dict(Counter(a["answer_format"] or "none" for a in audits)),
    }


READS = "filtered"
WRITES = ("audited", "")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return audit(
        inputs,
        output,
        settings,
        drop_flagged=args.drop_flagged,
        answer_format=args.answer_format,
        limit=settings.limit(args.limit),
    )


def report_lines(result: StepResult) -> list[str]:
    m = result.metrics
    lines = [f"Audit: {m['n_ok']:,} of {result.rows_in:,} rows pass ({m['n_flagged']:,} flagged)"]
    lines += [f"  {flag}: {n:,}" for flag, n in m["flags"].items()]
    formats = ", ".join(f"{name} {n:,}" for name, n in m["answer_format"].items())
    lines.append(f"  answer formats: {formats}")
    return lines
