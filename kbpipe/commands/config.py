"""`kbpipe config`: the resolved settings, output paths and Hub repos (secrets masked).

`--make` prints them as make assignments for the Makefile to include (see
kbpipe.commands.makevars), so make reads `.env` exactly as kbpipe does;
`--make-help` is the variables part of `make help`.
"""

from __future__ import annotations

import argparse
import json
import sys

from kbpipe.commands import makevars
from kbpipe.config import TABLES, Settings

EXAMPLES = """examples:
  kbpipe config
  DATA_MODEL=qwen3_30b kbpipe config --json
  kbpipe config --make            # what the Makefile includes"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print as JSON")
    mode.add_argument(
        "--make",
        action="store_true",
        help="print the make variables as NAME:=value lines (the Makefile evaluates them)",
    )
    mode.add_argument(
        "--make-help", action="store_true", help="list the make variables with their values"
    )
    parser.add_argument(
        "--stamps",
        action="store_true",
        help="with --make: rewrite the settings stamps of the step targets that changed",
    )
    parser.add_argument(
        "--notes", action="store_true", help="with --make: say on stderr why UPLOAD is 0"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    env = makevars.read_environment(args.env_file)
    if args.make or args.make_help:
        values = makevars.resolve(settings, env)
        if args.make_help:
            _print_variables(values)
            return 0
        if args.stamps:
            makevars.write_stamps(settings, values)
        note = makevars.upload_note(settings, env) if args.notes else None
        if note:
            print(note, file=sys.stderr)
        print("\n".join(makevars.make_assignments(settings, values)))
        return 0
    info = {
        "settings": settings.describe(),
        "paths": {
            "model_dir": str(settings.model_dir),
            **{t: str(settings.table_path(t)) for t in TABLES},
        },
        "hub_repos": {t: settings.repo_id(t) for t in TABLES},
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for section, values in info.items():
        print(f"[{section}]")
        width = max(len(k) for k in values)
        for key, value in values.items():
            print(f"  {key:<{width}}  {value}")
    return 0


def _print_variables(values: dict[str, str]) -> None:
    print(
        "Variables (current values; set them on make's command line, in .env or the environment):"
    )
    width = max(len(name) for name in values)
    shown = {name: value or "(empty)" for name, value in values.items()}
    value_width = min(max(len(v) for v in shown.values()), 34)
    for var in makevars.VARIABLES:
        print(f"  {var.name:<{width}}  {shown[var.name]:<{value_width}}  {var.help}")
