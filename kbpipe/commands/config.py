"""`kbpipe config`: the resolved settings, output paths and Hub repos (secrets masked)."""

from __future__ import annotations

import argparse
import json

from kbpipe.config import TABLES, Settings

EXAMPLES = """examples:
  kbpipe config
  DATA_MODEL=qwen3_30b kbpipe config --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
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
