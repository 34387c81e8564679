"""What a page is made of: key figures, then sections of charts, tables and notes.

Sections hold plain strings and numbers only; escaping is the page
template's job, so a module name such as `<Foo>` can never break the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kbpipe.report.charts import Chart


@dataclass
class KeyFigure:
    label: str
    value: str
    detail: str = ""


@dataclass
class TableBlock:
    caption: str
    header: list[str]
    # A cell is a string, or a list of strings shown one per line.
    rows: list[list[str | list[str]]]
    # Columns after the first are numbers and are right-aligned, unless listed here.
    text_columns: tuple[int, ...] = ()


@dataclass
class Section:
    key: str
    title: str
    lede: str = ""
    charts: list[Chart] = field(default_factory=list)
    tables: list[TableBlock] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt_int(n: float | int | None) -> str:
    if n is None or (isinstance(n, float) and np.isnan(n)):
        return "–"
    return f"{int(n):,}"


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None or np.isnan(x):
        return "–"
    return f"{x:,.{digits}f}"


def fmt_pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def finite(values: np.ndarray | None) -> np.ndarray:
    """The non-null numbers of a column (nulls arrive as NaN)."""
    if values is None:
        return np.empty(0)
    return values[np.isfinite(values)]


def quantiles(values: np.ndarray, qs: tuple[float, ...] = (10, 50, 90)) -> list[str]:
    if not values.size:
        return ["–"] * len(qs)
    return [fmt_num(float(v)) for v in np.percentile(values, qs)]
