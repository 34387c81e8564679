"""`kbpipe sample`: write the bundled sample that `make demo` and the tests run on."""

from __future__ import annotations

import argparse
from pathlib import Path

from kbpipe.config import Settings
from kbpipe.errors import ConfigError

EXAMPLES = """examples:
  kbpipe sample                                   # -> outputs/sample/
  kbpipe sample -o /tmp/demo --rows 1000 --reasoning-bytes 60000
  kbpipe sample -o /tmp/new --layout verifiers    # the newer layout: no trajectory, no task
  kbpipe sample --synthetic-prompts outputs/demo/synthetic_prompts.parquet   # a synthetic run"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # `--output-dir` is the shared root of all outputs (the default folder is
    # {OUTPUT_DIR}/sample), so the exact folder is `-o`.
    parser.add_argument(
        "-o",
        dest="sample_dir",
        type=Path,
        metavar="DIR",
        help="folder to write into (default: {OUTPUT_DIR}/sample)",
    )
    parser.add_argument("--rows", type=int, default=240, metavar="N", help="rollouts (240)")
    parser.add_argument(
        "--reasoning-bytes",
        type=int,
        default=4000,
        metavar="N",
        help="approximate size of each rollout's reasoning (4000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--layout",
        choices=["trajectory", "verifiers"],
        default="trajectory",
        help="vf-eval -C trajectory output (default), or the newer verifiers layout "
        "with the reasoning on the completion message",
    )
    parser.add_argument(
        "--synthetic-prompts",
        type=Path,
        metavar="FILE",
        help="instead, rewrite DIR/kernelbook-env.jsonl as a synthetic-prompt run: prompts "
        "from this step-2 table, answers as BEGIN_PYTHON/END_PYTHON blocks, into "
        "DIR/kernelbook-env-synthetic.jsonl",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from kbpipe.sample.generator import write_kernelbook, write_rollouts_jsonl, write_sample

    if args.rows < 1 or args.reasoning_bytes < 0:
        raise ConfigError("--rows must be at least 1 and --reasoning-bytes at least 0")
    out = args.sample_dir or settings.output_dir / "sample"
    if args.synthetic_prompts is not None:
        from kbpipe.sample.synthetic import write_synthetic_rollouts

        dest = out / "kernelbook-env-synthetic.jsonl"
        written, left_out = write_synthetic_rollouts(
            out / "kernelbook-env.jsonl", args.synthetic_prompts, dest
        )
        print(f"wrote {written:,} synthetic-prompt rollouts to {dest} ({left_out:,} left out)")
        return 0
    if args.layout == "trajectory":
        paths = write_sample(out, args.rows, args.reasoning_bytes, args.seed)
    else:
        paths = {"rollouts": out / "kernelbook-env.jsonl", "kernelbook": out / "kernelbook.parquet"}
        write_rollouts_jsonl(
            paths["rollouts"], args.rows, args.reasoning_bytes, args.seed, layout="verifiers"
        )
        write_kernelbook(paths["kernelbook"], args.seed)
    print(f"wrote {args.rows:,} rollouts ({args.layout} layout) to {paths['rollouts']}")
    print(f"wrote the KernelBook table to {paths['kernelbook']}")
    return 0
