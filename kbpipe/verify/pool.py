"""Worker pools that run verification jobs in isolated processes, one pool per GPU.

An executor has three methods, which is all `verify_table` uses:

    start() -> list[dict]            start workers; the environment each device reports
    run(batches) -> Iterator[(job, result)]   results in completion order
    close()

`LocalPool` is the executor for one host. A batch is a list of jobs that should
share a worker (one module's rollouts, so the worker's cached reference stays
warm); batches are pulled from one queue by every worker of every GPU, largest
first. Each worker is a `kbpipe.verify.worker` subprocess with
`CUDA_VISIBLE_DEVICES` set to its GPU and its own session, so killing it also
kills the compilers it started. Several workers per GPU overlap one program's
compilation (CPU) with another's execution (GPU).

Jobs go to a worker one at a time; a worker that does not answer within
`timeout_s` is killed, one that dies is reaped, and either is replaced by a
fresh one before the batch goes on, the row getting `timeout: ...` or
`worker_died: ...` as its verify_error. A worker that reports a fatal error
(a CUDA error poisons its context) exits by itself and is replaced the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from kbpipe.errors import ConfigError, KbpipeError
from kbpipe.verify.worker import receive, send

GPU_RUNNER = "kbpipe.verify.gpu:GpuRunner"
STANDIN_RUNNER = "kbpipe.verify.standin:StandinRunner"
LOG_TAIL_BYTES = 2000
_SILENT, _GONE, _GARBLED = "silent", "gone", "garbled"

Job = dict[str, Any]
Batch = Sequence[Job]


class WorkerStartError(KbpipeError):
    """A worker could not start (no torch, no GPU, a broken environment)."""


class Executor(Protocol):
    def start(self) -> list[dict[str, Any]]: ...

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Job, dict[str, Any]]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PoolOptions:
    scratch_dir: Path  # program files, GPU lock files and worker logs
    gpus: tuple[str, ...] = ("0",)  # CUDA_VISIBLE_DEVICES value of each pool
    workers_per_gpu: int = 4
    timeout_s: float = 120.0  # per job, compilation included
    startup_timeout_s: float = 300.0  # importing torch and creating a CUDA context
    runner: str = GPU_RUNNER


def failure(reason: str) -> dict[str, Any]:
    return {"verified": False, "verify_error": reason}


class _Worker:
    """One worker process slot: started lazily, replaced after a death or a timeout."""

    def __init__(self, gpu: str, slot: int, options: PoolOptions) -> None:
        self.gpu, self.options = gpu, options
        self.log_path = options.scratch_dir / "logs" / f"gpu{gpu}-worker{slot}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.env: dict[str, Any] = {}
        self.restarts = -1

    def start(self) -> dict[str, Any]:
        self.stop()
        self.restarts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        parent, child = socket.socketpair()
        with child, open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kbpipe.verify.worker", str(child.fileno()),
                 self.options.runner, str(self.options.scratch_dir)],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_worker_environ(self.gpu),
                start_new_session=True,
            )  # fmt: skip
        self.conn = Connection(parent.detach())
        message = self._answer(self.options.startup_timeout_s)
        if isinstance(message, str) or message.get("op") != "ready":
            if message == _SILENT:
                detail = f"no answer in {self.options.startup_timeout_s:g} s"
            elif isinstance(message, str):
                detail = f"{self._exit_text()}; {self.log_path}: {self._log_tail()}"
            else:
                detail = str(message.get("message"))
            self.stop()
            raise WorkerStartError(f"verify worker for GPU {self.gpu} did not start: {detail}")
        self.env = dict(message.get("env") or {})
        return self.env

    def run(self, job: Job) -> dict[str, Any]:
        if self.proc is None:
            try:
                self.start()
            except WorkerStartError as exc:
                return failure(f"worker_start_failed: {exc}")
        assert self.conn is not None
        try:
            send(self.conn, {"op": "job", "job": job})
        except OSError:
            return failure(f"worker_died: {self._exit_text()}")
        message = self._answer(self.options.timeout_s)
        if message == _SILENT:
            self.stop()
            reason = f"timeout: no result in {self.options.timeout_s:g} s"
            return {**failure(reason), "timeout_s": self.options.timeout_s}
        if message == _GONE:
            return failure(f"worker_died: {self._exit_text()}")
        if (
            isinstance(message, str)
            or message.get("op") != "result"
            or message.get("key") != job["key"]
        ):
            self.stop()
            return failure("protocol_error: the worker sent something other than this job's result")
        if message.get("fatal"):
            self._reap(wait_s=10.0)
        result = message.get("result")
        return result if isinstance(result, dict) else failure("protocol_error: no result")

    def _answer(self, timeout_s: float) -> dict[str, Any] | str:
        """The worker's next message, or why there is none: _SILENT, _GONE or _GARBLED."""
        assert self.conn is not None
        try:
            if not self.conn.poll(timeout_s):
                return _SILENT
            return receive(self.conn)
        except (EOFError, OSError):
            return _GONE
        except ValueError:  # JSON and UTF-8 decoding errors among them
            return _GARBLED

    def _exit_text(self) -> str:
        code = self._reap(wait_s=5.0)
        if code is None:
            return "no answer"
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def _reap(self, wait_s: float) -> int | None:
        """Wait for the worker to end (killing it after `wait_s`); its exit code."""
        proc = self.proc
        if proc is None:
            return None
        try:
            code = proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self._kill()
            code = proc.wait()
        self._forget()
        return code

    def stop(self) -> None:
        if self.proc is not None:
            self._kill()
            self.proc.wait()
        self._forget()

    def _kill(self) -> None:
        assert self.proc is not None
        # the worker leads its own session: the group holds the compilers it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _forget(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn = None, None

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, self.log_path.stat().st_size - LOG_TAIL_BYTES))
                lines = fh.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1][:200] if lines else "(empty)"


