"""One chat completion against an OpenAI-compatible API, with the retry policy.

`ChatClient.complete(messages)` posts to `{base_url}/chat/completions` over a
shared aiohttp session and returns the answer text and token usage. Transient
failures (see `kbpipe.rater.errors`) are retried with exponential backoff and
jitter, or after exactly the `Retry-After` the server asked for; permanent ones
raise at once; 401/402/403 raise `FatalApiError`, which stops the whole run.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable

import aiohttp
from yarl import URL

from kbpipe.errors import redact
from kbpipe.rater.errors import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    FatalApiError,
    PermanentError,
    RaterError,
    RequestTimeout,
    RetryableStatus,
    TransientError,
)
from kbpipe.rater.journal import Answer

# Re-exported: the engine's settings live apart so the CLI can name them without aiohttp.
from kbpipe.rater.policy import Endpoint, Retries, Sampling, Timeouts  # noqa: F401

RETRYABLE_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = {
    401: "rejected the API key (401 Unauthorized); set KBPIPE_API_KEY or PRIME_API_KEY",
    402: "refused for payment (402 Payment Required); the account is out of funds",
    403: "denied access (403 Forbidden); check the key's permissions and PRIME_TEAM_ID",
}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """Sends chat completions over one session; `on_retry(reason)` counts retries."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        sampling: Sampling,
        timeouts: Timeouts,
        retries: Retries,
        on_send: Callable[[], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
        on_attempt: Callable[[RaterError | None], None] | None = None,
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        # Parsed once: aiohttp would otherwise parse the URL string on every request.
        self._url = URL(endpoint.url)
        self._sampling = sampling
        self._timeout = timeouts.aiohttp()
        self._timeout_s = timeouts.request_s
        self._retries = retries
        self._on_send = on_send or (lambda: None)
        self._on_retry = on_retry or (lambda reason: None)
        # Told how every attempt ended (None: answered), for the engine's circuit breaker.
        self._on_attempt = on_attempt or (lambda error: None)

    async def complete(self, messages: list[dict[str, str]]) -> Answer:
        body = json.dumps(
            {"model": self._sampling.model, "messages": messages, **self._sampling.params()},
            ensure_ascii=False,
        ).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._post(body)
            except TransientError as exc:
                self._on_attempt(exc)
                if attempt >= self._retries.max_attempts:
                    raise
                self._on_retry(exc.reason)
                await asyncio.sleep(self._retries.delay(attempt, exc.retry_after))
            except PermanentError as exc:
                self._on_attempt(exc)
                raise
            else:
                self._on_attempt(None)
                return answer

    async def _post(self, body: bytes) -> Answer:
        self._on_send()
        try:
            async with self._session.post(self._url, data=body, timeout=self._timeout) as resp:
                status = resp.status
                raw = await resp.read()
                retry_after = None if status == 200 else resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ConnectFailed(f"cannot connect: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise RequestTimeout(f"no complete answer within {self._timeout_s:g}s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionLost(f"connection lost: {type(exc).__name__}: {exc}") from None
        if status == 200:
            return _parse_completion(raw)
        message = _error_message(raw)
        if status in FATAL_STATUS:
            raise FatalApiError(
                status,
                f"the API at {self._endpoint.base_url} {FATAL_STATUS[status]}"
                + (f"; the server said: {message}" if message else ""),
            )
        if status in RETRYABLE_STATUS or status >= 500:
            raise RetryableStatus(
                status, f"HTTP {status}: {message}", parse_retry_after(retry_after)
            )
        raise PermanentError(status, f"HTTP {status}: {message}")


def _parse_completion(raw: bytes) -> Answer:
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise BadResponse(redact(f"not a chat completion: {raw[:200]!r}")) from None
    usage = data.get("usage") or {}
    return Answer(
        str(text),
        {
            k: int(usage[k])
            for k in ("prompt_tokens", "completion_tokens")
            if isinstance(usage.get(k), int | float)
        },
    )


def _error_message(raw: bytes) -> str:
    """The server's own words, short and redacted (some servers echo the key they refuse):
    OpenAI-style `{"error": {"message"}}` or the body."""
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return redact(str(msg)[:2000])[:300]
    except ValueError:
        pass
    return redact(raw[:2000].decode("utf-8", "replace").strip())[:300]
