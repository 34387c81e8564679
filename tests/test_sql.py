"""kbpipe.io.sql: the SQL files, input views, atomic writes of relations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.errors import ConfigError, InputError
from kbpipe.io import sql, sql_lean

ROOT = Path(__file__).resolve().parent.parent


def test_loader_reads_the_repo_sql_folder_then_the_packaged_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sql.sql_dir() == ROOT / "sql"
    assert sql.load("unique_best_per_module").startswith("-- grain: one row per info.module_name")

    packaged = tmp_path / "sql_files"
    packaged.mkdir()
    (packaged / "demo").mkdir()
    (packaged / "demo" / "answer.sql").write_text("-- grain: one row\nselect 42 as answer\n")
    monkeypatch.setattr(sql, "_SQL_DIRS", (tmp_path / "no-repo-sql", packaged))
    sql.load.cache_clear()
    sql._sql_files.cache_clear()
    try:
        assert sql.sql_dir() == packaged
        assert sql.run(sql.connect(), "answer").fetchall() == [(42,)]
    finally:
        sql.load.cache_clear()
        sql._sql_files.cache_clear()


@pytest.mark.parametrize("path", sorted((ROOT / "sql").glob("*/*.sql")), ids=lambda p: p.name)
def test_each_file_is_one_lowercase_statement_with_its_grain_first(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("-- grain: "), "the first line states the grain"
    code = "\n".join(line.split("--")[0] for line in text.splitlines())
    code = re.sub(r"'[^']*'", "''", code)  # string literals may hold anything
    assert code.strip().count(";") == 0, "one statement, no trailing separators"
    assert not re.search(r"\b(SELECT|FROM|WHERE|WITH|ORDER BY|GROUP BY)\b", code)
    if code.lstrip().startswith("create or replace macro"):
        # A macro the queries share, named as its file is.
        assert code.lstrip().startswith(f"create or replace macro {path.stem}(")
    else:
        assert re.search(r"^select \* from final$", code.strip().splitlines()[-1])


def test_wheel_ships_the_sql_files() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"sql" = "kbpipe/sql_files"' in pyproject


def test_open_input_numbers_rows_across_files_in_the_order_given(tmp_path: Path, con) -> None:
    b = tmp_path / "b.parquet"
    a = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), b, row_group_size=1)
    pq.write_table(pa.table({"x": [4, 5], "y": ["p", "q"]}), a)

    table = sql.open_input(con, [b, a])

    rows = con.sql("select x, y from input_rows order by input_row").fetchall()
    assert rows == [(1, None), (2, None), (3, None), (4, "p"), (5, "q")]
    assert table.n_rows == 5
    assert list(table.types) == ["x", "y"]
    assert table.label == f"{b} (+1 more files)"


def test_open_input_jsonl_keeps_line_order_and_nested_types(tmp_path: Path, con) -> None:
    src = tmp_path / "rows.jsonl"
    rows = [{"i": i, "m": [{"role": "user", "content": f"é{i}"}]} for i in range(5)]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    sql.open_input(con, [src], limit=3)

    got = con.sql("select i, m from input_rows order by input_row").fetchall()
    assert got == [(r["i"], r["m"]) for r in rows[:3]]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.parquet", b"PAR1 nope", "not a Parquet file"),
        ("t.jsonl", b"", "empty file"),
        ("t.csv", b"a,b\n", "unknown table format"),
    ],
)
def test_open_input_rejects_bad_files_naming_them(
    tmp_path: Path, con, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(str(path)) + f".*{message}"):
        sql.open_input(con, [path])


def test_open_input_rejects_missing_files_mixed_formats_and_bad_limits(tmp_path: Path, con) -> None:
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": [1]}), parquet)
    with pytest.raises(InputError, match="no such file"):
        sql.open_input(con, [tmp_path / "missing.parquet"])
    with pytest.raises(InputError, match="mix Parquet and JSONL"):
        sql.open_input(con, [parquet, tmp_path / "b.jsonl"])
    with pytest.raises(ConfigError, match="at least 1"):
        sql.open_input(con, [parquet], limit=0)


# -- open_lean_input: the messages cut to some fields, the rest of the row as is --

MESSAGES = pa.list_(
    pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning", pa.string())])
)


def _rollouts(ids: range, *, split: bool = False) -> pa.Table:
    columns = {
        "example_id": pa.array(list(ids), pa.int64()),
        "completion": pa.array(
            [[{"role": "assistant", "content": f"c{i} é", "reasoning": "r" * i}] for i in ids],
            MESSAGES,
        ),
        "info": pa.array([{"module_name": f"M{i % 3}"} for i in ids]),
    }
    if split:
        columns["split"] = pa.array(["train"] * len(ids))
    return pa.table(columns)


# What the lean view must equal: DuckDB's own rows, each message cut to role and content.
FULL_ROWS_CUT = """
    select * replace (
        list_transform(completion, lambda m: {'role': m.role, 'content': m.content}) as completion
    )
    from input_rows
    order by input_row
"""


@pytest.mark.parametrize("limit", [None, 4, 7])
def test_lean_input_streams_parquet_leaves_in_input_order(tmp_path: Path, con, limit) -> None:
    first, second = tmp_path / "b.parquet", tmp_path / "a.parquet"
    pq.write_table(_rollouts(range(5)), first, row_group_size=2)
    # pyarrow's non-compliant list naming spells the leaves completion.list.item.*
    pq.write_table(_rollouts(range(5, 9)), second, use_compliant_nested_type=False)
    table = sql.open_input(con, [first, second], limit=limit)
    expected = con.sql(FULL_ROWS_CUT).fetchall()

    assert sql_lean.open_lean_input(
        table, "lean", messages="completion", fields=("role", "content")
    )

    rel = con.sql("select * from lean")
    lean_message = duckdb.struct_type({"role": "VARCHAR", "content": "VARCHAR"})
    assert dict(zip(rel.columns, rel.types, strict=True))["completion"] == duckdb.list_type(
        lean_message
    )
    assert rel.fetchall() == expected
    assert len(expected) == (limit or 9)
    # One scan only: a second one fails loudly instead of finding no rows.
    with pytest.raises(Exception, match="already been consumed"):
        con.sql("select count(*) from lean").fetchall()


def test_lean_input_falls_back_to_the_plain_view(tmp_path: Path, con) -> None:
    # Files whose schemas differ: DuckDB unions them by name, pyarrow could not.
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(_rollouts(range(3)), first)
    pq.write_table(_rollouts(range(3, 5), split=True), second)
    table = sql.open_input(con, [first, second])
    assert not sql_lean.open_lean_input(table, "lean", messages="completion", fields=("role",))
    assert (
        con.sql("select * from lean").fetchall() == con.sql("select * from input_rows").fetchall()
    )

    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps({"completion": [{"role": "a", "content": "b"}]}) + "\n")
    table = sql.open_input(con, [jsonl])
    assert not sql_lean.open_lean_input(table, "lean", messages="completion", fields=("role",))
    assert con.sql("select completion from lean").fetchall() == [([{"role": "a", "content": "b"}],)]


def test_format_ids_lists_twenty_then_counts_the_rest() -> None:
    assert sql.format_ids([1, 2]) == "1, 2"
    assert sql.format_ids(list(range(25))) == ", ".join(map(str, range(20))) + " and 5 more"
    assert (
        sql.format_ids(list(range(20)), total=30) == ", ".join(map(str, range(20))) + " and 10 more"
    )
