"""Run a rater task (judge or specs) over rows with either backend.

A `Task` says how to turn a row into chat messages, how to read the answer,
and what the offline backend answers instead. `run_task` sends every row
through the chosen backend and returns one `Outcome` per row in row order, plus
a `RunReport`; `plan_task` is `--dry-run`: what would be sent after the journal.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbpipe.config import Settings, difficulty_order
from kbpipe.errors import ConfigError
from kbpipe.rater.errors import JournalWriteFailed, StopRun
from kbpipe.rater.journal import Journal, read_answers
from kbpipe.rater.policy import Endpoint, Retries, Sampling, Timeouts
from kbpipe.rater.prices import Price, price_for

# The engine (aiohttp) is imported where requests are made: the command line
# and the offline backend do without it.
if TYPE_CHECKING:
    from kbpipe.rater.batch import BatchRunner, EngineConfig, Job, Outcome, RunReport

BACKENDS = ("api", "offline")


@dataclass(frozen=True)
class Task:
    name: str  # also the journal's file name
    template_version: str
    tag: str
    messages: Callable[[dict[str, Any]], list[dict[str, str]]]
    parse: Callable[[str], str | None]
    offline: Callable[[dict[str, Any]], str]
    max_tokens: int
    temperature: float
    timeout_s: float  # per attempt; a spec answer can run to thousands of tokens
    model_field: str  # the Settings field naming this task's model
    concurrency_field: str


@dataclass(frozen=True)
class RaterOptions:
    backend: str = "api"
    max_tokens: int | None = None  # None: the task's default
    temperature: float | None = None
    timeouts: Timeouts | None = None  # None: the task's default timeout
    retries: Retries = field(default_factory=Retries)
    max_reasks: int = 2
    fresh: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown rater {self.backend!r}; expected one of {BACKENDS}")
        if self.max_reasks < 0 or self.retries.max_attempts < 1:
            raise ConfigError("--max-reasks must be >= 0 and --max-retries >= 0")
        if self.timeouts is not None and self.timeouts.request_s <= 0:
            raise ConfigError("--timeout must be positive")


@dataclass
class TaskRun:
    task: Task
    backend: str
    outcomes: list[Outcome]
    report: RunReport
    params: dict[str, Any]
    journal: Path | None = None

    def values(self) -> Counter[str]:
        return Counter(o.value for o in self.outcomes if o.ok)

    def metrics(self) -> dict[str, Any]:
        """The report as plain data: for the stats file and for `report_lines`."""
        return {
            "backend": self.backend,
            "model": self.params.get("model", "offline rules"),
            **self.report.to_dict(),
            # Spec texts are all different; only short labels (difficulty) are worth counting.
            "values": dict(self.values()) if self.task.name == "judge" else {},
            "journal": str(self.journal) if self.journal else None,
        }


@dataclass(frozen=True)
class DryRunPlan:
    """What a rater task would send: requests after the journal, tokens and dollars."""

    task: str
    backend: str
    model: str
    rows: int
    cached: int
    to_send: int
    est_prompt_tokens: int
    # Mean completion tokens of the journal's answers times the requests; None
    # when the journal has none to go by (then only the max_tokens bound is known).
    est_completion_tokens: int | None
    max_completion_tokens: int
    journal: Path | None
    price: Price | None = None

    def lines(self) -> list[str]:
        if self.backend != "api":
            return [
                f"  {self.task}: {self.rows:,} rows rated by the {self.backend} rater: "
                "0 requests, $0.00"
            ]
        completion = (
            f"~{self.est_completion_tokens:,} completion tokens (the journal's mean per answer)"
            if self.est_completion_tokens is not None
            else f"at most {self.max_completion_tokens:,} completion tokens (max_tokens; no "
            "answers in the journal to estimate from)"
        )
        return [
            f"  {self.task} ({self.model}): {self.rows:,} rows; answered in the journal "
            f"{self.cached:,}; would send {self.to_send:,} requests",
            f"    ~{self.est_prompt_tokens:,} prompt tokens (4 characters per token), {completion}",
            f"    cost: {self._cost()}",
            f"    journal {self.journal}",
        ]

    def _cost(self) -> str:
        if self.price is None:
            return f"unknown for {self.model} (pass --price-per-mtok IN,OUT)"
        per = f"at ${self.price.prompt:g}/${self.price.completion:g} per million tokens"
        if self.est_completion_tokens is not None:
            total = self.price.dollars(self.est_prompt_tokens, self.est_completion_tokens)
            return f"~${total:,.2f} {per}"
        low = self.price.dollars(self.est_prompt_tokens, 0)
        high = self.price.dollars(self.est_prompt_tokens, self.max_completion_tokens)
        return f"${low:,.2f} for the prompts, at most ${high:,.2f} in all, {per}"


def journal_path(settings: Settings, task: Task) -> Path:
    # Under the run folder, not beside the output: a new -o keeps the cache.
    # In the run folder even for a --limit/TEST_MODE run: the full run reuses its answers.
    return settings.run_dir / "journal" / f"{task.name}.jsonl"


def engine_config(task: Task, settings: Settings, options: RaterOptions) -> EngineConfig:
    from kbpipe.rater.batch import EngineConfig

    return EngineConfig(
        endpoint=Endpoint(settings.base_url, settings.api_key, settings.prime_team_id),
        sampling=Sampling(
            model=getattr(settings, task.model_field),
            max_tokens=options.max_tokens or task.max_tokens,
            temperature=task.temperature if options.temperature is None else options.temperature,
        ),
        concurrency=getattr(settings, task.concurrency_field),
        timeouts=options.timeouts or Timeouts(request_s=task.timeout_s),
        retries=options.retries,
        max_reasks=options.max_reasks,
    )


def task_params(task: Task, settings: Settings, options: RaterOptions) -> dict[str, Any]:
    """What the stats file records about the rater (nothing secret)."""
    params: dict[str, Any] = {"rater": options.backend, "template_version": task.template_version}
    if options.backend == "api":
        cfg = engine_config(task, settings, options)
        params.update(
            model=cfg.sampling.model,
            base_url=settings.base_url,
            **cfg.sampling.params(),
            concurrency=cfg.concurrency,
            timeout_s=cfg.timeouts.request_s,
            max_attempts=cfg.retries.max_attempts,
            max_reasks=cfg.max_reasks,
            fresh=options.fresh,
        )
    return params


def run_task(
    task: Task, payloads: Sequence[dict[str, Any]], settings: Settings, options: RaterOptions
) -> TaskRun:
    """One outcome per payload, in order. Raises StopRun (a KbpipeError) when every
    request would fail alike or its answer could not be kept (kbpipe.rater.errors)."""
    params = task_params(task, settings, options)
    if options.backend == "offline":
        return _run_offline(task, payloads, params)
    require_api_key(settings)
    jobs = _jobs(task, payloads)
    path = journal_path(settings, task)
    with Journal(path) as journal:
        _warn_skipped(journal)
        runner = _runner(task, settings, options, journal)
        runner.report.journal_skipped = journal.skipped_lines
        try:
            outcomes = runner.run(jobs)
        except JournalWriteFailed:
            raise
        except StopRun as exc:
            if len(journal):
                exc.args = (f"{exc}; {_kept(journal, path)}",)
            raise
        except KeyboardInterrupt:
            # The CLI's one line about the interrupt says this instead of its own words.
            raise KeyboardInterrupt(_kept(journal, path)) from None
    return TaskRun(task, "api", outcomes, runner.report, params, journal=path)


def _jobs(task: Task, payloads: Sequence[dict[str, Any]]) -> list[Job]:
    from kbpipe.rater.batch import Job

    return [Job(i, task.messages(p)) for i, p in enumerate(payloads)]


def _runner(task: Task, settings: Settings, options: RaterOptions, journal: Journal) -> BatchRunner:
    from kbpipe.rater.batch import BatchRunner

    cfg = engine_config(task, settings, options)
    return BatchRunner(
        cfg,
        journal,
        task.parse,
        template_version=task.template_version,
        use_cache=not options.fresh,
        progress=options.progress,
        desc=f"{task.name} ({cfg.sampling.model})",
    )


def require_api_key(settings: Settings) -> None:
    if not settings.api_key:
        offline = settings.hint("use --rater offline", "set RATER=offline")
        raise ConfigError(
            "the api rater needs a key: set KBPIPE_API_KEY or PRIME_API_KEY (in .env or the "
            f"environment), or {offline}"
        )


def _warn_skipped(journal: Journal) -> None:
    if journal.skipped_lines:
        print(
            f"warning: {journal.path}: skipped {journal.skipped_lines:,} unreadable line(s) "
            "(not UTF-8 JSON, or fields of the wrong type); their requests are asked again",
            file=sys.stderr,
        )


def _kept(journal: Journal, path: Path) -> str:
    return (
        f"{len(journal):,} answers ({journal.appended:,} from this run) are kept in {path}; "
        "a rerun sends only the requests without one"
    )


def _run_offline(task: Task, payloads: Sequence[dict[str, Any]], params: dict[str, Any]) -> TaskRun:
    from kbpipe.rater.batch import Outcome, RunReport

    start = time.perf_counter()
    report = RunReport(rows=len(payloads))
    outcomes = []
    for i, payload in enumerate(payloads):
        text = task.offline(payload)
        value = task.parse(text)
        outcome = Outcome(i, value, text, reason=None if value else "no_tag", asks=1)
        outcomes.append(outcome)
        if outcome.ok:
            report.ok += 1
        else:
            report.failed["no_tag"] += 1
    report.elapsed_s = time.perf_counter() - start
    return TaskRun(task, "offline", outcomes, report, params)


def plan_task(
    task: Task,
    payloads: Sequence[dict[str, Any]],
    settings: Settings,
    options: RaterOptions,
    price: Price | None = None,
) -> DryRunPlan:
    """`--dry-run`: count the requests the journal does not answer yet, and their tokens
    and dollars. Sends nothing; reads the journal without creating or locking it."""
    model = getattr(settings, task.model_field)
    if options.backend != "api":
        return DryRunPlan(
            task.name, options.backend, "offline rules", len(payloads), 0, 0, 0, 0, 0, None
        )
    jobs = _jobs(task, payloads)
    path = journal_path(settings, task)
    answers = read_answers(path)
    runner = _runner(task, settings, options, answers)  # type: ignore[arg-type]
    settled, pending = runner.plan(jobs)
    max_tokens = runner.config.sampling.max_tokens
    chars = sum(len(m["content"]) for job in pending for m in job.messages)
    used = [
        a.usage["completion_tokens"] for a in answers.values() if "completion_tokens" in a.usage
    ]
    return DryRunPlan(
        task=task.name,
        backend="api",
        model=model,
        rows=len(jobs),
        cached=len(settled),
        to_send=len(pending),
        est_prompt_tokens=chars // 4,
        est_completion_tokens=round(len(pending) * sum(used) / len(used)) if used else None,
        max_completion_tokens=len(pending) * max_tokens,
        journal=path,
        price=price_for(model, price),
    )


def report_lines(
    name: str, metrics: dict[str, Any], *, value_label: str | None = None
) -> list[str]:
    """The human summary from `TaskRun.metrics()` (also what the stats file holds)."""
    m = metrics
    rate = f", {m['answers_per_s']:,.1f} answers/s" if m["answers_received"] else ""
    lines = [
        f"{name}: {m['rows']:,} rows via {m['backend']} ({m['model']}) in "
        f"{m['elapsed_s']:.1f}s{rate}"
    ]
    if m["backend"] == "api":
        lines.append(
            f"  journal: {m['cached']:,} rows answered before, {m['answers_received']:,} new "
            f"answers ({m['http_requests']:,} HTTP requests, {m['reasks']:,} re-asks) "
            f"-> {m['journal']}"
        )
    if value_label:
        values = m["values"]
        total = sum(values.values()) or 1
        ordered = sorted(values.items(), key=lambda kv: _order(kv[0]))
        shown = ", ".join(f"{v} {n:,} ({100 * n / total:.1f}%)" for v, n in ordered)
        lines.append(f"  {value_label}: {shown or 'none'}")
    failed = ", ".join(f"{k} {n:,}" for k, n in sorted(m["failed"].items()))
    lines.append(f"  failed: {failed or 'none'}")
    if m["retries"]:
        lines.append(
            "  retried: " + ", ".join(f"{k} {n:,}" for k, n in sorted(m["retries"].items()))
        )
    if m["backend"] == "api":
        used, reused = Counter(m["tokens"]), Counter(m["tokens_cached"])
        lines.append(
            f"  tokens: prompt {used['prompt_tokens']:,}, completion "
            f"{used['completion_tokens']:,} (reused from the journal: "
            f"{reused['prompt_tokens'] + reused['completion_tokens']:,})"
        )
    return lines


_order = difficulty_order
