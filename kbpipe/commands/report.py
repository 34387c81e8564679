"""`kbpipe report`: one self-contained HTML page about this DATA_MODEL's run.

A command, not a pipeline step: it reads every table and stats file of the run
folder and writes a page, not a table, so it has no input to resolve, nothing
to publish and no stats file of its own (which would show up in its own funnel).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kbpipe.config import Settings

EXAMPLES = """examples:
  kbpipe report                                  # outputs/$DATA_MODEL/report.html
  kbpipe report --data-model demo -o /tmp/demo.html
  kbpipe report --split legacy                   # lengths per split as --split legacy assigns"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE.html",
        help="where to write the page (default: outputs/$DATA_MODEL/report.html)",
    )
    parser.add_argument(
        "--split",
        choices=["module", "legacy", "none"],
        default="module",
        help="which train/validation split the sequence lengths are shown for (default: module)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from kbpipe.report import build_report

    output = args.output or settings.model_dir / "report.html"
    result = build_report(settings.model_dir, output, split_mode=args.split)
    for note in result.notes:
        print(f"  note: {note}")
    print(
        f"report: {result.n_charts} charts, {result.n_bytes / 1024:,.0f} KiB, "
        f"took {result.wall_s:.2f}s"
    )
    print(f"  wrote {result.path}")
    return 0
