"""One typed settings object for every step.

Precedence, lowest first: field defaults < `.env` file < process environment <
CLI flags. Functions take a `Settings`; nothing else in kbpipe reads
`os.environ`, so a test can build any configuration without touching globals.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbpipe.errors import ConfigError, register_secret

# Every Hub repo and output folder is derived from DATA_MODEL, so it must be a
# plain name: a slash would silently create nested folders and break repo ids.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

SYNTHETIC_SUFFIX = "-synthetic-prompts"

# The judge's difficulty levels, in the order reports and cards list them.
DIFFICULTY_LEVELS = ("low", "medium", "high")
# The columns step 1 adds to the evals table (null with `--rater none`).
RATING_COLUMNS = ("difficulty", "evaluation_raw")


def difficulty_order(level: str) -> tuple[int, str]:
    """Sort key: the levels in their order, anything else after them."""
    known = DIFFICULTY_LEVELS
    return (known.index(level) if level in known else len(known), level)


@dataclass(frozen=True)
class TableSpec:
    """One table of a run: its file, its Hub repo suffix, and whether it is published split."""

    name: str
    stem: str
    hub_suffix: str
    # Published as 90/10 train/validation (the seed split filtered and unique only).
    split: bool
    aliases: tuple[str, ...] = ()
    # Stem of its strip-reasoning and merged variants (`source_no_reasoning`, ...).
    variant_stem: str | None = None


# The one registry of table names: file stems, Hub suffixes, aliases and splits.
TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec("source", "evals_dataset", "evals", False, ("evals",), "source"),
        TableSpec("filtered", "filtered_dataset", "evals-filtered", True, (), "filtered"),
        TableSpec("unique", "unique_dataset", "evals-unique", True, (), "unique"),
        TableSpec("synthetic", "synthetic_prompts", "synthetic-tasks", False),
        TableSpec("audited", "audited_dataset", "evals-audited", True),
        TableSpec("decontaminated", "decontaminated_dataset", "evals-decontaminated", True),
        TableSpec("verified", "verified_dataset", "evals-verified", True),
    )
}
_ALIASES = {alias: t.name for t in TABLES.values() for alias in (t.name, *t.aliases)}
# Tables that strip-reasoning and merge act on (they have `_no_reasoning`/`_merged` variants).
VARIANT_TABLES = tuple(t.name for t in TABLES.values() if t.variant_stem)
# variant -> (file stem suffix, Hub repo suffix)
VARIANTS = {
    "": ("", ""),
    "no_reasoning": ("_no_reasoning", "-no-reasoning"),
    "merged": ("_merged", "-merged"),
}


def table_spec(name: str) -> TableSpec:
    """The registry entry for a table name or alias (`evals` is `source`)."""
    try:
        return TABLES[_ALIASES[name]]
    except KeyError:
        raise ConfigError(f"unknown table {name!r}; expected one of {sorted(_ALIASES)}") from None


@dataclass(frozen=True)
class Settings:
    data_model: str = "glm4_7"
    hf_org: str = "siro1"
    output_dir: Path = Path("outputs")
    test_mode: bool = False
    test_mode_rows: int = 5
    use_synthetic_prompts: bool = False
    reward_threshold: float = 0.85
    # A step fails when it loses more than this share of its rows to rejects.
    max_reject_rate: float = 0.1
    judge_model: str = "openai/gpt-5.2"
    spec_model: str = "moonshotai/kimi-k2-0905"
    base_url: str = "https://api.pinference.ai/api/v1"
    api_key: str | None = field(default=None, repr=False)
    prime_team_id: str | None = None
    hf_token: str | None = field(default=None, repr=False)
    judge_concurrency: int = 256
    spec_concurrency: int = 1024
    tokenizer: str = "Qwen/Qwen3-30B-A3B-Thinking-2507"
    kernelbook_repo: str = "GPUMODE/KernelBook"
    # What kbpipe derives once and reuses across runs (e.g. a tokenizer's tiktoken ranks).
    cache_dir: Path = Path(".cache/kbpipe")
    # The license the Hub cards declare (an SPDX-style Hub id such as `apache-2.0`);
    # unset on purpose: kbpipe cannot know the terms of the model's outputs.
    license: str | None = None
    # Set by the Makefile, so messages name make variables instead of flags.
    from_make: bool = False
    # `--limit N` of the step being run (no environment variable: it is per command).
    row_limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("data_model", "hf_org"):
            value = getattr(self, name)
            if not _NAME_RE.match(value):
                raise ConfigError(
                    f"{_ENV_NAME[name]}={value!r} is not a plain name: use letters, digits, "
                    "'.', '_' or '-' (it becomes a folder and part of Hub repo ids)"
                )
        if not 0.0 <= self.reward_threshold <= 1.0:
            raise ConfigError(f"reward threshold {self.reward_threshold} is outside [0, 1]")
        if not 0.0 <= self.max_reject_rate <= 1.0:
            raise ConfigError(f"MAX_REJECT_RATE={self.max_reject_rate} is outside [0, 1]")
        for name in ("judge_concurrency", "spec_concurrency", "test_mode_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_ENV_NAME[name]} must be at least 1")
        if self.row_limit is not None and self.row_limit < 1:
            raise ConfigError("--limit must be at least 1")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL {self.base_url!r} must start with http:// or https://")
        # Whatever prints or writes text redacts these from now on (kbpipe.errors.redact).
        register_secret(self.api_key)
        register_secret(self.hf_token)

    # -- derived names -------------------------------------------------------

    @property
    def run_name(self) -> str:
        """Folder and repo stem; a synthetic-prompt run lives beside the base run."""
        suffix = SYNTHETIC_SUFFIX if self.use_synthetic_prompts else ""
        return f"{self.data_model}{suffix}"

    @property
    def run_dir(self) -> Path:
        """The run's folder: its full outputs, the request journal, and partial runs' folders."""
        return self.output_dir / self.run_name

    @property
    def partial_rows(self) -> int | None:
        """Rows a partial run keeps (--limit, else TEST_MODE's sample); None for a full run."""
        return self.limit(None)

    @property
    def model_dir(self) -> Path:
        """Where this run's outputs go. A partial run (--limit/TEST_MODE) has its own
        `limit-N/` folder inside the run folder, so it never replaces the full outputs."""
        return self._partial(self.run_dir)

    def _partial(self, folder: Path) -> Path:
        n = self.partial_rows
        return folder / f"limit-{n}" if n else folder

    def full(self) -> Settings:
        """The same settings without a row limit: the full run beside a partial one."""
        return self.replace(row_limit=None, test_mode=False)

    def table_path(self, which: str, variant: str = "") -> Path:
        """Local file of a table (`source|filtered|unique|...`), or of its variant."""
        spec = table_spec(which)
        if not variant:
            return self.model_dir / f"{spec.stem}.parquet"
        if spec.variant_stem is None or variant not in VARIANTS:
            raise ConfigError(f"the {spec.name} table has no {variant!r} variant")
        # Merged tables combine the base and synthetic runs, so they live in the base folder.
        base = self._partial(self.output_dir / self.data_model)
        folder = base if variant == "merged" else self.model_dir
        return folder / f"{spec.variant_stem}{VARIANTS[variant][0]}.parquet"

    def seqlen_json_path(self, which: str) -> Path:
        return self.model_dir / f"seqlen_{which}.json"

    def seqlen_rows_path(self, which: str) -> Path:
        return self.model_dir / f"seqlen_{which}.parquet"

    def repo_id(self, which: str, variant: str = "") -> str:
        """Hub dataset repo for a table, e.g. `siro1/kernelbook-glm4_7-evals-filtered`."""
        spec = table_spec(which)
        stem = self.data_model if variant == "merged" else self.run_name
        return f"{self.hf_org}/kernelbook-{stem}-{spec.hub_suffix}{VARIANTS[variant][1]}"

    def require_hf_token(self, what: str = "publishing to the Hub") -> None:
        """The one check for HF_TOKEN, made before any work is done."""
        if not self.hf_token:
            local = self.hint("pass --no-upload", "set UPLOAD=0")
            stage = self.hint("--hub-dry-run DIR", "HUB_DRY_RUN=1")
            raise ConfigError(
                f"{what} needs HF_TOKEN (in .env or the environment); {local} to keep the "
                f"result local or {stage} to stage it"
            )

    def hint(self, flag: str, make_words: str) -> str:
        """Advice in the words of the front end in use: a make variable under make, else a flag."""
        return make_words if self.from_make else flag

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def limit(self, requested: int | None) -> int | None:
        """Row limit for a step: an explicit --limit wins, else TEST_MODE's small sample."""
        if requested is not None:
            return requested
        if self.row_limit is not None:
            return self.row_limit
        return self.test_mode_rows if self.test_mode else None

    def describe(self) -> dict[str, Any]:
        """Resolved settings with secrets masked, for `kbpipe config` and stats files."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRETS:
                value = mask_secret(value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


# Environment variable behind each field. Several names for one field are
# tried in order (the seed used PRIME_API_KEY; KBPIPE_API_KEY wins over it).
_ENV_NAMES: dict[str, tuple[str, ...]] = {
    "data_model": ("DATA_MODEL",),
    "hf_org": ("HF_ORG",),
    "output_dir": ("OUTPUT_DIR",),
    "test_mode": ("TEST_MODE",),
    "test_mode_rows": ("TEST_MODE_ROWS",),
    "use_synthetic_prompts": ("USE_SYNTHETIC_PROMPTS",),
    "reward_threshold": ("REWARD_THRESHOLD",),
    "max_reject_rate": ("MAX_REJECT_RATE",),
    "judge_model": ("JUDGE_MODEL",),
    "spec_model": ("SPEC_MODEL",),
    "base_url": ("KBPIPE_BASE_URL",),
    "api_key": ("KBPIPE_API_KEY", "PRIME_API_KEY"),
    "prime_team_id": ("PRIME_TEAM_ID",),
    "hf_token": ("HF_TOKEN",),
    "judge_concurrency": ("JUDGE_CONCURRENCY",),
    "spec_concurrency": ("SPEC_CONCURRENCY",),
    "tokenizer": ("TOKENIZER",),
    "kernelbook_repo": ("KERNELBOOK_REPO",),
    "cache_dir": ("KBPIPE_CACHE_DIR",),
    "license": ("LICENSE",),
    "from_make": ("KBPIPE_FROM_MAKE",),
}
_ENV_NAME = {k: v[0] for k, v in _ENV_NAMES.items()}
_SECRETS = {"api_key", "hf_token"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def mask_secret(value: str | None) -> str | None:
    if not value:
        return value
    return "****" + value[-4:] if len(value) > 12 else "****"


def _coerce(name: str, raw: Any, source: str) -> Any:
    """Turn a string from .env/environment into the field's type, or say what is wrong."""
    if not isinstance(raw, str):
        return raw
    kind = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    label = f"{_ENV_NAME[name]}={raw!r} ({source})"
    if kind == "bool":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{label} is not a boolean: use true/false or 1/0")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{label} is not an integer") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{label} is not a number") from None
    if kind == "Path":
        return Path(raw)
    if kind == "str | None":
        return raw or None
    return raw


def parse_dotenv(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines; `#` comments, `export` prefixes and quotes allowed."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # Never the line itself: `PRIME_API_KEY sk-...` is a key with its `=` missing.
            raise ConfigError(
                f"{path}:{lineno}: expected KEY=VALUE (the line is not shown: it may hold a secret)"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
) -> Settings:
    """Build Settings from defaults, `.env`, the environment and CLI overrides.

    `overrides` maps field names to values already typed by argparse; a None
    value means the flag was not given.
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, str]]] = []
    if env_file is not None and env_file.is_file():
        layers.append((str(env_file), parse_dotenv(env_file)))
    layers.append(("environment", environ))

    values: dict[str, Any] = {}
    for source, layer in layers:
        for name, env_names in _ENV_NAMES.items():
            # Within one layer the first listed name wins (KBPIPE_API_KEY over PRIME_API_KEY).
            for env_name in env_names:
                if env_name in layer:
                    values[name] = _coerce(name, layer[env_name], source)
                    break
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, "command line")
    return Settings(**values)
