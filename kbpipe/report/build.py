"""Assemble the page (or the card images) from a run folder."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kbpipe import __version__
from kbpipe.errors import ConfigError
from kbpipe.io.tables import atomic_output

if TYPE_CHECKING:
    from kbpipe.report.collect import Run
    from kbpipe.report.model import KeyFigure, Section

_HERE = Path(__file__).parent


def require_matplotlib() -> None:
    """Fail in one line, before any work, when the `plot` extra is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the report draws its plots with matplotlib, which is not installed: "
            "pip install 'kbpipe[plot]'"
        ) from None


def _builders() -> list[Callable[[Run], Section]]:
    import kbpipe.report.checks as checks
    import kbpipe.report.sections as sections

    return [
        sections.funnel,
        sections.rewards,
        sections.difficulty,
        sections.modules,
        sections.seqlen,
        checks.verification,
        checks.decontamination,
        checks.audit,
    ]


@dataclass
class ReportResult:
    path: Path
    n_charts: int
    n_bytes: int
    wall_s: float
    # Files the page notes as missing or unreadable, and sections with nothing to show.
    notes: list[str]


def build_report(run_dir: Path, dest: Path, *, split_mode: str = "module") -> ReportResult:
    """Write one self-contained HTML page about the run in `run_dir` to `dest` (atomically)."""
    started = time.perf_counter()
    require_matplotlib()
    import kbpipe.report.charts as charts
    import kbpipe.report.checks as checks
    from kbpipe.report.collect import collect

    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; build the run first (make all)")
    run = collect(run_dir, split_mode)
    with charts.style():
        built = [build(run) for build in _builders()]
    html = render(run, built, checks.key_figures(run), time.perf_counter() - started)
    with atomic_output(dest) as tmp:
        tmp.write_text(html, encoding="utf-8")
    notes = run.notes + [f"{s.title}: {n}" for s in built for n in s.notes]
    return ReportResult(
        dest,
        sum(len(s.charts) for s in built),
        len(html.encode()),
        round(time.perf_counter() - started, 3),
        notes,
    )


def render(run: Run, sections: list[Section], figures: list[KeyFigure], took_s: float) -> str:
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    template = env.from_string((_HERE / "page.html.j2").read_text(encoding="utf-8"))
    return template.render(
        # The stylesheet is ours, not data: it goes in unescaped.
        css=Markup((_HERE / "page.css").read_text(encoding="utf-8")),
        version=__version__,
        run_name=run.run_dir.name,
        run_dir=str(run.run_dir),
        built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_charts=sum(len(s.charts) for s in sections),
        figures=figures,
        sections=sections,
        notes=run.notes,
        took=f"{took_s:.2f} s",
    )


@dataclass(frozen=True)
class CardImage:
    """A chart written for a dataset card: `path` is the PNG, `title` its caption."""

    path: Path
    title: str
    alt: str


# Which charts belong on which table's card (a Settings table name or a check's table).
CARD_CHARTS = {
    "evals": ("funnel", "rewards", "modules"),
    "filtered": ("funnel", "rewards", "difficulty", "reward_by_difficulty", "seqlen_filtered"),
    "unique": ("funnel", "difficulty", "modules", "seqlen_unique"),
    "verified": ("verify", "speedup"),
    "decontaminated": ("overlap",),
    "audited": ("audit",),
}


def card_images(
    run_dir: Path, dest_dir: Path, *, table: str | None = None, split_mode: str = "module"
) -> list[CardImage]:
    """Draw the report's charts as PNG files in `dest_dir` for a dataset card.

    `table` picks the charts that describe that table (see CARD_CHARTS); None
    writes every chart. Charts whose data is missing are simply not returned.
    """
    require_matplotlib()
    import kbpipe.report.charts as charts
    from kbpipe.report.collect import collect

    if table is not None and table not in CARD_CHARTS:
        raise ConfigError(
            f"no card charts for table {table!r}; expected one of {sorted(CARD_CHARTS)}"
        )
    wanted = CARD_CHARTS[table] if table is not None else None
    run = collect(run_dir, split_mode)
    with charts.style():
        drawn = [c for build in _builders() for c in build(run).charts]
    images = []
    dest_dir.mkdir(parents=True, exist_ok=True)
    for chart in drawn:
        if wanted is not None and chart.name not in wanted:
            continue
        path = dest_dir / f"{chart.name}.png"
        with atomic_output(path) as tmp:
            tmp.write_bytes(chart.png)
        images.append(CardImage(path, chart.title, chart.alt))
    return images
