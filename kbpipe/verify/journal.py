"""The verify journal: each row's result on disk as soon as it arrives.

One JSONL line per result, `{"key", "result", "ts"}`, appended and flushed as
the result comes back, so an interrupted run (Ctrl-C, SIGKILL, a lost machine)
resumes where it stopped and a rerun with the same settings re-executes
nothing. The key (`result_key`) hashes what determines a result: the
candidate's code, the reference code, the module name, the settings that
change a verdict or a timing, the runner, and the environment that ran it (GPU
name, torch and triton versions). Settings that change no result (workers,
paths) stay out of the key.

A timeout is kept with the limit it hit: a rerun with a longer `--timeout`
tries the row again, a rerun with the same or a shorter one reuses it.
A torn last line (the process killed mid-write) is cut off on open, the same
way as the rater's request journal.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kbpipe.errors import ConfigError

# Bump when the verification semantics change, so old results stop matching.
SEMANTICS_VERSION = "verify-v1"
ENV_FIELDS = ("gpu_name", "torch_version", "triton_version")


def content_id(code: str, reference: str, module_name: str) -> str:
    """Hash of what a job runs; equal rows (repeated rollouts) run once."""
    return _hash([SEMANTICS_VERSION, module_name, reference, code])


def result_key(
    content: str, settings: Mapping[str, Any], runner: str, env: Mapping[str, Any]
) -> str:
    fields = [content, runner, json.dumps(dict(settings), sort_keys=True)]
    return _hash(fields + [str(env.get(name)) for name in ENV_FIELDS])


def _hash(fields: list[str]) -> str:
    h = hashlib.sha256()
    for value in fields:  # length-prefixed, so no two field lists hash the same bytes
        data = value.encode("utf-8")
        h.update(b"%d:" % len(data))
        h.update(data)
    return h.hexdigest()


def reusable(result: Mapping[str, Any], timeout_s: float) -> bool:
    """Whether a journaled result stands for a run with this timeout."""
    hit_limit = result.get("timeout_s")
    return hit_limit is None or float(hit_limit) >= timeout_s


class ResultJournal:
    """Append-only result cache; a context manager holding an exclusive lock on the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.results: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        self._fh: IO[str] | None = None

    def __enter__(self) -> ResultJournal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConfigError(
                f"{self.path}: another verify run is using this journal; wait for it or stop it"
            ) from None
        self._fh = fh
        self._load()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def _load(self) -> None:
        assert self._fh is not None
        self._fh.seek(0)
        text = self._fh.read()
        complete = text[: text.rfind("\n") + 1]
        if len(complete) != len(text):
            # a write cut short by a kill: drop the partial line so appends start clean
            self.torn_lines += 1
            self._fh.truncate(len(complete.encode("utf-8")))
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
                self.results[entry["key"]] = entry["result"]
            except (json.JSONDecodeError, KeyError, TypeError):
                self.torn_lines += 1
        self._fh.seek(0, os.SEEK_END)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.results.get(key)

    def put(self, key: str, result: dict[str, Any]) -> None:
        assert self._fh is not None, "use the journal as a context manager"
        self.results[key] = result
        line = json.dumps({"key": key, "result": result, "ts": round(time.time(), 3)})
        self._fh.write(line + "\n")
        self._fh.flush()  # in the OS's hands now: a killed process loses nothing
