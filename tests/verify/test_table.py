"""verify_table end to end with the stand-in runner: columns, rejects, the journal, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.verify.pool import STANDIN_RUNNER, LocalPool, PoolOptions
from kbpipe.verify.table import RESULT_COLUMNS, VerifyOptions, verify_table

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "class Mod:\n    pass\n"
PASS = "def check():\n    return True\n"
FAIL = "def check():\n    return False\n"
HANG = "def check():\n    while True:\n        pass\n"


def row(example_id: int, code: str | None, module: str = "Mod") -> dict[str, Any]:
    content = "no code here" if code is None else f"<answer>\n{code}# row {example_id}\n</answer>"
    return {
        "example_id": example_id,
        "completion": [{"role": "assistant", "content": content}],
        "info": {"module_name": module, "python_code": REFERENCE},
        "reward": 0.9,
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def options(tmp_path: Path, **overrides: Any) -> VerifyOptions:
    base = {
        "runner": STANDIN_RUNNER,
        "workers_per_gpu": 2,
        "timeout_s": 2.0,
        "journal_path": tmp_path / "journal.jsonl",
    }
    return VerifyOptions(**(base | overrides))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rows = [row(0, PASS), row(1, FAIL), row(2, None), row(3, PASS, module="Other")]
    rows.append(row(4, PASS) | {"info": {"module_name": "Mod", "python_code": ""}})
    return write_rows(tmp_path / "in.parquet", rows)


def test_output_is_the_input_plus_the_result_columns(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    summary = verify_table(table, out, options(tmp_path))
    result = pq.read_table(out)
    assert result.column_names == ["example_id", "completion", "info", "reward", *RESULT_COLUMNS]
    rows = result.to_pylist()
    assert [r["example_id"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["verified"] for r in rows] == [True, False, False, True, False]
    assert [r["verify_error"] for r in rows][1:3] == ["mismatch", "no_answer"]
    assert rows[4]["verify_error"].startswith("no_reference")
    assert rows[0]["gpu_name"] == "cpu-standin"
    assert summary["failed_by_reason"] == {"mismatch": 1, "no_answer": 1, "no_reference": 1}
    assert (summary["rows_in"], summary["rows_out"], summary["n_verified"]) == (5, 5, 2)


def test_every_failed_row_is_in_the_rejects_file_with_its_reason(
    table: Path, tmp_path: Path
) -> None:
    verify_table(table, tmp_path / "out.parquet", options(tmp_path))
    lines = (tmp_path / "out.rejects.jsonl").read_text().splitlines()
    rejects = [json.loads(line) for line in lines]
    assert [(r["example_id"], r["reason"]) for r in rejects] == [
        (1, "mismatch"),
        (2, "no_answer"),
        (4, "no_reference"),
    ]


def test_drop_failed_keeps_only_verified_rows(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    summary = verify_table(table, out, options(tmp_path, drop_failed=True))
    assert pq.read_table(out, columns=["example_id"]).column(0).to_pylist() == [0, 3]
    assert summary["rows_out"] == 2 and summary["n_rejects"] == 3


def test_a_rerun_reads_every_result_from_the_journal(table: Path, tmp_path: Path) -> None:
    first = verify_table(table, tmp_path / "a.parquet", options(tmp_path))
    second = verify_table(table, tmp_path / "b.parquet", options(tmp_path))
    assert (first["n_run"], second["n_run"], second["n_cached"]) == (3, 0, 3)
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))
    changed = verify_table(table, tmp_path / "c.parquet", options(tmp_path, atol=1e-4))
    assert changed["n_run"] == 3  # a setting that changes verdicts is part of the key


class _StopsAfter:
    """An executor that is interrupted after `n` results, as Ctrl-C would."""

    def __init__(self, inner: LocalPool, n: int) -> None:
        self.inner, self.n = inner, n

    def start(self) -> list[dict[str, Any]]:
        return self.inner.start()

    def run(self, batches: Sequence[Any]) -> Iterator[tuple[dict, dict]]:
        for i, item in enumerate(self.inner.run(batches)):
            if i == self.n:
                raise KeyboardInterrupt
            yield item

    def close(self) -> None:
        self.inner.close()


def test_an_interrupted_run_resumes_from_the_journal(tmp_path: Path) -> None:
    rows = [row(i, PASS if i % 3 else FAIL) for i in range(12)]
    table = write_rows(tmp_path / "in.parquet", rows)
    pool = LocalPool(PoolOptions(scratch_dir=tmp_path / "s", runner=STANDIN_RUNNER))
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        verify_table(table, out, options(tmp_path), executor=_StopsAfter(pool, 5))
    assert not out.exists()
    journal_lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(journal_lines) == 5
    summary = verify_table(table, out, options(tmp_path))
    assert (summary["n_cached"], summary["n_run"], summary["n_verified"]) == (5, 7, 8)


def test_a_torn_journal_line_is_cut_and_the_row_run_again(table: Path, tmp_path: Path) -> None:
    verify_table(table, tmp_path / "a.parquet", options(tmp_path))
    journal = tmp_path / "journal.jsonl"
    text = journal.read_text()
    journal.write_text(text[: len(text) - 20])  # the last line lost its end in a kill
    summary = verify_table(table, tmp_path / "b.parquet", options(tmp_path))
    assert (summary["n_cached"], summary["n_run"]) == (2, 1)
    assert all(json.loads(line) for line in journal.read_text().splitlines())


def test_a_timeout_is_retried_only_with_a_longer_limit(tmp_path: Path) -> None:
    table = write_rows(tmp_path / "in.parquet", [row(0, HANG), row(1, PASS)])
    first = verify_table(table, tmp_path / "a.parquet", options(tmp_path, timeout_s=1.0))
    assert first["failed_by_reason"] == {"timeout": 1}
    same = verify_table(table, tmp_path / "b.parquet", options(tmp_path, timeout_s=1.0))
    longer = verify_table(table, tmp_path / "c.parquet", options(tmp_path, timeout_s=1.5))
    assert (same["n_run"], longer["n_run"]) == (0, 1)


def test_equal_solutions_run_once(tmp_path: Path) -> None:
    same = {"role": "assistant", "content": f"<answer>{PASS}</answer>"}
    rows = [row(i, PASS) | {"completion": [same]} for i in range(4)]
    table = write_rows(tmp_path / "in.parquet", rows)
    summary = verify_table(table, tmp_path / "out.parquet", options(tmp_path))
    assert (summary["n_jobs"], summary["n_verified"]) == (1, 4)


def test_a_verified_table_can_be_verified_again_and_jsonl_works_both_ways(
    table: Path, tmp_path: Path
) -> None:
    verify_table(table, tmp_path / "once.jsonl", options(tmp_path))
    verify_table(tmp_path / "once.jsonl", tmp_path / "twice.parquet", options(tmp_path))
    twice = pq.read_table(tmp_path / "twice.parquet")
    assert twice.column_names.count("verified") == 1
    assert twice.column("verified").to_pylist() == [True, False, False, True, False]


def test_limit_verifies_the_first_rows_only(table: Path, tmp_path: Path) -> None:
    summary = verify_table(table, tmp_path / "out.parquet", options(tmp_path, limit=2))
    assert (summary["rows_in"], pq.read_metadata(tmp_path / "out.parquet").num_rows) == (2, 2)


def test_the_module_entry_runs_without_polars_duckdb_or_torch(table: Path, tmp_path: Path) -> None:
    # `import x` raises ImportError when sys.modules["x"] is None: as on the GPU machine.
    blocked = "import sys\nfor m in ('polars', 'duckdb', 'torch'):\n    sys.modules[m] = None\n"
    argv = [str(table), "-o", str(tmp_path / "out.parquet"), "--runner", "standin"]
    # the GPU check's own helpers too (bench/gpu_verify.sh runs them there)
    blocked += "import bench.verify_data, bench.bench_verify\n"
    script = blocked + f"import runpy\nsys.argv = ['kbpipe.verify', *{argv!r}]\n"
    script += "runpy.run_module('kbpipe.verify', run_name='__main__')\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "verified: 2 of 5 rows (40.0%)" in proc.stdout
    assert "failed 1 (mismatch)" in proc.stdout
    stats = json.loads((tmp_path / "out.parquet.stats.json").read_text())
    assert stats["n_verified"] == 2 and stats["step"] == "verify"


def test_a_missing_input_is_one_clear_error(tmp_path: Path) -> None:
    argv = [
        str(tmp_path / "nope.parquet"),
        "-o",
        str(tmp_path / "o.parquet"),
        "--runner",
        "standin",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "kbpipe.verify", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("nope.parquet: no such file")
