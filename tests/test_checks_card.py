"""Cards' "Checks" section: verify, audit and decontaminate summaries from their stats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.hub.checks_card import checks_section
from kbpipe.io.lineage import describe_input
from kbpipe.io.tables import sidecar

VERIFY_METRICS = {
    "n_verified": 45,
    "n_failed": 3,
    "pass_rate": 0.9375,
    "failed_by_reason": {"mismatch": 2, "timeout": 1},
    "speedup_quantiles": {"p10": 0.8, "p25": 1.0, "p50": 1.42, "p75": 2.0, "p90": 3.5},
    "gpu_names": ["NVIDIA H200"],
    "atol": 0.01,
    "rtol": 0.001,
    "seeds": [0, 1, 2],
}
AUDIT_METRICS = {
    "n_ok": 40,
    "n_flagged": 8,
    "flags": {"no_triton_kernel": 8, "partial_torch_compute": 12},
}
DECONTAMINATE_METRICS = {
    "n_problems": 250,
    "n_modules": 30,
    "n_modules_unparsed": 0,
    "n_contaminated_modules": 2,
    "n_exact_modules": 1,
    "n_contaminated_rows": 5,
    "matched_problems": [
        {"benchmark_match": "level1/19_ReLU", "n_rows": 4, "n_modules": 1, "max_overlap": 1.0},
        {"benchmark_match": "level1/23_Softmax", "n_rows": 1, "n_modules": 1, "max_overlap": 0.9},
    ],
}


def _table(path: Path, n: int = 3) -> Path:
    pq.write_table(pa.table({"example_id": list(range(n))}), path)
    return path


def _check(folder: Path, step: str, table: str, inputs: list[dict], metrics: dict, **params: Any):
    """Write the stats a check step leaves beside its table."""
    stats = {
        "step": step,
        "output": str(folder / f"{table}_dataset.parquet"),
        "rows_in": 48,
        "rows_out": 48,
        "inputs": inputs,
        "params": params,
        "metrics": metrics,
    }
    sidecar(folder / f"{table}_dataset.parquet", "stats").write_text(json.dumps(stats))
    return stats


def test_a_verified_tables_card_summarises_its_verification(tmp_path: Path) -> None:
    stats = _check(tmp_path, "verify", "verified", [], VERIFY_METRICS, limit=None)
    text = "\n".join(checks_section(stats))
    assert text.startswith("## Checks\n\n### Verification on a GPU (`kbpipe verify`)")
    assert "Run on this table's rows: each solution re-run" in text
    assert "on NVIDIA H200, within atol 0.01 and rtol 0.001 at every input seed of 0, 1, 2" in text
    assert "| rows | verified | pass rate |\n|---:|---:|---:|\n| 48 | 45 | 93.8 % |" in text
    assert "| `mismatch` | 2 |\n| `timeout` | 1 |" in text
    assert "| p10 | p25 | p50 | p75 | p90 |" in text and "| 0.80x | 1.00x | 1.42x |" in text


def test_the_summary_python_m_kbpipe_verify_writes_is_read_too() -> None:
    # On a GPU machine without the kbpipe CLI the stats are verify_table's summary, named.
    summary = {"step": "verify", **VERIFY_METRICS, "rows_in": 48, "rows_out": 48}
    text = "\n".join(checks_section(summary))
    assert "| 48 | 45 | 93.8 % |" in text


def test_a_check_run_on_this_very_file_is_on_its_card_until_the_file_changes(
    tmp_path: Path,
) -> None:
    filtered = _table(tmp_path / "filtered_dataset.parquet")
    stats = {"step": "filter", "output": str(filtered), "inputs": [{"path": "evals.parquet"}]}
    _check(tmp_path, "verify", "verified", [describe_input(filtered)], VERIFY_METRICS)
    _check(tmp_path, "audit", "audited", [describe_input(filtered)], AUDIT_METRICS)

    text = "\n".join(checks_section(stats))
    assert text.index("### Verification") < text.index("### Static audit")
    assert "Run on this table's rows: 40 of 48 solutions (83.3 %) pass" in text
    assert "the 8 that fail are kept, marked by `audit_ok` and `audit_flags`" in text
    assert "| `partial_torch_compute` | 12 | no |" in text
    assert "| `no_triton_kernel` | 8 | yes | no function decorated with triton.jit" in text

    _table(filtered, n=4)  # rebuilt since the checks ran: their figures are of other rows
    assert checks_section(stats) == []


def test_a_table_made_from_the_checked_table_shows_whose_rows_the_figures_are(
    tmp_path: Path,
) -> None:
    filtered = describe_input(_table(tmp_path / "filtered_dataset.parquet"))
    benchmark = {"path": "hf://datasets/ScalingIntelligence/KernelBench", "revision": "r1"}
    unique = {"step": "dedupe", "output": str(tmp_path / "unique_dataset.parquet")}
    _check(tmp_path, "verify", "verified", [filtered], VERIFY_METRICS)
    decontaminated = [filtered, benchmark]
    _check(
        tmp_path, "decontaminate", "decontaminated", decontaminated, DECONTAMINATE_METRICS,
        ngram=8, threshold=0.7, drop=True, limit=20,
    )  # fmt: skip

    text = "\n".join(checks_section({**unique, "inputs": [filtered]}))
    made_from = "the rows of `filtered_dataset.parquet`, which this table was made from"
    assert f"Run on {made_from}: each solution" in text
    assert f"Run on {made_from} (the first 20 only): 5 of 48 rows (10.4 %), from 2 " in text
    assert "of at least 0.7; 1 modules exactly); they are dropped (`--drop`)." in text
    assert "| `level1/19_ReLU` | 4 | 1 | 1 |" in text
    assert str(tmp_path) not in text  # a Hub card names no local path

    # A table of another input gets none of it.
    other = {"path": "other.parquet", "sha256": "0" * 64}
    assert checks_section({**unique, "inputs": [other]}) == []


def test_no_check_beside_no_section(tmp_path: Path) -> None:
    stats = {"step": "filter", "output": str(tmp_path / "filtered_dataset.parquet")}
    assert checks_section(stats) == []
    sidecar(tmp_path / "verified_dataset.parquet", "stats").write_text('{"step": "verify"')
    assert checks_section(stats) == []  # a torn stats file is left out, not an error


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A filtered table of three rows, two of which pass the stand-in verify, audited too."""
    answers = ["def check():\n    return {'speedup_measured': 2.0}\n", "x = (", "no answer"]
    rows = [
        {
            "example_id": i,
            "prompt": [{"role": "user", "content": "convert it"}],
            "completion": [{"role": "assistant", "content": f"<answer>{a}</answer>"}],
            "reward": 0.9,
            "info": {"module_name": f"M{i}", "python_code": f"class M{i}: ..."},
        }
        for i, a in enumerate(answers)
    ]
    (tmp_path / "out" / "c").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "out" / "c" / "filtered_dataset.parquet")
    return tmp_path


def test_cards_published_after_audit_and_verify_carry_their_summaries(
    run_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbpipe.cli import main

    for name in ("HF_TOKEN", "TEST_MODE", "LICENSE"):
        monkeypatch.delenv(name, raising=False)
    common = ["--output-dir", str(run_folder / "out"), "--data-model", "c"]
    common += ["--env-file", str(run_folder / "none")]
    assert main(["verify", "--runner", "standin", "--no-upload", *common]) == 0
    assert main(["audit", "--no-upload", *common]) == 0
    hub = run_folder / "hub"
    for table in ("filtered", "verified"):
        assert main(["upload", table, "--dry-run", str(hub), *common]) == 0

    verified = (hub / "kernelbook-c-evals-verified" / "README.md").read_text()
    checks = verified.split("## Checks", 1)[1]
    assert "### Verification on a GPU" in checks and "on cpu-standin, within atol 0.01" in checks
    assert "| 3 | 1 | 33.3 % |" in checks
    assert "| p10 | p25 | p50 | p75 | p90 |" in checks
    assert "### Static audit" in checks and "which this table was made from" in checks
    filtered = (hub / "kernelbook-c-evals-filtered" / "README.md").read_text()
    assert filtered.count("Run on this table's rows") == 2
