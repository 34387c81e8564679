"""A broken endpoint stops the run loudly; a step that lost too much, or kept nothing, fails.

The case a new user met first: `filter --rater api` against a refused port (or
a wrong path, 404 on every request) retried for two minutes, wrote an empty
table and exited 0.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import polars as pl
import pytest

from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.errors import KbpipeError
from kbpipe.rater.errors import CircuitOpen
from kbpipe.rater.judge import JUDGE
from kbpipe.rater.tasks import run_task
from kbpipe.testing.openai_server import ServerThread
from tests.rater.rater_helpers import api_workdir, judge_rows, options
from tests.rater.test_filter_rating import filter_argv
from tests.reliability.helpers import leftovers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_endpoint_stops_at_once_with_one_line(
    evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cwd = api_workdir(tmp_path, monkeypatch)
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    start = time.monotonic()
    assert main(filter_argv(evals, url)) == 1
    assert time.monotonic() - start < 20  # seconds, not minutes of retries
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and url in err and "cannot reach the API" in err
    assert not (cwd / "f.parquet").exists()
    assert leftovers(cwd) == []


def test_wrong_path_404_stops_after_the_first_request(
    evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cwd = api_workdir(tmp_path, monkeypatch)
    with ServerThread() as server:
        assert main(filter_argv(evals, server.url + "/wrong")) == 1
        assert server.stats.outcomes == {"no_route": 1}
    err = capsys.readouterr().err
    assert "404" in err and "/wrong" in err
    assert not (cwd / "f.parquet").exists()


def test_an_endpoint_that_goes_down_trips_the_breaker(settings: Settings) -> None:
    """After 30 answers every request fails: the run stops instead of retrying every row,
    keeps what it was paid for, and a rerun pays only for the rest."""
    rows = judge_rows(300)
    with ServerThread() as server:
        server.set(down_after=30, down_fault="500")
        api = settings.replace(base_url=server.url, api_key="sk-test", judge_concurrency=8)
        with pytest.raises(CircuitOpen, match="failing: .* of the last 50 requests failed"):
            run_task(JUDGE, rows, api, options())
        # 30 answers, a window of failures and what was in flight; not 270 rows x 6 attempts.
        assert server.stats.requests <= 30 + 50 + 8
        server.set(down_after=None)
        server.reset_stats()
        run = run_task(JUDGE, rows, api, options())
    assert run.report.ok == 300 and run.report.cached == 30
    assert server.stats.requests == 270


def test_an_empty_result_is_an_error_unless_allowed(
    evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["filter", "--rater", "none", "-i", str(evals), "-o", "f.parquet", "--no-upload"]
    assert main([*argv, "--threshold", "1.0"]) == 1
    err = capsys.readouterr().err
    assert "no rows left of 240" in err and "--allow-empty" in err
    assert not (tmp_path / "f.parquet").exists()
    assert main([*argv, "--threshold", "1.0", "--allow-empty"]) == 0
    assert pl.read_parquet(tmp_path / "f.parquet").height == 0
    # ...and upload refuses to publish it unless told too.
    hub = ["upload", "filtered", "-i", "f.parquet", "--dry-run", "hub"]
    assert main(hub) == 1
    assert "has no rows" in capsys.readouterr().err
    assert main([*hub, "--allow-empty"]) == 0


def test_losing_more_than_max_reject_rate_fails_but_keeps_the_table(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    lines = (sample_dir / "kernelbook-env.jsonl").read_text().splitlines()[:20]
    lines[3:8] = ["{not json"] * 5  # a quarter of the file is bad
    Path("in.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["convert", "in.jsonl", "-o", "e.parquet", "--no-upload", "--skip-bad"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "lost 5 of 20 rows (25%)" in err and "--max-reject-rate" in err
    assert pl.read_parquet("e.parquet").height == 15  # kept for a look, with its rejects
    assert len(Path("e.rejects.jsonl").read_text().splitlines()) == 5
    assert json.loads(Path("e.parquet.stats.json").read_text())["rows_out"] == 15
    assert main([*argv, "--max-reject-rate", "30%"]) == 0


def test_the_reject_bound_is_a_setting_and_make_is_told_the_truth(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # make deletes a failed recipe's table, so under make the message must not claim
    # the table is kept, and must name the make variable that raises the bound.
    monkeypatch.chdir(tmp_path)
    lines = (sample_dir / "kernelbook-env.jsonl").read_text().splitlines()[:20]
    lines[3:8] = ["{not json"] * 5
    Path("in.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["convert", "in.jsonl", "-o", "e.parquet", "--no-upload", "--skip-bad"]
    monkeypatch.setenv("KBPIPE_FROM_MAKE", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "MAX_REJECT_RATE=0.1" in err and "make removes the table" in err
    assert "journal" in err
    monkeypatch.setenv("MAX_REJECT_RATE", "0.3")
    assert main(argv) == 0


def test_kbpipe_errors_of_the_rater_are_user_errors() -> None:
    assert issubclass(CircuitOpen, KbpipeError)
