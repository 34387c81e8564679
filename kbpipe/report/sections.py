"""The pipeline's sections: stage funnel, rewards, difficulty, module coverage, lengths."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import kbpipe.report.charts as charts
from kbpipe.config import difficulty_order
from kbpipe.report.collect import COLUMNS, Run, Seqlen, table_file
from kbpipe.report.model import (
    Section,
    TableBlock,
    finite,
    fmt_int,
    fmt_num,
    fmt_pct,
    quantiles,
)
from kbpipe.tokens.length_report import summarize

# What builds each table, for the "not built yet" notes.
BUILT_BY = {
    "evals": "kbpipe convert (make evals INPUT=…)",
    "filtered": "kbpipe filter (make filtered)",
    "unique": "kbpipe dedupe (make unique)",
    "synthetic": "kbpipe prompts (make synthetic)",
    "seqlen": "kbpipe seqlen (make seqlen)",
    "verified": "kbpipe verify",
    "decontaminated": "kbpipe decontaminate",
    "audited": "kbpipe audit",
}
UNRATED = "unrated"
# A parameter longer than this (a prompt template, say) is left out of the funnel table.
_PARAM_CHARS = 40


def not_built(name: str) -> str:
    file = table_file(name) if name in COLUMNS else f"{name}_*.json"
    return f"Not built yet: {file}. Run {BUILT_BY[name]}."


def stats_for(run: Run, step: str) -> dict[str, Any] | None:
    return next((s for s in run.stats if s.get("step") == step), None)


def funnel(run: Run) -> Section:
    section = Section(
        "funnel",
        "Stage funnel",
        "Rows in, kept and dropped by reason at each step, from the stats file beside each output.",
    )
    if not run.stats:
        section.notes.append(f"No *.stats.json in {run.run_dir}: no step has finished here yet.")
        return section
    bars, rows = [], []
    for entry in run.stats:
        dropped = {str(k): int(v) for k, v in (entry.get("dropped") or {}).items()}
        rows_in, rows_out = int(entry.get("rows_in") or 0), int(entry.get("rows_out") or 0)
        output = Path(str(entry.get("output") or entry["_file"].removesuffix(".stats.json")))
        label = f"{entry.get('step')}: {output.stem}"
        lost = rows_in - rows_out - sum(dropped.values())
        bars.append(charts.FunnelBar(label, rows_out, dropped, max(lost, 0)))
        reasons = [f"{n:,} {reason}" for reason, n in sorted(dropped.items())]
        if lost > 0:
            reasons.append(f"{lost:,} unaccounted")
        if entry.get("rejects"):
            reasons.append(f"rejects in {Path(str(entry['rejects'])).name}")
        rows.append(
            [
                [str(entry.get("step")), output.name],
                fmt_int(rows_in),
                fmt_int(rows_out),
                fmt_pct(rows_out, rows_in),
                reasons or "–",
                _params(entry.get("params") or {}),
                fmt_num(entry.get("wall_s"), 2) + " s" if entry.get("wall_s") is not None else "–",
            ]
        )
        limit = (entry.get("params") or {}).get("limit")
        if limit is not None:
            section.notes.append(f"{output.name} was built from the first {limit:,} rows only.")
    section.charts.append(charts.funnel(bars))
    header = ["step and output", "rows in", "rows out", "kept", "dropped", "settings", "took"]
    section.tables.append(TableBlock("Every step's row accounting", header, rows, (4, 5)))
    return section


def _params(params: dict[str, Any]) -> list[str] | str:
    shown = [
        f"{k}={v}"
        for k, v in params.items()
        if v is not None and isinstance(v, str | int | float) and len(str(v)) <= _PARAM_CHARS
    ]
    return shown or "–"


def rewards(run: Run) -> Section:
    section = Section(
        "rewards",
        "Rewards before and after the filter",
        "The harness's reward for every rollout (evals) and for the rows the filter kept.",
    )
    evals, filtered = run.table("evals"), run.table("filtered")
    if evals is None and filtered is None:
        section.notes.append(not_built("evals"))
        return section
    before = finite(evals.columns.get("reward")) if evals else None
    after = finite(filtered.columns.get("reward")) if filtered else None
    params = (stats_for(run, "filter") or {}).get("params") or {}
    threshold = params.get("reward_threshold")
    section.charts.append(charts.reward_histogram(before, after, threshold))
    rows = []
    for name, table, values in (("evals", evals, before), ("filtered", filtered, after)):
        if table is None or values is None:
            section.notes.append(not_built(name))
            continue
        p10, p50, p90 = quantiles(values)
        low, high = (fmt_num(values.min()), fmt_num(values.max())) if values.size else ("–", "–")
        missing = table.n_rows - values.size
        rows.append(
            [name, fmt_int(table.n_rows), fmt_num(values.mean() if values.size else None)]
            + [p10, p50, p90, low, high, fmt_int(missing)]
        )
    header = ["table", "rows", "mean", "p10", "median", "p90", "min", "max", "no reward"]
    section.tables.append(TableBlock("Reward summary", header, rows))
    if threshold is not None:
        section.lede += f" The filter keeps reward > {threshold:g}."
    return section


def _levels(table: Any) -> list[str]:
    return [v if v else UNRATED for v in table.columns.get("difficulty", [])]


def difficulty(run: Run) -> Section:
    section = Section(
        "difficulty",
        "Difficulty",
        "The judge's rating of each kept row, and how the mix changes with dedupe.",
    )
    tables = {n: t for n in ("filtered", "unique") if (t := run.table(n)) and t.has("difficulty")}
    if not tables:
        section.notes.append(not_built("filtered"))
        return section
    mix = {name: Counter(_levels(t)) for name, t in tables.items()}
    section.charts.append(charts.difficulty_mix(mix))
    base_name, base = next(iter(tables.items()))
    levels = np.array(_levels(base), dtype=object)
    reward = base.columns.get("reward")
    order = sorted(mix[base_name], key=difficulty_order)
    groups = {lvl: finite(reward[levels == lvl]) for lvl in order} if reward is not None else {}
    if any(v.size for k, v in groups.items() if k != UNRATED):
        section.charts.append(charts.reward_by_level({k: v for k, v in groups.items() if v.size}))
    rows = []
    for level in order:
        values = groups.get(level, np.empty(0))
        n = mix[base_name][level]
        rows.append(
            [level, fmt_int(n), fmt_pct(n, len(levels))]
            + [fmt_num(values.mean() if values.size else None), quantiles(values, (50,))[0]]
            + [fmt_int(mix["unique"].get(level, 0)) if "unique" in mix else "–"]
        )
    header = ["difficulty", f"{base_name} rows", "share", "mean reward", "median", "unique rows"]
    section.tables.append(TableBlock(f"Difficulty in {base_name}", header, rows))
    return section


def modules(run: Run) -> Section:
    section = Section(
        "modules",
        "Module coverage",
        "How many KernelBook modules have rollouts, how many survive the filter and dedupe.",
    )
    per = {n: _module_counts(run, n) for n in ("synthetic", "evals", "filtered", "unique")}
    if per["evals"] is None and per["filtered"] is None:
        section.notes.append(not_built("evals"))
        return section
    rollouts, kept = per["evals"] or Counter(), per["filtered"] or Counter()
    universe = sorted(set(rollouts) | set(kept))
    section.charts.append(charts.module_coverage(np.array([kept[m] for m in universe])))
    lines = [
        ("KernelBook modules (task specs)", per["synthetic"]),
        ("modules with rollouts", per["evals"]),
        ("modules with a kept rollout", per["filtered"]),
        ("modules in unique", per["unique"]),
    ]
    base = len(per["synthetic"] or rollouts) or None
    rows = [
        [label, fmt_int(len(c)), fmt_pct(len(c), base) if base else "–"]
        for label, c in lines
        if c is not None
    ]
    section.tables.append(TableBlock("Modules at each stage", ["", "modules", "of all"], rows))
    lost = [m for m in rollouts if kept[m] == 0] if per["filtered"] is not None else []
    if lost:
        best = _best_reward(run)
        lost.sort(key=lambda m: (-rollouts[m], m))
        rows = [[m, fmt_int(rollouts[m]), fmt_num(best.get(m))] for m in lost[:15]]
        caption = f"Modules with rollouts but none kept ({len(lost):,}; most tried first)"
        section.tables.append(
            TableBlock(caption, ["module", "rollouts", "best reward"], rows, (0,))
        )
    return section


def _module_counts(run: Run, name: str) -> Counter[str] | None:
    table = run.table(name)
    column = "module_name" if name == "synthetic" else "info.module_name"
    if table is None or not table.has(column):
        return None
    return Counter(m for m in table.columns[column] if m is not None)


def _best_reward(run: Run) -> dict[str, float]:
    evals = run.table("evals")
    best: dict[str, float] = {}
    if evals is None or not evals.has("reward"):
        return best
    for module, reward in zip(
        evals.columns["info.module_name"], evals.columns["reward"], strict=True
    ):
        if module is not None and np.isfinite(reward):
            best[module] = max(best.get(module, -np.inf), float(reward))
    return best


def seqlen(run: Run) -> Section:
    section = Section(
        "seqlen",
        "Sequence lengths",
        "Tokens per row under the chat template, per train/validation split "
        f"(as --split {run.split_mode} assigns them), with the seq_len that covers "
        "99 %, 99.5 % and 100 % of rows.",
    )
    if not run.seqlen:
        section.notes.append(not_built("seqlen"))
    for item in run.seqlen:
        _seqlen_table(section, item, run)
    return section


def _seqlen_table(section: Section, item: Seqlen, run: Run) -> None:
    report = item.report
    cutoffs = {k: int(v) for k, v in (report.get("recommended_seq_len") or {}).items()}
    groups: dict[str, dict[str, Any]] = {"all rows": report}
    if item.n_tokens is not None and item.splits is not None:
        lengths = {s: item.n_tokens[item.splits == s] for s in ("train", "validation")}
        lengths = {s: v for s, v in lengths.items() if v.size}
        section.charts.append(charts.seqlen_by_split(lengths, cutoffs, item.table))
        groups |= {s: summarize(v) for s, v in lengths.items()}
    rows = []
    for name, summary in groups.items():
        pct = summary.get("percentiles") or {}
        rec = summary.get("recommended_seq_len") or {}
        rows.append(
            [name, fmt_int(summary.get("rows"))]
            + [fmt_int(pct.get(p)) for p in ("50", "90", "99")]
            + [fmt_int(summary.get("max"))]
            + [fmt_int(rec.get(c)) for c in ("99", "99.5", "100")]
        )
    header = ["rows of", "rows", "p50", "p90", "p99", "max", "seq_len 99 %", "99.5 %", "100 %"]
    caption = (
        f"{item.table}: tokenizer {report.get('tokenizer')}, reasoning {report.get('reasoning')}"
    )
    section.tables.append(TableBlock(caption, header, rows))
    source = run.table(item.table)
    if source is not None and report.get("rows") not in (None, source.n_rows):
        section.notes.append(
            f"seqlen_{item.table}.json counts {report['rows']:,} of the {source.n_rows:,} rows "
            f"now in {source.path.name}: it is stale or was run with --limit."
        )
