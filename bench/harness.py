"""Measure a command's wall time and peak RSS in a fresh process.

Each measurement runs in its own subprocess so peak RSS (from wait4's rusage)
belongs to that command alone, and a baseline and the kbpipe path are measured
in the same run on the same data, so ratios hold on any machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data"


@dataclass
class Measurement:
    name: str
    wall_s: float
    peak_rss_mb: float
    # Extra figures a benchmark reports (rows/s, tokens/s, req/s, ...).
    figures: dict[str, float] = field(default_factory=dict)
    stdout: str = ""


def measure(name: str, argv: list[str], *, env: dict[str, str] | None = None) -> Measurement:
    """Run argv to completion; fail loudly if it fails, since a broken run has no timing."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=ROOT
        )
        # wait4: this child's own rusage; RUSAGE_CHILDREN would be the maximum over
        # every variant run so far.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exit {proc.returncode}\n{stderr[-4000:]}")
    # A child run through bench.peak reports its own high-water mark (VmHWM), which
    # unlike ru_maxrss does not start from this process's RSS at fork.
    peak = _peak_from_stderr(stderr)
    if peak != peak:  # NaN: a plain command such as `kbpipe ...`
        peak = usage.ru_maxrss / 1024
    return Measurement(name, wall, peak, stdout=stdout)


def median_of(runs: list[Measurement]) -> Measurement:
    """One row for repeated runs of a variant: the median wall time, the highest peak RSS.

    On a shared 2-core machine a single run moves by 20-40 %; the median of
    interleaved runs of the baseline and kbpipe is what the ratios compare.
    """
    walls = [m.wall_s for m in runs]
    row = Measurement(
        runs[0].name,
        statistics.median(walls),
        max(m.peak_rss_mb for m in runs),
        stdout=runs[-1].stdout,
    )
    if len(runs) > 1:
        row.figures = {"runs": len(runs), "min s": min(walls), "max s": max(walls)}
    return row


def python_cmd(code_module: str, *args: str) -> list[str]:
    """A command running `python -m bench.peak MODULE ARGS`, which reports its own peak RSS."""
    return [sys.executable, "-m", "bench.peak", code_module, *args]


def _peak_from_stderr(err: str) -> float:
    for line in reversed(err.splitlines()):
        if line.startswith("PEAK_RSS_KB="):
            return int(line.split("=", 1)[1]) / 1024
    return float("nan")


def print_table(title: str, rows: list[Measurement], baseline: str) -> None:
    """Print rows with wall time, peak RSS and the speed ratio against the baseline row."""
    base = next(r for r in rows if r.name == baseline)
    print(f"\n== {title}")
    print(f"  {'variant':<34} {'wall s':>8} {'speedup':>8} {'peak RSS MB':>12}  figures")
    for r in rows:
        ratio = base.wall_s / r.wall_s if r.wall_s else float("inf")
        extra = ", ".join(f"{k}={_figure(v)}" for k, v in r.figures.items())
        print(f"  {r.name:<34} {r.wall_s:>8.2f} {ratio:>7.2f}x {r.peak_rss_mb:>12.0f}  {extra}")


def _figure(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}"
