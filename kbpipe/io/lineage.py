"""Bookkeeping shared by every step: row accounting, timing, the stats/lineage file.

A step is a function `(inputs, settings, ...) -> StepResult`. It fills in what
it read, what it wrote and why rows were dropped; `StepResult.finish` checks
that every row is accounted for and writes `<output>.stats.json`, which the
dataset cards and `kbpipe query` build on.

`output_run(output)` makes a step's outputs one unit: it takes the output's
lock (a second writer is refused), and every file the step writes into the
output's folder (table, rejects, stats, plots) waits in the run's scratch
folder until the block ends without error, then all are published together,
stats last (`kbpipe.io.scratch`). An error or a kill publishes nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbpipe import __version__
from kbpipe.config import Settings
from kbpipe.io.scratch import OutputLock, RunFolder, activated
from kbpipe.io.tables import check_writable, file_sha256, sidecar, write_json, write_rejects

_hashing: ThreadPoolExecutor | None = None


def describe_input(
    path: Path | str, *, revision: str | None = None, wait: bool = True
) -> dict[str, Any]:
    """Lineage entry for an input: local path + content hash, or Hub repo + revision.

    With `wait=False` the hash is a Future, computed on a helper thread while
    the step works (hashlib lets go of the GIL); `settled` swaps in the digest.
    """
    global _hashing
    entry: dict[str, Any] = {"path": str(path)}
    if revision is not None:
        entry["revision"] = revision
    p = Path(path)
    if p.is_file():
        if wait:
            entry["sha256"] = file_sha256(p)
        else:
            if _hashing is None:
                _hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbpipe-sha256")
            entry["sha256"] = _hashing.submit(file_sha256, p)
        entry["bytes"] = p.stat().st_size
    return entry


def settled(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lineage entries with any hash still being computed waited for."""
    return [
        {k: v.result() if isinstance(v, Future) else v for k, v in entry.items()}
        for entry in entries
    ]


# Drops that are what a step is for: a threshold, --limit, dedupe, a length cap,
# and the checks a user asked to drop by (decontaminate --drop, audit
# --drop-flagged, verify --drop-failed, dedupe --require-verified): a failed
# check is a verdict on the row, not a row lost. Any other drop (an API failure,
# an unparseable answer, a bad row) is a loss, which `kbpipe` fails on past
# --max-reject-rate.
INTENDED_DROPS = frozenset(
    {
        "reward_at_or_below_threshold",
        "beyond_limit",
        "duplicate_module",
        "over_seq_len",
        "kernelbench_match",
        "audit_flagged",
        "verify_failed",
        "not_verified",
    }
)


