"""Kills and races around a step's outputs: no scratch left behind, table and stats
always a pair, a staged Hub folder never missing, one writer per output."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.reliability.helpers import KILL_AFTER, kbpipe_cmd, kbpipe_env, leftovers, run_kbpipe

KILLS = 4


@pytest.fixture(scope="module")
def big(evals: Path, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample 60 times over (14,400 rows): steps on it take long enough to be killed."""
    folder = tmp_path_factory.mktemp("big")
    table = folder / "big.parquet"
    duckdb.connect().execute(
        "copy (select * replace (example_id * 1000 + r.range as example_id) "
        "from read_parquet($src), range(60) r) to $dest (format parquet)",
        {"src": str(evals), "dest": str(table)},
    )
    lines = (sample_dir / "kernelbook-env.jsonl").read_bytes()
    jsonl = folder / "big.jsonl"
    jsonl.write_bytes(lines * 20)
    return {"parquet": table, "jsonl": jsonl}


def kill_soon(argv: list[str], cwd: Path, watch: Path, delay: float, prelude: str = "") -> None:
    """Start kbpipe, SIGKILL it `delay` seconds after it starts writing in `watch` (a
    scratch folder, or any other hidden temp file or folder, shows there)."""
    proc = subprocess.Popen(
        kbpipe_cmd(*argv, prelude=prelude),
        cwd=cwd,
        env=kbpipe_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 3
    while proc.poll() is None and time.monotonic() < deadline:
        if watch.is_dir() and any(p.name.startswith(".") for p in watch.iterdir()):
            break
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


# Small sort buckets, so dedupe goes through its bucket files as on a large table.
BUCKETS = (
    "import kbpipe.io.sql_output as so\n"
    "so.IN_MEMORY_SORT_BYTES = 0\n"
    "so.SORT_BUCKET_BYTES = 256 * 1024"
)

STEPS = {
    "convert": (["convert", "{jsonl}", "-o", "out/e.parquet"], ""),
    "dedupe": (["dedupe", "-i", "{parquet}", "-o", "out/u.parquet"], BUCKETS),
    "filter": (["filter", "--rater", "none", "-i", "{parquet}", "-o", "out/f.parquet"], ""),
    "upload": (["upload", "filtered", "-i", "{parquet}", "--dry-run", "out"], ""),
}


@pytest.mark.parametrize("step", STEPS)
def test_killed_runs_leave_nothing_once_the_next_run_is_done(
    step: str, big: dict, tmp_path: Path
) -> None:
    args, prelude = STEPS[step]
    argv = [a.format(**big) for a in args]
    argv += [] if step == "upload" else ["--no-upload"]
    (tmp_path / "out").mkdir()
    delays = random.Random(step).choices([0.0, 0.05, 0.1, 0.2, 0.4], k=KILLS)
    for delay in delays:
        kill_soon(argv, tmp_path, tmp_path / "out", delay, prelude)
    done = run_kbpipe(*argv, cwd=tmp_path, prelude=prelude)
    assert done.returncode == 0, done.stderr
    assert leftovers(tmp_path) == []


def stats_rows(table: Path) -> int | None:
    side = table.with_name(table.name + ".stats.json")
    return json.loads(side.read_text())["rows_out"] if side.exists() else None


def test_a_kill_between_table_and_stats_never_pairs_them_wrong(evals: Path, tmp_path: Path) -> None:
    out = tmp_path / "u.parquet"
    argv = ["filter", "--rater", "none", "-i", str(evals), "-o", str(out), "--no-upload"]
    assert run_kbpipe(*argv, "--threshold", "0.95", cwd=tmp_path).returncode == 0
    before = pq.read_metadata(out).num_rows
    assert stats_rows(out) == before

    killed = run_kbpipe(
        *argv,
        "--threshold",
        "0",
        cwd=tmp_path,
        prelude=KILL_AFTER.format(call="replace", target="u.parquet"),
    )
    assert killed.returncode == -signal.SIGKILL
    rows = pq.read_metadata(out).num_rows
    assert rows != before  # the new table is in place...
    assert stats_rows(out) in (None, rows)  # ...and never beside the old run's stats

    # The next run in the folder finishes the interrupted publish.
    other = ["filter", "--rater", "none", "-i", str(evals), "-o", str(tmp_path / "o.parquet")]
    assert run_kbpipe(*other, "--no-upload", cwd=tmp_path).returncode == 0
    assert stats_rows(out) == rows
    assert leftovers(tmp_path) == []


SWAP_THEN_DIE = """
import os, signal
try:
    import kbpipe.io.scratch as scratch
    _real_exchange = scratch._exchange
    def _exchange(a, b):
        swapped = _real_exchange(a, b)
        os.kill(os.getpid(), signal.SIGKILL)
        return swapped
    scratch._exchange = _exchange
except ImportError:
    pass
""" + KILL_AFTER.format(call="rename", target=".old")


def test_a_kill_while_swapping_in_a_staged_hub_folder_keeps_a_whole_folder(
    evals: Path, big: dict, tmp_path: Path
) -> None:
    repo = tmp_path / "hub" / "kernelbook-glm4_7-evals-filtered"
    argv = ["upload", "filtered", "--dry-run", "hub", "--split", "none", "-i"]
    assert run_kbpipe(*argv, str(evals), cwd=tmp_path).returncode == 0
    first = sorted(p.name for p in (repo / "data").iterdir())

    killed = run_kbpipe(*argv, str(big["parquet"]), cwd=tmp_path, prelude=SWAP_THEN_DIE)
    assert killed.returncode == -signal.SIGKILL
    assert (repo / "README.md").is_file()  # a whole folder, the old one or the new
    assert sorted(p.name for p in (repo / "data").iterdir()) == first

    again = run_kbpipe(*argv, str(big["parquet"]), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    ops = json.loads(repo.with_name(repo.name + ".operations.json").read_text())["operations"]
    assert [op for op in ops if op["op"] == "delete"] == []  # same layout: nothing stale
    assert leftovers(tmp_path) == []


SLOW_FILTER = """
import time
import kbpipe.steps.filter as step
_real = step.filter_step
def _slow(*args, **kwargs):
    time.sleep(1.5)
    return _real(*args, **kwargs)
step.filter_step = _slow
"""


def test_a_second_writer_of_the_same_output_is_refused(evals: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    argv = ["filter", "--rater", "none", "-i", str(evals), "-o", str(out), "--no-upload"]
    first = subprocess.Popen(
        kbpipe_cmd(*argv, "--threshold", "0.5", prelude=SLOW_FILTER),
        cwd=tmp_path,
        env=kbpipe_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = tmp_path / ".f.parquet.kbpipe-lock"
    deadline = time.monotonic() + 5
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    second = run_kbpipe(*argv, "--threshold", "0.9", cwd=tmp_path)
    assert first.wait(30) == 0, first.stderr.read()
    assert second.returncode == 1
    assert f"another kbpipe run (pid {first.pid}) is writing it" in second.stderr
    assert "Traceback" not in second.stderr
    assert stats_rows(out) == pq.read_metadata(out).num_rows
    assert (
        json.loads(out.with_name("f.parquet.stats.json").read_text())["params"]["reward_threshold"]
        == 0.5
    )
    assert leftovers(tmp_path) == []
    assert not os.path.exists(lock)
