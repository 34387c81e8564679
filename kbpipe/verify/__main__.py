"""`python -m kbpipe.verify INPUT -o OUTPUT`: verify without the kbpipe CLI.

For GPU machines that have torch, triton and pyarrow but not polars or duckdb:
run it from a checkout with `PYTHONPATH=.`. It writes the same table as
`kbpipe verify`, the rejects file, and the summary as `<output>.stats.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kbpipe.errors import KbpipeError
from kbpipe.io.tables import sidecar, write_json
from kbpipe.verify.cliargs import add_verify_arguments, options_from_args, summary_lines
from kbpipe.verify.table import verify_table

EXAMPLES = """examples:
  PYTHONPATH=. python -m kbpipe.verify filtered_dataset.parquet -o verified_dataset.parquet
  PYTHONPATH=. python -m kbpipe.verify rows.jsonl -o out.parquet --gpus 0,1 --atol 1e-3"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kbpipe.verify",
        description="Re-run each row's Triton solution against its PyTorch reference on GPUs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="table to verify (.parquet or .jsonl)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="table to write")
    parser.add_argument("--limit", type=int, metavar="N", help="verify only the first N rows")
    add_verify_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = verify_table(args.input, args.output, options_from_args(args, args.limit))
    except KbpipeError as exc:
        print(f"kbpipe.verify: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kbpipe.verify: interrupted (finished rows are in the journal)", file=sys.stderr)
        return 130
    # Named as the step's own stats are, so cards and the report find it the same way.
    write_json({"step": "verify", **summary}, sidecar(args.output, "stats"))
    print("\n".join(summary_lines(summary)))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
