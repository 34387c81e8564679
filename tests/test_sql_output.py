"""kbpipe.io.sql_output: relations written atomically, in order, with nested types intact."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.io import sql, sql_output


def test_write_relation_is_atomic_and_keeps_nested_types(tmp_path: Path, con) -> None:
    src = tmp_path / "in.parquet"
    table = pa.table(
        {
            "completion": [[{"role": "assistant", "content": "é", "reasoning": "r"}]],
            "info": [{"module_name": "Add", "python_code": "x"}],
        }
    )
    pq.write_table(table, src)
    sql.open_input(con, [src])
    rel = con.sql("select * exclude (input_row) from input_rows")

    for dest in (tmp_path / "out.parquet", tmp_path / "out.jsonl"):
        assert sql_output.write_relation(rel, dest) == 1

    assert pq.read_table(tmp_path / "out.parquet").equals(table)
    assert json.loads((tmp_path / "out.jsonl").read_text()) == table.to_pylist()[0]
    failing = con.sql(
        "select case when x > 1 then error('boom') else x end as x from range(5) t(x)"
    )
    with pytest.raises(Exception, match="boom"):
        sql_output.write_relation(failing, tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").equals(table), "old output left in place"
    # The open session's scratch folder (DuckDB spill) is the only other entry.
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".kbpipe-run-"))
    assert names == ["in.parquet", "out.jsonl", "out.parquet"]


# 1 and 7 rows per bucket go through the buckets; 1000 (50 rows of 32 KB in
# all) is small enough for DuckDB's own sort.
@pytest.mark.parametrize("bucket_rows", [1, 7, 1000])
@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_write_ordered_puts_rows_in_position_order_across_buckets(
    tmp_path: Path, con, bucket_rows: int, suffix: str
) -> None:
    positions = [(i * 37) % 50 for i in range(50)]  # a permutation of 0..49
    src = tmp_path / "in.parquet"
    rows = [
        {"output_row": p, "msg": [{"role": "assistant", "content": f"é{p}" * 50}], "k": {"n": p}}
        for p in positions
    ]
    pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=8)
    sql.open_input(con, [src])
    rel = con.sql("select * exclude (input_row) from input_rows")
    dest = tmp_path / f"out{suffix}"

    n = sql_output.write_ordered(
        con, rel, dest, n_rows=50, row_bytes=sql_output.SORT_BUCKET_BYTES // bucket_rows
    )

    if suffix == ".parquet":
        got = pq.read_table(dest).to_pylist()
    else:
        got = [json.loads(line) for line in dest.read_text().splitlines()]
    expected = [
        {k: v for k, v in r.items() if k != "output_row"}
        for r in sorted(rows, key=lambda r: r["output_row"])
    ]
    assert n == 50 and got == expected
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".kbpipe-sort-")]
    assert leftovers == []
