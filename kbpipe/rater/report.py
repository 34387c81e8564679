"""The engine's accounting of one run: rows, answers, failures, retries, tokens, time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunReport:
    """What a run did and cost; printed at the end and stored in the step's stats."""

    rows: int = 0
    ok: int = 0
    cached: int = 0
    answers: int = 0
    http_requests: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    reasks: int = 0
    usage: Counter[str] = field(default_factory=Counter)
    cached_usage: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    journal_skipped: int = 0  # unreadable journal lines, whose requests were asked again

    @property
    def rate(self) -> float:
        return self.answers / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ok": self.ok,
            "cached": self.cached,
            "answers_received": self.answers,
            "http_requests": self.http_requests,
            "failed": dict(self.failed),
            "retries": dict(self.retries),
            "reasks": self.reasks,
            "tokens": dict(self.usage),
            "tokens_cached": dict(self.cached_usage),
            "journal_skipped_lines": self.journal_skipped,
            "elapsed_s": round(self.elapsed_s, 3),
            "answers_per_s": round(self.rate, 1),
        }
