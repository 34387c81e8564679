"""verify's command-line options, shared by `kbpipe verify` and `python -m kbpipe.verify`.

Both fronts parse the same flags into one `VerifyOptions`; only the input and
output flags differ (the step takes the common `-i/-o/--limit`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from kbpipe.errors import ConfigError
from kbpipe.verify.extract import add_answer_format_argument
from kbpipe.verify.pool import GPU_RUNNER, STANDIN_RUNNER, visible_gpus
from kbpipe.verify.table import VerifyOptions, print_progress

RUNNERS = {"gpu": GPU_RUNNER, "standin": STANDIN_RUNNER}


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    d = VerifyOptions()
    g = parser.add_argument_group("verification")
    g.add_argument(
        "--gpus",
        metavar="LIST",
        help="GPU indices to use, e.g. 0,1 (default: every visible GPU)",
    )
    g.add_argument("--atol", type=float, default=d.atol, help=f"absolute tolerance ({d.atol})")
    g.add_argument("--rtol", type=float, default=d.rtol, help=f"relative tolerance ({d.rtol})")
    g.add_argument(
        "--seeds",
        default=",".join(map(str, d.seeds)),
        metavar="LIST",
        help="input seeds; a row passes only at every one (default: 0,1,2)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=d.timeout_s,
        metavar="S",
        help=f"seconds a row may take, compilation included, before its worker is killed "
        f"({d.timeout_s:g})",
    )
    g.add_argument(
        "--workers-per-gpu",
        type=int,
        default=d.workers_per_gpu,
        metavar="N",
        help=f"worker processes per GPU; more overlap compilation with runs ({d.workers_per_gpu})",
    )
    g.add_argument("--no-timing", action="store_true", help="check correctness only")
    add_answer_format_argument(g)
    g.add_argument(
        "--drop-failed",
        action="store_true",
        help="keep only verified rows in the output (failed rows are always in the rejects file)",
    )
    g.add_argument("--journal", type=Path, metavar="PATH", help="result journal to resume from")
    g.add_argument(
        "--scratch-dir",
        type=Path,
        metavar="DIR",
        help="keep program files and worker logs here (default: a temporary folder)",
    )
    g.add_argument("--runner", choices=sorted(RUNNERS), default="gpu", help=argparse.SUPPRESS)


def options_from_args(args: argparse.Namespace, limit: int | None) -> VerifyOptions:
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected integers like 0,1,2") from None
    if args.gpus:
        gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip())
    elif args.runner == "standin":
        gpus = ("0",)
    else:
        gpus = visible_gpus(os.environ)
    try:
        return VerifyOptions(
            atol=args.atol,
            rtol=args.rtol,
            seeds=seeds,
            timing=not args.no_timing,
            timeout_s=args.timeout,
            gpus=gpus,
            workers_per_gpu=args.workers_per_gpu,
            answer_format=args.answer_format,
            limit=limit,
            drop_failed=args.drop_failed,
            journal_path=args.journal,
            scratch_dir=args.scratch_dir,
            runner=RUNNERS[args.runner],
            progress=print_progress,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The verification summary: passed, failed by reason, speedup quantiles."""
    gpus = ", ".join(summary["gpu_names"]) or "none used"
    lines = [
        f"GPU: {gpus}; tolerance atol={summary['atol']:g} rtol={summary['rtol']:g}; "
        f"seeds {summary['seeds']}",
        f"verified: {summary['n_verified']:,} of {summary['rows_in']:,} rows"
        + (f" ({summary['pass_rate']:.1%})" if summary["pass_rate"] is not None else ""),
    ]
    for reason, n in sorted(summary["failed_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  failed {n:,} ({reason})")
    if summary["speedup_quantiles"]:
        quantiles = "  ".join(f"{k} {v:.2f}x" for k, v in summary["speedup_quantiles"].items())
        lines.append(f"measured speedup: {quantiles}")
    lines.append(
        f"jobs: {summary['n_jobs']:,} distinct solutions, {summary['n_cached']:,} from the "
        f"journal, {summary['n_run']:,} run in {summary['run_s']:.1f}s"
    )
    return lines
