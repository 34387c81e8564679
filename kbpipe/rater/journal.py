"""The request journal: every paid answer on disk as soon as it arrives.

One JSONL file per task (`{model_dir}/journal/judge.jsonl`, `.../specs.jsonl`),
one line per answered request: `{"key", "text", "usage", "model", "ts"}`. The key
is a hash of what determines the answer (model, messages, sampling parameters,
prompt-template version, re-ask number), so a rerun after success, a crash,
SIGKILL or Ctrl-C looks each request up and sends only the ones with no answer.
Settings that do not change the answer (concurrency, timeouts, output path)
are not in the key, and the file lives under the run folder rather than beside
the output, so changing them keeps the cache.

Lines are written in append mode and handed to the OS within the event-loop
tick that received the answer, so killing the process loses nothing already
received; they are fsynced on close (a power cut may lose the last moments).
A SIGKILL mid-write can leave a torn last line: it is cut off on open. A write
that fails (a full disk) is cut back to the last whole line and raises
JournalWriteFailed, which stops the run: an answer that cannot be kept must
not be bought again and again.

Reading is byte-exact (CRLF line ends count as the bytes they are) and never
fatal: a line that is not UTF-8 JSON with a string key and text and a usage of
integers is skipped and counted, and its request is simply asked again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbpipe.errors import ConfigError, describe
from kbpipe.rater.errors import JournalWriteFailed


def request_key(
    *,
    model: str,
    messages: list[dict[str, str]],
    sampling: dict[str, Any],
    template_version: str,
    ask: int,
) -> str:
    """Content hash of everything that determines an answer.

    Each field is length-prefixed, so no two different requests hash the same
    bytes; this is several times cheaper than hashing canonical JSON, which
    matters when keys are computed for 20k prompts before the first request.
    """
    h = hashlib.sha256()

    def put(value: object) -> None:
        data = str(value).encode("utf-8")
        h.update(b"%d:" % len(data))
        h.update(data)

    put(model)
    put(template_version)
    put(ask)
    for name in sorted(sampling):
        put(name)
        put(repr(sampling[name]))
    put(len(messages))
    for message in messages:
        put(len(message))
        for name in sorted(message):
            put(name)
            put(message[name])
    return h.hexdigest()


@dataclass(frozen=True)
class Answer:
    text: str
    usage: dict[str, int]


class Journal:
    """Append-only answer cache; use as a context manager (it holds an exclusive lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._answers: dict[str, Answer] = {}
        self._pending: list[str] = []
        self._fd = -1
        self._end = 0  # bytes of whole lines in the file
        self.loaded = 0
        self.appended = 0
        self.torn_lines = 0  # a fragment at the end, cut off
        self.skipped_lines = 0  # whole lines that are not a readable entry, left in place

    def __enter__(self) -> Journal:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Held open for the journal's whole life, closed in close().
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # Two runs appending to one journal would interleave lines and both pay.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"{self.path}: another kbpipe run is using this journal; wait for it or stop it"
            ) from None
        self._fd = fd
        self._load()

    def _load(self) -> None:
        offset = 0
        with open(os.dup(self._fd), "rb") as fh:  # binary: offsets are bytes, CRLF or not
            fh.seek(0)
            for line in fh:
                start, offset = offset, offset + len(line)
                entry = _entry(line)
                if entry is not None:
                    self._answers[entry[0]] = entry[1]
                elif line.endswith(b"\n"):
                    self.skipped_lines += 1
                else:
                    # A fragment from a killed writer; appending after it would glue
                    # the next answer onto it, so cut it off.
                    self.torn_lines += 1
                    os.ftruncate(self._fd, start)
                    offset = start
        self._end = offset
        if offset and not self._ends_with_newline():
            # Only the last line can lack its newline: a complete object cut just before it.
            self._write(b"\n")
        self.loaded = len(self._answers)

    def _ends_with_newline(self) -> bool:
        return os.pread(self._fd, 1, self._end - 1) == b"\n"

    def get(self, key: str) -> Answer | None:
        return self._answers.get(key)

    def __len__(self) -> int:
        return len(self._answers)

    def append(self, key: str, answer: Answer, *, model: str) -> None:
        """Record an answer; it reaches the file at the next `flush()`."""
        self._answers[key] = answer
        entry = {
            "key": key,
            "text": answer.text,
            "usage": answer.usage,
            "model": model,
            "ts": round(time.time(), 3),
        }
        self._pending.append(json.dumps(entry, ensure_ascii=False) + "\n")
        self.appended += 1

    def flush(self) -> None:
        """Write the pending lines; raise JournalWriteFailed if the file cannot take them."""
        if self._pending and self._fd >= 0:
            # A lone surrogate from a server's JSON cannot be UTF-8; written as a JSON
            # escape it reads back as the same string.
            data = "".join(self._pending).encode("utf-8", "backslashreplace")
            self._pending.clear()
            self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            # Leave no torn line behind: cut the file back to its last whole line.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            raise JournalWriteFailed(
                f"cannot write to the request journal {self.path}: {describe(exc)}; stopped "
                "before buying answers that could not be kept; free space (or move the "
                "run folder) and rerun: it sends only the requests not yet answered"
            ) from None
        self._end += len(data)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            with contextlib.suppress(OSError):  # the lines are written; only durability is lost
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def _entry(line: bytes) -> tuple[str, Answer] | None:
    """(key, answer) of a journal line, or None when it is not a well-formed entry."""
    try:
        entry = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    if not isinstance(entry, dict):
        return None
    key, text, usage = entry.get("key"), entry.get("text"), entry.get("usage") or {}
    if not isinstance(key, str) or not isinstance(text, str) or not isinstance(usage, dict):
        return None
    if not all(isinstance(k, str) and type(v) is int for k, v in usage.items()):
        return None
    return key, Answer(text, usage)


def read_answers(path: Path) -> dict[str, Answer]:
    """key -> answer of a journal, read as a dry run may: no folder or file created,
    no lock taken, a torn last line left as it is."""
    answers: dict[str, Answer] = {}
    if Path(path).is_file():
        with open(path, "rb") as fh:
            for line in fh:
                entry = _entry(line)
                if entry is not None:
                    answers[entry[0]] = entry[1]
    return answers
