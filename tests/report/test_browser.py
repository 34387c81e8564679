"""The report in a real headless browser: Debian's chromium, driven by Playwright.

Playwright cannot download its own browser builds here, so it is pointed at
/usr/bin/chromium. CI installs that package (.ci/run), so there this test never
skips; on a developer machine without chromium it skips with the install line.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kbpipe.report import ReportResult
from tests.report.test_report import ALL_CHARTS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(
                f"{CHROMIUM} is missing: .ci/run installs Debian's chromium before the tests"
            )
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def opened(browser: Any, full_report: ReportResult) -> Iterator[tuple[Any, dict[str, list]]]:
    """The report of a full run, loaded; with the console errors and any non-local request."""
    page = browser.new_page(viewport=VIEWPORT)
    seen: dict[str, list] = {"errors": [], "remote": []}
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on(
        "request",
        lambda r: r.url.startswith(("file:", "data:")) or seen["remote"].append(r.url),
    )
    # A self-contained page asks for nothing: refuse the network outright.
    page.route("http*://**", lambda route: route.abort())
    page.goto(full_report.path.resolve().as_uri(), wait_until="load")
    yield page, seen
    page.close()


def _blank(png: bytes) -> bool:
    """True when a screenshot is (nearly) one colour: a chart that failed to draw."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").resize((200, 100))
    colours = image.getcolors(maxcolors=200 * 100) or []
    background = max(colours)[0] if colours else 0
    return len(colours) < 8 or background > 0.98 * 200 * 100


def test_loads_without_console_errors_or_network(opened):
    page, seen = opened
    assert seen["errors"] == []
    assert seen["remote"] == []
    assert page.title().startswith("kbpipe report")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways at 1200 px"


def test_every_plot_renders(opened, tmp_path: Path):
    page, _ = opened
    plots = page.locator("main img, main svg").all()
    names = {p.get_attribute("data-chart") for p in plots}
    assert names == ALL_CHARTS
    for plot in plots:
        name = plot.get_attribute("data-chart")
        loaded = plot.evaluate("el => el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0)")
        assert loaded, f"{name}: image did not decode"
        box = plot.bounding_box()
        assert box and box["width"] >= 300 and box["height"] >= 150, f"{name}: {box}"
        plot.scroll_into_view_if_needed()
        assert not _blank(plot.screenshot()), f"{name}: the rendered plot is blank"
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert not _blank(shot.read_bytes())


def test_the_blank_check_tells_a_blank_image_from_a_chart():
    from PIL import Image

    white = io.BytesIO()
    Image.new("RGB", (400, 200), "white").save(white, format="PNG")
    assert _blank(white.getvalue())
    import numpy as np

    from kbpipe.report import charts

    with charts.style():
        chart = charts.reward_histogram(np.linspace(0, 1, 50), np.linspace(0.9, 1, 10), 0.85)
    assert not _blank(chart.png)
