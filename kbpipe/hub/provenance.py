"""A card's "How it was made": the pipeline as the make command that rebuilds it.

Built from the stats files of the table and of the local tables before it
(`lineage_chain`). A card is read on the Hub, far from the machine that built
it, so it names no local path (a file is named by its base name and content
hash) and no flag that only means something there (`--no-upload`, `-o`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kbpipe.config import SYNTHETIC_SUFFIX
from kbpipe.io.tables import read_stats

# step -> (make target, {stats parameter: make variable}).
_MAKE_FORM: dict[str, tuple[str, dict[str, str]]] = {
    "convert": ("evals", {}),
    "filter": ("filtered", {"reward_threshold": "REWARD_THRESHOLD", "rater": "FILTER_RATER"}),
    "prompts": ("synthetic", {"rater": "RATER"}),
    "dedupe": ("unique", {}),
    "seqlen": ("seqlen", {}),
    "strip-reasoning": ("no-reasoning", {}),
    "audit": ("audited", {}),
    "verify": ("verified", {}),
    "decontaminate": ("decontaminate", {}),
}
# The model variable of a step rated through the API.
_MODEL_VARIABLE = {"filter": "JUDGE_MODEL", "prompts": "SPEC_MODEL"}
_ANSWER_FORMAT_STEPS = {"filter", "strip-reasoning", "audit", "verify"}


def lineage_chain(stats: dict[str, Any], depth: int = 8) -> list[dict[str, Any]]:
    """This step's stats and those of the local inputs before it, oldest first."""
    chain = [stats]
    seen = {stats.get("output")}
    current = stats
    for _ in range(depth):
        parent = None
        for entry in current.get("inputs") or []:
            path = Path(str(entry.get("path")))
            if str(path) not in seen and (parent := read_stats(path)) is not None:
                seen.add(str(path))
                break
        if parent is None:
            break
        chain.append(parent)
        current = parent
    return chain[::-1]


def make_command(chain: list[dict[str, Any]], data_model: str) -> str:
    """`make <target> DATA_MODEL=... VAR=...` that rebuilds the last table of `chain`."""
    variables: dict[str, str] = {"DATA_MODEL": data_model}
    target = "all"
    for stats in chain:
        step = str(stats.get("step"))
        target, names = _MAKE_FORM.get(step, (target, {}))
        params = stats.get("params") or {}
        for param, variable in names.items():
            if params.get(param) is not None:
                variables[variable] = str(params[param])
        variables.update(_step_variables(step, stats, params))
        if str(stats.get("run_name") or "").endswith(SYNTHETIC_SUFFIX):
            variables["USE_SYNTHETIC_PROMPTS"] = "true"
    return "make " + " ".join([target, *(f"{k}={_quote(v)}" for k, v in variables.items())])


def _step_variables(step: str, stats: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    rater = params.get("rater")
    model = params.get("judge_model") or params.get("model")
    if rater == "api" and model and step in _MODEL_VARIABLE:
        out[_MODEL_VARIABLE[step]] = str(model)
    fmt = params.get("answer_format")
    if step in _ANSWER_FORMAT_STEPS and fmt not in (None, "auto"):
        out["ANSWER_FORMAT"] = str(fmt)
    if params.get("limit"):
        out |= {"TEST_MODE": "true", "TEST_MODE_ROWS": str(params["limit"])}
    inputs = stats.get("inputs") or []
    source = str(inputs[0].get("path")) if inputs else ""
    if step == "convert" and source:
        out["INPUT"] = Path(source).name
    if step == "prompts" and source:
        repo = source.removeprefix("hf://datasets/").split("@", 1)[0]
        out |= (
            {"KERNELBOOK_REPO": repo}
            if source.startswith("hf://")
            else {"KERNELBOOK": Path(source).name}
        )
    if step == "seqlen":
        tokenizer = params.get("tokenizer") or {}
        source = tokenizer.get("source") if isinstance(tokenizer, dict) else tokenizer
        # make's own default (the bundled Qwen3 files) needs no variable.
        if source and not (_is_local_path(str(source)) and Path(str(source)).name == "qwen3"):
            out["SEQLEN_TOKENIZER"] = str(public(source))
    return out


def _quote(value: str) -> str:
    return (
        value if re.fullmatch(r"[\w./:@,+-]*", value) else "'" + value.replace("'", "'\\''") + "'"
    )


def public(value: Any) -> Any:
    """`value` with local paths cut to their base name, inside lists and dicts too."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    if isinstance(value, str) and _is_local_path(value):
        return Path(value).name
    return value


def _is_local_path(text: str) -> bool:
    if "\n" in text or "://" in text or len(text) > 4096:
        return False
    path = Path(text)
    return (
        path.is_absolute()
        or text.startswith(("./", "../", ".cache/", "outputs/"))
        or ("/" in text and path.exists())
    )


def tokenizer_name(source: str, info: dict[str, Any] | None = None) -> str:
    """How a card names the tokenizer: its Hub id, or what a local copy is."""
    if not _is_local_path(source):
        return f"`{source}`"
    vocab = (info or {}).get("vocab_size")
    size = f", {vocab:,} tokens" if isinstance(vocab, int) else ""
    if Path(source).name == "qwen3":
        return f"Qwen3 (the tokenizer and chat template kbpipe's `make tokenizer` fetches{size})"
    return f"a local tokenizer (`{Path(source).name}`{size})"
