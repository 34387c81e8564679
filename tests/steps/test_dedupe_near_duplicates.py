"""kbpipe dedupe --near-duplicates: the best row per cluster of near-identical code."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq

from kbpipe.codematch.variants import kernelbook_copy
from kbpipe.config import Settings
from kbpipe.hub.carry import planner_for
from kbpipe.io.tables import sidecar
from kbpipe.sample.modules import MODULES
from kbpipe.steps.dedupe import dedupe

CODE = {m.name: m.python_code for m in MODULES}


def _sides(plan: dict) -> dict[int, str]:
    return {int(i): name for name, rows in plan.items() for i in rows}


def _row(evals_row, example_id: int, reward: float, name: str, code: str | None) -> dict:
    row = evals_row(example_id, reward, name)
    row["info"] = {"module_name": name, "python_code": code}
    return row


def test_keeps_the_best_row_per_cluster_and_adds_module_cluster(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    relu_copy = kernelbook_copy(CODE["ReLU"], random.Random(0))  # same code, other names
    rows = [
        _row(evals_row, 0, 0.90, "ReLU", CODE["ReLU"]),
        _row(evals_row, 1, 0.97, "Rectifier", relu_copy),
        _row(evals_row, 2, 0.95, "GELU", CODE["GELU"]),
        _row(evals_row, 3, 0.99, "ReLU", CODE["ReLU"]),
        _row(evals_row, 4, 0.92, "NoCode", None),
        _row(evals_row, 5, 0.93, "NoCode", None),
    ]
    out = tmp_path / "unique.parquet"

    result = dedupe(
        to_parquet(rows, tmp_path / "f.parquet"), out, settings, near_duplicates=True, workers=1
    )

    table = pq.read_table(out).to_pylist()
    assert [r["example_id"] for r in table] == [3, 2, 5]
    clusters = [r["module_cluster"] for r in table]
    assert len(set(clusters)) == 3 and clusters[2] == "module:NoCode"
    assert result.dropped == {"duplicate_module": 3}
    stats = json.loads(sidecar(out, "stats").read_text())
    assert stats["metrics"]["clusters"]["cluster_sizes"] == {"1": 1, "2": 1}
    assert stats["params"]["near_duplicates"] is True


def test_without_the_flag_near_duplicates_stay_apart(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    relu_copy = kernelbook_copy(CODE["ReLU"], random.Random(0))
    rows = [
        _row(evals_row, 0, 0.90, "ReLU", CODE["ReLU"]),
        _row(evals_row, 1, 0.97, "Rectifier", relu_copy),
    ]
    out = tmp_path / "unique.parquet"
    dedupe(to_parquet(rows, tmp_path / "f.parquet"), out, settings)
    table = pq.read_table(out)
    assert table["example_id"].to_pylist() == [1, 0]
    assert "module_cluster" not in table.column_names


def test_the_near_duplicate_unique_table_is_split_by_its_own_clusters(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    code = CODE
    rng = random.Random(3)
    rows = []
    for i, module in enumerate(sorted(code)):
        for j, text in enumerate((code[module], kernelbook_copy(code[module], rng))):
            row = evals_row(2 * i + j, 0.9 + 0.01 * j, f"{module}{j}")
            row["info"] = {"module_name": f"{module}{j}", "python_code": text}
            rows.append(row)
    filtered = to_parquet(rows, tmp_path / "filtered.parquet")
    out = tmp_path / "unique.parquet"
    dedupe(filtered, out, settings, near_duplicates=True, workers=1)
    assert json.loads(sidecar(out, "stats").read_text())["params"]["near_duplicates"]
    plan = planner_for(out)(out, "module", None)
    table = pq.read_table(out).to_pylist()
    sides = _sides(plan)
    by_cluster: dict[str, set[str]] = {}
    for i, row in enumerate(table):
        by_cluster.setdefault(row["module_cluster"], set()).add(sides[i])
    assert all(len(s) == 1 for s in by_cluster.values())
    assert len(table) == len(code)  # each module and its renamed copy: one cluster, one row
