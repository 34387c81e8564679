"""Building a ChatTokenizer from what `--tokenizer` names.

A Hub model id (its `tokenizer.json` and `tokenizer_config.json` fetched with
`hf_hub_download`, so the Hub cache and `HF_HUB_OFFLINE=1` work), a local
folder holding those files, or a `tokenizer.json` file plus a separate
chat-template file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from kbpipe.errors import ConfigError
from kbpipe.tokens.chat import (
    CONFIG_FILE,
    SPECIAL_TOKEN_KEYS,
    TEMPLATE_FILE,
    TOKENIZER_FILE,
    ChatTokenizer,
    CounterChoice,
)
from kbpipe.tokens.facts import tokenizer_facts
from kbpipe.tokens.template import compile_template


def load_chat_tokenizer(
    spec: str | Path,
    *,
    chat_template: Path | None = None,
    token: str | None = None,
    counter: CounterChoice = "auto",
    cache_dir: Path | None = None,
    check: bool = False,
) -> ChatTokenizer:
    """Load a tokenizer and its chat template from a Hub id, a folder or a tokenizer.json.

    `chat_template`, when given, is a Jinja file that replaces (or supplies)
    the config's template. With `cache_dir`, what is derived from the
    tokenizer file is cached there (kbpipe.tokens.facts). `check` counts every
    batch with `tokenizers` as well as the fast path.
    """
    spec_text = str(spec)
    path = Path(spec_text).expanduser()
    if path.is_dir():
        tok_file, config_file = path / TOKENIZER_FILE, path / CONFIG_FILE
        template_file = path / TEMPLATE_FILE
    elif path.is_file():
        tok_file, config_file = path, path.with_name(CONFIG_FILE)
        template_file = path.with_name(TEMPLATE_FILE)
    elif _looks_like_path(spec_text):
        raise ConfigError(f"tokenizer {spec_text}: no such file or folder")
    else:
        tok_file, config_file, template_file = _download(spec_text, token)

    if tok_file is None or not tok_file.is_file():
        raise ConfigError(f"tokenizer {spec_text}: {TOKENIZER_FILE} not found ({tok_file})")
    config = _read_config(config_file) if config_file and config_file.is_file() else {}

    template = _pick_template(config, config_file, spec_text)
    if chat_template is not None:
        template = _read_text(Path(chat_template), "chat template")
    elif template is None and template_file is not None and template_file.is_file():
        template = _read_text(template_file, "chat template")
    if not template:
        where = config_file if config_file and config_file.is_file() else f"beside {tok_file}"
        raise ConfigError(
            f"tokenizer {spec_text}: no chat template ({where} has none); "
            "pass --chat-template FILE.jinja"
        )
    _check_template(template, spec_text)

    facts = tokenizer_facts(tok_file, cache_dir)
    return ChatTokenizer(
        facts, template, _special_tokens(config), source=spec_text, counter=counter, check=check
    )


def _looks_like_path(spec: str) -> bool:
    # A Hub id is `name` or `org/name`; anything else must have been meant as a path.
    return (
        spec.startswith((".", "/", "~"))
        or spec.endswith((".json", ".jinja"))
        or spec.count("/") > 1
        or "\\" in spec
    )


def _download(repo_id: str, token: str | None) -> tuple[Path, Path | None, Path | None]:
    """Fetch tokenizer files from the Hub cache (or the Hub), honouring HF_HUB_OFFLINE."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    def fetch(filename: str, required: bool) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, token=token))
        except LocalEntryNotFoundError:
            # Checked first: it is also an EntryNotFoundError in recent huggingface_hub.
            if required:
                raise ConfigError(
                    f"tokenizer {repo_id}: {filename} is not in the Hub cache and the Hub "
                    "cannot be reached; pass --tokenizer DIR holding "
                    f"{TOKENIZER_FILE} and {CONFIG_FILE} (`make tokenizer` fetches Qwen3's)"
                ) from None
            return None
        except EntryNotFoundError:
            if required:
                raise ConfigError(f"tokenizer {repo_id}: the Hub repo has no {filename}") from None
            return None
        except (HfHubHTTPError, OSError, ValueError) as exc:
            if required:
                raise ConfigError(f"tokenizer {repo_id}: cannot fetch {filename} ({exc})") from exc
            return None

    tok = fetch(TOKENIZER_FILE, required=True)
    config = fetch(CONFIG_FILE, required=True)
    assert tok is not None
    template = None
    if config is not None and _pick_template(_read_config(config), config, repo_id) is None:
        template = fetch(TEMPLATE_FILE, required=False)
    return tok, config, template


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return config


def _pick_template(config: Mapping[str, Any], path: Path | None, spec: str) -> str | None:
    """The config's chat template; a list of named templates yields the `default` one."""
    template = config.get("chat_template")
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        if "default" in named:
            return named["default"]
        raise ConfigError(
            f"{path or spec}: chat_template lists {sorted(map(str, named))} but no 'default'"
        )
    raise ConfigError(f"{path or spec}: chat_template is neither a string nor a list")


def _special_tokens(config: Mapping[str, Any]) -> dict[str, Any]:
    """Special-token strings for the template; unset ones are left out, as transformers does."""
    out: dict[str, Any] = {}
    for key in SPECIAL_TOKEN_KEYS:
        raw = config.get(key)
        value = [_token_text(v) for v in raw] if isinstance(raw, list) else _token_text(raw)
        if value is not None:
            out[key] = value
    return out


def _token_text(value: Any) -> Any:
    # Older configs store AddedToken objects: {"content": "<s>", "__type": "AddedToken", ...}.
    if isinstance(value, dict):
        return value.get("content")
    return value


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc})") from exc


def _check_template(template: str, spec: str) -> None:
    try:
        compile_template(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"tokenizer {spec}: chat template line {exc.lineno}: {exc.message}"
        ) from exc
