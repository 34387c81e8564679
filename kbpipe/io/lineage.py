"""Bookkeeping shared by every step: row accounting, timing, the stats/lineage file.

A step is a function `(inputs, settings, ...) -> StepResult`. It fills in what
it read, what it wrote and why rows were dropped; `StepResult.finish` checks
that every row is accounted for and writes `<output>.stats.json`, which the
dataset cards and `kbpipe query` build on.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbpipe import __version__
from kbpipe.config import Settings
from kbpipe.io.tables import file_sha256, sidecar, write_json, write_rejects

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


@dataclass
class StepResult:
    step: str
    output: Path | None = None
    rows_in: int = 0
    rows_out: int = 0
    # reason -> rows dropped for it; rows_in == rows_out + sum(dropped) unless
    # the step fans out or aggregates (then `accounted` is set False with why).
    dropped: dict[str, int] = field(default_factory=dict)
    rejects: Path | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    accounted: bool = True
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

    def check_accounting(self) -> None:
        if self.accounted and self.rows_in != self.rows_out + self.n_dropped:
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
        # Hashed while the step runs: 0.04 s of a 0.3 s dedupe on a 48 MB input.
        return [describe_input(p, wait=False) for p in self.paths]


def resolve_input(
    given: str | Path | None,
    *,
    default_local: Path | None,
    default_repo: str | None,
    settings: Settings,
) -> ResolvedInput:
    """Pick a step's input: -i (local or hf://), else the local default, else the Hub default.

    Mirrors the seed: a step reads the previous step's Hub dataset when nothing
    local exists.
    """
    from kbpipe.errors import InputError

    if given is not None and str(given).startswith("hf://"):
        from kbpipe.hub.publish import pull_table

        return pull_table(str(given), settings)
    if given is not None:
        p = Path(given)
        if not p.exists():
            raise InputError(f"{p}: no such file")
        return ResolvedInput([p], str(p))
    if default_local is not None and default_local.exists():
        return ResolvedInput([default_local], str(default_local))
    if default_repo is not None:
        from kbpipe.hub.publish import pull_table

        return pull_table(f"hf://datasets/{default_repo}", settings)
    raise InputError(f"{default_local}: no such file; pass -i PATH")


def publish_if_requested(
    args: Any,
    settings: Settings,
    result: StepResult,
    *,
    table: str,
    splits: bool,
    no_reasoning: bool = False,
    merged: bool = False,
) -> None:
    """Publish a step's output unless --no-upload; --hub-dry-run stages it instead.

    `table` is a Settings table name (source/filtered/unique/synthetic);
    `splits` says whether the seed published 90/10 train/validation for it.
    """
    dry_run_dir = getattr(args, "hub_dry_run", None)
    if not getattr(args, "upload", False) and dry_run_dir is None:
        return
    from kbpipe.hub.publish import publish_step

    publish_step(
        result,
        settings,
        table=table,
        split=(getattr(args, "split", None) or "module") if splits else "none",
        private=getattr(args, "private", False),
        dry_run_dir=dry_run_dir,
        no_reasoning=no_reasoning,
        merged=merged,
    )