@dataclass
class StepResult:
    step: str
    output: Path | None = None
    rows_in: int = 0
    rows_out: int = 0
    # reason -> rows dropped for it; rows_in == rows_out + sum(dropped) always.
    dropped: dict[str, int] = field(default_factory=dict)
    rejects: Path | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    wall_s: float | None = None

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def write_rejects(self, rows: list[dict[str, Any]]) -> int:
        """Write rejected rows beside the output, or remove a stale rejects file if none."""
        if self.output is None:
            raise ValueError(f"{self.step}: set the output before writing rejects")
        path = sidecar(self.output, "rejects")
        n = write_rejects(rows, path)
        self.rejects = path if n else None
        return n

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def n_lost(self) -> int:
        """Rows dropped for a reason other than what the step is for (see INTENDED_DROPS)."""
        return sum(n for reason, n in self.dropped.items() if reason not in INTENDED_DROPS)

    @property
    def loss_rate(self) -> float:
        """Lost rows over the rows the step meant to keep (kept + lost)."""
        meant = self.rows_out + self.n_lost
        return self.n_lost / meant if meant else 0.0

    def check_accounting(self) -> None:
        if self.rows_in != self.rows_out + self.n_dropped:
            raise AssertionError(
                f"{self.step}: {self.rows_in} rows in but {self.rows_out} out and "
                f"{self.n_dropped} dropped ({self.dropped}); rows went missing"
            )

    def to_dict(self, settings: Settings | None = None) -> dict[str, Any]:
        return {
            "step": self.step,
            "kbpipe_version": __version__,
            "command": " ".join(["kbpipe", *sys.argv[1:]]) if sys.argv else None,
            "output": str(self.output) if self.output else None,
            "rejects": str(self.rejects) if self.rejects else None,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(self.dropped),
            "inputs": settled(self.inputs),
            "params": self.params,
            "metrics": self.metrics,
            "wall_s": self.wall_s,
            "data_model": settings.data_model if settings else None,
            "run_name": settings.run_name if settings else None,
        }

    def finish(self, settings: Settings | None = None, *, write_stats: bool = True) -> StepResult:
        """Stop the clock, check accounting and write `<output>.stats.json`."""
        self.wall_s = round(time.perf_counter() - self.started, 3)
        self.check_accounting()
        if write_stats and self.output is not None:
            write_json(self.to_dict(settings), sidecar(self.output, "stats"))
        return self

    def summary_lines(self) -> list[str]:
        lines = [f"{self.step}: {self.rows_in:,} rows in -> {self.rows_out:,} rows out"]
        for reason, n in sorted(self.dropped.items()):
            lines.append(f"  dropped {n:,} ({reason})")
        if self.output:
            lines.append(f"  wrote {self.output}")
        if self.rejects:
            lines.append(f"  rejects {self.rejects}")
        if self.wall_s is not None:
            lines.append(f"  took {self.wall_s:.2f}s")
        return lines


@contextlib.contextmanager
def output_run(output: Path | None) -> Iterator[RunFolder | None]:
    """Publish what the block writes beside `output` together, stats last, if it succeeds.

    Checked first, before any input is read or request paid: `output` is not a
    folder, its folder is writable, and no other run is writing it.
    """
    if output is None:
        yield None
        return
    output = Path(output)
    check_writable(output)
    with OutputLock(output), RunFolder(output.parent, output=output) as run:
        with activated(run):
            yield run
        with _signals_held():
            run.publish()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Defer Ctrl-C and SIGTERM for the milliseconds of a publish, so it is not cut short."""
    caught: list[int] = []
    try:
        previous = {s: signal.signal(s, lambda n, _f: caught.append(n)) for s in _HELD}
    except ValueError:  # not the main thread, where handlers cannot be set
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for sig in caught[:1]:
        handler = previous[sig]
        if callable(handler):
            handler(sig, None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(sig)


_HELD = (signal.SIGINT, signal.SIGTERM)


@dataclass
class ResolvedInput:
    """Where a step's input came from: local files, or a Hub dataset pulled to the cache."""

    paths: list[Path]
    source: str
    revision: str | None = None

    @property
    def path(self) -> Path:
        if len(self.paths) != 1:
            raise ValueError(f"{self.source} has {len(self.paths)} files; use .paths")
        return self.paths[0]

    def lineage(self) -> list[dict[str, Any]]:
        if self.revision is not None or self.source.startswith("hf://"):
            return [
                {
                    "path": self.source,
                    "revision": self.revision,
                    "files": [str(p) for p in self.paths],
                }
            ]
        # Hashed on a helper thread while the step runs, so small steps do not wait for it.
        return [describe_input(p, wait=False) for p in self.paths]


# What a step function accepts as its input.
StepInput = Path | str | Sequence[Path] | ResolvedInput


def as_resolved(inputs: StepInput) -> ResolvedInput:
    """Accept a path, several paths (Hub shards) or a ResolvedInput (keeps the Hub revision)."""
    if isinstance(inputs, ResolvedInput):
        return inputs
    if isinstance(inputs, str | Path):
        return ResolvedInput([Path(inputs)], str(inputs))
    paths = [Path(p) for p in inputs]
    return ResolvedInput(paths, ", ".join(map(str, paths)))
