"""The worker process: runs untrusted programs one job at a time for the pool.

Started by `kbpipe.verify.pool` as `python -m kbpipe.verify.worker FD RUNNER SCRATCH`
with `CUDA_VISIBLE_DEVICES` naming its one GPU, stdout and stderr going to a
log file. The protocol runs over the socket `FD`, not stdout, because candidate
programs print whatever they like. Messages are JSON (a program could forge a
pickle and run code in the parent; JSON it can only garble):

    worker -> pool  {"op": "ready", "env": {...}}      once, after the runner's setup
                    {"op": "error", "message": "..."}  setup failed; the worker exits
                    {"op": "result", "key": ..., "result": {...}, "fatal": bool}
    pool -> worker  {"op": "job", "job": {...}}        one job; the answer is one result
                    {"op": "stop"}

A runner is any class with `setup(scratch: Path) -> dict` (environment facts
such as gpu_name) and `run(job: dict) -> dict` (the row's verdict), named as
`module:Class`. The GPU runner is `kbpipe.verify.gpu:GpuRunner`; tests use the
pure-Python `kbpipe.verify.standin:StandinRunner`.

A job's `fatal` is set when the program may have left the process unusable (a
CUDA error poisons the context for every later job); the worker then exits
after answering and the pool starts a fresh one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

# Message text that means the process (its CUDA context) cannot be trusted any more.
FATAL_MARKERS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "misaligned address",
    "an illegal instruction",
    "CUDA error",
    "CUBLAS_STATUS_EXECUTION_FAILED",
)
ERROR_TEXT_CHARS = 300


class JobError(Exception):
    """A verdict reason raised inside a runner: `reason` is the short verify_error."""

    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


def send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message, allow_nan=True).encode("utf-8"))


def receive(conn: Connection) -> dict[str, Any]:
    message = json.loads(conn.recv_bytes().decode("utf-8"))
    if not isinstance(message, dict) or "op" not in message:
        raise ValueError(f"not a protocol message: {str(message)[:80]!r}")
    return message


def describe(exc: BaseException) -> str:
    """`Type: message`, one line, cut short: what a verify_error shows of an exception."""
    text = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:ERROR_TEXT_CHARS]


def is_fatal(text: str) -> bool:
    return any(marker in text for marker in FATAL_MARKERS)


def load_program(code: str, scratch: Path, prefix: str) -> ModuleType:
    """Import `code` from a file under `scratch` (Triton reads kernels' source files).

    The file name is the code's hash, so workers sharing the scratch folder write
    the same bytes to the same name (through a rename, never a half file).
    """
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:24]
    name = f"{prefix}_{digest}"
    path = scratch / f"{name}.py"
    if not path.exists():
        tmp = scratch / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(code, encoding="utf-8")
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as a normal import does: dataclasses, pickling and
    # triton's source lookup resolve the module by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def unload(module: ModuleType | None) -> None:
    if module is not None:
        sys.modules.pop(module.__name__, None)


def load_runner(spec: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), class_name)()


def run_job(runner: Any, job: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(result, fatal) of one job; every exception a program can raise becomes a reason."""
    try:
        return runner.run(job), False
    except JobError as exc:
        return {"verified": False, "verify_error": exc.reason}, exc.fatal
    # BaseException: a program's sys.exit() or KeyboardInterrupt must not end the worker.
    except BaseException as exc:  # noqa: BLE001
        reason = describe(exc)
        traceback.print_exc()  # into the worker's log, for whoever reads it
        return {"verified": False, "verify_error": reason}, is_fatal(reason)


def serve(conn: Connection, runner_spec: str, scratch: Path) -> int:
    try:
        runner = load_runner(runner_spec)
        env = runner.setup(scratch)
    except BaseException as exc:  # noqa: BLE001 - reported to the pool, which stops the run
        send(conn, {"op": "error", "message": describe(exc)})
        return 1
    send(conn, {"op": "ready", "env": env})
    while True:
        try:
            message = receive(conn)
        except (EOFError, OSError):
            return 0  # the pool went away
        if message["op"] != "job":
            return 0
        job = message["job"]
        result, fatal = run_job(runner, job)
        send(conn, {"op": "result", "key": job["key"], "result": result, "fatal": fatal})
        if fatal:
            return 3


def main(argv: list[str] | None = None) -> int:
    fd, runner_spec, scratch = argv if argv is not None else sys.argv[1:]
    conn = Connection(int(fd))
    try:
        return serve(conn, runner_spec, Path(scratch))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    # Run the module imported under its own name: run as __main__, this file's
    # JobError would be another class than the one runners raise.
    from kbpipe.verify import worker

    # os._exit: a program may have started non-daemon threads that would keep a
    # finished worker alive.
    os._exit(worker.main())
