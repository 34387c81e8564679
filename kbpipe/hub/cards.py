"""Dataset cards: the README.md a Hub dataset repo gets, YAML header and text.

The YAML (kbpipe.hub.cardyaml) follows what ``datasets.push_to_hub`` writes,
with the Hub's metadata (license, language, tags, sizes) on top. The text
is built from the step's stats/lineage JSON and from the rows as they are
written: what the dataset is, how it was made, counts per stage, difficulty
mix, rewards, sequence lengths when known, the columns and how to load it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from kbpipe.config import difficulty_order
from kbpipe.hub import columns
from kbpipe.hub.cardyaml import TAGS, front_matter, size_category
from kbpipe.hub.checks_card import checks_section
from kbpipe.hub.provenance import lineage_chain, make_command, public, tokenizer_name
from kbpipe.hub.rowsummary import RowSummary
from kbpipe.hub.shards import StagedConfig

_DESCRIPTIONS = {
    "source": "rollouts of the KernelBook task (a PyTorch module to rewrite as Triton kernels) "
    "by `{model}`, scored by the evaluation harness: one row per rollout with the prompt, "
    "the completion, the reward and timings",
    "filtered": "rollouts of the KernelBook task by `{model}` whose reward is above the "
    "threshold, each rated for difficulty (low / medium / high)",
    "unique": "the best-reward rollout per module (`info.module_name`) of the filtered "
    "KernelBook rollouts by `{model}`",
    "synthetic": "task specifications for the KernelBook modules: for each PyTorch module, "
    "a description of what to implement, without Triton code",
}

# Parameters worth a line of their own in the card, in this order.
_KEY_PARAMS = (
    "judge_model",
    "spec_model",
    "model",
    "rater",
    "backend",
    "prompt_version",
    "prompt_template_version",
    "template_version",
    "reward_threshold",
    "threshold",
)
_SECRET_WORDS = ("token", "api_key", "secret", "password")


# --- the card ---------------------------------------------------------------------


@dataclass
class CardContext:
    repo_id: str
    table: str
    data_model: str
    stats: dict[str, Any]
    split_mode: str
    no_reasoning: bool = False
    merged: bool = False
    seqlen: dict[str, Any] | None = None
    # The LICENSE setting: a Hub license id, or None (the card then declares none).
    license: str | None = None
    # The report's charts as (file in the repo, title, alt text).
    images: list[tuple[str, str, str]] = field(default_factory=list)

    @cached_property
    def chain(self) -> list[dict[str, Any]]:
        """This table's stats and those of the local inputs before it, oldest first: read
        from disk once per card, though three sections use it."""
        return lineage_chain(self.stats)


def card_metadata(ctx: CardContext, n_rows: int) -> dict[str, Any]:
    """license, language, task_categories, tags and size_categories of the card."""
    meta: dict[str, Any] = {"license": ctx.license} if ctx.license else {}
    without_reasoning = ctx.no_reasoning or ctx.table == "synthetic"
    return {
        **meta,
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": [t for t in TAGS if not (t == "reasoning" and without_reasoning)],
        "size_categories": [size_category(n_rows)],
    }


def render_readme(
    ctx: CardContext, configs: list[StagedConfig], schema: pa.Schema, rows: RowSummary
) -> str:
    default = next((c for c in configs if c.default), configs[0])
    meta = card_metadata(ctx, sum(s.num_examples for s in default.splits))
    header = yaml.safe_dump(
        front_matter(configs, schema, meta), sort_keys=False, allow_unicode=True
    )
    parts = [
        f"---\n{header}---\n",
        *_intro(ctx),
        *_contents(ctx, configs),
        *_provenance(ctx),
        *_stages(ctx.chain),
        *checks_section(ctx.stats),
        *_difficulty(rows),
        *_rewards(rows),
        *_seqlen(ctx.seqlen),
        *_images(ctx),
        *_columns(ctx, schema),
        *_loading(ctx, configs),
    ]
    return "\n".join(parts)


def _intro(ctx: CardContext) -> list[str]:
    name = ctx.repo_id.split("/", 1)[-1]
    text = _DESCRIPTIONS.get(ctx.table, "a KernelBook table").format(model=ctx.data_model)
    lines = [f"# {name}", "", text[0].upper() + text[1:] + "."]
    if ctx.no_reasoning:
        lines.append(
            "Reasoning removed: each completion is one assistant message holding only the "
            "`<answer>…</answer>` part."
        )
        other = _other_answer_formats(ctx.stats)
        if other:
            lines.append(
                f"Solutions the model wrote as {other} are stored inside `<answer>…</answer>` "
                "too, so every row has the same shape."
            )
    if ctx.merged:
        lines.append(
            "Base and synthetic-prompt runs merged: config `base` has the original prompts, "
            "`synthetic` the generated task specifications, `all` both (`data_source` tells them "
            "apart)."
        )
    lines += _caveats(ctx)
    lines.append("")
    lines.append(f"Made by [kbpipe](#how-it-was-made) `{ctx.stats.get('kbpipe_version')}`.")
    return [*lines, ""]


def _caveats(ctx: CardContext) -> list[str]:
    """What a visitor must know before using the rows: a partial run, a stand-in input."""
    stats = ctx.stats
    lines = []
    limits = {st.get("params", {}).get("limit") for st in ctx.chain} - {None}
    if limits:
        lines.append(
            f"**Partial:** built from the first {min(limits):,} rows only (a test run), not "
            "from the whole input."
        )
    kernelbook = str((stats.get("params") or {}).get("kernelbook") or "")
    if "stand-in" in kernelbook:
        lines.append(f"**Stand-in input:** made from kbpipe's {kernelbook}, not KernelBook.")
    return lines


_FORMAT_WORDS = {"begin-python": "BEGIN_PYTHON/END_PYTHON blocks", "fenced": "fenced python blocks"}


def _other_answer_formats(stats: dict[str, Any]) -> str:
    """strip-reasoning's answer formats other than `<answer>` tags, with their row counts."""
    counts = (stats.get("metrics") or {}).get("answer_format") or {}
    parts = [f"{words} ({counts[f]:,} rows)" for f, words in _FORMAT_WORDS.items() if counts.get(f)]
    return " and ".join(parts)


