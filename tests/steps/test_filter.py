"""Step 1's reward filter and `kbpipe filter --rater none`, on hand-written rows."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError
from kbpipe.io.tables import sidecar
from kbpipe.steps.filter import filter_step


def ids(path: Path) -> list[int]:
    return pq.read_table(path, columns=["example_id"])["example_id"].to_pylist()


def test_keeps_reward_strictly_above_threshold_in_input_order(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [
        evals_row(0, 0.9),
        evals_row(1, 0.85),
        evals_row(2, 0.850001),
        evals_row(3, 0.2),
        evals_row(4, 1.0),
        evals_row(5, 0.0),
    ]
    src = to_parquet(rows, tmp_path / "evals.parquet")
    out = tmp_path / "filtered.parquet"

    result = filter_step(src, out, settings, rater="none")

    assert ids(out) == [0, 2, 4]
    assert (result.rows_in, result.rows_out) == (6, 3)
    assert result.dropped == {"reward_at_or_below_threshold": 3}
    m = result.metrics["reward_filter"]
    assert (m["n_skipped"], m["pct_kept"]) == (3, 50.0)
    assert m["kept_reward_min"] == 0.850001 and m["kept_reward_max"] == 1.0
    assert m["kept_reward_mean"] == pytest.approx((0.9 + 0.850001 + 1.0) / 3)
    assert not sidecar(out, "rejects").exists()


def test_keeps_every_column_and_nested_type_and_adds_null_ratings(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    row = evals_row(7, 0.95, "Gélu", content="ü <answer>ß</answer>", split="train")
    src = to_parquet([row], tmp_path / "evals.parquet")
    out = tmp_path / "filtered.parquet"

    filter_step(src, out, settings, rater="none")

    table = pq.read_table(out)
    assert table.column_names == [*pq.read_schema(src).names, "difficulty", "evaluation_raw"]
    assert table.schema.field("completion").type.equals(
        pq.read_schema(src).field("completion").type
    )
    assert table.schema.field("difficulty").type == pa.string()
    assert table.to_pylist() == [{**row, "difficulty": None, "evaluation_raw": None}]


def test_existing_ratings_are_kept(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [
        evals_row(0, 0.95, difficulty="high", evaluation_raw="<difficulty>high</difficulty>"),
        evals_row(1, 0.5, difficulty="low", evaluation_raw="<difficulty>low</difficulty>"),
    ]
    out = tmp_path / "refiltered.parquet"
    filter_step(to_parquet(rows, tmp_path / "filtered.parquet"), out, settings, rater="none")
    assert pq.read_table(out).select(["difficulty", "evaluation_raw"]).to_pylist() == [
        {"difficulty": "high", "evaluation_raw": "<difficulty>high</difficulty>"}
    ]


def test_null_and_nan_rewards_go_to_rejects_with_the_reason(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [evals_row(0, None), evals_row(1, 0.99), evals_row(2, float("nan"))]
    out = tmp_path / "filtered.parquet"

    result = filter_step(to_parquet(rows, tmp_path / "e.parquet"), out, settings, rater="none")

    assert ids(out) == [1]
    assert result.dropped == {"reward_missing": 2}
    rejects = [json.loads(line) for line in sidecar(out, "rejects").read_text().splitlines()]
    assert [(r["example_id"], r["reason"]) for r in rejects] == [
        (0, "reward is null"),
        (2, "reward is NaN"),
    ]
    assert rejects[0]["completion"] == rows[0]["completion"]
    assert result.rejects == sidecar(out, "rejects")


def test_limit_keeps_the_first_passing_rows(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [evals_row(i, 0.5 if i % 2 else 0.9) for i in range(10)]
    out = tmp_path / "filtered.parquet"

    result = filter_step(
        to_parquet(rows, tmp_path / "e.parquet"), out, settings, rater="none", limit=3
    )

    assert ids(out) == [0, 2, 4]
    assert result.dropped == {"reward_at_or_below_threshold": 5, "beyond_limit": 2}
    with pytest.raises(ConfigError, match="--limit"):
        filter_step(tmp_path / "e.parquet", out, settings, rater="none", limit=0)


def test_several_input_files_are_read_in_the_order_given(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    second = to_parquet([evals_row(i, 0.9) for i in (10, 11)], tmp_path / "b.parquet")
    first = to_parquet([evals_row(i, 0.9) for i in (20, 21, 22)], tmp_path / "a.parquet")
    out = tmp_path / "filtered.parquet"
    filter_step([second, first], out, settings, rater="none", limit=4)
    assert ids(out) == [10, 11, 20, 21]


def test_jsonl_input_and_output(tmp_path: Path, settings: Settings, evals_row) -> None:
    src = tmp_path / "evals.jsonl"
    src.write_text("".join(json.dumps(evals_row(i, r)) + "\n" for i, r in enumerate([1, 0.3, 0.9])))
    out = tmp_path / "filtered.jsonl"
    filter_step(src, out, settings, rater="none")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["example_id"] for r in rows] == [0, 2]
    assert rows[0]["info"]["module_name"] == "Add" and rows[0]["difficulty"] is None


def test_no_passing_rows_writes_an_empty_table_with_the_schema(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    out = tmp_path / "filtered.parquet"
    result = filter_step(
        to_parquet([evals_row(0, 0.1)], tmp_path / "e.parquet"), out, settings, rater="none"
    )
    assert result.rows_out == 0
    assert pq.read_table(out).num_rows == 0
    assert "difficulty" in pq.read_schema(out).names


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"example_id": 0, "reward": "0.9"}],
            "column 'reward' has type VARCHAR; expected a number",
        ),
        ([{"example_id": 0, "score": 0.9}], "missing column 'reward'"),
        ([], "no rows"),
    ],
)
def test_bad_input_is_a_clear_error_and_leaves_no_output(
    tmp_path: Path, settings: Settings, rows: list[dict], message: str
) -> None:
    src = tmp_path / "evals.parquet"
    schema = pa.schema([("example_id", pa.int64()), ("reward", pa.float64())])
    table = pa.Table.from_pylist(rows) if rows else pa.Table.from_pylist([], schema=schema)
    pq.write_table(table, src)
    out = tmp_path / "filtered.parquet"
    with pytest.raises(InputError, match=message) as exc:
        filter_step(src, out, settings, rater="none")
    assert str(src) in str(exc.value)
    assert list(tmp_path.iterdir()) == [src]


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path, settings: Settings) -> None:
    src = tmp_path / "evals.parquet"
    src.write_text('{"example_id": 0}\n')
    with pytest.raises(InputError, match=f"{src}: not a Parquet file"):
        filter_step(src, tmp_path / "out.parquet", settings, rater="none")
    assert not (tmp_path / "out.parquet").exists()


def test_malformed_jsonl_is_named(tmp_path: Path, settings: Settings, evals_row) -> None:
    src = tmp_path / "evals.jsonl"
    src.write_text(json.dumps(evals_row(0)) + '\n{"example_id": 1, "reward": \n')
    with pytest.raises(InputError, match=str(src)):
        filter_step(src, tmp_path / "out.parquet", settings, rater="none")
    assert not (tmp_path / "out.parquet").exists()


def test_cli_rater_none_prints_the_seed_metrics_and_writes_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evals_row, to_parquet, run_step
) -> None:
    src = to_parquet(
        [evals_row(i, r) for i, r in enumerate([0.9, 0.85, 0.99, 0.1])], tmp_path / "evals.parquet"
    )
    out_dir = tmp_path / "outputs"
    argv = ["-i", str(src), "--rater", "none", "--threshold", "0.5"]

    assert run_step("filter", *argv, outputs=out_dir) == 0

    out = capsys.readouterr().out
    assert "Total samples in dataset:     4" in out
    assert "Reward threshold:             > 0.5" in out
    assert "Samples passing threshold:    3" in out
    assert "Samples skipped:              1" in out
    assert "Percentage to evaluate:       75.0%" in out
    assert "Min reward:  0.8500" in out and "Max reward:  0.9900" in out
    dest = out_dir / "m" / "filtered_dataset.parquet"
    assert ids(dest) == [0, 1, 2]
    stats = json.loads(sidecar(dest, "stats").read_text())
    assert stats["params"]["reward_threshold"] == 0.5
    assert (stats["rows_in"], stats["rows_out"]) == (4, 3)
    assert stats["inputs"][0]["path"] == str(src) and len(stats["inputs"][0]["sha256"]) == 64


# -- property: the seed's rule on random tables ---------------------------------

REWARDS = st.one_of(
    st.sampled_from([0.0, 0.5, 0.85, 0.8500000000000001, 0.8499999999999999, 0.9, 1.0]),
    st.floats(min_value=0, max_value=1),
    st.just(float("nan")),
    st.none(),
)


def seed_filter(rows: list[dict], threshold: float, limit: int | None) -> list[int]:
    """The seed: `[s for s in ds if s["reward"] > T]`, then TEST_MODE's first N.

    A null reward made the seed crash; kbpipe rejects it instead, so the model skips it.
    """
    kept = [r["example_id"] for r in rows if r["reward"] is not None and r["reward"] > threshold]
    return kept if limit is None else kept[:limit]


@hsettings(max_examples=40, deadline=None)
@given(
    rewards=st.lists(REWARDS, min_size=1, max_size=30),
    threshold=st.sampled_from([0.0, 0.5, 0.85, 0.9, 1.0]),
    limit=st.one_of(st.none(), st.integers(min_value=1, max_value=10)),
    n_files=st.integers(min_value=1, max_value=3),
)
def test_reward_filter_matches_the_seed_rule(
    evals_row, to_parquet, rewards: list, threshold: float, limit: int | None, n_files: int
) -> None:
    rows = [evals_row(i, r) for i, r in enumerate(rewards)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shards = [rows[i::n_files] for i in range(n_files)]
        shards = [s for s in shards if s]
        paths = [to_parquet(s, folder / f"part{i}.parquet") for i, s in enumerate(shards)]
        in_order = [r for s in shards for r in s]
        out = folder / "out.parquet"
        settings = Settings(output_dir=folder, reward_threshold=threshold)

        result = filter_step(paths, out, settings, rater="none", limit=limit)

        expected = seed_filter(in_order, threshold, limit)
        assert ids(out) == expected
        n_missing = sum(r is None or (isinstance(r, float) and math.isnan(r)) for r in rewards)
        assert result.dropped.get("reward_missing", 0) == n_missing
        assert result.rows_in == len(rows) == result.rows_out + result.n_dropped


# Run in a fresh interpreter: what the test session imported says nothing about the command.
_IMPORTED_BY_COMMAND = """
import sys
from kbpipe.cli import main
code = main(sys.argv[1:])
print(sorted({m.split(".")[0] for m in sys.modules}))
sys.exit(code)
"""


def test_rater_none_imports_neither_the_rater_engine_nor_dataframes(
    tmp_path: Path, evals_row, to_parquet
) -> None:
    """`--rater none` is a DuckDB step: aiohttp, polars and pyarrow are start-up it does not
    need."""
    import subprocess
    import sys

    src = to_parquet([evals_row(0, 0.9), evals_row(1, 0.1)], tmp_path / "evals.parquet")
    out = tmp_path / "filtered.parquet"
    argv = ["filter", "--rater", "none", "-i", str(src), "-o", str(out), "--no-upload"]
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTED_BY_COMMAND, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    imported = set(json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"')))

    assert ids(out) == [0]
    assert {"duckdb", "kbpipe"} <= imported
    assert not imported & {"aiohttp", "yarl", "polars", "pyarrow", "numpy", "tqdm", "jinja2"}
