"""Twenty SIGKILLs across one rated `kbpipe filter` against a server with 10 % faults.

At the end every row is rated, no answer was paid for twice except those in
flight at a kill, and no scratch folder, temp file or lock is left.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import polars as pl

from kbpipe.testing.openai_server import ServerThread
from tests.reliability.helpers import kbpipe_cmd, kbpipe_env, leftovers, run_kbpipe

KILLS = 20
CONCURRENCY = 4
FAULTS = {"429": 0.03, "500": 0.03, "drop": 0.02, "malformed": 0.02}


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_until_progress_then_kill(argv: list[str], cwd: Path, journal: Path, pause: float) -> bool:
    """Start the run; SIGKILL it `pause` s after its first new answer. False if it finished."""
    before = lines(journal)
    proc = subprocess.Popen(
        kbpipe_cmd(*argv),
        cwd=cwd,
        env=kbpipe_env(KBPIPE_API_KEY="sk-soak"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while lines(journal) == before and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)
    time.sleep(pause)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return True


def test_twenty_kills_lose_nothing_paid_and_leave_nothing_behind(
    evals: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "f.parquet"
    journal = tmp_path / "outputs" / "glm4_7" / "journal" / "judge.jsonl"
    rng = random.Random(12)
    with ServerThread() as server:
        server.set(latency_ms=60, faults=FAULTS, seed=3, retry_after_s=0.01)
        argv = [
            *("filter", "-i", str(evals), "-o", str(out), "--threshold", "0", "--no-upload"),
            *("--rater", "api", "--base-url", server.url, "--concurrency", str(CONCURRENCY)),
            *("--no-progress", "--timeout", "5", "--max-reject-rate", "0"),
        ]
        kills = 0
        while kills < KILLS and run_until_progress_then_kill(
            argv, tmp_path, journal, rng.uniform(0, 0.05)
        ):
            kills += 1
        done = run_kbpipe(*argv, cwd=tmp_path, env=kbpipe_env(KBPIPE_API_KEY="sk-soak"))
        assert done.returncode == 0, done.stderr
        answered = server.stats.answered
    assert kills == KILLS
    table = pl.read_parquet(out)
    assert table.height == pl.read_parquet(evals).filter(pl.col("reward") > 0).height
    assert table["difficulty"].null_count() == 0
    paid_twice = sum(n - 1 for n in answered.values())
    assert paid_twice <= kills * CONCURRENCY
    assert leftovers(tmp_path) == []
