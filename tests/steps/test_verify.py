"""Extra step verify through the CLI, with the pure-Python stand-in runner (no GPU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kbpipe.cli import build_parser
from kbpipe.io.lineage import ResolvedInput
from kbpipe.io.tables import sidecar

PASS = "def check():\n    return True\n"
FAIL = "def check():\n    return False\n"


@pytest.fixture
def table(tmp_path: Path, evals_row, to_parquet) -> Path:
    rows = [
        evals_row(0, 0.9, "Add", content=f"<answer>{PASS}</answer>"),
        evals_row(1, 0.9, "Add", content=f"<answer>{FAIL}</answer>"),
        evals_row(2, 0.9, "Mul", content="no solution"),
    ]
    return to_parquet(rows, tmp_path / "filtered.parquet")


def test_verify_writes_the_verified_table_rejects_and_a_journal_under_the_run(
    table: Path, tmp_path: Path, run_step, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-i", str(table), "--runner", "standin", "--timeout", "5"]
    assert run_step("verify", *argv, outputs=tmp_path) == 0
    out = tmp_path / "m" / "verified_dataset.parquet"
    rows = pq.read_table(out).to_pylist()
    assert [(r["verified"], r["verify_error"]) for r in rows] == [
        (True, None),
        (False, "mismatch"),
        (False, "no_answer"),
    ]
    printed = capsys.readouterr().out
    assert "verified: 1 of 3 rows (33.3%)" in printed
    assert "failed 1 (mismatch)" in printed
    stats = json.loads(sidecar(out, "stats").read_text())
    assert stats["params"]["atol"] == 0.01 and stats["metrics"]["n_verified"] == 1
    assert stats["rejects"] == str(sidecar(out, "rejects"))
    assert (tmp_path / "m" / "journal" / "verify.jsonl").read_text().count("\n") == 2


def test_drop_failed_counts_the_dropped_rows(table: Path, tmp_path: Path, settings) -> None:
    # the step function itself: how the CLI weighs intended drops is the runner's business
    out = tmp_path / "v.parquet"
    parser, module = build_parser("verify")
    args = parser.parse_args(["verify", "--runner", "standin", "--drop-failed"])
    result = module.execute(args, ResolvedInput([table], str(table)), out, settings)
    assert pq.read_table(out, columns=["example_id"]).column(0).to_pylist() == [0]
    assert (result.rows_in, result.rows_out, result.dropped) == (3, 1, {"verify_failed": 2})
    assert json.loads(sidecar(out, "stats").read_text())["dropped"] == {"verify_failed": 2}


def _timed(speedup: float) -> str:
    return f"<answer>def check():\n    return {{'speedup_measured': {speedup}}}\n</answer>"


@pytest.fixture
def timed_table(tmp_path: Path, evals_row, to_parquet) -> Path:
    rows = [
        evals_row(0, 0.9, "Add", content=_timed(2.0), speedup_reward=0.4),
        evals_row(1, 0.9, "Mul", content=_timed(0.5), speedup_reward=0.1),
        evals_row(2, 0.9, "Relu", content=f"<answer>{FAIL}</answer>", speedup_reward=0.3),
        evals_row(3, 0.9, "Tanh", content=_timed(1.5), speedup_reward=None),
    ]
    return to_parquet(rows, tmp_path / "filtered.parquet")


def test_verify_plots_measured_speedup_against_speedup_reward_beside_the_output(
    timed_table: Path, tmp_path: Path, run_step, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-i", str(timed_table), "--runner", "standin", "--drop-failed"]
    # --drop-failed's drop is intended: a quarter of the rows failing is no loss
    assert run_step("verify", *argv, outputs=tmp_path) == 0
    plot = tmp_path / "m" / "verified_dataset.speedup.png"
    assert plot.read_bytes().startswith(b"\x89PNG")
    # rows 0 and 1: verified, with a measured speed-up and a speedup_reward
    assert f"speedup plot: {plot} (2 verified rows)" in capsys.readouterr().out
    stats = json.loads(sidecar(plot.with_name("verified_dataset.parquet"), "stats").read_text())
    assert stats["metrics"]["speedup_plot"] == {"path": str(plot), "n_rows": 2}


def test_without_matplotlib_the_plot_is_skipped_in_one_line(
    timed_table: Path,
    tmp_path: Path,
    run_step,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stale = tmp_path / "m" / "verified_dataset.speedup.png"
    stale.parent.mkdir()
    stale.write_bytes(b"a plot of other rows")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert run_step("verify", "-i", str(timed_table), "--runner", "standin", outputs=tmp_path) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("speedup plot")]
    assert lines == [
        "speedup plot: skipped, matplotlib is not installed (pip install 'kbpipe[plot]')"
    ]
    assert not stale.exists()


def test_no_plot_when_no_row_has_a_speedup_reward(
    table: Path, tmp_path: Path, run_step, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_step("verify", "-i", str(table), "--runner", "standin", outputs=tmp_path) == 0
    out = capsys.readouterr().out
    assert "speedup plot: skipped, no verified row has speedup_measured and speedup_reward" in out
    assert not (tmp_path / "m" / "verified_dataset.speedup.png").exists()
