"""Rows nested deeper than kbpipe reads are one clear error (or a reject), never a
RecursionError traceback nor a DuckDB INTERNAL/FATAL error in a later step."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.cli import main
from kbpipe.io.tables import MAX_NESTING


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def rollouts(sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    monkeypatch.chdir(tmp_path)
    lines = (sample_dir / "kernelbook-env.jsonl").read_text().splitlines()[:30]
    return [json.loads(line) for line in lines]


def write(rows: list[dict], path: str) -> str:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # json.dumps recurses too
    try:
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    finally:
        sys.setrecursionlimit(limit)
    return path


@pytest.mark.parametrize("depth", [5000, 200])
def test_convert_names_the_deep_line_and_rejects_it_under_skip_bad(
    rollouts: list[dict], depth: int, capsys: pytest.CaptureFixture[str]
) -> None:
    rollouts[7]["info"]["deep"] = nested(depth)
    source = write(rollouts, "in.jsonl")
    assert main(["convert", source, "-o", "e.parquet", "--no-upload"]) == 1
    err = capsys.readouterr().err
    example_id = rollouts[7]["example_id"]
    assert f"line 8 (example_id {example_id}): nests deeper than {MAX_NESTING}" in err
    assert "\n" not in err.strip() and not Path("e.parquet").exists()

    assert main(["convert", source, "-o", "e.parquet", "--no-upload", "--skip-bad"]) == 0
    [reject] = [json.loads(x) for x in Path("e.rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 8 and reject["reason"] == "too deep"
    assert pq.read_metadata("e.parquet").num_rows == 29
    # The kept rows are fine for the DuckDB steps downstream.
    assert (
        main(["filter", "--rater", "none", "-i", "e.parquet", "-o", "f.parquet", "--no-upload"])
        == 0
    )


def test_a_deep_parquet_from_elsewhere_is_refused_before_duckdb_reads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    deep = pa.array([nested(200)] * 3)
    table = pa.table(
        {
            "example_id": [1, 2, 3],
            "reward": [0.9, 0.95, 0.99],
            "info": pa.StructArray.from_arrays(
                [pa.array(["A", "B", "C"]), deep], ["module_name", "deep"]
            ),
        }
    )
    pq.write_table(table, tmp_path / "deep.parquet")
    argv = ["filter", "--rater", "none", "-i", "deep.parquet", "-o", "f.parquet", "--no-upload"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "deep.parquet: column 'info' nests" in err and f"at most {MAX_NESTING}" in err
