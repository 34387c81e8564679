"""Command-line front: `kbpipe <command>`, and the one runner every pipeline step goes through.

A pipeline step (kbpipe/steps/) provides `EXAMPLES`, `add_arguments(parser)`,
`READS`/`WRITES` (TABLES names, or functions of the parsed arguments that
return one) and `execute(args, inputs, output, settings) -> StepResult | None`.
The runner resolves the input (-i, else the local table, else its Hub repo),
defaults the output from TABLES, runs the step, prints its summary and
publishes the table with the split TABLES gives it. Other commands
(kbpipe/commands/) provide `add_arguments` and `run(args, settings) -> int`.

Arguments whose `dest` is a Settings field name (e.g. `reward_threshold`)
override that setting, so flags sit on top of defaults, `.env` and the
environment without per-command glue.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from kbpipe import __version__
from kbpipe.config import Settings, load_settings, table_spec
from kbpipe.errors import (
    KbpipeError,
    interrupt_note,
    is_interrupt,
    mapped,
    redact,
    user_error,
)
from kbpipe.io.lineage import output_run
from kbpipe.rater.prices import parse_price


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


def _table(declared: Any, args: argparse.Namespace) -> Any:
    return declared(args) if callable(declared) else declared


def _publishes(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "upload", False) or getattr(args, "hub_dry_run", None))


def run_step(module: ModuleType, args: argparse.Namespace, settings: Settings) -> int:
    """Resolve the input, run the step, print its summary, publish its table.

    The step's outputs are one unit (kbpipe.io.lineage.output_run): the output
    is checked writable and locked before the input is resolved or anything
    paid for, and nothing is published when the step fails or its table is
    empty. A reject rate over --max-reject-rate fails after publishing, so
    the table and the rejects (and every paid answer) are kept for a look.
    """
    if hasattr(module, "check_args"):  # before the input, which may come from the Hub
        module.check_args(args, settings)
    reads = _table(module.READS, args)
    writes = _table(module.WRITES, args)  # (table, variant) or None
    output = args.output or (settings.table_path(*writes) if writes else None)
    if args.dry_run:  # before output_run, which locks and makes a scratch folder
        resolved = _resolve(module, args, settings, reads)
        return _dry_run(module, args, resolved, output, settings, writes)
    with output_run(output):
        resolved = _resolve(module, args, settings, reads)
        with mapped(reading=_reading(args, resolved), writing=str(output) if output else None):
            result = module.execute(args, resolved, output, settings)
        if result is None:  # a dry run printed its plan
            return 0
        _refuse_empty(result, args)
    for line in getattr(module, "report_lines", lambda r: [])(result):
        print(line)
    print("\n".join(result.summary_lines()))
    _check_reject_rate(result, settings)
    if writes is not None and _publishes(args):
        return _publish(args, settings, result, *writes)
    return 0


def _resolve(
    module: ModuleType, args: argparse.Namespace, settings: Settings, reads: str | None
) -> Any:
    from kbpipe.hub.pull import resolve_input

    if reads is None:
        return None
    return resolve_input(
        args.input,
        default_local=_local_input(settings, reads),
        default_repo=settings.repo_id(reads),
        settings=settings,
        make_hint=getattr(module, "MAKE_INPUT_HINT", None),
    )


# Exit status of a step whose table is written and good but whose upload failed:
# make keeps the table (kbpipe leaves UNPUBLISHED beside it) and `make publish` retries.
EXIT_UNPUBLISHED = 3


def _local_input(settings: Settings, reads: str) -> Path:
    """A partial run reads its own partial input when there is one, else the full run's."""
    partial = settings.table_path(reads)
    return partial if partial.exists() else settings.full().table_path(reads)


def _dry_run(
    module: ModuleType,
    args: argparse.Namespace,
    resolved: Any,
    output: Path | None,
    settings: Settings,
    writes: tuple[str, str] | None,
) -> int:
    from kbpipe.io.plan import StepPlan, count_rows

    if hasattr(module, "plan"):
        plan = module.plan(args, resolved, output, settings)
    else:
        given = (getattr(args, "input_path", None), args.input)  # convert's IN.jsonl
        local = [Path(p) for p in given if p is not None and not str(p).startswith("hf://")]
        paths = resolved.paths if resolved is not None else local
        rows = count_rows(paths, settings.limit(args.limit)) if paths else None
        plan = StepPlan(args.command, rows, output, limit=settings.limit(args.limit))
    if writes is not None and _publishes(args) and not settings.partial_rows:
        plan.publish_to = settings.repo_id(*writes)
    print("\n".join(plan.lines()))
    return 0


