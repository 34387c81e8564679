"""Command-line front: `kbpipe <command>`, its options, and exit statuses.

Pipeline steps (kbpipe/steps/) run through the one step runner,
kbpipe.runner; other commands (kbpipe/commands/) provide `add_arguments` and
`run(args, settings) -> int`.

Arguments whose `dest` is a Settings field name (e.g. `reward_threshold`)
override that setting, so flags sit on top of defaults, `.env` and the
environment without per-command glue.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

from kbpipe import __version__
from kbpipe.config import Settings, load_settings
from kbpipe.errors import (
    interrupt_note,
    is_interrupt,
    mapped,
    redact,
    user_error,
)
from kbpipe.rater.prices import parse_price
from kbpipe.runner import declared_table, run_step


@dataclasses.dataclass(frozen=True)
class Command:
    module: str
    summary: str
    step: bool = False


# In pipeline order. The one-line summaries live here, not in the modules, so
# `kbpipe --help` imports none of them (they pull in aiohttp, jinja2, tokenizers).
COMMANDS: dict[str, Command] = {
    "sample": Command(
        "kbpipe.commands.sample",
        "write the bundled sample: a vf-eval JSONL and a KernelBook-style table",
    ),
    "convert": Command(
        "kbpipe.steps.convert",
        "step 0.5: vf-eval JSONL -> evals table (reasoning pulled out of the trajectory)",
        step=True,
    ),
    "filter": Command(
        "kbpipe.steps.filter",
        "step 1: keep reward > threshold and rate each row's difficulty",
        True,
    ),
    "prompts": Command(
        "kbpipe.steps.prompts",
        "step 2: write a task specification for every KernelBook module",
        True,
    ),
    "dedupe": Command("kbpipe.steps.dedupe", "step 3: keep the best-reward row per module", True),
    "seqlen": Command(
        "kbpipe.steps.seqlen",
        "step 4: token lengths under the chat template, recommended seq_len",
        step=True,
    ),
    "strip-reasoning": Command(
        "kbpipe.steps.strip_reasoning",
        "step 5: keep only the answer part of each completion",
        step=True,
    ),
    "merge": Command(
        "kbpipe.steps.merge", "combine a base run and a synthetic-prompt run", step=True
    ),
    "audit": Command(
        "kbpipe.steps.audit",
        "extra: static reward-hack audit of every row's solution (CPU, no torch)",
        step=True,
    ),
    "decontaminate": Command(
        "kbpipe.steps.decontaminate",
        "extra: flag (or --drop) rows whose module is a KernelBench problem",
        step=True,
    ),
    "verify": Command(
        "kbpipe.steps.verify",
        "extra (GPU): re-run every row's kernel against its PyTorch reference",
        step=True,
    ),
    "upload": Command(
        "kbpipe.commands.upload",
        "publish a built table to the Hugging Face Hub (or stage it with --dry-run)",
    ),
    "query": Command("kbpipe.commands.query", "run SQL over this DATA_MODEL's outputs with DuckDB"),
    "report": Command(
        "kbpipe.commands.report",
        "one self-contained HTML page of plots about this DATA_MODEL's run",
    ),
    "status": Command(
        "kbpipe.commands.status",
        "what is built for this DATA_MODEL, with which settings, row counts, what is stale",
    ),
    "config": Command(
        "kbpipe.commands.config",
        "print the resolved settings, output paths and Hub repos (secrets masked)",
    ),
}


def common_parser() -> argparse.ArgumentParser:
    """Options every command takes."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("settings (override .env and the environment)")
    g.add_argument("--data-model", dest="data_model", metavar="NAME", help="default: glm4_7")
    g.add_argument("--hf-org", dest="hf_org", metavar="ORG", help="default: siro1")
    g.add_argument("--output-dir", dest="output_dir", metavar="DIR", help="default: outputs")
    g.add_argument(
        "--env-file", type=Path, default=Path(".env"), help="dotenv file to read (default: .env)"
    )
    return p