class LocalPool:
    """`workers_per_gpu` worker processes per GPU of this host, fed from one batch queue."""

    def __init__(self, options: PoolOptions) -> None:
        self.options = options
        self.workers = [
            _Worker(gpu, slot, options)
            for gpu in options.gpus
            for slot in range(options.workers_per_gpu)
        ]
        self._closed = threading.Event()

    def start(self) -> list[dict[str, Any]]:
        """Start every worker (in parallel: each imports torch); each GPU's environment."""
        errors: list[BaseException] = []

        def start(worker: _Worker) -> None:
            try:
                worker.start()
            except BaseException as exc:  # reported below, once every worker is back
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(w,), daemon=True) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.close()
            raise errors[0]
        envs = {json.dumps(w.env, sort_keys=True): w.env for w in self.workers}
        return list(envs.values())

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Job, dict[str, Any]]]:
        todo: queue.Queue[Batch] = queue.Queue()
        for batch in sorted(batches, key=len, reverse=True):
            todo.put(batch)
        done: queue.Queue[tuple[Job, dict[str, Any]]] = queue.Queue()
        stop = threading.Event()  # set when the caller stops reading, so the threads stop too
        threads = [
            threading.Thread(target=self._serve, args=(w, todo, done, stop), daemon=True)
            for w in self.workers
        ]
        for t in threads:
            t.start()
        try:
            for _ in range(sum(len(b) for b in batches)):
                yield self._next(done, threads)
        finally:
            stop.set()

    @staticmethod
    def _next(done: queue.Queue, threads: list[threading.Thread]) -> tuple[Job, dict[str, Any]]:
        while True:
            try:
                return done.get(timeout=1.0)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and done.empty():
                    raise RuntimeError(
                        "verify pool: every worker thread ended with jobs left"
                    ) from None

    def _serve(
        self, worker: _Worker, todo: queue.Queue[Batch], done: queue.Queue, stop: threading.Event
    ) -> None:
        while not (stop.is_set() or self._closed.is_set()):
            try:
                batch = todo.get_nowait()
            except queue.Empty:
                return
            for job in batch:
                if stop.is_set() or self._closed.is_set():
                    return
                started = time.monotonic()
                # the environment on every result, failures too: it is part of the journal key
                result = {**worker.env, **worker.run(job)}
                result.setdefault("wall_s", round(time.monotonic() - started, 3))
                done.put((job, result))

    def close(self) -> None:
        self._closed.set()
        for worker in self.workers:
            worker.stop()


def visible_gpus(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every GPU this process may use: CUDA_VISIBLE_DEVICES, else what nvidia-smi lists."""
    if environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        return tuple(g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip())
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"no GPU found (nvidia-smi: {exc}); name them with --gpus") from None
    gpus = tuple(line.strip() for line in listing.splitlines() if line.strip())
    if not gpus:
        raise ConfigError("nvidia-smi lists no GPU; name them with --gpus")
    return gpus


def _worker_environ(gpu: str) -> dict[str, str]:
    """The parent's environment, one GPU visible, and kbpipe importable from a checkout."""
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = gpu
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    # A program's output reaches the log even when the worker is killed mid-job.
    env["PYTHONUNBUFFERED"] = "1"
    return env
