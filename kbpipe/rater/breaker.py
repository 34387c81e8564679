"""When to give up on an endpoint rather than on single rows.

Retries make one flaky request succeed; they make a dead endpoint cost
minutes per row. Two checks stop a run whose every request would fail:

- the pre-flight: the first request of a run goes alone, with few retries;
  if it cannot connect (refused, DNS, no route) or the URL does not exist
  (404), so will every other, and the run stops naming the URL;
- the circuit breaker: over the last `window` attempts, a failure share
  above `max_failure_rate` stops the run. 429 is not counted: it is the
  server pacing us, and the client waits as told.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, replace

from kbpipe.rater.errors import ConnectFailed, PermanentError, RaterError, RetryableStatus
from kbpipe.rater.policy import Retries, Timeouts

# The first request's own policy: enough to ride out a blip, not minutes of backoff.
PREFLIGHT_ATTEMPTS = 3
PREFLIGHT_BACKOFF_S = 0.5
PREFLIGHT_CONNECT_S = 10.0
# Statuses that mean "no such endpoint here": a wrong base URL or path.
NO_ENDPOINT_STATUS = (404, 405)


def preflight_policy(retries: Retries, timeouts: Timeouts) -> tuple[Retries, Timeouts]:
    """The first request's retries and timeouts: the run's, capped."""
    return (
        replace(
            retries,
            max_attempts=min(PREFLIGHT_ATTEMPTS, retries.max_attempts),
            backoff_base_s=min(PREFLIGHT_BACKOFF_S, retries.backoff_base_s),
            backoff_max_s=min(2 * PREFLIGHT_BACKOFF_S, retries.backoff_max_s),
        ),
        replace(timeouts, connect_s=min(PREFLIGHT_CONNECT_S, timeouts.connect_s)),
    )


def unreachable(error: RaterError) -> bool:
    """Whether an error of the first request means every request would fail alike."""
    if isinstance(error, ConnectFailed):
        return True
    return isinstance(error, PermanentError) and error.status in NO_ENDPOINT_STATUS


@dataclass
class Breaker:
    window: int = 50
    max_failure_rate: float = 0.8

    def __post_init__(self) -> None:
        self._last: deque[str | None] = deque(maxlen=self.window)

    def record(self, error: RaterError | None) -> bool:
        """Count one attempt; True once the window is full and too much of it failed."""
        if isinstance(error, RetryableStatus) and error.status == 429:
            return False
        self._last.append(None if error is None else error.reason)
        if len(self._last) < self.window:
            return False
        return self.failures() > self.max_failure_rate * self.window

    def failures(self) -> int:
        return sum(reason is not None for reason in self._last)

    def summary(self) -> str:
        reasons = Counter(r for r in self._last if r is not None)
        shown = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
        return f"{self.failures()} of the last {len(self._last)} requests failed ({shown})"