_SPLIT_TEXT = {
    "module": "about 10 % of modules in validation, chosen by a stable sha256 hash of "
    "`info.module_name`, so all rollouts of one module are on one side (no train/validation "
    "leakage) and the assignment does not change when rows are added",
    "legacy": "`datasets.Dataset.train_test_split(test_size=0.1, seed=42)` (the seed scripts' "
    "split), with `test` published as `validation`",
    "none": "one `train` split",
    "column": "as recorded in the input's `split` column (kept from an earlier publication)",
    "inherited": "the split of the table this one was made from: each row is on the side its "
    "`example_id` is on there, so no row crosses between train and validation",
}


def _contents(ctx: CardContext, configs: list[StagedConfig]) -> list[str]:
    lines = [
        "## Contents",
        "",
        "| config | split | rows | Parquet bytes | files |",
        "|---|---|---:|---:|---:|",
    ]
    for cfg in configs:
        for s in cfg.splits:
            lines.append(
                f"| {cfg.name} | {s.name} | {s.num_examples:,} | {s.download_size:,} | "
                f"{len(s.files)} |"
            )
    lines += ["", f"Splits: {_SPLIT_TEXT.get(ctx.split_mode, ctx.split_mode)}.", ""]
    return lines


def _provenance(ctx: CardContext) -> list[str]:
    stats = ctx.stats
    chain = ctx.chain
    lines = [
        "## How it was made",
        "",
        f"With [kbpipe](#how-it-was-made) `{stats.get('kbpipe_version')}`; this table is step "
        f"`{stats.get('step')}`. From a checkout of kbpipe, this rebuilds it:",
        "",
        "```bash",
        make_command(chain, str(stats.get("data_model") or ctx.data_model)),
        "```",
        "",
    ]
    for entry in stats.get("inputs") or []:
        lines.append(f"- input: {_describe_input(entry)}")
    params = {**(stats.get("metrics") or {}), **(stats.get("params") or {})}
    for key in _KEY_PARAMS:
        if key in params and not isinstance(params[key], dict | list):
            lines.append(f"- {key.replace('_', ' ')}: `{_short(public(params[key]))}`")
    others = {k: v for k, v in (stats.get("params") or {}).items() if k not in _KEY_PARAMS}
    if others:
        lines += ["", "Parameters:", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | `{_short(public(_mask(k, v)))}` |" for k, v in sorted(others.items())]
    if stats.get("wall_s") is not None:
        lines.append(f"\nThe step took {stats['wall_s']:.1f} s.")
    return [*lines, ""]


def _describe_input(entry: dict[str, Any]) -> str:
    path = str(entry.get("path"))
    if path.startswith("hf://"):
        repo = path.removeprefix("hf://datasets/").split("@", 1)[0]
        rev = entry.get("revision") or "unknown revision"
        return f"[{repo}](https://huggingface.co/datasets/{repo}) at revision `{rev}`"
    # convert fingerprints its (multi-GB) input with xxh3_128, the other steps with sha256.
    algorithm = next((a for a in ("sha256", "xxh3_128") if entry.get(a)), None)
    digest = entry.get(algorithm) if algorithm else None
    return f"`{Path(path).name}`" + (f" ({algorithm} `{digest[:16]}…`)" if digest else "")


def _stages(chain: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Counts per stage",
        "",
        "| stage | rows in | kept | dropped |",
        "|---|---:|---:|---|",
    ]
    for st in chain:
        dropped = ", ".join(f"{n:,} {r}" for r, n in sorted((st.get("dropped") or {}).items()))
        lines.append(
            f"| {st.get('step')} | {st.get('rows_in', 0):,} | {st.get('rows_out', 0):,} | "
            f"{dropped or '–'} |"
        )
    return [*lines, ""]


def _difficulty(rows: RowSummary) -> list[str]:
    if not rows.difficulty:
        return []
    levels = sorted({lvl for c in rows.difficulty.values() for lvl in c}, key=_level_order)
    lines = [
        "## Difficulty mix",
        "",
        "| config | split | " + " | ".join(levels) + " |",
        "|---|---|" + "---:|" * len(levels),
    ]
    for (cfg, split), counts in rows.difficulty.items():
        total = sum(counts.values()) or 1
        cells = [f"{counts[lvl]:,} ({100 * counts[lvl] / total:.0f} %)" for lvl in levels]
        lines.append(f"| {cfg} | {split} | " + " | ".join(cells) + " |")
    return [*lines, ""]


_level_order = difficulty_order


def _rewards(rows: RowSummary) -> list[str]:
    if not rows.rewards:
        return []
    lines = [
        "## Reward",
        "",
        "| config | split | rows | mean | min | median | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (cfg, split), chunks in rows.rewards.items():
        values = np.concatenate(chunks) if chunks else np.zeros(0)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            continue
        figures = [values.mean(), values.min(), np.median(values), values.max()]
        lines.append(
            f"| {cfg} | {split} | {len(values):,} | "
            + " | ".join(f"{v:.3f}" for v in figures)
            + " |"
        )
    return [*lines, ""]


def _seqlen(report: dict[str, Any] | None) -> list[str]:
    """The seqlen step's report, as one row per group of figures (its JSON has more)."""
    if not report:
        return []
    lines = [
        "## Sequence lengths",
        "",
        "Tokens of prompt + completion under the chat template of "
        f"{tokenizer_name(str(report.get('tokenizer', '?')), report.get('tokenizer_info'))}:",
        "",
    ]
    groups = {"summary": {k: v for k, v in report.items() if _is_figure(v)}}
    for key in _SEQLEN_GROUPS:
        value = report.get(key)
        if isinstance(value, dict) and value and all(_is_figure(v) for v in value.values()):
            groups[key.replace("_", " ")] = value
    for name, figures in groups.items():
        if figures:
            lines += [
                f"| {name} | " + " | ".join(str(k).replace("_", " ") for k in figures) + " |",
                "|---|" + "---:|" * len(figures),
                "| | " + " | ".join(_number(v) for v in figures.values()) + " |",
                "",
            ]
    return lines


# Groups of figures from the seqlen report worth a row in the card.
_SEQLEN_GROUPS = ("percentiles", "recommended_seq_len", "rows_over", "reasoning_tokens")


def _is_figure(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: float) -> str:
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}" if isinstance(value, float) and math.isfinite(value) else f"{value:,}"


def _images(ctx: CardContext) -> list[str]:
    """The report's charts of this table (kbpipe report), as files in the repo."""
    if not ctx.images:
        return []
    lines = ["## Plots", ""]
    for path, title, alt in ctx.images:
        lines += [f"**{title}**", "", f"![{alt}]({path})", ""]
    return lines


def _columns(ctx: CardContext, schema: pa.Schema) -> list[str]:
    lines = ["## Columns", "", "| column | type | meaning |", "|---|---|---|"]
    for f in schema:
        kind = str(f.type).replace("|", "\\|")
        if len(kind) > 60:
            kind = kind[:57] + "..."
        meaning = columns.describe(ctx.table, f, no_reasoning=ctx.no_reasoning)
        lines.append(f"| `{f.name}` | `{kind}` | {meaning} |")
    return [*lines, ""]


def _loading(ctx: CardContext, configs: list[StagedConfig]) -> list[str]:
    cfg = next((c for c in configs if c.default), configs[0])
    name_arg = f', "{cfg.name}"' if len(configs) > 1 else ""
    split = cfg.splits[0].name if cfg.splits else "train"
    return [
        "## Load it",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{ctx.repo_id}"{name_arg})',
        f'print(ds["{split}"][0])',
        "```",
        "",
        f"or with DuckDB: `select * from 'hf://datasets/{ctx.repo_id}/**/*.parquet'`.",
        "",
    ]


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("|", "\\|").replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mask(key: str, value: Any) -> Any:
    return "****" if any(word in key.lower() for word in _SECRET_WORDS) and value else value
