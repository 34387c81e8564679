"""What can go wrong talking to an LLM API, sorted by what the engine does about it.

    RaterError
    ├── TransientError        retried with backoff; the row fails only when retries run out
    │   ├── RetryableStatus   408, 409, 429, 5xx (carries Retry-After when the server sent one)
    │   ├── RequestTimeout    no complete answer within --timeout
    │   ├── ConnectionLost    reset or dropped mid-answer
    │   │   └── ConnectFailed refused, no route, DNS failure, connect timeout
    │   └── BadResponse       200 whose body is not a chat completion (truncated JSON, no choices)
    └── PermanentError        never retried: 400, 404, 422 and any other 4xx; the row fails

    StopRun (a KbpipeError)       the whole run stops at once, every row would fail alike:
    ├── FatalApiError             401, 402, 403: the key or the account is wrong
    ├── EndpointUnreachable       the first request cannot connect or gets 404: a wrong URL
    ├── CircuitOpen               most of the last requests failed: the endpoint went down
    └── JournalWriteFailed        an answer cannot be kept on disk, so none more is bought

Only `TransientError` subclasses are retried: an error is retried because it is
named here as transient, never because it is an exception.
"""

from __future__ import annotations

from kbpipe.errors import KbpipeError


class RaterError(Exception):
    """One request failed; `reason` is the short label counted in reports and rejects."""

    reason = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(RaterError):
    """Worth retrying: the same request may well succeed a moment later."""

    # Seconds the server asked us to wait (Retry-After), if it said.
    retry_after: float | None = None


class RetryableStatus(TransientError):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.reason = f"http_{status}"


class RequestTimeout(TransientError):
    reason = "timeout"


class ConnectionLost(TransientError):
    reason = "connection_lost"


class ConnectFailed(ConnectionLost):
    """No connection at all: if every request gets this, the base URL is wrong."""

    reason = "connect_failed"


class BadResponse(TransientError):
    reason = "bad_response"


class PermanentError(RaterError):
    """The server rejected this request as such; sending it again cannot help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = f"http_{status}"


class StopRun(KbpipeError):
    """Stop the whole run: every other request would fail the same way, or be lost."""


class FatalApiError(StopRun):
    """The API refuses the credentials or the account (401/402/403): stop the whole run."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EndpointUnreachable(StopRun):
    """The first request could not connect, or the URL does not exist (404)."""


class CircuitOpen(StopRun):
    """Too many of the last requests failed: the endpoint is down or refusing this work."""


class JournalWriteFailed(StopRun):
    """An answer could not be written to the journal (a full disk, say)."""
