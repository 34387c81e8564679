"""The report's charts, drawn with matplotlib on bare Agg figures and returned as PNG.

No pyplot: a bare `Figure` keeps no global state and needs no display, so the
report runs on a headless server and in threads. Each function takes plain
numbers (no tables, no paths) and returns one `Chart`; the page embeds its
bytes and a dataset card can ship the same file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from kbpipe.config import difficulty_order

# Charts are laid out for a 760 px column and drawn at 1.5x that, so they stay
# sharp on high-density screens (see kbpipe/report/__init__.py for the sizes).
WIDTH_IN = 7.6
CSS_DPI = 100
RENDER_SCALE = 1.5

KEPT = "#2563eb"
BEFORE = "#cbd5e1"
GREY = "#94a3b8"
DROP_COLORS = ("#f97316", "#ef4444", "#a855f7", "#eab308", "#ec4899", "#14b8a6", "#78716c")
LEVEL_COLORS = {"low": "#22c55e", "medium": "#f59e0b", "high": "#ef4444", "unrated": GREY}
SPLIT_COLORS = {"train": KEPT, "validation": "#f97316"}
CUTOFF_COLORS = ("#16a34a", "#ca8a04", "#dc2626")

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.edgecolor": "#94a3b8",
    "axes.labelcolor": "#334155",
    "xtick.color": "#475569",
    "ytick.color": "#475569",
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    alt: str
    png: bytes
    # Size to show it at, in CSS pixels (the PNG has RENDER_SCALE times as many).
    width: int
    height: int


@contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(_RC):
        yield


def _axes(height_in: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="both", color="#e2e8f0", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _chart(fig: Figure, name: str, title: str, alt: str) -> Chart:
    buf = io.BytesIO()
    # No "Software" tag: the bytes then depend only on the data, not the matplotlib version.
    fig.savefig(buf, format="png", dpi=CSS_DPI * RENDER_SCALE, metadata={"Software": None})
    width, height = fig.get_size_inches() * CSS_DPI
    return Chart(name, title, alt, buf.getvalue(), round(width), round(height))


def _thousands(ax: Axes, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


@dataclass(frozen=True)
class FunnelBar:
    label: str
    kept: int
    dropped: Mapping[str, int]
    # rows_in minus kept minus every drop: rows a step lost without saying why.
    unaccounted: int = 0


def funnel(bars: Sequence[FunnelBar]) -> Chart:
    fig, ax = _axes(0.9 + 0.42 * len(bars))
    reasons = sorted({r for b in bars for r in b.dropped})
    colors = dict(zip(reasons, DROP_COLORS * (len(reasons) // len(DROP_COLORS) + 1), strict=False))
    y = np.arange(len(bars))[::-1]
    ax.barh(y, [b.kept for b in bars], color=KEPT, label="kept", height=0.62)
    left = np.array([b.kept for b in bars], dtype=float)
    for reason in reasons:
        widths = [b.dropped.get(reason, 0) for b in bars]
        ax.barh(y, widths, left=left, color=colors[reason], label=f"dropped: {reason}", height=0.62)
        left += widths
    if any(b.unaccounted for b in bars):
        widths = [max(b.unaccounted, 0) for b in bars]
        ax.barh(y, widths, left=left, color=GREY, hatch="//", label="unaccounted", height=0.62)
    ax.set_yticks(y, [b.label for b in bars])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("rows")
    _thousands(ax, "x")
    # Above the plot, not on it: long bars reach every corner of the axes; "outside"
    # makes the constrained layout leave room for it.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper left", ncols=2)
    return _chart(
        fig, "funnel", "Rows at each step", "Stacked bars of rows kept and dropped by reason"
    )


def reward_histogram(
    before: np.ndarray | None, after: np.ndarray | None, threshold: float | None
) -> Chart:
    fig, ax = _axes(2.9)
    values = [v for v in (before, after) if v is not None and v.size]
    lo = min(0.0, *(float(v.min()) for v in values))
    hi = max(1.0, *(float(v.max()) for v in values))
    edges = np.linspace(lo, hi, 41)
    if before is not None:
        ax.hist(before, bins=edges, color=BEFORE, label=f"before filter ({before.size:,})")
    if after is not None:
        ax.hist(after, bins=edges, color=KEPT, label=f"after filter ({after.size:,})")
    if threshold is not None:
        ax.axvline(threshold, color="#dc2626", linestyle="--", linewidth=1)
        ax.annotate(
            f"threshold {threshold:g}",
            (threshold, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-4, -2),
            textcoords="offset points",
            ha="right",
            va="top",
            color="#dc2626",
        )
    ax.set_xlabel("reward")
    ax.set_ylabel("rows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left")
    return _chart(fig, "rewards", "Reward before and after the filter", "Histogram of rewards")


def difficulty_mix(mix: Mapping[str, Mapping[str, int]]) -> Chart:
    """One 100 % bar per table, split by difficulty level, labelled with row counts."""
    fig, ax = _axes(0.8 + 0.45 * len(mix))
    levels = sorted({lvl for m in mix.values() for lvl in m}, key=difficulty_order)
    y = np.arange(len(mix))[::-1]
    left = np.zeros(len(mix))
    totals = np.array([max(sum(m.values()), 1) for m in mix.values()], dtype=float)
    for level in levels:
        counts = np.array([m.get(level, 0) for m in mix.values()], dtype=float)
        share = 100 * counts / totals
        color = LEVEL_COLORS.get(level, GREY)
        ax.barh(y, share, left=left, color=color, label=level, height=0.6)
        for yi, x0, pct, n in zip(y, left, share, counts, strict=True):
            if pct >= 7:
                ax.text(x0 + pct / 2, yi, f"{n:,.0f}", ha="center", va="center", color="white")
        left += share
    ax.set_yticks(y, list(mix))
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of rows")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncols=len(levels))
    return _chart(fig, "difficulty", "Difficulty mix", "Stacked bars of difficulty shares")


def reward_by_level(groups: Mapping[str, np.ndarray]) -> Chart:
    fig, ax = _axes(2.6)
    # Boxes are stacked bottom-up: reverse, so the first level reads at the top.
    groups = dict(reversed(list(groups.items())))
    labels = [f"{level}\n({len(v):,} rows)" for level, v in groups.items()]
    box = ax.boxplot(
        list(groups.values()),
        orientation="horizontal",
        patch_artist=True,
        widths=0.55,
        medianprops={"color": "#0f172a"},
        flierprops={"markersize": 3, "markeredgecolor": GREY},
    )
    for patch, level in zip(box["boxes"], groups, strict=True):
        patch.set_facecolor(LEVEL_COLORS.get(level, GREY))
        patch.set_alpha(0.8)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.set_xlabel("reward")
    return _chart(fig, "reward_by_difficulty", "Reward by difficulty", "Box plots of reward")


def module_coverage(kept_per_module: np.ndarray) -> Chart:
    """How many modules have 0, 1, 2, ... kept rollouts (in doubling ranges past a dozen)."""
    fig, ax = _axes(2.6)
    top = int(kept_per_module.max(initial=0))
    if top <= 12:
        edges = list(range(top + 2))
    else:
        # 0, 1, 2-3, 4-7, ...: a few modules with hundreds of rollouts would
        # otherwise stretch the axis into hundreds of empty bars.
        edges = [0, 1]
        while edges[-1] <= top:
            edges.append(edges[-1] * 2)
    counts, _ = np.histogram(kept_per_module, bins=edges)
    labels = [str(a) if b == a + 1 else f"{a}–{b - 1}" for a, b in pairwise(edges)]
    x = np.arange(len(counts))
    ax.bar(x, counts, color=["#dc2626"] + [KEPT] * (len(x) - 1), width=0.7)
    ax.set_xticks(x, labels)
    ax.set_xlabel("kept rollouts per module (red: none kept)")
    ax.set_ylabel("modules")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", visible=False)
    return _chart(fig, "modules", "Kept rollouts per module", "Bar chart of modules by kept rows")


def seqlen_by_split(
    lengths: Mapping[str, np.ndarray], cutoffs: Mapping[str, int], table: str
) -> Chart:
    """Share of each split's rows per length bin (log2 axis), with the recommended cut-offs."""
    fig, ax = _axes(2.9)
    every = np.concatenate([v for v in lengths.values() if v.size] or [np.array([1])])
    lo = max(float(every.min()), 1.0)
    hi = max(float(every.max()), *cutoffs.values(), lo * 2)
    edges = np.geomspace(lo * 0.95, hi * 1.05, 41)
    for split, values in lengths.items():
        weights = np.full(values.size, 100 / max(values.size, 1))
        color = SPLIT_COLORS.get(split, GREY)
        label = f"{split} ({values.size:,} rows)"
        ax.hist(values, bins=edges, weights=weights, histtype="stepfilled", alpha=0.35, color=color)
        ax.hist(values, bins=edges, weights=weights, histtype="step", color=color, label=label)
    by_value: dict[int, list[str]] = {}
    for coverage, seq_len in cutoffs.items():
        by_value.setdefault(seq_len, []).append(coverage)
    for color, (seq_len, names) in zip(CUTOFF_COLORS, sorted(by_value.items()), strict=False):
        label = f"seq_len {seq_len:,} covers {' / '.join(n + ' %' for n in names)}"
        ax.axvline(seq_len, color=color, linestyle="--", linewidth=1.1, label=label)
    ax.set_xscale("log", base=2)
    # Ticks at 1, 1.5, 2, 3, 4, 6, 8k...: powers of two alone leave wide gaps unlabelled.
    ax.xaxis.set_major_locator(LogLocator(base=2, subs=(1.0, 1.5)))
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens_label))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("tokens per row (prompt + completion, chat template)")
    ax.set_ylabel("% of split's rows")
    ax.legend(loc="upper right")
    return _chart(
        fig,
        f"seqlen_{table}",
        f"Sequence lengths of {table}, per split",
        "Histogram of tokens per row for each split, with recommended cut-offs",
    )


