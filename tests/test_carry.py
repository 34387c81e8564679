"""Splits decided once: derived tables never cross their parent's split (kbpipe.hub.carry)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.cli import main
from kbpipe.errors import InputError
from kbpipe.hub.carry import planner_for, split_parents
from kbpipe.hub.splits import SPLIT_MODES, plan_splits
from kbpipe.io.tables import sidecar
from tests.steps.conftest import _evals_row as evals_row
from tests.steps.conftest import write_parquet

STEPS = ("dedupe", "strip-reasoning", "decontaminate")


def write_table(path: Path, ids: list[int], modules: list[str], **extra: list) -> Path:
    columns = {
        "example_id": pa.array(ids, pa.int64()),
        "info": pa.array([{"module_name": m} for m in modules]),
        **{k: pa.array(v) for k, v in extra.items()},
    }
    pq.write_table(pa.table(columns), path)
    return path


def derive(parent: Path, dest: Path, keep: list[int], step: str, run: str | None = None) -> Path:
    """Rows `keep` of `parent` (any order) at `dest`, with the stats a step would write."""
    table = pq.read_table(parent).take(pa.array(keep, pa.int64()))
    pq.write_table(table, dest)
    inputs = [{"path": str(parent), **({"run": run} if run else {})}]
    sidecar(dest, "stats").write_text(json.dumps({"step": step, "inputs": inputs}))
    return dest


def sides(path: Path, mode: str, planner=None) -> dict[int, str]:
    plan = (planner or planner_for(path))(path, mode, None)
    ids = pq.read_table(path).column("example_id").to_pylist()
    return {ids[i]: name for name, idx in plan.items() for i in idx}


@hsettings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 60),
    seed=st.integers(0, 2**32 - 1),
    keep_fraction=st.floats(0.05, 1.0),
    mode=st.sampled_from(SPLIT_MODES),
    step=st.sampled_from(STEPS),
)
def test_derived_tables_never_cross_their_parents_split(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    seed: int,
    keep_fraction: float,
    mode: str,
    step: str,
) -> None:
    folder = tmp_path_factory.mktemp("carry")
    rng = np.random.default_rng(seed)
    ids = rng.permutation(1000)[:n].tolist()
    parent = write_table(folder / "filtered.parquet", ids, [f"M{i % 7}" for i in range(n)])
    parent_sides = sides(parent, mode, plan_splits)
    # Random drops, in a random order (dedupe sorts by reward), then a second generation.
    child_rows = rng.permutation(n)[: max(1, int(n * keep_fraction))].tolist()
    child = derive(parent, folder / "unique.parquet", child_rows, step)
    grandchild_rows = rng.permutation(len(child_rows))[: max(1, len(child_rows) // 2)].tolist()
    grandchild = derive(child, folder / "unique_nr.parquet", grandchild_rows, "strip-reasoning")
    for table in (child, grandchild):
        got = sides(table, mode)
        assert all(parent_sides[key] == side for key, side in got.items())


def test_the_seed_repro_no_reasoning_validation_stays_out_of_filtered_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # 240 filtered rows, 20 of them without an answer: strip-reasoning drops them.
    rows = [
        evals_row(i, content="no tags" if i % 12 == 0 else f"<answer>k{i}</answer>")
        for i in range(240)
    ]
    filtered = write_parquet(rows, tmp_path / "filtered.parquet")
    stripped = tmp_path / "filtered_no_reasoning.parquet"
    hub = tmp_path / "hub"
    common = ["--split", "legacy", "--hub-dry-run", str(hub), "--output-dir", str(tmp_path)]
    argv = ["strip-reasoning", "filtered", "-i", str(filtered), "-o", str(stripped)]
    assert main([*argv, "--on-missing", "drop", *common]) == 0
    assert (
        main(["upload", "filtered", "-i", str(filtered), *common[:2], "--dry-run", str(hub)]) == 0
    )

    def staged(repo: str) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for shard in sorted((hub / repo / "data").glob("*.parquet")):
            split = shard.name.split("-")[0]
            out.setdefault(split, set()).update(pq.read_table(shard)["example_id"].to_pylist())
        return out

    base = staged("kernelbook-glm4_7-evals-filtered")
    derived = staged("kernelbook-glm4_7-evals-filtered-no-reasoning")
    assert len(base["validation"]) == 24 and len(derived["validation"]) > 0
    assert not derived["validation"] & base["train"]
    assert not derived["train"] & base["validation"]
    card = (hub / "kernelbook-glm4_7-evals-filtered-no-reasoning" / "README.md").read_text()
    assert "the split of the table this one was made from" in card


def test_merged_table_follows_each_runs_parent(tmp_path: Path) -> None:
    # Both runs number their examples from 0: keys are (data_source, example_id).
    base = write_table(tmp_path / "base.parquet", list(range(20)), ["A"] * 20)
    synth = write_table(tmp_path / "synth.parquet", list(range(10)), ["B"] * 10)
    merged = tmp_path / "merged.parquet"
    table = pa.concat_tables(
        [
            pq.read_table(base).append_column("data_source", pa.array(["base"] * 20)),
            pq.read_table(synth).append_column("data_source", pa.array(["synthetic"] * 10)),
        ]
    )
    pq.write_table(table, merged)
    inputs = [{"path": str(base), "run": "base"}, {"path": str(synth), "run": "synthetic"}]
    sidecar(merged, "stats").write_text(json.dumps({"step": "merge", "inputs": inputs}))
    assert set(split_parents(merged)) == {"base", "synthetic"}
    stripped = derive(
        merged, tmp_path / "merged_nr.parquet", list(range(0, 30, 3)), "strip-reasoning"
    )
    plan = planner_for(stripped)(stripped, "legacy", None)
    keys = list(
        zip(
            pq.read_table(stripped)["data_source"].to_pylist(),
            pq.read_table(stripped)["example_id"].to_pylist(),
            strict=True,
        )
    )
    expected = {("base", k): v for k, v in sides(base, "legacy", plan_splits).items()}
    expected |= {("synthetic", k): v for k, v in sides(synth, "legacy", plan_splits).items()}
    assert all(expected[keys[i]] == name for name, idx in plan.items() for i in idx)


def test_a_row_its_parent_does_not_have_is_an_error(tmp_path: Path) -> None:
    parent = write_table(tmp_path / "p.parquet", [1, 2, 3], ["A", "B", "C"])
    child = derive(parent, tmp_path / "c.parquet", [0, 1], "dedupe")
    write_table(parent, [1, 5, 6], ["A", "B", "C"])  # the parent was rebuilt since
    with pytest.raises(InputError, match=r"1 row\(s\) have example_ids its parent"):
        planner_for(child)(child, "legacy", None)


def test_tables_without_lineage_or_with_a_split_column_decide_their_own(tmp_path: Path) -> None:
    parent = write_table(tmp_path / "p.parquet", list(range(10)), ["A"] * 10)
    assert planner_for(parent) is plan_splits
    child = derive(parent, tmp_path / "c.parquet", list(range(9)), "dedupe")
    pq.write_table(pq.read_table(child).append_column("split", pa.array(["test"] * 9)), child)
    assert list(planner_for(child)(child, "legacy", None)) == ["test"]


def test_decontaminated_table_follows_its_input_not_the_benchmark(tmp_path: Path) -> None:
    # decontaminate reads the benchmark files too; they must not count as parents,
    # or the table would decide its own split and could cross the filtered table's.
    parent = write_table(tmp_path / "filtered.parquet", list(range(40)), ["M"] * 40)
    bench = write_table(tmp_path / "level_1.parquet", [0], ["B"])
    child = derive(parent, tmp_path / "decontaminated.parquet", list(range(40)), "decontaminate")
    stats = json.loads(sidecar(child, "stats").read_text())
    stats["inputs"].append({"path": str(bench), "role": "benchmark"})
    sidecar(child, "stats").write_text(json.dumps(stats))
    assert split_parents(child) == {None: parent}
    parent_sides = sides(parent, "legacy", plan_splits)
    assert sides(child, "legacy") == parent_sides
