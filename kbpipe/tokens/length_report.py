"""Figures of a token-length distribution: the seed's report, fixed, plus text and PNG histograms.

Used by step 4 (kbpipe.steps.seqlen) for the whole table and for each split
and difficulty. A summary is a flat dict of numbers and dicts of numbers (the
shape the dataset card renders), plus the bucket list for the histogram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kbpipe.errors import ConfigError
from kbpipe.io.tables import atomic_output

PERCENTILES = (50, 75, 90, 95, 99, 99.5, 99.9, 100)
# `--percentiles`: numpy's linear interpolation (default), or the seed's order statistics.
PERCENTILE_METHODS = ("interpolate", "seed")
# Bucket upper bounds (1k = 1024 tokens, as seq_len is set); rows above the last go to ">128k".
BUCKETS = tuple(1024 * 2**i for i in range(8))
OVER = (2048, 4096, 8192, 16384, 32768)
COVERAGE = (99, 99.5, 100)
REASONING_WORD = {"include": "included", "drop": "dropped"}
_REC_COLORS = ("#2ca02c", "#ff7f0e", "#17becf")


def recommend_seq_len(n_tokens: int) -> int:
    """The seq_len that fits a sample of n_tokens: the next power of two, at least 1k.

    The seed capped this at 64k, so a longer sample was reported as fitting
    and then silently truncated in training; above 64k it keeps doubling.
    """
    return max(BUCKETS[0], 1 << max(int(n_tokens) - 1, 0).bit_length())


def summarize(
    lengths: Sequence[int],
    reasoning: Sequence[int] | None = None,
    percentiles: str = "interpolate",
) -> dict[str, Any]:
    """The seed's figures for one set of lengths, plus how much of them is reasoning.

    Percentiles and the median interpolate linearly (numpy's default), or with
    ``percentiles="seed"`` are the seed's order statistics exactly:
    ``sorted[int(n * p) - 1]`` (Python indexing, so ``-1`` is the maximum when
    ``n * p < 1``) and the median ``sorted[n // 2]``. Recommendations use the
    exact order statistic either way: the length that at least that share of
    rows fits in, so "99 %" really covers 99 %.
    """
    if percentiles not in PERCENTILE_METHODS:
        raise ConfigError(f"--percentiles must be one of {PERCENTILE_METHODS}, not {percentiles!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    n = int(lengths.size)
    out: dict[str, Any] = {"rows": n, "total_tokens": int(lengths.sum())}
    if n == 0:
        return out
    ordered = np.sort(lengths)
    over = {str(limit): int(n - np.searchsorted(ordered, limit, side="right")) for limit in OVER}
    out |= {
        "min": int(ordered[0]),
        "max": int(ordered[-1]),
        "mean": round(float(lengths.mean()), 1),
        **_percentiles(ordered, percentiles),
        "rows_over": over,
        "pct_over": {k: _pct(v, n) for k, v in over.items()},
        "recommended_seq_len": {},
        "coverage_pct_at_recommended": {},
        "rows_over_recommended": {},
        "buckets": _buckets(ordered),
    }
    for cov in COVERAGE:
        needed = int(ordered[max(math.ceil(cov / 100 * n), 1) - 1])
        seq_len = recommend_seq_len(needed)
        fits = int(np.searchsorted(ordered, seq_len, side="right"))
        out["recommended_seq_len"][_key(cov)] = seq_len
        out["coverage_pct_at_recommended"][_key(cov)] = _pct(fits, n)
        out["rows_over_recommended"][_key(cov)] = n - fits
    if reasoning is not None:
        out["reasoning_tokens"] = _reasoning_share(lengths, np.asarray(reasoning, np.int64))
    return out


def _percentiles(ordered: np.ndarray, method: str) -> dict[str, Any]:
    n = len(ordered)
    if method == "seed":
        # p / 100 rounds to the same double as the seed's literal (99.5 / 100 == 0.995).
        return {
            "median": float(ordered[n // 2]),
            "percentiles": {_key(p): float(ordered[int(n * (p / 100)) - 1]) for p in PERCENTILES},
            "percentile_method": method,
        }
    return {
        "median": float(np.median(ordered)),
        "percentiles": {_key(p): round(float(np.percentile(ordered, p)), 1) for p in PERCENTILES},
        "percentile_method": method,
    }


def _buckets(ordered: np.ndarray) -> list[dict[str, Any]]:
    n, below, rows = len(ordered), 0, []
    for bound in (*BUCKETS, None):
        upto = n if bound is None else int(np.searchsorted(ordered, bound, side="right"))
        label = f">{BUCKETS[-1] // 1024}k" if bound is None else f"<={bound // 1024}k"
        count = upto - below
        rows.append(
            {
                "label": label,
                "le": bound,
                "count": count,
                "pct": _pct(count, n),
                "cum_pct": _pct(upto, n),
            }
        )
        below = upto
    return rows


def _reasoning_share(lengths: np.ndarray, reasoning: np.ndarray) -> dict[str, Any]:
    share = reasoning / np.maximum(lengths, 1)
    return {
        "total": int(reasoning.sum()),
        "share_pct": _pct(int(reasoning.sum()), int(lengths.sum())),
        "mean_per_row": round(float(reasoning.mean()), 1),
        "median_row_share_pct": round(float(np.median(share)) * 100, 1),
        "rows_without": int((reasoning == 0).sum()),
    }


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _key(p: float) -> str:
    return f"{p:g}"


# -- terminal ----------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The terminal report: the seed's tables, a text histogram and the per-group tables."""
    mode = report["reasoning"]
    lines = [
        f"Sequence lengths: {report['table']} ({report['rows']:,} rows), tokenizer "
        f"{report['tokenizer']}, reasoning {REASONING_WORD[mode]}",
    ]
    if report.get("rows_skipped"):
        lines.append(
            f"  skipped {report['rows_skipped']:,} rows the chat template refused "
            f"(listed in {report.get('rejects', 'the rejects')})"
        )
    if not report["rows"]:
        return "\n".join([*lines, "  no rows"])
    lines += [
        f"  total tokens    {report['total_tokens']:,}",
        f"  min / max       {report['min']:,} / {report['max']:,}",
        f"  mean / median   {report['mean']:,.1f} / {report['median']:,.1f}",
    ]
    r = report.get("reasoning_tokens")
    if r and mode == "include":
        lines.append(
            f"  reasoning       {r['share_pct']:.1f}% of all tokens, mean {r['mean_per_row']:,.0f}"
            f" per row, median row {r['median_row_share_pct']}%, {r['rows_without']:,} rows without"
        )
    lines += ["", f"Percentiles ({_METHOD_WORDS[report.get('percentile_method', 'interpolate')]})"]
    lines += [f"  {k + '%':>6}  {v:>10,.0f}" for k, v in report["percentiles"].items()]
    lines += ["", "Distribution", *_histogram_lines(report["buckets"]), "", "Over common limits"]
    lines += [
        f"  > {int(k) // 1024:>2}k  {v:>8,}  ({report['pct_over'][k]:.2f}%)"
        for k, v in report["rows_over"].items()
    ]
    lines += ["", "Recommended seq_len"]
    for k, seq_len in report["recommended_seq_len"].items():
        lines.append(
            f"  {k + '%':>6} coverage  {seq_len:>8,}  (covers "
            f"{report['coverage_pct_at_recommended'][k]}%, "
            f"{report['rows_over_recommended'][k]:,} rows longer)"
        )
    for key in ("by_split", "by_difficulty"):
        if key in report:
            lines += ["", f"By {key.removeprefix('by_')}", *_group_lines(report[key])]
    return "\n".join(lines)


_METHOD_WORDS = {
    "interpolate": "linear interpolation",
    "seed": "the seed's order statistics, sorted[int(n*p)-1]",
}


def _histogram_lines(buckets: list[dict[str, Any]], width: int = 40) -> list[str]:
    peak = max(b["count"] for b in buckets) or 1
    return [
        f"  {b['label']:>6}  {b['count']:>8,}  {b['pct']:>6.2f}%  cum {b['cum_pct']:>6.2f}%  "
        + "#" * math.ceil(width * b["count"] / peak)
        for b in buckets
    ]


def _group_lines(groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"  {'group':<12} {'rows':>7} {'mean':>9} {'median':>9} {'p99':>9} {'max':>9} "
        f"{'rec 99%':>8} {'rec 100%':>8} {'reasoning':>9}"
    ]
    for name, g in groups.items():
        if not g["rows"]:
            continue
        share = g["reasoning_tokens"]["share_pct"] if "reasoning_tokens" in g else 0.0
        lines.append(
            f"  {name:<12} {g['rows']:>7,} {g['mean']:>9,.0f} {g['median']:>9,.0f} "
            f"{g['percentiles']['99']:>9,.0f} {g['max']:>9,} "
            f"{g['recommended_seq_len']['99']:>8,} {g['recommended_seq_len']['100']:>8,} "
            f"{share:>8.1f}%"
        )
    return lines


# -- PNG ---------------------------------------------------------------------------------


def plot_histogram(lengths: Sequence[int], summary: dict[str, Any], dest: Path, title: str) -> Path:
    """Histogram of lengths with percentile (dotted) and recommended seq_len (dashed) lines."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'kbpipe[plot]'") from None
    # A bare Figure on the Agg canvas: no pyplot global state, no display needed.
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist(np.asarray(lengths), bins=60, color="#4c72b0", alpha=0.85)
    percentiles = summary.get("percentiles", {})
    for key, color in (
        ("50", "#555555"),
        ("90", "#8c564b"),
        ("99", "#d62728"),
        ("99.9", "#9467bd"),
    ):
        if key in percentiles:
            value = percentiles[key]
            ax.axvline(
                value, color=color, linestyle=":", linewidth=1.2, label=f"p{key} = {value:,.0f}"
            )
    # Coverage levels that land on the same seq_len share one line and one label.
    by_len: dict[int, list[str]] = {}
    for key, seq_len in summary.get("recommended_seq_len", {}).items():
        by_len.setdefault(seq_len, []).append(f"{key}%")
    for (seq_len, keys), color in zip(by_len.items(), _REC_COLORS, strict=False):
        ax.axvline(
            seq_len,
            color=color,
            linestyle="--",
            linewidth=1.5,
            label=f"seq_len {seq_len:,} ({', '.join(keys)} coverage)",
        )
    ax.set_xlabel("tokens per sample (prompt + completion under the chat template)")
    ax.set_ylabel("rows")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    with atomic_output(Path(dest)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(dest)
