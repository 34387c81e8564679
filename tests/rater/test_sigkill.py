"""Kill -9 (or Ctrl-C) in the middle of `kbpipe prompts --rater api`, rerun, count what was paid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from kbpipe.rater.journal import Journal
from kbpipe.testing.openai_server import ServerThread

N_ROWS = 300


def kernelbook(path: Path) -> Path:
    pl.DataFrame(
        {
            "module_name": [f"Mod{i}" for i in range(N_ROWS)],
            "python_code": [
                f"class Mod{i}(nn.Module):\n    def forward(self, x):\n        return x + {i}\n"
                for i in range(N_ROWS)
            ],
            "triton_code": ["# triton"] * N_ROWS,
            "uuid": [f"u{i}" for i in range(N_ROWS)],
        }
    ).write_parquet(path)
    return path


def prompts_cmd(table: Path, url: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kbpipe",
        "prompts",
        "-i",
        str(table),
        "-o",
        "out.parquet",
        "--rater",
        "api",
        "--base-url",
        url,
        "--concurrency",
        str(concurrency),
        "--no-upload",
        "--no-progress",
        "--data-model",
        "killed",
    ]


def journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_rerun_after_a_kill_pays_only_for_unanswered_requests(
    tmp_path: Path, sig: signal.Signals
) -> None:
    table = kernelbook(tmp_path / "kb.parquet")
    env = {**os.environ, "KBPIPE_API_KEY": "sk-test", "TEST_MODE": "false"}
    journal = tmp_path / "outputs" / "killed" / "journal" / "specs.jsonl"
    with ServerThread() as server:
        server.set(latency_ms=100)
        proc = subprocess.Popen(
            prompts_cmd(table, server.url, 8),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while journal_lines(journal) < 40 and proc.poll() is None:
            assert time.monotonic() < deadline, "no answers were journaled in time"
            time.sleep(0.02)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=30)
        time.sleep(0.3)  # let the server notice the dropped connections

        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 130
            assert b"interrupted" in err and b"a rerun sends only the requests" in err
            assert err.strip().count(b"\n") == 0  # one line
        assert not (tmp_path / "out.parquet").exists()  # no half-written output
        with Journal(journal) as j:
            answered = j.loaded
        first_run_requests = server.stats.requests
        assert 40 <= answered < N_ROWS
        # What was in flight at the kill was sent but never answered to us.
        assert first_run_requests - answered <= 8

        # Rerun with another concurrency: the cache still applies.
        rerun = subprocess.run(
            prompts_cmd(table, server.url, 64),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert rerun.returncode == 0, rerun.stderr
        rerun_requests = server.stats.requests - first_run_requests
        seen_twice = sum(1 for n in server.stats.seen.values() if n > 1)

    assert rerun_requests + answered == N_ROWS
    # Only the requests lost in flight were ever sent twice; no answered one was paid again.
    assert seen_twice == first_run_requests - answered
    assert max(server.stats.seen.values()) <= 2
    assert pl.read_parquet(tmp_path / "out.parquet").height == N_ROWS
    assert f"{answered} rows answered before" in rerun.stdout
