"""The exceptions a user may see, the one mapper that turns library errors into
them, and the one redaction applied to anything that can carry a secret.

The CLI prints a `KbpipeError`'s message, redacted, on one line and exits 1.
pyarrow, DuckDB, polars and the OS raise their own exceptions, with multi-line
messages that name no file ("Parquet magic bytes not found in footer");
`user_error` turns those into a `KbpipeError` naming the file being read or
written, so no traceback of a known kind reaches a user. Errors of our own
code (a TypeError, an AssertionError) are bugs and keep their traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator


class KbpipeError(Exception):
    """A problem the user can fix: bad input, bad settings, missing credentials."""


class ConfigError(KbpipeError):
    """A setting has a bad value or a required one is missing."""


class InputError(KbpipeError):
    """An input file or row is malformed; the message names the file, line or example_id."""


class OutputError(KbpipeError):
    """An output cannot be written: a full disk, no permission, a folder in its place,
    or another run writing it."""


# -- secrets ---------------------------------------------------------------

# Values of the configured keys (API key, HF token); Settings registers them.
_SECRETS: set[str] = set()
_MASK = "****"
# Shapes of credentials whatever their value: a bearer header, OpenAI-style
# `sk-` keys, Hugging Face `hf_` tokens, and a password inside a URL.
_SECRET_SHAPES = re.compile(
    r"(?i:(bearer)\s+)[A-Za-z0-9._~+/=-]{4,}"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
    r"|\bhf_[A-Za-z0-9]{8,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
)


# Substrings every credential shape above contains (bearer is checked case-blind).
_MARKERS = ("sk-", "hf_", "://")


def register_secret(value: str | None) -> None:
    """Mask `value` wherever `redact` runs from now on (short values would mask too much)."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with credentials masked: every message, reject reason and log line passes here."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, _MASK)
    # Rejects can be whole rows of ~60 KB: the regex runs only where a credential
    # could start, which plain substring tests find at a fraction of its cost.
    if not any(marker in text for marker in _MARKERS) and "bearer" not in text.lower():
        return text
    return _SECRET_SHAPES.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    return f"{match.group(1)} {_MASK}" if match.group(1) else _MASK


# -- library errors -> one line --------------------------------------------

# errno values that mean "this output cannot be written", whoever raised them.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_WRITE_WORDS = ("no space left on device", "disk quota exceeded", "read-only file system")
_LIBRARIES = ("pyarrow", "polars", "duckdb", "_duckdb")
# DuckDB prefixes its messages with the error class; the class says nothing to a user.
_DUCKDB_PREFIX = re.compile(r"^[A-Za-z ]+ Error: ")


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name."""
    for line in str(exc).splitlines():
        if line.strip():
            return _DUCKDB_PREFIX.sub("", line.strip())
    return type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
        todo += list(getattr(e, "exceptions", ()))


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, however a library wrapped it (DuckDB: `RuntimeError: Query interrupted`)."""
    for e in _chain(exc):
        if isinstance(e, KeyboardInterrupt) or type(e).__name__ == "InterruptException":
            return True
        if isinstance(e, RuntimeError) and "interrupted" in str(e).lower():
            return True
        # DuckDB and pyarrow report a KeyboardInterrupt raised in a Python stream they
        # were reading as an error of their own, quoting its traceback.
        if "\nKeyboardInterrupt" in str(e):
            return True
    return False


def interrupt_note(exc: BaseException) -> str | None:
    """What an interrupted step said about what it kept (a KeyboardInterrupt's message)."""
    for e in _chain(exc):
        if isinstance(e, KeyboardInterrupt) and str(e):
            return str(e)
    return None


def is_write_failure(exc: BaseException) -> bool:
    """A full disk, a quota or a read-only file system: the output's fault, not the input's."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return True
    text = str(exc).lower()
    return any(word in text for word in _WRITE_WORDS)


def is_library_error(exc: BaseException) -> bool:
    """An error of the OS or of a data library, as opposed to a bug in kbpipe."""
    if isinstance(exc, OSError | UnicodeDecodeError | MemoryError | RecursionError):
        return True
    return type(exc).__module__.split(".")[0] in _LIBRARIES


def describe(exc: BaseException) -> str:
    """One line about a library or OS error, without the file (the caller knows it)."""
    if isinstance(exc, OSError) and exc.errno in errno.errorcode:
        return f"{os.strerror(exc.errno).lower()} ({errno.errorcode[exc.errno]})"
    if is_write_failure(exc):
        for word in _WRITE_WORDS:
            if word in str(exc).lower():
                return word
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    return first_line(exc)


def user_error(
    exc: BaseException, *, reading: str | None = None, writing: str | None = None
) -> KbpipeError | None:
    """The KbpipeError a user should see for `exc`, or None for a bug or an interrupt.

    A write failure names `writing` (else the file the OS names); anything else
    from a library names `reading`, the file being read when it happened.
    """
    if isinstance(exc, KbpipeError):
        return exc
    if is_interrupt(exc) or not is_library_error(exc):
        return None
    filename = getattr(exc, "filename", None)
    blocked = isinstance(exc, IsADirectoryError | PermissionError) and filename != reading
    if is_write_failure(exc) or (blocked and writing is not None):
        where = writing or filename or "the output"
        return OutputError(f"{where}: cannot write: {describe(exc)}")
    where = reading or filename
    if isinstance(exc, FileNotFoundError) and filename:
        where = filename
    prefix = f"{where}: " if where else ""
    return InputError(f"{prefix}{describe(exc)}")


@contextlib.contextmanager
def mapped(*, reading: str | None = None, writing: str | None = None) -> Iterator[None]:
    """Raise library errors of the block as KbpipeErrors naming `reading`/`writing`."""
    try:
        yield
    except Exception as exc:
        mapped_error = user_error(exc, reading=reading, writing=writing)
        if mapped_error is None or mapped_error is exc:
            raise
        raise mapped_error from exc
