"""Run many chat requests at a fixed concurrency, through the journal, with accounting.

A fixed pool of `concurrency` worker tasks pulls jobs from one shared iterator
(cheaper than a task per request behind a semaphore at 20k requests), all on
one aiohttp session whose connector allows exactly `concurrency` connections.
Each answer is appended to the journal and flushed in the same event-loop tick;
answers without the task's tag are re-asked under a new key (the re-ask number
is part of it) up to `max_reasks` times, so re-asks are journaled as well.

The run stops as a whole (`StopRun`) rather than row by row when every
request would fail alike: a refused key, a first request that cannot reach
the endpoint, a circuit breaker over the last attempts (kbpipe.rater.breaker),
or a journal that can no longer keep the answers. Workers are cancelled at
once, so nothing more is sent.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp
from tqdm import tqdm

from kbpipe.rater.breaker import Breaker, preflight_policy, unreachable
from kbpipe.rater.client import ChatClient, Endpoint, Retries, Sampling, Timeouts
from kbpipe.rater.errors import (
    CircuitOpen,
    EndpointUnreachable,
    JournalWriteFailed,
    RaterError,
    StopRun,
    TransientError,
)
from kbpipe.rater.journal import Answer, Journal, request_key
from kbpipe.rater.report import RunReport

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Job:
    ref: int
    messages: Messages


@dataclass
class Outcome:
    ref: int
    value: str | None = None
    text: str | None = None
    reason: str | None = None
    detail: str | None = None
    cached: bool = False
    asks: int = 0
    # The last error, traceback dropped: the pre-flight asks whether it means a wrong URL.
    error: RaterError | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class EngineConfig:
    endpoint: Endpoint
    sampling: Sampling
    concurrency: int = 256
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    max_reasks: int = 2
    breaker: Breaker = field(default_factory=Breaker)


class BatchRunner:
    """Resolve jobs through the journal and the API; see the module docstring."""

    def __init__(
        self,
        config: EngineConfig,
        journal: Journal,
        parse: Callable[[str], str | None],
        *,
        template_version: str,
        use_cache: bool = True,
        progress: bool = True,
        desc: str = "requests",
    ) -> None:
        self.config = config
        self.journal = journal
        self.parse = parse
        self.template_version = template_version
        self.use_cache = use_cache
        self.progress = progress
        self.desc = desc
        self.report = RunReport()
        self._flush_scheduled = False
        self._done = 0
        self._failed = 0
        self._workers: list[asyncio.Task[None]] = []
        self._stop: StopRun | None = None
        self._breaker = Breaker(config.breaker.window, config.breaker.max_failure_rate)
        # Hashing a prompt costs as much as sending it; each key is computed once.
        self._keys: dict[tuple[int, int], str] = {}

    def key(self, job: Job, ask: int) -> str:
        found = self._keys.get((job.ref, ask))
        if found is None:
            found = self._keys[(job.ref, ask)] = request_key(
                model=self.config.sampling.model,
                messages=job.messages,
                sampling=self.config.sampling.params(),
                template_version=self.template_version,
                ask=ask,
            )
        return found

    def _cached(self, job: Job, ask: int) -> Answer | None:
        return self.journal.get(self.key(job, ask)) if self.use_cache else None

    def plan(self, jobs: Sequence[Job]) -> tuple[list[Outcome], list[Job]]:
        """Split jobs into those the journal already settles and those needing requests."""
        settled: list[Outcome] = []
        pending: list[Job] = []
        for job in jobs:
            outcome = self._from_cache(job)
            if outcome is None:
                pending.append(job)
            else:
                settled.append(outcome)
        return settled, pending

    def _from_cache(self, job: Job) -> Outcome | None:
        text = None
        for ask in range(self.config.max_reasks + 1):
            answer = self._cached(job, ask)
            if answer is None:
                return None
            text = answer.text
            value = self.parse(text)
            if value is not None:
                self.report.cached_usage.update(answer.usage)
                return Outcome(job.ref, value, text, cached=True, asks=ask + 1)
        return Outcome(
            job.ref,
            None,
            text,
            reason="no_tag",
            cached=True,
            detail=f"no tag in {self.config.max_reasks + 1} answers (journaled)",
            asks=self.config.max_reasks + 1,
        )

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Every job's outcome, in job order. Raises StopRun when the whole run must stop."""
        start = time.perf_counter()
        settled, pending = self.plan(jobs)
        self.report.rows = len(jobs)
        self.report.cached = len(settled)
        # The prompts and the journal live for the whole run; frozen, they are not
        # re-scanned by every full garbage collection the request churn triggers.
        gc.freeze()
        try:
            fresh = asyncio.run(self._run_all(pending, len(jobs), len(settled))) if pending else []
        finally:
            gc.unfreeze()
            self.journal.flush()
            self.report.elapsed_s = time.perf_counter() - start
        outcomes = sorted([*settled, *fresh], key=lambda o: o.ref)
        for o in outcomes:
            if o.ok:
                self.report.ok += 1
            else:
                self.report.failed[o.reason or "error"] += 1
        return outcomes

    async def _run_all(self, pending: list[Job], total: int, cached: int) -> list[Outcome]:
        cfg = self.config
        results: list[Outcome] = []
        bar = self._bar(total, cached)
        connector = aiohttp.TCPConnector(limit=cfg.concurrency, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector, headers=cfg.endpoint.headers(), timeout=cfg.timeouts.aiohttp()
        ) as session:
            ticker = asyncio.create_task(self._tick(bar, cached))
            try:
                jobs = await self._preflight(session, iter(pending), results)
                client = self._client(session, cfg.retries, cfg.timeouts)
                await self._pool(jobs, len(pending) - len(results), client, results)
            finally:
                ticker.cancel()
                self.journal.flush()
                self._draw(bar, cached, refresh=False)
                bar.close()
        return results

    def _bar(self, total: int, cached: int) -> tqdm:
        return tqdm(
            total=total,
            initial=cached,
            desc=self.desc,
            unit="req",
            file=sys.stderr,
            disable=not self.progress,
            mininterval=0.5,
            dynamic_ncols=True,
            # tqdm's own rate would count journal hits; the postfix shows answers/s instead.
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )

    def _client(
        self, session: aiohttp.ClientSession, retries: Retries, timeouts: Timeouts
    ) -> ChatClient:
        cfg = self.config
        return ChatClient(
            session,
            cfg.endpoint,
            cfg.sampling,
            timeouts,
            retries,
            on_send=self._count_send,
            on_retry=self._count_retry,
            on_attempt=self._count_attempt,
        )

    async def _preflight(
        self, session: aiohttp.ClientSession, jobs: Iterator[Job], results: list[Outcome]
    ) -> Iterator[Job]:
        """Send the first job alone: a wrong URL fails it as it would fail every job."""
        first = next(jobs, None)
        if first is None:
            return jobs
        retries, timeouts = preflight_policy(self.config.retries, self.config.timeouts)
        outcome = await self._resolve(first, self._client(session, retries, timeouts))
        if outcome.error is not None and unreachable(outcome.error):
            raise EndpointUnreachable(
                f"cannot reach the API at {self.config.endpoint.base_url} ({outcome.detail}); "
                "check --base-url or KBPIPE_BASE_URL; no other request was sent"
            )
        if self._stop is not None:
            raise self._stop
        if (
            isinstance(outcome.error, TransientError)
            and retries.max_attempts < self.config.retries.max_attempts
        ):  # a passing fault, tried fewer times than the run allows: the pool tries again
            return itertools.chain([first], jobs)
        self._record(outcome, results)
        return jobs

    async def _pool(
        self, jobs: Iterator[Job], n_jobs: int, client: ChatClient, results: list[Outcome]
    ) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._workers = [
                    group.create_task(self._worker(jobs, client, results))
                    for _ in range(min(self.config.concurrency, n_jobs))
                ]
        except BaseExceptionGroup as grouped:
            # One refused key means every request would be refused: stop now.
            # (Not `except*`: Python < 3.11.4 wraps anything raised inside it in a group.)
            stop = grouped.subgroup(StopRun)
            if stop is None:
                raise
            raise _first_leaf(stop) from None
        finally:
            self._workers = []
        if self._stop is not None:
            raise self._stop

    def _halt(self, error: StopRun) -> None:
        """Stop every worker now: their requests would fail alike, or their answers be lost."""
        if self._stop is None:
            self._stop = error
        for task in self._workers:
            task.cancel()

    def _count_send(self) -> None:
        self.report.http_requests += 1

    def _count_retry(self, reason: str) -> None:
        self.report.retries[reason] += 1

    def _count_attempt(self, error: RaterError | None) -> None:
        if self._breaker.record(error) and self._stop is None:
            self._halt(
                CircuitOpen(
                    f"the API at {self.config.endpoint.base_url} is failing: "
                    f"{self._breaker.summary()}; stopped rather than retry every row"
                )
            )

    async def _worker(
        self, jobs: Iterator[Job], client: ChatClient, results: list[Outcome]
    ) -> None:
        # Jobs come from one shared iterator: next() never awaits, so no two workers get one.
        for job in jobs:
            self._record(await self._resolve(job, client), results)

    def _record(self, outcome: Outcome, results: list[Outcome]) -> None:
        results.append(outcome)
        self._done += 1
        self._failed += not outcome.ok

    async def _resolve(self, job: Job, client: ChatClient) -> Outcome:
        text = None
        for ask in range(self.config.max_reasks + 1):
            if ask:
                self.report.reasks += 1
            key = self.key(job, ask)
            answer = self._cached(job, ask)
            if answer is None:
                try:
                    answer = await client.complete(job.messages)
                except RaterError as exc:
                    exc.__traceback__ = None  # kept on the outcome; its frames need not be
                    return Outcome(
                        job.ref,
                        None,
                        text,
                        reason=exc.reason,
                        detail=exc.message,
                        asks=ask + 1,
                        error=exc,
                    )
                self.report.answers += 1
                self.report.usage.update(answer.usage)
                self.journal.append(key, answer, model=self.config.sampling.model)
                self._schedule_flush()
            text = answer.text
            value = self.parse(text)
            if value is not None:
                return Outcome(job.ref, value, text, asks=ask + 1)
        return Outcome(
            job.ref,
            None,
            text,
            reason="no_tag",
            asks=self.config.max_reasks + 1,
            detail=f"no tag in {self.config.max_reasks + 1} answers",
        )

    def _schedule_flush(self) -> None:
        # One write per loop tick however many answers arrived in it.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        try:
            self.journal.flush()
        except JournalWriteFailed as exc:
            self._halt(exc)

    async def _tick(self, bar: tqdm, cached: int) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._draw(bar, cached)

    def _draw(self, bar: tqdm, cached: int, *, refresh: bool = True) -> None:
        elapsed = bar.format_dict.get("elapsed") or 0.0
        rate = self.report.answers / elapsed if elapsed else 0.0
        bar.n = cached + self._done
        bar.set_postfix_str(
            f"done={self._done - self._failed} cached={cached} failed={self._failed} "
            f"{rate:,.0f} req/s",
            refresh=False,
        )
        if refresh:
            bar.refresh()


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
