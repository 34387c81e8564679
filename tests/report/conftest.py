"""Fixtures of the report tests: a hand-made run folder (see run_folder.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbpipe.report import ReportResult, build_report
from tests.report.run_folder import write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder with every table the report knows, checks included; free to change."""
    return write_run(tmp_path / "outputs" / "demo")


@pytest.fixture(scope="session")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    """The report of a full run, built once for the tests that only read it."""
    root = tmp_path_factory.mktemp("report")
    return build_report(write_run(root / "outputs" / "demo"), root / "report.html")
