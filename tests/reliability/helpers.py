"""Helpers for the fault tests: kbpipe in a subprocess, kill points, leftover files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a run may leave only while it runs: its scratch folder, temp files, locks,
# and the names older versions used for the same things.
SCRATCH_MARKS = (".kbpipe-run-", ".kbpipe-sort-", ".kbpipe-stage-", ".duckdb-spill-")


def leftovers(folder: Path) -> list[str]:
    """Scratch folders, temp files and lock files anywhere under `folder`."""
    found = []
    for path in folder.rglob("*"):
        name = path.name
        if name.startswith(SCRATCH_MARKS) or name.endswith((".tmp", ".kbpipe-lock", ".old")):
            found.append(str(path.relative_to(folder)))
    return sorted(found)


def kbpipe_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KBPIPE_", "TEST_MODE"))}
    env.pop("PRIME_API_KEY", None)
    env.pop("HF_TOKEN", None)
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def kbpipe_cmd(*args: str, prelude: str = "") -> list[str]:
    """`python -m kbpipe ARGS`, or with `prelude` run first (to plant a kill point)."""
    if not prelude:
        return [sys.executable, "-m", "kbpipe", *args]
    code = f"{prelude}\nimport sys\nfrom kbpipe.cli import main\nsys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *args]


def run_kbpipe(
    *args: str, cwd: Path, prelude: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kbpipe_cmd(*args, prelude=prelude),
        cwd=cwd,
        env=env or kbpipe_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# A kill point: SIGKILL this process right after `os.<call>` first touches a path
# ending in TARGET, as a crash between two steps of a commit would.
KILL_AFTER = """
import os, signal
_real = getattr(os, {call!r})
def _then_die(src, dst, *a, **k):
    _real(src, dst, *a, **k)
    if str(dst).endswith({target!r}):
        os.kill(os.getpid(), signal.SIGKILL)
setattr(os, {call!r}, _then_die)
"""


def remount(point: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(point)], check=True)
