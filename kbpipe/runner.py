"""The one step runner every pipeline step goes through.

A pipeline step (kbpipe/steps/) provides `EXAMPLES`, `add_arguments(parser)`,
`READS`/`WRITES` (TABLES names, or functions of the parsed arguments that
return one) and `execute(args, inputs, output, settings) -> StepResult | None`.
`run_step` resolves the input (-i, else the local table, else its Hub repo),
defaults the output from TABLES, runs the step inside its output transaction,
prints its summary, refuses an empty or too lossy result, and publishes the
table with the split TABLES gives it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from kbpipe.config import Settings, table_spec
from kbpipe.errors import KbpipeError, mapped, redact
from kbpipe.io.lineage import output_run


def declared_table(declared: Any, args: argparse.Namespace) -> Any:
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
    reads = declared_table(module.READS, args)
    writes = declared_table(module.WRITES, args)  # (table, variant) or None
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
