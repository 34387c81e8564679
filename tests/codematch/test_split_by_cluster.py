"""The module split keeps every near-duplicate cluster on one side."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from kbpipe.hub.splits import module_in_validation, plan_splits, split_keys


def _sides(plan: dict) -> dict[int, str]:
    return {int(i): name for name, rows in plan.items() for i in rows}


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers(0, 15))),
        min_size=1,
        max_size=120,
    )
)
def test_no_cluster_and_no_module_straddles(tmp_path_factory, rows) -> None:
    path = tmp_path_factory.mktemp("split") / "t.parquet"
    names = [f"Module{m}" for m, _ in rows]
    clusters = [None if c is None else f"mc-{c}" for _, c in rows]
    pq.write_table(pa.table({"module_name": names, "module_cluster": clusters}), path)
    side = _sides(plan_splits(path, "module"))
    by_group: dict[str, set[str]] = {}
    for i, (name, cluster) in enumerate(zip(names, clusters, strict=True)):
        by_group.setdefault(name, set()).add(side[i])
        if cluster is not None:
            by_group.setdefault(cluster, set()).add(side[i])
    assert all(len(s) == 1 for s in by_group.values())


def test_a_module_alone_in_its_cluster_keeps_its_names_side(tmp_path: Path) -> None:
    names = [f"Module{i}" for i in range(60)]
    path = tmp_path / "t.parquet"
    clusters = [f"mc-{i}" for i in range(60)]
    pq.write_table(pa.table({"module_name": names, "module_cluster": clusters}), path)
    validation = {names[i] for i in plan_splits(path, "module")["validation"]}
    assert validation == {n for n in names if module_in_validation(n)}
    # Module2 is in validation by its own hash; joined with Module1 (train), both
    # follow the smaller name
    clusters[2] = clusters[1]
    pq.write_table(pa.table({"module_name": names, "module_cluster": clusters}), path)
    assert split_keys(path)[2] == "Module1"
    assert "Module2" not in {names[i] for i in plan_splits(path, "module")["validation"]}
