"""Extra step audit: the audit columns, --drop-flagged, stats per flag, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kbpipe.config import Settings
from kbpipe.io.lineage import ResolvedInput
from kbpipe.io.tables import sidecar
from kbpipe.steps.audit import audit

DATA = Path(__file__).resolve().parents[1] / "verify" / "data" / "audit"


def _answer(fixture: str, fmt: str = "tags") -> str:
    code = (DATA / fixture).read_text(encoding="utf-8")
    return f"<answer>\n{code}</answer>" if fmt == "tags" else f"```python\n{code}```"


@pytest.fixture
def table(tmp_path: Path, evals_row, to_parquet) -> Path:
    rows = [
        evals_row(0, 0.9, "ReLU", content=_answer("clean_submodule_and_variable_launch.txt")),
        evals_row(1, 0.9, "ReLU", content=_answer("no_triton_kernel.txt")),
        evals_row(2, 0.9, "LinearReLU", content=_answer("partial_torch_compute.txt", "fenced")),
        evals_row(3, 0.9, "ReLU", content="I give up."),
        evals_row(4, 0.9, "ReLU", content=_answer("reference_fallback_try.txt")),
    ]
    return to_parquet(rows, tmp_path / "filtered.parquet")


def test_rows_are_annotated_and_kept(table: Path, tmp_path: Path, settings: Settings) -> None:
    out = tmp_path / "audited.parquet"
    result = audit(ResolvedInput([table], str(table)), out, settings)
    rows = pq.read_table(out).to_pylist()
    assert [r["example_id"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["audit_flags"] for r in rows] == [
        [],
        ["no_triton_kernel", "torch_compute_in_forward"],
        ["partial_torch_compute"],
        ["no_answer"],
        ["partial_torch_compute", "reference_fallback"],
    ]
    assert [r["audit_ok"] for r in rows] == [True, False, True, False, False]
    assert [r["answer_format"] for r in rows] == ["answer-tags", "answer-tags", "fenced", None,
                                                  "answer-tags"]  # fmt: skip
    assert rows[0]["completion"][0]["reasoning"] == "thinking..."  # other columns untouched
    assert (result.rows_in, result.rows_out, result.dropped) == (5, 5, {})
    assert result.metrics["flags"] == {
        "no_answer": 1,
        "no_triton_kernel": 1,
        "torch_compute_in_forward": 1,
        "partial_torch_compute": 2,
        "reference_fallback": 1,
    }
    assert not sidecar(out, "rejects").exists()


def test_drop_flagged_moves_failing_rows_to_rejects_with_their_flags(
    table: Path, tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "audited.parquet"
    result = audit(ResolvedInput([table], str(table)), out, settings, drop_flagged=True)
    assert pq.read_table(out, columns=["example_id"]).column(0).to_pylist() == [0, 2]
    rejects = [json.loads(x) for x in sidecar(out, "rejects").read_text().splitlines()]
    assert [(r["example_id"], r["reason"]) for r in rejects] == [
        (1, "no_triton_kernel,torch_compute_in_forward"),
        (3, "no_answer"),
        (4, "partial_torch_compute,reference_fallback"),
    ]
    assert result.dropped == {"audit_flagged": 3}


def test_cli_prints_counts_per_flag_and_writes_stats(
    table: Path, tmp_path: Path, run_step, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audited.parquet"
    assert run_step("audit", "-i", str(table), "-o", str(out), outputs=tmp_path) == 0
    printed = capsys.readouterr().out
    assert "Audit: 2 of 5 rows pass (3 flagged)" in printed
    assert "  reference_fallback: 1" in printed
    assert "answer formats: answer-tags 3, fenced 1, none 1" in printed
    stats = json.loads(sidecar(out, "stats").read_text())
    assert stats["metrics"]["n_flagged"] == 3


def test_the_default_output_is_the_audited_table(tmp_path: Path, table: Path, run_step) -> None:
    assert run_step("audit", "-i", str(table), outputs=tmp_path) == 0
    assert (tmp_path / "m" / "audited_dataset.parquet").is_file()
