"""The checks' sections (verification, decontamination, audit) and the header's key figures.

Each check's table is optional: when it is absent the section says how to
build it, and when a column is missing the section says which, so a table
written by an older or newer kbpipe still gives what it can.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

import kbpipe.report.charts as charts
from kbpipe.report.collect import Run, Table
from kbpipe.report.model import (
    KeyFigure,
    Section,
    TableBlock,
    finite,
    fmt_int,
    fmt_num,
    fmt_pct,
    quantiles,
)
from kbpipe.report.sections import not_built, stats_for

PASS = "#16a34a"
FAIL = "#dc2626"
WARN = "#f97316"
# Bars beyond this many reasons or flags are summed into one "other" bar.
_TOP = 10
_REASON_CHARS = 70


def _check_table(run: Run, section: Section, name: str, needs: str) -> Table | None:
    """The check's table when it exists and has its `needs` column; else notes on why not."""
    table = run.table(name)
    if table is None:
        section.notes.append(not_built(name))
        return None
    if table.missing:
        section.notes.append(f"{table.path.name} has no column {', '.join(table.missing)}.")
    return table if table.has(needs) else None


def _bools(table: Table, column: str) -> np.ndarray:
    """True/False/None as 1/0/-1, so counting is one comparison."""
    return np.array([-1 if v is None else int(bool(v)) for v in table.columns[column]], dtype=int)


def _top(counter: Counter[str]) -> list[tuple[str, int]]:
    top = counter.most_common(_TOP)
    rest = sum(counter.values()) - sum(n for _, n in top)
    return top + ([("other", rest)] if rest else [])


def _reason(text: Any) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else "no reason given"
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"


def verification(run: Run) -> Section:
    section = Section(
        "verify",
        "Verification",
        "Each kept kernel re-run on a GPU against its PyTorch reference: correct or why not, "
        "and how fast.",
    )
    table = _check_table(run, section, "verified", needs="verified")
    if table is None:
        return section
    verdict = _bools(table, "verified")
    errors = table.columns.get("verify_error") or [None] * len(verdict)
    reasons = Counter(_reason(e) for e, v in zip(errors, verdict, strict=True) if v == 0)
    counts = [("verified", int((verdict == 1).sum()), PASS)]
    counts += [(reason, n, FAIL) for reason, n in _top(reasons)]
    if (verdict == -1).any():
        counts.append(("not run", int((verdict == -1).sum()), charts.GREY))
    section.charts.append(charts.bars("verify", "Verification outcomes", counts, "rows"))
    measured = table.columns.get("speedup_measured")
    if measured is not None:
        ok = finite(np.where(verdict == 1, measured, np.nan))
        row = [fmt_int(ok.size), *quantiles(ok), fmt_pct(int((ok > 1).sum()), ok.size)]
        header = ["verified rows", "p10", "median", "p90", "faster than PyTorch"]
        section.tables.append(TableBlock("Measured speed-up (verified rows)", header, [row]))
        reward = table.columns.get("speedup_reward")
        if reward is not None:
            both = np.isfinite(measured) & np.isfinite(reward) & (verdict == 1)
            if both.any():
                section.charts.append(charts.speedup_scatter(measured[both], reward[both]))
    params = (stats_for(run, "verify") or {}).get("params") or {}
    shown = {k: params[k] for k in ("atol", "rtol", "gpu_name", "gpus") if k in params}
    if shown:
        section.lede += " Settings: " + ", ".join(f"{k}={v}" for k, v in shown.items()) + "."
    return section


