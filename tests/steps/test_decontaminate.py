"""kbpipe decontaminate: KernelBench matches flagged (or dropped) with the problem they copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.lineage import ResolvedInput
from kbpipe.io.tables import sidecar
from kbpipe.sample.modules import MODULES
from kbpipe.steps.decontaminate import decontaminate, resolve_benchmark

KERNELBENCH = Path(__file__).resolve().parents[2] / "data" / "kernelbench"
CODE = {m.name: m.python_code for m in MODULES}


@pytest.fixture(scope="module")
def benchmark() -> ResolvedInput:
    return resolve_benchmark(str(KERNELBENCH), Settings())


def _rows(evals_row, names: list[str]) -> list[dict]:
    rows = []
    for i, name in enumerate(names):
        row = evals_row(i, 0.9, name)
        row["info"] = {"module_name": name, "python_code": CODE.get(name)}
        rows.append(row)
    return rows


def test_flags_planted_matches_and_keeps_row_order(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, benchmark
) -> None:
    names = ["LinearReLU", "HingeMarginLoss", "Identity", "HingeMarginLoss", "ScaledLeakyDense"]
    src = to_parquet(_rows(evals_row, names), tmp_path / "filtered.parquet")
    out = tmp_path / "decontaminated.parquet"

    result = decontaminate(src, out, settings, benchmark=benchmark, workers=1)

    table = pq.read_table(out).to_pylist()
    assert [r["example_id"] for r in table] == [0, 1, 2, 3, 4]
    assert [r["contaminated"] for r in table] == [False, True, False, True, True]
    assert [r["benchmark_match"] for r in table] == [
        None,
        "level_1/100_HingeLoss",
        None,
        "level_1/100_HingeLoss",
        "level_2/12_Gemm_Multiply_LeakyReLU",
    ]
    assert table[1]["benchmark_overlap"] == 1.0 and table[0]["benchmark_overlap"] < 0.5
    assert (result.rows_in, result.rows_out, result.dropped) == (5, 5, {})
    stats = json.loads(sidecar(out, "stats").read_text())
    assert stats["metrics"]["matched_problems"] == [
        {
            "benchmark_match": "level_1/100_HingeLoss",
            "n_rows": 2,
            "n_modules": 1,
            "max_overlap": 1.0,
        },
        {
            "benchmark_match": "level_2/12_Gemm_Multiply_LeakyReLU",
            "n_rows": 1,
            "n_modules": 1,
            "max_overlap": 1.0,
        },
    ]
    assert stats["metrics"]["n_modules"] == 4
    assert stats["params"]["benchmark"] == str(KERNELBENCH)


def test_drop_moves_matches_to_rejects_with_the_problem(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, benchmark
) -> None:
    names = ["RowwiseSoftmax", "Softmax", "ReluDividedProjection", "Softmax"]
    src = to_parquet(_rows(evals_row, names), tmp_path / "filtered.parquet")
    out = tmp_path / "decontaminated.parquet"

    result = decontaminate(src, out, settings, benchmark=benchmark, drop=True, workers=1)

    kept = pq.read_table(out).to_pylist()
    assert [r["example_id"] for r in kept] == [1, 3]
    assert not any(r["contaminated"] for r in kept)
    rejects = [json.loads(line) for line in sidecar(out, "rejects").read_text().splitlines()]
    assert [(r["example_id"], r["reason"]) for r in rejects] == [
        (0, "matches KernelBench level_1/23_Softmax"),
        (2, "matches KernelBench level_2/63_Gemm_ReLU_Divide"),
    ]
    assert result.dropped == {"kernelbench_match": 2} and result.rows_out == 2


def test_rows_without_code_are_kept_clean(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, benchmark
) -> None:
    src = to_parquet(_rows(evals_row, ["NoSuchModule", "ReLU"]), tmp_path / "f.parquet")
    out = tmp_path / "d.parquet"
    decontaminate(src, out, settings, benchmark=benchmark, workers=1)
    table = pq.read_table(out).to_pylist()
    assert [(r["contaminated"], r["benchmark_match"]) for r in table] == [
        (False, None),
        (True, "level_1/19_ReLU"),
    ]


def test_a_benchmark_folder_without_parquet_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Parquet files"):
        resolve_benchmark(str(tmp_path), Settings())


def test_the_hub_benchmark_comes_through_the_hub_cache(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from kbpipe.codematch.contamination import DEFAULT_BENCHMARK, load_benchmark

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    # the Hub dataset's layout: one file per level split, declared in the card
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "datasets--ScalingIntelligence--KernelBench" / "snapshots" / commit
    shutil.copytree(KERNELBENCH / "data", snapshot / "data")
    splits = "".join(f"  - split: level_{n}\n    path: data/level_{n}-*\n" for n in range(1, 5))
    card = f"---\nconfigs:\n- config_name: default\n  data_files:\n{splits}---\n"
    (snapshot / "README.md").write_text(card)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)

    resolved = resolve_benchmark(DEFAULT_BENCHMARK, settings)

    assert resolved.revision == commit
    problems = load_benchmark(resolved.paths)
    assert len(problems) == 270 and problems[-1].key.startswith("level_4/")
