"""`kbpipe upload`: publish a built table to the Hub, or stage it with --hub-dry-run.

Steps publish their own output as they finish; this command (re)publishes a
table that is already built, e.g. after a run with --no-upload, with another
split, or as a private repo. The card is built from the table's
`<table>.stats.json`, so it says the same as if the step had published it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kbpipe.config import TABLES, Settings, table_spec
from kbpipe.errors import ConfigError, InputError
from kbpipe.hub.publish import ImageMaker, publish_table, unpublished_marker
from kbpipe.io.lineage import StepResult, describe_input
from kbpipe.io.plan import count_rows
from kbpipe.io.tables import read_stats, reading_table

EXAMPLES = """examples:
  kbpipe upload filtered                       # outputs/glm4_7/filtered_dataset.parquet
  kbpipe upload unique --split legacy --private
  kbpipe upload filtered --no-reasoning        # filtered_no_reasoning.parquet
  kbpipe upload filtered --merged              # filtered_merged.parquet, configs base/synthetic/all
  kbpipe upload all --hub-dry-run outputs/glm4_7/hub   # stage every built table, send nothing"""

# Every table of the run (kbpipe.config.TABLES), in pipeline order.
PUBLISHED = tuple(TABLES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "which",
        choices=[*PUBLISHED, "all"],
        help="table to publish; `all` publishes every table of this DATA_MODEL that is built",
    )
    parser.add_argument(
        "-i",
        "--input",
        type=Path,
        metavar="FILE",
        help="local .parquet/.jsonl to publish (default: the table's output file)",
    )
    parser.add_argument(
        "--split",
        choices=["module", "legacy", "none"],
        default=None,
        help="train/validation split (default: module for filtered/unique, none otherwise)",
    )
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--hub-dry-run",
        dest="dry_run",
        type=Path,
        metavar="DIR",
        help="write DIR/<repo-name>/ and DIR/<repo-name>.operations.json; send nothing "
        "(the steps' --hub-dry-run)",
    )
    # The older name: a step's --dry-run writes nothing at all, this writes the staged repo.
    parser.add_argument("--dry-run", dest="dry_run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-reasoning",
        action="store_true",
        help="publish the strip-reasoning output to the -no-reasoning repo",
    )
    parser.add_argument(
        "--merged",
        action="store_true",
        help="publish the merged base + synthetic-prompt table to the -merged repo",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="publish a table with no rows instead of refusing it",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.dry_run is None:
        if settings.partial_rows:
            raise ConfigError(
                f"{settings.model_dir} holds a partial run (TEST_MODE, first "
                f"{settings.partial_rows:,} rows): it never replaces the full tables on the "
                "Hub; stage it with --hub-dry-run DIR"
            )
        # Checked before reading anything, like the steps do.
        settings.require_hf_token()
    targets = _targets(args, settings)
    notes: dict[str, None] = {}
    for which, path, no_reasoning, merged in targets:
        split = _split_for(which, args.split, single=args.which != "all")
        with reading_table(path):  # a damaged or mislabelled file is one line naming it
            stats = _stats(path, settings)
            _refuse_empty(path, stats, args.allow_empty)
            report = publish_table(
                path,
                settings,
                table=which,
                stats=stats,
                split=split,
                private=args.private,
                dry_run_dir=args.dry_run,
                no_reasoning=no_reasoning,
                merged=merged,
                images=card_images_for(settings, which, split),
            )
        for line in report.summary_lines():
            print(line)
        notes.update(dict.fromkeys(report.notes))
        if args.dry_run is None:
            unpublished_marker(path).unlink(missing_ok=True)
    for note in notes:  # once, not once per table
        print(f"note: {note}")
    return 0


def card_images_for(settings: Settings, table: str, split: str) -> ImageMaker | None:
    """The report's charts of `table` for its card (kbpipe.report.CARD_CHARTS), or None
    when it has none or matplotlib (the `plot` extra) is not installed."""
    from kbpipe.report.build import CARD_CHARTS, card_images, require_matplotlib

    charts = "evals" if table_spec(table).name == "source" else table_spec(table).name
    if charts not in CARD_CHARTS:
        return None
    try:
        require_matplotlib()
    except ConfigError:
        return None

    def draw(dest: Path) -> list[Any]:
        return card_images(settings.model_dir, dest, table=charts, split_mode=split)

    return draw


def _refuse_empty(path: Path, stats: dict[str, Any], allow_empty: bool) -> None:
    if not stats.get("rows_out") and not allow_empty:
        raise InputError(
            f"{path}: has no rows; an empty dataset is not published (pass --allow-empty "
            "to publish it anyway)"
        )


def _split_for(which: str, requested: str | None, *, single: bool) -> str:
    # With `all`, --split applies to the tables TABLES splits; the others stay one train split.
    split_table = table_spec(which).split
    if requested and (single or split_table):
        return requested
    return "module" if split_table else "none"


def _targets(args: argparse.Namespace, settings: Settings) -> list[tuple[str, Path, bool, bool]]:
    """(table, file, no_reasoning, merged) to publish."""
    if args.no_reasoning and args.merged:
        raise ConfigError("--no-reasoning and --merged cannot be combined")
    if args.which != "all":
        variant = _variant(args.no_reasoning, args.merged)
        path = args.input or settings.table_path(args.which, variant)
        if str(path).startswith("hf:"):
            raise InputError(f"{path}: upload publishes a local table; pass a local file")
        if not path.exists():
            raise InputError(f"{path}: no such file; build it first or pass -i FILE")
        return [(args.which, path, args.no_reasoning, args.merged)]
    if args.input is not None:
        raise ConfigError("`kbpipe upload all` publishes the built tables; -i names one table")
    found = []
    for which in PUBLISHED:
        for no_reasoning, merged in ((False, False), (True, False), (False, True)):
            variant = _variant(no_reasoning, merged)
            if variant and table_spec(which).variant_stem is None:
                continue
            path = settings.table_path(which, variant)
            if path.exists():
                found.append((which, path, no_reasoning, merged))
    if not found:
        raise InputError(f"{settings.model_dir}: no built tables to publish")
    return found


def _variant(no_reasoning: bool, merged: bool) -> str:
    return "no_reasoning" if no_reasoning else "merged" if merged else ""


def _stats(path: Path, settings: Settings) -> dict[str, Any]:
    """The step's stats/lineage JSON; for a file kbpipe did not write, a plain description."""
    stats = read_stats(path)
    if stats is not None:
        return stats
    n_rows = count_rows([path])
    result = StepResult("upload", output=path, rows_in=n_rows, rows_out=n_rows)
    result.inputs = [describe_input(path)]
    return result.to_dict(settings)
