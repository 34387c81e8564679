"""Per-run scratch folders beside outputs, the output lock, and orphan sweeping.

A run writes everything that is not yet an output (temp files, sort buckets,
DuckDB spill, Hub staging) inside one folder `.kbpipe-run-<pid>-XXXX` beside
its output, so one removal cleans up after it. The owner holds an flock on
the folder's `.owner` file for as long as it lives; the kernel drops that lock
when the process dies, however it dies (SIGKILL included), so the next run in
that folder can tell an orphan from a live run without trusting pids, and
removes it.

When a step's outputs are published together (`kbpipe.io.lineage.output_run`),
the folder also holds the finished files until the end, and a `.commit.json`
naming where each goes. Writing that manifest is the commit point: a run
killed while moving files is completed by the next sweep (roll forward), and
a run killed before it is rolled back (its folder is removed).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kbpipe.errors import OutputError

SCRATCH_PREFIX = ".kbpipe-run-"
LOCK_SUFFIX = ".kbpipe-lock"
STATS_SUFFIX = ".stats.json"
_OWNER = ".owner"
_COMMIT = ".commit.json"


class RunFolder:
    """One run's scratch folder in `folder`; `close()` removes it (use as a context manager)."""

    def __init__(self, folder: Path, *, output: Path | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sweep(folder, own_output=output)
        self.folder = folder.resolve()
        self.output = output
        self.path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=folder))
        self._owner = os.open(self.path / _OWNER, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._owner, fcntl.LOCK_EX)
        # dest -> finished file in here, waiting for publish(); dests to delete then.
        self._staged: dict[Path, Path] = {}
        self._removed: set[Path] = set()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def temp(self, name: str) -> Path:
        """A fresh empty file in the scratch folder, named after `name`."""
        fd, tmp = tempfile.mkstemp(prefix=f"{name}.", suffix=".tmp", dir=self.path)
        os.close(fd)
        return Path(tmp)

    def subdir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.path))

    def stage(self, tmp: Path, dest: Path) -> None:
        """Hold finished file `tmp` until `publish()` puts it at `dest`."""
        dest = _absolute(dest)
        self._forget(dest)
        self._removed.discard(dest)
        self._staged[dest] = tmp

    def staged(self, dest: Path) -> Path | None:
        """The finished file waiting to be put at `dest`, if any."""
        return self._staged.get(_absolute(dest))

    def discard(self, dest: Path) -> None:
        """Delete `dest` (a stale side file) at `publish()`, and any staged version of it."""
        dest = _absolute(dest)
        self._forget(dest)
        self._removed.add(dest)

    def _forget(self, dest: Path) -> None:
        old = self._staged.pop(dest, None)
        if old is not None:
            old.unlink(missing_ok=True)

    def publish(self) -> None:
        """Move every staged file into place, stats files last, and delete discarded ones."""
        moves = sorted(self._staged.items(), key=lambda kv: kv[0].name.endswith(STATS_SUFFIX))
        manifest = {
            "output": str(_absolute(self.output)) if self.output else None,
            "moves": [[tmp.name, str(dest)] for dest, tmp in moves],
            "removes": sorted(map(str, self._removed)),
        }
        pending = self.path / (_COMMIT + ".tmp")
        pending.write_text(json.dumps(manifest), encoding="utf-8")
        os.replace(pending, self.path / _COMMIT)  # the commit point
        _roll_forward(self.path, manifest)
        self._staged.clear()
        self._removed.clear()

    def close(self) -> None:
        if self._owner < 0:
            return
        if not (self.path / _COMMIT).exists() or not self._staged:
            shutil.rmtree(self.path, ignore_errors=True)
        # Else publish() was cut short: the folder stays for the next sweep to finish.
        os.close(self._owner)
        self._owner = -1


def _absolute(path: Path | None) -> Path:
    return Path(os.path.abspath(path or "."))


def _roll_forward(scratch: Path, manifest: dict) -> None:
    """Do the moves a manifest lists; repeatable, and skips a dest newer than the commit."""
    committed = (scratch / _COMMIT).stat().st_mtime_ns if (scratch / _COMMIT).exists() else None
    moves = [(scratch / name, Path(dest)) for name, dest in manifest["moves"]]
    stats = [(src, dest) for src, dest in moves if dest.name.endswith(STATS_SUFFIX)]
    # Readers must never pair the new table with the previous run's stats: those go first.
    for src, dest in stats:
        if src.exists() and not _newer(dest, committed):
            dest.unlink(missing_ok=True)
    for src, dest in moves:
        if (src, dest) not in stats and src.exists() and not _newer(dest, committed):
            os.replace(src, dest)
    for dest in map(Path, manifest["removes"]):
        if not _newer(dest, committed):
            dest.unlink(missing_ok=True)
    for src, dest in stats:
        if src.exists() and not _newer(dest, committed):
            os.replace(src, dest)


