"""The rater's command-line options, shared by `kbpipe filter` and `kbpipe prompts`.

`--model` and `--concurrency` write straight into the task's Settings fields
(`judge_model`/`spec_model`, `judge_concurrency`/`spec_concurrency`) and
`--base-url` into `base_url`, so the CLI's settings layering applies to them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kbpipe.config import Settings
from kbpipe.errors import ConfigError
from kbpipe.rater.policy import Retries, Timeouts
from kbpipe.rater.tasks import BACKENDS, RaterOptions, Task, require_api_key


def add_rater_arguments(
    parser: argparse.ArgumentParser,
    task: Task,
    *,
    backends: Sequence[str] = BACKENDS,
    default: str = "api",
    with_backend: bool = True,
) -> None:
    """The engine's options; `with_backend=False` when the command defines --rater itself."""
    defaults = Settings()
    g = parser.add_argument_group("rater (LLM calls)")
    if with_backend:
        g.add_argument(
            "--rater",
            choices=list(backends),
            default=default,
            help="api: an OpenAI-compatible LLM; offline: rules over the PyTorch code, no "
            f"network (default: {default})",
        )
    g.add_argument(
        "--base-url",
        dest="base_url",
        metavar="URL",
        help=f"OpenAI-compatible API root (default: {defaults.base_url})",
    )
    g.add_argument(
        "--model",
        dest=task.model_field,
        metavar="NAME",
        help=f"model to ask (default: {getattr(defaults, task.model_field)})",
    )
    g.add_argument(
        "--concurrency",
        dest=task.concurrency_field,
        type=int,
        metavar="N",
        help=f"requests in flight (default: {getattr(defaults, task.concurrency_field)})",
    )
    g.add_argument(
        "--max-tokens",
        type=int,
        default=task.max_tokens,
        metavar="N",
        help=f"completion token limit per request (default: {task.max_tokens})",
    )
    g.add_argument(
        "--temperature",
        type=float,
        default=task.temperature,
        metavar="T",
        help=f"sampling temperature (default: {task.temperature})",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=task.timeout_s,
        metavar="SECONDS",
        help="give up on one attempt after this long (default: %(default)s)",
    )
    g.add_argument(
        "--max-retries",
        type=int,
        default=Retries().max_attempts - 1,
        metavar="N",
        help="retries of 408/409/429/5xx, timeouts and dropped connections (default: %(default)s)",
    )
    g.add_argument(
        "--max-reasks",
        type=int,
        default=2,
        metavar="N",
        help=f"ask again when an answer has no <{task.tag}> tag (default: %(default)s)",
    )
    g.add_argument(
        "--fresh", action="store_true", help="ignore answers already in the journal and ask again"
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def options_from_args(args: argparse.Namespace, settings: Settings) -> RaterOptions:
    """The options, checked before any work: a missing key fails now, not after the input."""
    if args.max_retries < 0:
        raise ConfigError("--max-retries must be >= 0")
    # --dry-run (every step's, kbpipe.cli) sends nothing, so it needs no key.
    if args.rater == "api" and not args.dry_run:
        require_api_key(settings)
    return RaterOptions(
        backend=args.rater,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        timeouts=Timeouts(request_s=args.timeout),
        retries=Retries(max_attempts=args.max_retries + 1),
        max_reasks=args.max_reasks,
        fresh=args.fresh,
        progress=args.progress,
    )
