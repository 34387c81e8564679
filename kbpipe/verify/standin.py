"""A pure-Python runner for the worker protocol: no torch, no GPU.

It loads the job's `code` from a scratch file exactly as the GPU runner does
and calls the program's `check()`, whose return value (a bool, or a dict of
result fields) is the verdict. Stand-in programs can hang, `os._exit`, raise,
`sys.exit` or print garbage, so the pool's isolation is tested on any machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kbpipe.verify.worker import JobError, load_program, unload

ENV = {"gpu_name": "cpu-standin", "torch_version": None, "triton_version": None}


class StandinRunner:
    def setup(self, scratch: Path) -> dict[str, Any]:
        self.scratch = scratch
        return dict(ENV)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        program = None
        try:
            program = load_program(job["code"], self.scratch, "standin")
            check = getattr(program, "check", None)
            if check is None:
                raise JobError("missing_check")
            verdict = check()
        finally:
            unload(program)
        if isinstance(verdict, dict):
            return {"verified": True, "verify_error": None, **verdict, "pid": os.getpid()}
        return {"verified": bool(verdict), "verify_error": None if verdict else "mismatch"}