def _newer(dest: Path, committed: int | None) -> bool:
    """Whether `dest` was written after the commit (by a later run): then leave it alone."""
    try:
        return committed is not None and dest.stat().st_mtime_ns > committed
    except FileNotFoundError:
        return False


# -- sweeping orphans --------------------------------------------------------


def sweep(folder: Path, *, own_output: Path | None = None) -> None:
    """Remove the scratch folders and lock files of dead runs in `folder`.

    A dead run that had committed is finished first. `own_output` is the output
    whose lock the caller holds, so its dead runs are finished without asking for it.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(SCRATCH_PREFIX) and entry.is_dir(follow_symlinks=False):
            _reap(path, own_output)
        elif entry.name.startswith(".") and entry.name.endswith(LOCK_SUFFIX):
            _reap_lock(path)


def _reap(path: Path, own_output: Path | None) -> None:
    try:
        fd = os.open(path / _OWNER, os.O_RDWR)
    except FileNotFoundError:
        # Killed between creating the folder and its owner file: the pid decides.
        if not _pid_alive(path.name[len(SCRATCH_PREFIX) :].split("-")[0]):
            shutil.rmtree(path, ignore_errors=True)
        return
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # its owner lives (or another sweeper is on it)
        if (path / _COMMIT).exists() and not _finish_commit(path, own_output):
            return
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)


def _finish_commit(scratch: Path, own_output: Path | None) -> bool:
    """Roll a dead run's commit forward under its output's lock; False if that is busy."""
    try:
        manifest = json.loads((scratch / _COMMIT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # an unreadable manifest cannot be finished; the folder goes
    output = manifest.get("output")
    if output is None or (own_output is not None and _absolute(own_output) == Path(output)):
        _roll_forward(scratch, manifest)
        return True
    try:
        with OutputLock(Path(output)):
            _roll_forward(scratch, manifest)
    except (OutputError, OSError):  # being written by a live run, or out of reach
        return False
    return True


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _reap_lock(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino == path.stat().st_ino:
                path.unlink()
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


# -- the output lock ---------------------------------------------------------


class OutputLock:
    """One writer per output: a second run is refused at once, not left to race the first."""

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.path = self.output.with_name(f".{self.output.name}{LOCK_SUFFIX}")
        self._fd = -1

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise OutputError(
                    f"{self.output}: another kbpipe run{who} is writing it; wait for that run "
                    "to finish or stop it, or pass -o to write elsewhere"
                ) from None
            # The file may have been unlinked by its previous holder since we opened it.
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_ino == self.path.stat().st_ino:
                    break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = -1


# -- runs whose outputs are published together -------------------------------

_active: list[RunFolder] = []


@contextlib.contextmanager
def activated(run: RunFolder) -> Iterator[RunFolder]:
    """While active, outputs written into `run.folder` wait in `run` for its publish()."""
    _active.append(run)
    try:
        yield run
    finally:
        _active.remove(run)


def covering(dest: Path) -> RunFolder | None:
    """The active run whose outputs live in `dest`'s folder, if any."""
    if not _active:
        return None
    folder = Path(dest).parent.resolve()
    return next((run for run in reversed(_active) if run.folder == folder), None)


def staged_file(dest: Path) -> Path:
    """Where `dest`'s new content is now: its staged file while an active run holds it.

    A step that reads back what it wrote (to plot it) must read this: until the
    run publishes, `dest` itself is the previous version, or nothing.
    """
    run = covering(dest)
    staged = run.staged(dest) if run is not None else None
    return staged or Path(dest)


def active_output() -> Path | None:
    """The output of the innermost active run: what a write failure is about."""
    return _active[-1].output if _active else None


# -- replacing a folder ------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def replace_folder(new: Path, dest: Path) -> None:
    """Put folder `new` at `dest`: readers see the old folder or the new, never none.

    Linux swaps the two in one renameat2(RENAME_EXCHANGE); `new` then holds
    the old folder and is removed (it lives in a scratch folder, so a kill
    here leaves nothing a sweep would not remove). Elsewhere, two renames.
    """
    new, dest = Path(new), Path(dest)
    if not dest.exists():
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        shutil.rmtree(new, ignore_errors=True)
        return
    old = new.with_name(new.name + ".old")
    os.rename(dest, old)
    os.rename(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