def step_parser() -> argparse.ArgumentParser:
    """Options every pipeline step takes: input, output, row limit, publishing."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("input and output")
    g.add_argument(
        "-i",
        "--input",
        metavar="PATH",
        help="input table: local .parquet or .jsonl, or hf://datasets/ORG/NAME[@rev]",
    )
    g.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="output table; .parquet or .jsonl chosen by extension",
    )
    g.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="process only the first N rows (TEST_MODE=true sets a small default); the "
        "outputs go to <run>/limit-N/, never over the full run's",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and stop: rows in, requests the journal does not answer yet, "
        "their tokens and dollars; nothing is written and nothing is sent",
    )
    g.add_argument(
        "--price-per-mtok",
        type=parse_price,
        metavar="IN,OUT",
        help="dollars per million prompt and completion tokens for --dry-run's cost "
        "(default: the list price of the default judge and spec models)",
    )
    g.add_argument(
        "--no-upload",
        dest="upload",
        action="store_false",
        help="do not publish the result to the Hugging Face Hub",
    )
    g.add_argument(
        "--max-reject-rate",
        dest="max_reject_rate",
        type=_fraction,
        default=None,
        metavar="R",
        help="fail (exit 1, after writing the table and its rejects) when more than R of "
        "the rows that pass the step's thresholds and dedupe are lost to rejects (API "
        "failures, bad rows, unparseable answers); 0.1 or 10%% (default: 0.1, MAX_REJECT_RATE)",
    )
    g.add_argument(
        "--allow-empty",
        action="store_true",
        help="write an empty table instead of failing when no row is left",
    )
    h = p.add_argument_group("publishing")
    h.add_argument(
        "--split",
        choices=["module", "legacy", "none"],
        default=None,
        help="90/10 train/validation split: by module hash (default), the seed's "
        "train_test_split(seed=42), or none",
    )
    h.add_argument("--private", action="store_true", help="create the Hub repo as private")
    h.add_argument(
        "--hub-dry-run",
        dest="hub_dry_run",
        type=Path,
        metavar="DIR",
        help="stage the exact Hub folder and commit operations in DIR; send nothing",
    )
    return p


# A step that loses more of its rows than this to rejects (API failures, bad
# rows, unparseable answers) has most likely met a broken setup, not bad luck.
def _fraction(text: str) -> float:
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1 (or 0% and 100%)")
    return value


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The argument parser, with full options for `command` only; returns its module too."""
    parser = argparse.ArgumentParser(
        prog="kbpipe",
        description="Turn LLM rollouts of KernelBook tasks into clean SFT datasets.",
        epilog="Run `kbpipe COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"kbpipe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = importlib.import_module(COMMANDS[command].module) if command in COMMANDS else None
    for name, cmd in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=cmd.summary)
            continue
        p = sub.add_parser(
            name,
            parents=[common_parser(), step_parser()] if cmd.step else [common_parser()],
            help=cmd.summary,
            description=cmd.summary,
            epilog=module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
    return parser, module


def settings_from_args(args: argparse.Namespace) -> Settings:
    fields = {f.name for f in dataclasses.fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return load_settings(overrides, env_file=getattr(args, "env_file", Path(".env")))


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure a user can act on is one line on stderr.

    Exit status: 0 done, 1 error, 130 Ctrl-C, 143 SIGTERM (both clean up first), 141 when
    the reader of stdout went away.
    """
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    prog = f"kbpipe {command}" if command in COMMANDS else "kbpipe"
    terminated = _terminate_cleanly()
    try:
        status = _run(command, argv)
        # Flushed here, not at exit: a closed pipe then reaches the handler below.
        sys.stdout.flush()
        return status
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if _broken_pipe(exc):
            # The reader of stdout went away (`kbpipe query ... | head`): not an error of
            # ours. Point stdout at /dev/null so the flush at exit does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        if is_interrupt(exc):
            if as_program:
                _settle_interrupts()
            what = "terminated" if terminated else "interrupted"
            note = interrupt_note(exc) or "nothing more was written"
            print(f"{prog}: {what}; {note}", file=sys.stderr)
            return 143 if terminated else 130
        error = user_error(exc)
        if error is None:
            raise  # a bug in kbpipe: its traceback is what a report needs
        print(f"{prog}: error: {redact(' '.join(str(error).split()))}", file=sys.stderr)
        return 1


def _settle_interrupts() -> None:
    """The exit status is decided (130 or 143): a Ctrl-C still pending, replayed or pressed
    again while the interpreter shuts down must not turn it into death by signal. Only
    for the program itself, never for a caller of main() such as a test runner."""
    for _ in range(3):
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            return
        except KeyboardInterrupt:  # a pending one ran as the handler changed: try again
            continue


def _broken_pipe(exc: BaseException | None) -> bool:
    """Whether `exc` is, or was raised while handling, a write to a closed pipe."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, BrokenPipeError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _run(command: str | None, argv: list[str]) -> int:
    parser, module = build_parser(command)  # imports the command's module: Ctrl-C-able too
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    if not COMMANDS[args.command].step:
        with mapped(reading=_given_input(args)):
            return int(module.run(args, settings) or 0)
    if args.limit is not None:
        settings = settings.replace(row_limit=args.limit)
    sends_nothing = args.hub_dry_run is not None or getattr(args, "dry_run", False) is True
    sends_nothing |= settings.partial_rows is not None  # partial tables are never published
    if args.upload and not sends_nothing and declared_table(module.WRITES, args) is not None:
        # Fail before any work rather than after an hour of paid LLM calls.
        settings.require_hf_token()
    return run_step(module, args, settings)


def _given_input(args: argparse.Namespace) -> str | None:
    given = getattr(args, "input", None)
    return str(given) if given else None


def _terminate_cleanly() -> list[int]:
    """Make SIGTERM unwind like Ctrl-C, so scratch folders and locks are cleaned up.

    Returns a list that holds the signal once one came (for the exit status).
    """
    caught: list[int] = []

    def on_term(signum: int, _frame: object) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (tests calling main)
        signal.signal(signal.SIGTERM, on_term)
    return caught
