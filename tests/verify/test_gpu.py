"""verify on a real GPU: the bundled sample passes, every broken candidate gets its verdict.

Marked `gpu` and skipped where torch sees no CUDA device (CI); run on a GPU
machine with `pytest -m gpu tests/verify/test_gpu.py` (bench/gpu_verify.sh does).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.verify_data import broken_rows, one_per_module, sample_rows
from kbpipe.sample.generator import MODULES
from kbpipe.verify.table import VerifyOptions, reason_code, verify_table

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _options(tmp_path: Path, **overrides: object) -> VerifyOptions:
    base = {"gpus": ("0",), "timeout_s": 60.0, "journal_path": tmp_path / "journal.jsonl"}
    return VerifyOptions(**(base | overrides))


def _write(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_every_module_of_the_bundled_sample_verifies(tmp_path: Path) -> None:
    table = _write(one_per_module(sample_rows()), tmp_path / "sample.parquet")
    summary = verify_table(table, tmp_path / "out.parquet", _options(tmp_path))
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    failed = [(r["info"]["module_name"], r["verify_error"]) for r in rows if not r["verified"]]
    assert not failed
    assert len(rows) == len(MODULES) and summary["n_verified"] == len(MODULES)
    for r in rows:
        assert r["triton_launches"] is None or r["triton_launches"] >= 1
        assert r["new_ms"] > 0 and r["ref_ms"] > 0 and r["speedup_measured"] > 0
        assert r["gpu_name"] and r["torch_version"] and r["triton_version"]
        assert r["max_abs_err"] <= 1e-2
    # a rerun is answered from the journal alone
    again = verify_table(table, tmp_path / "again.parquet", _options(tmp_path))
    assert (again["n_run"], again["n_cached"]) == (0, len(MODULES))


def test_broken_candidates_get_their_verdicts_and_the_run_survives(tmp_path: Path) -> None:
    rows = broken_rows()
    table = _write(rows, tmp_path / "broken.parquet")
    verify_table(table, tmp_path / "out.parquet", _options(tmp_path, timeout_s=30.0))
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert len(out) == len(rows)
    for r in out:
        got = "verified" if r["verified"] else reason_code(r["verify_error"])
        assert got in r["expect"].split("|"), (r["case"], r["verify_error"])


def test_a_poisoned_context_does_not_leak_into_the_next_row(tmp_path: Path) -> None:
    broken = {r["case"]: r for r in broken_rows()}
    honest = broken["honest_control"]
    # a trailing comment makes the second copy its own job rather than a reuse of the first
    text = honest["completion"][0]["content"].replace("</answer>", "# again\n</answer>")
    again = honest | {"example_id": 7, "completion": [{"role": "assistant", "content": text}]}
    rows = [broken["out_of_bounds"], honest, broken["os_exit"], again]
    table = _write(rows, tmp_path / "in.parquet")
    # one worker: every row runs after the one before it on the same GPU slot
    options = _options(tmp_path, workers_per_gpu=1, timeout_s=30.0)
    verify_table(table, tmp_path / "out.parquet", options)
    verdicts = pq.read_table(tmp_path / "out.parquet", columns=["verified"]).column(0)
    assert verdicts.to_pylist() == [False, True, False, True]