def _tokens_label(value: float, _pos: int) -> str:
    return f"{value / 1024:g}k" if value >= 1024 else f"{value:g}"


def bars(name: str, title: str, counts: Sequence[tuple[str, int, str]], xlabel: str) -> Chart:
    """Horizontal bars of (label, count, colour), top to bottom, each labelled with its count."""
    fig, ax = _axes(0.8 + 0.32 * len(counts))
    y = np.arange(len(counts))[::-1]
    values = [n for _, n, _ in counts]
    ax.barh(y, values, color=[c for _, _, c in counts], height=0.62)
    for yi, n in zip(y, values, strict=True):
        ax.annotate(f" {n:,}", (n, yi), va="center", fontsize=8, color="#334155")
    ax.set_yticks(y, [label for label, _, _ in counts])
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, max(values + [1]) * 1.12)
    ax.grid(axis="y", visible=False)
    _thousands(ax, "x")
    return _chart(fig, name, title, f"Bar chart: {title}")


def speedup_scatter(measured: np.ndarray, reward: np.ndarray) -> Chart:
    fig, ax = _axes(3.0)
    ax.scatter(measured, reward, s=10, alpha=0.55, color=KEPT, edgecolors="none")
    ax.axvline(1.0, color=GREY, linestyle=":", linewidth=1)
    if measured.size and float(measured.min()) > 0:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("measured speed-up over the PyTorch reference")
    ax.set_ylabel("speedup_reward (harness)")
    return _chart(
        fig,
        "speedup",
        "Measured speed-up against the harness's speedup_reward",
        "Scatter of measured speed-up against speedup_reward",
    )


def overlap_histogram(overlap: np.ndarray, contaminated: np.ndarray) -> Chart:
    fig, ax = _axes(2.6)
    edges = np.linspace(0, 1, 41)
    ax.hist(overlap[~contaminated], bins=edges, color=KEPT, label="clean")
    ax.hist(overlap[contaminated], bins=edges, color="#dc2626", label="contaminated")
    counts = np.histogram(overlap, bins=edges)[0]
    # A few contaminated rows beside thousands of clean ones vanish on a linear axis.
    if counts.max(initial=0) > 50:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.7)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("n-gram overlap with the closest benchmark problem")
    ax.set_ylabel("rows")
    ax.legend(loc="upper right")
    return _chart(fig, "overlap", "Benchmark overlap", "Histogram of benchmark overlap")
