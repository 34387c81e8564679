"""Step 3 dedupe: best reward per info.module_name, the seed's tie and order rules."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.tables import sidecar
from kbpipe.steps.dedupe import dedupe


def ids(path: Path) -> list[int]:
    return pq.read_table(path, columns=["example_id"])["example_id"].to_pylist()


def test_keeps_best_per_module_first_on_tie_sorted_by_reward(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [
        evals_row(0, 0.90, "Add"),
        evals_row(1, 0.95, "Mul"),
        evals_row(2, 0.95, "Add"),  # beats row 0
        evals_row(3, 0.95, "Add"),  # ties row 2, which came first
        evals_row(4, 0.99, "Conv"),
        evals_row(5, 0.86, "Relu"),
        evals_row(6, 0.86, "Relu"),
    ]
    out = tmp_path / "unique.parquet"

    result = dedupe(to_parquet(rows, tmp_path / "filtered.parquet"), out, settings)

    # Equal rewards (Add, Mul at 0.95) keep the order their modules first appear:
    # Add (row 0) before Mul (row 1), although Add's winner is row 2.
    assert ids(out) == [4, 2, 1, 5]
    assert (result.rows_in, result.rows_out) == (7, 4)
    assert result.dropped == {"duplicate_module": 3}
    assert pq.read_table(out).to_pylist()[1] == rows[2]


def test_metrics_and_cli_print_the_module_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evals_row, to_parquet, run_step
) -> None:
    rows = [
        evals_row(0, 0.9, "Añadir", difficulty="low"),
        evals_row(1, 0.0, "Zero", difficulty=None),
        evals_row(2, 0.7, "Añadir", difficulty="high"),
    ]
    src = to_parquet(rows, tmp_path / "filtered.parquet")
    out = tmp_path / "unique.parquet"
    assert run_step("dedupe", "-i", str(src), "-o", str(out), outputs=tmp_path) == 0

    printed = capsys.readouterr().out
    assert "Original entries:          3" in printed
    assert "Unique modules (kept):     2" in printed
    assert "Entries removed:           1" in printed
    assert "Reduction:                 33.3%" in printed
    assert "Entries with valid score:  1" in printed
    assert "Entries with score = 0:    1" in printed
    assert f"   1. {'Añadir':40s} score=0.90 d=low" in printed
    assert f"   2. {'Zero':40s} score=0.00 d=N/A" in printed
    stats = json.loads(sidecar(out, "stats").read_text())
    assert stats["dropped"] == {"duplicate_module": 1}
    assert stats["metrics"]["valid_score_max"] == 0.9
    assert stats["metrics"]["top"][0] == {
        "module_name": "Añadir",
        "reward": 0.9,
        "difficulty": "low",
    }


def test_null_module_names_form_one_group(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [evals_row(0, 0.9, None), evals_row(1, 0.95, None), evals_row(2, 0.9, "A")]
    out = tmp_path / "unique.parquet"
    dedupe(to_parquet(rows, tmp_path / "f.parquet"), out, settings)
    assert ids(out) == [1, 2]


def test_null_or_nan_reward_is_an_error_naming_the_rows(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [evals_row(0, 0.9), evals_row(1, None), evals_row(2, float("nan"))]
    src = to_parquet(rows, tmp_path / "filtered.parquet")
    out = tmp_path / "unique.parquet"
    with pytest.raises(InputError, match=r"null or NaN for 2 row\(s\).*example_id 1, 2$"):
        dedupe(src, out, settings)
    assert not out.exists()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (None, "missing column 'info'"),
        (
            {"name": "Add"},
            "column 'info' has type STRUCT\\(\"name\" VARCHAR\\); expected a "
            "struct with a 'module_name' field",
        ),
    ],
)
def test_missing_module_name_is_an_error_naming_the_column(
    tmp_path: Path, settings: Settings, evals_row, info: dict | None, message: str
) -> None:
    row = {k: v for k, v in evals_row(0).items() if k != "info"}
    if info is not None:
        row["info"] = info
    src = tmp_path / "filtered.parquet"
    pq.write_table(pa.Table.from_pylist([row]), src)
    with pytest.raises(InputError, match=f"{src}: {message}"):
        dedupe(src, tmp_path / "u.parquet", settings)


def test_limit_reads_only_the_first_rows(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [evals_row(0, 0.9, "A"), evals_row(1, 0.9, "B"), evals_row(2, 1.0, "A")]
    out = tmp_path / "unique.parquet"
    result = dedupe(to_parquet(rows, tmp_path / "f.parquet"), out, settings, limit=2)
    assert ids(out) == [0, 1]
    assert result.rows_in == 2


# -- property: the seed's script on random tables --------------------------------


def seed_dedupe(entries: list[dict]) -> list[int]:
    """scripts/filter_unique_best.py, minus its I/O."""
    best_by_module: dict = {}
    for entry in entries:
        module_name = entry["info"]["module_name"]
        score = entry["reward"]
        if module_name not in best_by_module or score > best_by_module[module_name][1]:
            best_by_module[module_name] = (entry, score)
    best = [entry for entry, _ in best_by_module.values()]
    best.sort(key=lambda e: e["reward"], reverse=True)
    return [e["example_id"] for e in best]


@hsettings(max_examples=40, deadline=None)
@given(
    table=st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", "Dé", "E", None]),
            st.sampled_from([0.0, 0.5, 0.85, 0.9, 0.95, 1.0]) | st.floats(0, 1),
        ),
        min_size=1,
        max_size=40,
    ),
    n_files=st.integers(min_value=1, max_value=3),
)
def test_dedupe_matches_the_seed_script(
    evals_row, to_parquet, table: list[tuple], n_files: int
) -> None:
    rows = [evals_row(i, reward, module) for i, (module, reward) in enumerate(table)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shards = [s for s in (rows[i::n_files] for i in range(n_files)) if s]
        paths = [to_parquet(s, folder / f"part{i}.parquet") for i, s in enumerate(shards)]
        out = folder / "unique.parquet"

        dedupe(paths, out, Settings(output_dir=folder))

        assert ids(out) == seed_dedupe([r for s in shards for r in s])


# -- --require-verified: the best verified row per module --------------------------


def verified_table(path: Path, pairs: list[tuple[int, bool | None]]) -> Path:
    """A stand-in for verify's output: the columns --require-verified reads."""
    pq.write_table(
        pa.table(
            {
                "example_id": pa.array([i for i, _ in pairs], pa.int64()),
                "verified": pa.array([v for _, v in pairs], pa.bool_()),
            }
        ),
        path,
    )
    return path


