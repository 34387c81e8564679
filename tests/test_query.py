"""`kbpipe query`: one view per output of the run, results on screen or saved."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.cli import main


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """outputs/m with a filtered and a unique table, a stats file and a rejects file."""
    folder = tmp_path / "outputs" / "m"
    folder.mkdir(parents=True)
    filtered = pa.table(
        {
            "example_id": [0, 1, 2, 3],
            "reward": [0.9, 0.95, 1.0, 0.9],
            "difficulty": ["low", "high", "low", None],
            "info": [{"module_name": n} for n in ("A", "B", "A", "C")],
        }
    )
    pq.write_table(filtered, folder / "filtered_dataset.parquet")
    pq.write_table(filtered.slice(1, 2), folder / "unique_dataset.parquet")
    pq.write_table(pa.table({"n_tokens": [10, 20]}), folder / "seqlen_filtered.parquet")
    (folder / "filtered_dataset.parquet.stats.json").write_text(
        json.dumps({"step": "filter", "rows_in": 6, "rows_out": 4})
    )
    (folder / "filtered_dataset.rejects.jsonl").write_text(
        json.dumps({"reason": "reward is null", "example_id": 9}) + "\n"
    )
    (folder / ".filtered_dataset.parquet.abc.tmp").write_text("half-written")
    return folder


def query(tmp_path: Path, *args: str) -> int:
    return main(
        [
            "query",
            *args,
            "--output-dir",
            str(tmp_path / "outputs"),
            "--data-model",
            "m",
            "--env-file",
            str(tmp_path / "none"),
        ]
    )


def test_lists_one_view_per_output(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert query(tmp_path) == 0
    out = capsys.readouterr().out
    for view, rows in [
        ("filtered", 4),
        ("unique_rows", 2),
        ("seqlen_filtered", 2),
        ("seqlen", 2),
        ("filtered_rejects", 1),
        ("stats", 1),
    ]:
        assert f"│ {view:<16} ┆ {rows:<4} ┆" in out, view
    assert ".tmp" not in out


def test_prints_a_table_and_saves_csv_json_parquet(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = (
        "select difficulty, count(*) as n_rows from filtered "
        "group by 1 order by n_rows desc, difficulty nulls last"
    )
    assert query(tmp_path, sql) == 0
    out = capsys.readouterr().out
    assert "difficulty" in out and "│ low        │      2 │" in out

    assert query(tmp_path, sql, "--format", "csv") == 0
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == [
        ["difficulty", "n_rows"],
        ["low", "2"],
        ["high", "1"],
        ["", "1"],
    ]

    expected = [("low", 2), ("high", 1), (None, 1)]
    for name in ("r.parquet", "r.jsonl", "r.csv"):
        assert query(tmp_path, sql, "-o", str(tmp_path / name)) == 0
    assert [
        tuple(r.values()) for r in pq.read_table(tmp_path / "r.parquet").to_pylist()
    ] == expected
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [tuple(json.loads(x).values()) for x in lines] == expected
    assert (tmp_path / "r.csv").read_text().splitlines()[:2] == ["difficulty,n_rows", "low,2"]


def test_views_reach_nested_fields_stats_and_rejects(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = (
        "select (select string_agg(info.module_name, ',') from \"unique\") as names, "
        "(select rows_out from stats) as kept, (select example_id from filtered_rejects) as rej"
    )
    assert query(tmp_path, sql, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"names": "B,A", "kept": 4, "rej": 9}


def test_bad_sql_is_a_one_line_error_listing_the_views(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert query(tmp_path, "select * from nope") == 1
    err = capsys.readouterr().err
    assert err.startswith("kbpipe query: error: query failed: Catalog Error")
    assert "views: filtered, seqlen_filtered, unique_rows, seqlen, filtered_rejects, stats" in err


def test_init_script_recreates_the_views_in_a_fresh_duckdb(
    tmp_path: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "views.sql"
    monkeypatch.chdir(tmp_path)  # the script holds absolute paths, so any cwd works
    assert query(tmp_path, "--init-script", str(script)) == 0
    con = duckdb.connect()
    con.execute(script.read_text())
    assert con.sql("select count(*) from filtered").fetchall() == [(4,)]
    assert con.sql("select reason from filtered_rejects").fetchall() == [("reward is null",)]


def test_no_outputs_yet_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert query(tmp_path) == 0
    assert "no outputs in" in capsys.readouterr().out
    assert query(tmp_path, "select 41 + 1 as answer", "--format", "csv") == 0
    assert capsys.readouterr().out == "answer\n42\n"


def test_a_broken_file_costs_its_view_only(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "unique_dataset.parquet").write_bytes(b"PAR1 half a file")
    assert query(tmp_path, "select count(*) as n from filtered", "--format", "csv") == 0
    captured = capsys.readouterr()
    assert captured.out == "n\n4\n"
    assert f"no view 'unique_rows': {run_dir / 'unique_dataset.parquet'}:" in captured.err
    assert "no view 'unique':" not in captured.err  # its quoted alias is not listed


# --- the documented queries run as written; nested CSV is JSON ---------------------------


def _help_queries() -> list[str]:
    from kbpipe.commands.query import EXAMPLES

    return [
        line.split('"')[1]
        for line in EXAMPLES.splitlines()
        if line.strip().startswith('kbpipe query "')
    ]


@pytest.mark.parametrize("sql", _help_queries())
def test_the_help_examples_run_as_written(
    tmp_path: Path, run_dir: Path, sql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert query(tmp_path, sql, "--format", "json") == 0, capsys.readouterr().err


def test_unique_needs_no_quotes_and_the_quoted_name_still_works(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for sql in ("select count(*) as n from unique_rows", 'select count(*) as n from "unique"'):
        assert query(tmp_path, sql, "--format", "csv") == 0
        assert capsys.readouterr().out == "n\n2\n"


@pytest.mark.parametrize("dest", ["-", "nested.csv"])
def test_nested_columns_go_to_csv_as_json_text(
    tmp_path: Path, run_dir: Path, dest: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "select example_id, info, [reward, reward] as pair from filtered order by 1 limit 2"
    args = ("-o", str(tmp_path / dest)) if dest != "-" else ("--format", "csv")
    assert query(tmp_path, sql, *args) == 0
    text = capsys.readouterr().out if dest == "-" else (tmp_path / dest).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [json.loads(r["info"]) for r in rows] == [{"module_name": "A"}, {"module_name": "B"}]
    assert json.loads(rows[1]["pair"]) == [0.95, 0.95]