def _reading(args: argparse.Namespace, resolved: Any) -> str | None:
    """What an error of a library names as the input being read."""
    given = getattr(args, "input_path", None) or args.input
    return str(given) if given else getattr(resolved, "source", None)


def _drops(result: Any) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(result.dropped.items()))


def _refuse_empty(result: Any, args: argparse.Namespace) -> None:
    """An empty table fails the step (nothing is published), unless --allow-empty."""
    if result.output is None or result.rows_out or args.allow_empty:
        return
    raise KbpipeError(
        f"{result.step}: no rows left of {result.rows_in:,} ({_drops(result) or 'none dropped'})"
        f"; nothing was written and {result.output} is as it was. Pass --allow-empty to "
        "write an empty table"
    )


def _check_reject_rate(result: Any, settings: Settings) -> None:
    bound = settings.max_reject_rate
    if result.loss_rate <= bound:
        return
    meant = result.rows_out + result.n_lost
    flag = settings.hint(f"--max-reject-rate {bound:.0%}", f"MAX_REJECT_RATE={bound:g}")
    # Under make the failed recipe's table is deleted (.DELETE_ON_ERROR), so say so:
    # the rejects file and the request journal still hold everything paid for.
    kept = (
        "make removes the table because the step failed; the rejects and the journal "
        "keep every paid answer, so a rerun pays for none of them again"
        if settings.from_make
        else f"the table is written beside {result.rejects} and nothing paid is lost"
    )
    raise KbpipeError(
        f"{result.step}: lost {result.n_lost:,} of {meant:,} rows ({result.loss_rate:.0%}) "
        f"to rejects, more than {flag} ({_drops(result)}). Not published; {kept}. See the "
        "rejects for the cause, fix it and rerun, or raise the bound to accept them"
    )


def _publish(
    args: argparse.Namespace, settings: Settings, result: Any, table: str, variant: str = ""
) -> int:
    from kbpipe.commands.upload import card_images_for
    from kbpipe.hub.publish import mark_unpublished, publish_table

    if settings.partial_rows and args.hub_dry_run is None:
        print(
            f"not published: a partial run (first {settings.partial_rows:,} rows) never "
            f"replaces {settings.repo_id(table, variant)} on the Hub"
        )
        return 0
    split = (args.split or "module") if table_spec(table).split else "none"
    try:
        report = publish_table(
            result.output,
            settings,
            table=table,
            stats=result.to_dict(settings),
            split=split,
            private=args.private,
            dry_run_dir=args.hub_dry_run,
            no_reasoning=variant == "no_reasoning",
            merged=variant == "merged",
            images=card_images_for(settings, table, split),
        )
    except KbpipeError as exc:
        if args.hub_dry_run is not None:
            raise
        message = redact(str(exc))
        marker = mark_unpublished(result.output, settings.repo_id(table, variant), message)
        print(f"kbpipe {args.command}: error: {message}", file=sys.stderr)
        print(f"  marked {marker}", file=sys.stderr)
        return EXIT_UNPUBLISHED
    print("\n".join([*report.summary_lines(), *(f"note: {n}" for n in report.notes)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure a user can act on is one line on stderr.

    Exit status: 0 done, 1 error, 130 Ctrl-C, 143 SIGTERM (both clean up first).
    """
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    prog = f"kbpipe {command}" if command in COMMANDS else "kbpipe"
    terminated = _terminate_cleanly()
    try:
        return _run(command, argv)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if is_interrupt(exc):
            what = "terminated" if terminated else "interrupted"
            note = interrupt_note(exc) or "nothing more was written"
            print(f"{prog}: {what}; {note}", file=sys.stderr)
            return 143 if terminated else 130
        error = user_error(exc)
        if error is None:
            raise  # a bug in kbpipe: its traceback is what a report needs
        print(f"{prog}: error: {redact(' '.join(str(error).split()))}", file=sys.stderr)
        return 1


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
    if args.upload and not sends_nothing and _table(module.WRITES, args) is not None:
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
