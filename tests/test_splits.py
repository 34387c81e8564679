"""Train/validation assignment (kbpipe.hub.splits) and shard writing (kbpipe.hub.shards)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbpipe.errors import InputError
from kbpipe.hub.shards import hub_schema, write_split_shards
from kbpipe.hub.splits import (
    legacy_split_indices,
    module_in_validation,
    plan_splits,
    split_from_path,
)


def write_rows(path: Path, names: list[str | None], *, text_bytes: int = 50) -> Path:
    """A table shaped like the evals table: example_id, info.module_name, reasoning text."""
    rng = random.Random(len(names))
    pl.DataFrame(
        {
            "example_id": list(range(len(names))),
            "info": [{"module_name": n, "python_code": "x = 1"} for n in names],
            "completion": [
                [{"role": "assistant", "content": rng.randbytes(text_bytes).hex()}] for _ in names
            ],
            "reward": [rng.random() for _ in names],
        },
        schema_overrides={"info": pl.Struct({"module_name": pl.String, "python_code": pl.String})},
    ).write_parquet(path, row_group_size=64)
    return path


def shard_ids(folder: Path, files: list[str]) -> list[int]:
    return [i for f in files for i in pq.read_table(folder / f).column("example_id").to_pylist()]


# --- legacy: datasets' train_test_split(test_size=0.1, seed=42) ------------------------


@pytest.mark.parametrize("n", [2, 5, 10, 11, 19, 240, 1001])
def test_legacy_split_matches_datasets_train_test_split(n: int) -> None:
    import datasets

    ds = datasets.Dataset.from_dict({"i": list(range(n))})
    expected = ds.train_test_split(test_size=0.1, seed=42)
    train, test = legacy_split_indices(n)
    assert train.tolist() == expected["train"]["i"]
    assert test.tolist() == expected["test"]["i"]


@pytest.mark.parametrize("n", [3, 10, 57, 5000])
def test_legacy_split_is_numpy_permutation_with_first_tenth_as_test(n: int) -> None:
    permutation = np.random.default_rng(42).permutation(n)
    n_test = -(-n // 10)  # ceil(0.1 * n) for these n
    train, test = legacy_split_indices(n)
    assert test.tolist() == permutation[:n_test].tolist()
    assert train.tolist() == permutation[n_test:].tolist()


def test_legacy_split_of_one_row_is_an_error_like_datasets() -> None:
    with pytest.raises(InputError, match="--split none"):
        legacy_split_indices(1)


def test_legacy_plan_keeps_permutation_order_in_shards(tmp_path: Path) -> None:
    table = write_rows(tmp_path / "t.parquet", [f"M{i % 7}" for i in range(300)])
    plan = plan_splits(table, "legacy")
    written = write_split_shards(table, plan, tmp_path / "repo", "data", max_shard_bytes=4000)
    train, test = legacy_split_indices(300)
    by_name = {s.name: s for s in written}
    assert shard_ids(tmp_path / "repo", by_name["train"].files) == train.tolist()
    assert shard_ids(tmp_path / "repo", by_name["validation"].files) == test.tolist()
    assert len(by_name["train"].files) > 1


# --- module: stable hash of info.module_name ---------------------------------------------


def test_module_assignment_is_fixed_by_the_name() -> None:
    # Golden list: changing the hash would silently move modules between splits.
    chosen = [f"Module{i}" for i in range(60) if module_in_validation(f"Module{i}")]
    assert chosen == ["Module2", "Module3", "Module4", "Module30", "Module31"]
    assert not module_in_validation(None)


def test_about_a_tenth_of_modules_go_to_validation() -> None:
    share = np.mean([module_in_validation(f"m{i}") for i in range(20_000)])
    assert 0.09 < share < 0.11


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(
        st.one_of(st.none(), st.sampled_from([f"Mod{i}" for i in range(40)])),
        min_size=1,
        max_size=120,
    ),
    seed=st.integers(0, 1000),
)
def test_module_split_never_puts_a_module_on_both_sides(
    tmp_path_factory: pytest.TempPathFactory, names: list[str | None], seed: int
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    plan = plan_splits(write_rows(folder / "a.parquet", names), "module")
    assert sorted(np.concatenate(list(plan.values())).tolist()) == list(range(len(names)))
    side = {}
    for split, rows in plan.items():
        for i in rows:
            assert side.setdefault(names[i], split) == split
    assert side.get(None, "train") == "train"
    # Re-sorting the table and adding rows does not move any module.
    shuffled = names[:] + [f"Mod{seed % 50}"]
    random.Random(seed).shuffle(shuffled)
    plan2 = plan_splits(write_rows(folder / "b.parquet", shuffled), "module")
    for split, rows in plan2.items():
        for i in rows:
            if shuffled[i] in side:
                assert side[shuffled[i]] == split


def test_module_split_reads_a_top_level_module_name(tmp_path: Path) -> None:
    path = tmp_path / "kb.parquet"
    names = [f"Module{i}" for i in range(60)]
    pq.write_table(pa.table({"module_name": names}), path)
    plan = plan_splits(path, "module")
    assert [names[i] for i in plan["validation"]] == [
        "Module2",
        "Module3",
        "Module4",
        "Module30",
        "Module31",
    ]


def test_module_split_without_module_names_says_what_to_use(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    with pytest.raises(InputError, match="--split legacy or --split none"):
        plan_splits(path, "module")


def test_empty_validation_is_left_out(tmp_path: Path) -> None:
    plan = plan_splits(write_rows(tmp_path / "t.parquet", ["Module0"] * 5), "module")
    assert list(plan) == ["train"]


def test_split_column_is_kept_and_not_published(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"example_id": [0, 1, 2, 3], "split": ["validation", "train"] * 2}), path
    )
    for mode in ("module", "legacy"):
        plan = plan_splits(path, mode)
        assert {k: v.tolist() for k, v in plan.items()} == {"train": [1, 3], "validation": [0, 2]}
    assert list(plan_splits(path, "none")) == ["train"]
    written = write_split_shards(path, plan_splits(path, "module"), tmp_path / "r", "data")
    assert pq.read_schema(tmp_path / "r" / written[0].files[0]).names == ["example_id"]


# --- shards -------------------------------------------------------------------------------


def test_shards_are_contiguous_sized_and_named_like_push_to_hub(tmp_path: Path) -> None:
    table = write_rows(tmp_path / "t.parquet", [f"M{i}" for i in range(500)], text_bytes=400)
    meta = pq.ParquetFile(table).metadata
    total = sum(
        meta.row_group(i).column(j).total_compressed_size
        for i in range(meta.num_row_groups)
        for j in range(meta.num_columns)
    )
    written = write_split_shards(
        table, plan_splits(table, "none"), tmp_path / "repo", "data", max_shard_bytes=total // 4 - 1
    )
    (train,) = written
    assert train.files == [f"data/train-{i:05d}-of-00005.parquet" for i in range(5)]
    counts = [pq.ParquetFile(tmp_path / "repo" / f).metadata.num_rows for f in train.files]
    assert counts == [100] * 5
    assert shard_ids(tmp_path / "repo", train.files) == list(range(500))
    assert train.num_examples == 500
    assert train.download_size == sum((tmp_path / "repo" / f).stat().st_size for f in train.files)


def test_published_schema_uses_datasets_string_and_list_types(tmp_path: Path) -> None:
    table = write_rows(tmp_path / "t.parquet", ["M"])
    assert pa.types.is_large_string(pq.read_schema(table).field("info").type[0].type)
    schema = hub_schema(pq.read_schema(table))
    assert schema.field("completion").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())])
    )
    assert schema.field("info").type[0].type == pa.string()


@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("data/train-00000-of-00002.parquet", "train"),
        ("data/validation-00001-of-00002.parquet", "validation"),
        ("test.jsonl", "test"),
        ("dev/part-0.parquet", "validation"),
        ("dataset_permissive.parquet", "train"),
        ("training_notes/x.parquet", "train"),
    ],
)
def test_split_from_path_follows_datasets_naming(path: str, split: str) -> None:
    assert split_from_path(path) == split
