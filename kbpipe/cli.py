"""Command-line front: `kbpipe <command>`; each command calls one step function.

Each command lives in its own module, which provides `HELP` (one line),
`EXAMPLES` (shown under --help), `add_arguments(parser)` and
`run(args, settings) -> int`. Arguments whose `dest` is a Settings field name
(e.g. `reward_threshold`, `base_url`) override that setting, so flags sit on
top of defaults, `.env` and the environment without per-command glue.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from kbpipe import __version__
from kbpipe.config import Settings, load_settings
from kbpipe.errors import ConfigError, KbpipeError, NotBuiltError

# command -> module implementing it, in pipeline order.
COMMANDS: dict[str, str] = {
    "sample": "kbpipe.commands.sample",
    "convert": "kbpipe.steps.convert",
    "filter": "kbpipe.steps.filter",
    "prompts": "kbpipe.steps.prompts",
    "dedupe": "kbpipe.steps.dedupe",
    "seqlen": "kbpipe.steps.seqlen",
    "strip-reasoning": "kbpipe.steps.strip_reasoning",
    "merge": "kbpipe.steps.merge",
    "upload": "kbpipe.commands.upload",
    "query": "kbpipe.commands.query",
    "config": "kbpipe.cli",
}

# One-line summaries for `kbpipe --help`. Kept here, not read from the command
# modules, so that a run imports only the module of the command it runs: the
# others pull in aiohttp, jinja2, tokenizers and the Hub client.
_SUMMARY = {
    "sample": "write the bundled sample: a vf-eval JSONL and a KernelBook-style table",
    "convert": "step 0.5: vf-eval JSONL -> evals table (reasoning pulled out of the trajectory)",
    "filter": "step 1: keep reward > threshold and rate each row's difficulty",
    "prompts": "step 2: write a task specification for every KernelBook module",
    "dedupe": "step 3: keep the best-reward row per module",
    "seqlen": "step 4: token lengths under the chat template, recommended seq_len",
    "strip-reasoning": "step 5: keep only the <answer> part of each completion",
    "merge": "combine a base run and a synthetic-prompt run",
    "upload": "publish a table to the Hugging Face Hub",
    "query": "run SQL over this DATA_MODEL's outputs with DuckDB",
    "config": "print the resolved settings, output paths and Hub repos (secrets masked)",
}

HELP = "print the resolved settings, output paths and Hub repos (secrets masked)"
EXAMPLES = """examples:
  kbpipe config
  DATA_MODEL=qwen3_30b kbpipe config --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """`kbpipe config`."""
    tables = ("source", "filtered", "unique", "synthetic")
    info = {
        "settings": settings.describe(),
        "paths": {
            "model_dir": str(settings.model_dir),
            **{t: str(settings.table_path(t)) for t in tables},
        },
        "hub_repos": {t: settings.repo_id(t) for t in tables},
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
    """Options every pipeline step takes: input, output, row limit, upload switch."""
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
        help="process only the first N rows (TEST_MODE=true sets a small default)",
    )
    g.add_argument(
        "--no-upload",
        dest="upload",
        action="store_false",
        help="do not publish the result to the Hugging Face Hub",
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


STEP_COMMANDS = {"convert", "filter", "prompts", "dedupe", "seqlen", "strip-reasoning", "merge"}


def _load(command: str) -> ModuleType | None:
    module_name = COMMANDS[command]
    if module_name == __name__:
        return sys.modules[__name__]
    if importlib.util.find_spec(module_name) is None:
        return None
    return importlib.import_module(module_name)


def build_parser(
    command: str | None = None,
) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The argument parser, with full options for `command` only; returns its module too."""
    parser = argparse.ArgumentParser(
        prog="kbpipe",
        description="Turn LLM rollouts of KernelBook tasks into clean SFT datasets.",
        epilog="Run `kbpipe COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"kbpipe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = _load(command) if command in COMMANDS else None
    common = common_parser()
    for name in COMMANDS:
        if name != command:
            sub.add_parser(name, help=_SUMMARY[name])
            continue
        parents = [common, step_parser()] if name in STEP_COMMANDS else [common]
        help_text = getattr(module, "HELP", None) or _SUMMARY[name]
        p = sub.add_parser(
            name,
            parents=parents,
            help=help_text,
            description=help_text,
            epilog=getattr(module, "EXAMPLES", None) or "(not built yet)",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if module is not None:
            module.add_arguments(p)
        else:
            # Accept anything so `kbpipe X ...` reaches the "not built yet" message.
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser, module


def settings_from_args(args: argparse.Namespace) -> Settings:
    fields = {f.name for f in dataclasses.fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return load_settings(overrides, env_file=getattr(args, "env_file", Path(".env")))


def require_hub_token(settings: Settings) -> None:
    if not settings.hf_token:
        raise ConfigError(
            "publishing to the Hub needs HF_TOKEN (in .env or the environment); "
            "pass --no-upload to keep the result local or --hub-dry-run DIR to stage it"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser, module = build_parser(command)
    args = parser.parse_args(argv)
    prog = f"kbpipe {args.command}"
    try:
        if module is None:
            raise NotBuiltError(f"the {args.command!r} step is not built yet")
        settings = settings_from_args(args)
        sends_nothing = (
            getattr(args, "hub_dry_run", None) is not None
            or getattr(args, "dry_run", False) is True
        )
        if args.command in STEP_COMMANDS and args.upload and not sends_nothing:
            # Fail before any work rather than after an hour of paid LLM calls.
            require_hub_token(settings)
        return int(module.run(args, settings) or 0)
    except NotBuiltError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KbpipeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
