"""Extra step verify through the CLI, with the pure-Python stand-in runner (no GPU)."""

from __future__ import annotations

import json
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
