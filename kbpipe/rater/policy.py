"""The engine's settings: where requests go, what they sample, how long and how often to try.

Plain dataclasses, apart from the client so that building the command line
(`kbpipe filter --help`, `--rater none`) does not import aiohttp.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None = None
    team_id: str | None = None

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.team_id:
            headers["X-Prime-Team-ID"] = self.team_id
        return headers


@dataclass(frozen=True)
class Sampling:
    """What is sent besides the messages; all of it is part of the journal key."""

    model: str
    max_tokens: int
    temperature: float

    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature}


@dataclass(frozen=True)
class Timeouts:
    # A spec answer can be 30k tokens, so the per-request budget is generous;
    # connecting should never take long, so that fails sooner.
    request_s: float = 600.0
    connect_s: float = 30.0

    def aiohttp(self) -> aiohttp.ClientTimeout:
        import aiohttp

        return aiohttp.ClientTimeout(total=self.request_s, sock_connect=self.connect_s)


@dataclass(frozen=True)
class Retries:
    """How often and how patiently a transient failure is retried."""

    max_attempts: int = 8
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    # A server asking for an hour's pause is misconfigured; waiting that long is not useful.
    retry_after_max_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            # A little jitter on top so rate-limited workers do not return in lockstep.
            return min(retry_after, self.retry_after_max_s) * random.uniform(1.0, 1.1)
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return cap / 2 + random.uniform(0, cap / 2)