def decontamination(run: Run) -> Section:
    section = Section(
        "decontaminate",
        "Decontamination",
        "Rows whose PyTorch module matches a KernelBench problem (n-gram overlap of the "
        "normalised code).",
    )
    table = _check_table(run, section, "decontaminated", needs="contaminated")
    if table is None:
        return section
    flag = _bools(table, "contaminated") == 1
    overlap = table.columns.get("benchmark_overlap")
    if overlap is not None:
        known = np.isfinite(overlap)
        section.charts.append(charts.overlap_histogram(overlap[known], flag[known]))
    matches = table.columns.get("benchmark_match") or [None] * len(flag)
    hits = Counter(str(m) for m, f in zip(matches, flag, strict=True) if f)
    n = int(flag.sum())
    section.lede += f" {n:,} of {len(flag):,} rows are contaminated ({fmt_pct(n, len(flag))})."
    if hits:
        rows = [[match, fmt_int(count)] for match, count in _top(hits)]
        header = ["benchmark problem", "rows"]
        section.tables.append(TableBlock("Matches per benchmark problem", header, rows, (0,)))
    return section


def audit(run: Run) -> Section:
    section = Section(
        "audit",
        "Static audit",
        "Flags from reading each solution's code: kernels never launched, torch doing the "
        "work, fallbacks to the reference.",
    )
    table = _check_table(run, section, "audited", needs="audit_flags")
    if table is None:
        return section
    flags = table.columns["audit_flags"]
    counter = Counter(f for row in flags for f in (row or []))
    clean = sum(1 for row in flags if not row)
    counts = [("no flag", clean, PASS)] + [(f, n, WARN) for f, n in _top(counter)]
    section.charts.append(charts.bars("audit", "Audit flags", counts, "rows"))
    rows = [[f, fmt_int(n), fmt_pct(n, table.n_rows)] for f, n in counter.most_common()]
    section.tables.append(TableBlock("Rows per flag", ["flag", "rows", "share"], rows, (0,)))
    if table.has("audit_ok"):
        n_ok = int((_bools(table, "audit_ok") == 1).sum())
        section.lede += (
            f" {n_ok:,} of {table.n_rows:,} rows pass ({fmt_pct(n_ok, table.n_rows)}); "
            "informational flags do not fail a row."
        )
    return section


def key_figures(run: Run) -> list[KeyFigure]:
    figures: list[KeyFigure] = []
    evals, filtered, unique = run.table("evals"), run.table("filtered"), run.table("unique")
    if evals is not None:
        figures.append(KeyFigure("rollouts", fmt_int(evals.n_rows), "in the evals table"))
    if filtered is not None:
        params = (stats_for(run, "filter") or {}).get("params") or {}
        detail = f"reward > {params['reward_threshold']:g}" if "reward_threshold" in params else ""
        if evals is not None:
            detail = f"{fmt_pct(filtered.n_rows, evals.n_rows)} of rollouts, {detail}"
        figures.append(KeyFigure("kept", fmt_int(filtered.n_rows), detail))
        reward = finite(filtered.columns.get("reward"))
        if reward.size:
            figures.append(KeyFigure("mean reward", fmt_num(reward.mean()), "of the kept rows"))
    if unique is not None:
        synthetic = run.table("synthetic")
        detail = f"of {synthetic.n_rows:,} KernelBook modules" if synthetic else "best row each"
        figures.append(KeyFigure("unique modules", fmt_int(unique.n_rows), detail))
    for item in run.seqlen[:1]:
        rec = (item.report.get("recommended_seq_len") or {}).get("99")
        p99 = (item.report.get("percentiles") or {}).get("99")
        figures.append(KeyFigure("seq_len, 99 %", fmt_int(rec), f"p99 {fmt_int(p99)} tokens"))
    figures += _check_figures(run)
    return figures


def _check_figures(run: Run) -> list[KeyFigure]:
    figures = []
    checks = (
        ("verified", "verified", "verified"),
        ("decontaminated", "contaminated", "contaminated"),
        ("audited", "audit_ok", "audit clean"),
    )
    for name, column, label in checks:
        table = run.table(name)
        if table is None or not table.has(column):
            continue
        n = int((_bools(table, column) == 1).sum())
        figures.append(KeyFigure(label, fmt_pct(n, table.n_rows), f"{n:,} of {table.n_rows:,}"))
    return figures