def test_require_verified_chooses_among_verified_rows_only(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [
        evals_row(0, 0.99, "Add"),  # best Add, failed verify
        evals_row(1, 0.90, "Add"),
        evals_row(2, 0.95, "Mul"),
        evals_row(3, 0.95, "Relu"),  # only Relu row, not verified
        evals_row(4, 0.90, "Conv"),  # absent from the verified table
        evals_row(5, 0.95, "Add"),  # verified but null: not verified
    ]
    checked = [(0, False), (1, True), (2, True), (3, False), (5, None)]
    src = to_parquet(rows, tmp_path / "filtered.parquet")
    out = tmp_path / "unique.parquet"

    result = dedupe(src, out, settings, verified=verified_table(tmp_path / "v.parquet", checked))

    assert ids(out) == [2, 1]
    assert (result.rows_in, result.rows_out) == (6, 2)
    assert result.dropped == {"not_verified": 4}
    assert result.metrics["n_verified_rows"] == 2
    stats = json.loads(sidecar(out, "stats").read_text())
    assert stats["params"]["verified"] == str(tmp_path / "v.parquet")
    assert pq.read_table(out).column_names == pq.read_table(src).column_names


def test_rollouts_sharing_an_example_id_are_paired_in_order(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    # Several rollouts of one example carry its example_id: the n-th here is the n-th there.
    rows = [evals_row(7, 0.99, "Add"), evals_row(7, 0.90, "Add"), evals_row(7, 0.95, "Add")]
    rows = [{**r, "answer": f"rollout {n}"} for n, r in enumerate(rows)]
    checked = verified_table(tmp_path / "v.parquet", [(7, False), (7, True), (7, True)])
    out = tmp_path / "unique.parquet"
    dedupe(to_parquet(rows, tmp_path / "f.parquet"), out, settings, verified=checked)
    assert pq.read_table(out, columns=["answer"])["answer"].to_pylist() == ["rollout 2"]


def test_a_verified_table_missing_some_rollouts_of_an_example_is_an_error(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    # verify --drop-failed kept one of two rollouts of example 7: which one is unknown.
    rows = [evals_row(7, 0.99, "Add"), evals_row(7, 0.9, "Add"), evals_row(8, 0.9, "Mul")]
    checked = verified_table(tmp_path / "v.parquet", [(7, True), (8, True)])
    out = tmp_path / "unique.parquet"
    with pytest.raises(InputError, match=r"v\.parquet: has fewer rows .* example_id 7, each"):
        dedupe(to_parquet(rows, tmp_path / "f.parquet"), out, settings, verified=checked)
    assert not out.exists()


def test_require_verified_through_the_cli_reads_the_runs_verified_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evals_row, to_parquet, run_step
) -> None:
    rows = [evals_row(0, 0.9, "Add"), evals_row(1, 0.8, "Add"), evals_row(2, 0.9, "Mul")]
    (tmp_path / "m").mkdir()
    to_parquet(rows, tmp_path / "m" / "filtered_dataset.parquet")
    assert run_step("dedupe", "--require-verified", outputs=tmp_path) == 1
    assert "verified_dataset.parquet: no such file; --require-verified" in capsys.readouterr().err

    verified_table(tmp_path / "m" / "verified_dataset.parquet", [(0, False), (1, True), (2, True)])
    assert run_step("dedupe", "--require-verified", outputs=tmp_path) == 0
    printed = capsys.readouterr().out
    assert "  not verified:            1" in printed
    assert "dropped 1 (not_verified)" in printed
    assert ids(tmp_path / "m" / "unique_dataset.parquet") == [2, 1]


def test_verified_without_require_verified_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_step
) -> None:
    assert run_step("dedupe", "--verified", str(tmp_path / "v.parquet"), outputs=tmp_path) == 1
    assert "--verified names the table --require-verified reads" in capsys.readouterr().err


@hsettings(max_examples=40, deadline=None)
@given(
    table=st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", None]),
            st.sampled_from([0.5, 0.9, 0.95, 1.0]),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_require_verified_is_the_seed_script_on_the_verified_rows(
    evals_row, to_parquet, table: list[tuple]
) -> None:
    rows = [evals_row(i, reward, module) for i, (module, reward, _) in enumerate(table)]
    passed = [(i, ok) for i, (_, _, ok) in enumerate(table)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "unique.parquet"
        checked = verified_table(folder / "v.parquet", passed)
        result = dedupe(
            to_parquet(rows, folder / "f.parquet"),
            out,
            Settings(output_dir=folder),
            verified=checked,
        )
        kept = [r for r, (_, ok) in zip(rows, passed, strict=True) if ok]
        assert ids(out) == seed_dedupe(kept)
        assert result.dropped.get("not_verified", 0) == len(rows) - len(kept)
