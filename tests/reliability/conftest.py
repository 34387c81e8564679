"""Fixtures for the fault tests: the sample as an evals table, small file systems.

Full disks and read-only folders are real tmpfs mounts, made only when the
tests run as root (CI does); elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kbpipe.config import Settings
from kbpipe.steps.convert import convert


@pytest.fixture(scope="session")
def evals(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample converted: 240 rollouts, 114 with reward > 0.85."""
    out = tmp_path_factory.mktemp("evals") / "evals.parquet"
    convert(sample_dir / "kernelbook-env.jsonl", out, Settings())
    return out


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """`tmpfs(size="64k", ro=False)`: a fresh tmpfs mounted under tmp_path (root only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a full or read-only file system)")
    mounted: list[Path] = []

    def mount(size: str = "1m", *, ro: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if ro else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
