"""`verify_table`: re-run every row's solution on GPUs and annotate the table.

Reads and writes with pyarrow only (no polars, no duckdb), so it runs on a GPU
machine from a checkout with `PYTHONPATH=.`. Two passes over the input keep
memory bounded by the solutions, not the rows: the first reads `completion`
and `info` to plan one job per distinct (solution, reference) pair, the
second streams every column back out with the result columns appended
(replacing them when the input was verified before). A JSONL input is read
whole, since pyarrow's JSON reader does not stream; Parquet is streamed.

Rows with no solution or no reference are not run; they get `verified = false`
and the reason. Every row that is not verified is also listed in the rejects
file (`<stem>.rejects.jsonl`) with its reason; `drop_failed` removes them from
the output as well.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from kbpipe.io.tables import sidecar, write_rejects
from kbpipe.verify import journal as jr
from kbpipe.verify.extract import extract_solution
from kbpipe.verify.pool import GPU_RUNNER, Executor, LocalPool, PoolOptions
from kbpipe.verify.rowio import column, read_batches, write_annotated

RESULT_COLUMNS: dict[str, pa.DataType] = {
    "verified": pa.bool_(),
    "verify_error": pa.string(),
    "max_abs_err": pa.float64(),
    "max_rel_err": pa.float64(),
    "ref_ms": pa.float64(),
    "new_ms": pa.float64(),
    "speedup_measured": pa.float64(),
    "gpu_name": pa.string(),
    "torch_version": pa.string(),
    "triton_version": pa.string(),
    "triton_launches": pa.int64(),
    "state_dict_missing": pa.list_(pa.string()),
    "state_dict_unexpected": pa.list_(pa.string()),
}
Inputs = Path | list[Path]
SPEEDUP_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class VerifyOptions:
    atol: float = 1e-2
    rtol: float = 1e-2
    seeds: tuple[int, ...] = (0, 1, 2)
    timing: bool = True
    warmup_ms: float = 10.0
    rep_ms: float = 40.0
    timeout_s: float = 120.0
    gpus: tuple[str, ...] = ("0",)
    workers_per_gpu: int = 4
    batch_rows: int = 32  # one module's rows per batch, so big modules still spread out
    answer_format: str = "auto"
    limit: int | None = None
    drop_failed: bool = False
    journal_path: Path | None = None  # default: <output dir>/journal/verify.jsonl
    scratch_dir: Path | None = None  # default: a fresh folder beside the output, removed after
    runner: str = GPU_RUNNER
    progress: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if len(self.seeds) < 1 or self.timeout_s <= 0 or self.workers_per_gpu < 1:
            raise ValueError("verify needs at least one seed, a positive timeout and one worker")

    def job_settings(self) -> dict[str, Any]:
        """The settings that change a verdict or a timing: part of every journal key."""
        names = ("atol", "rtol", "seeds", "timing", "warmup_ms", "rep_ms")
        return {n: list(v) if isinstance(v, tuple) else v for n, v in asdict(self).items()
                if n in names}  # fmt: skip


@dataclass
class _Plan:
    """One entry per input row (its job's content id, or why it has none) and the jobs."""

    n_rows: int = 0
    row_contents: list[str | None] = field(default_factory=list)
    row_errors: dict[int, str] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    formats: Counter[str] = field(default_factory=Counter)


def verify_table(
    input_path: Path | str | Sequence[Path],
    output_path: Path | str,
    options: VerifyOptions | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Verify every row of `input_path` into `output_path`; a summary of what happened.

    `executor` defaults to a `LocalPool` over `options.gpus`; pass another (a Ray
    one, a test double) to run the jobs elsewhere.
    """
    if isinstance(input_path, list | tuple):
        input_path = [Path(p) for p in input_path]  # a Hub table's shards, in order
    else:
        input_path = Path(input_path)
    output_path = Path(output_path)
    options = options or VerifyOptions()
    started = time.monotonic()
    plan = _plan(input_path, options)
    results, run_stats = _run_jobs(plan, output_path, options, executor)
    row_results = [_row_result(plan, i, results) for i in range(plan.n_rows)]
    rows_out = _write_output(input_path, output_path, row_results, options)
    rejects = _write_rejects(input_path, output_path, row_results, options)
    summary = _summarize(row_results, options)
    return {
        **summary,
        **run_stats,
        "rows_in": plan.n_rows,
        "rows_out": rows_out,
        "n_rejects": rejects,
        "answer_formats": dict(plan.formats),
        "wall_s": round(time.monotonic() - started, 3),
    }


# ---------------------------------------------------------------------- plan


def _plan(path: Inputs, options: VerifyOptions) -> _Plan:
    plan = _Plan()
    for batch in read_batches(path, ["completion", "info"], options.limit):
        completions = column(batch, "completion")
        infos = column(batch, "info")
        for completion, info in zip(completions, infos, strict=True):
            _plan_row(plan, completion, info or {}, options)
    return plan


def _plan_row(plan: _Plan, completion: Any, info: dict[str, Any], options: VerifyOptions) -> None:
    index = plan.n_rows
    plan.n_rows += 1
    plan.row_contents.append(None)
    module, reference = info.get("module_name"), info.get("python_code")
    solution = extract_solution(completion or [], options.answer_format)
    if solution is None:
        plan.row_errors[index] = "no_answer"
        return
    plan.formats[solution.format] += 1
    if not module or not (reference or "").strip():
        plan.row_errors[index] = "no_reference: info.module_name or info.python_code is empty"
        return
    content = jr.content_id(solution.code, reference, module)
    plan.row_contents[index] = content
    plan.jobs.setdefault(
        content,
        {
            "key": content,
            "code": solution.code,
            "reference": reference,
            "reference_id": jr.content_id("", reference, module),
            "module_name": module,
            "settings": options.job_settings(),
        },
    )


# ---------------------------------------------------------------------- run


def _run_jobs(
    plan: _Plan, output: Path, options: VerifyOptions, executor: Executor | None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each job's result, from the journal or from the executor; counts of both."""
    stats = {"n_jobs": len(plan.jobs), "n_cached": 0, "n_run": 0, "run_s": 0.0, "envs": []}
    if not plan.jobs:
        return {}, stats
    scratch = options.scratch_dir or Path(tempfile.mkdtemp(prefix=".verify-", dir=_mkdir(output)))
    own = executor is None
    executor = executor or LocalPool(_pool_options(options, scratch))
    journal_path = options.journal_path or output.parent / "journal" / "verify.jsonl"
    try:
        envs = executor.start()
        stats["envs"] = envs
        with jr.ResultJournal(journal_path) as journal:
            results = _cached(plan, journal, envs, options)
            stats["n_cached"] = len(results)
            pending = [job for c, job in plan.jobs.items() if c not in results]
            begun = time.monotonic()
            for job, result in executor.run(_group(pending, options.batch_rows)):
                journal.put(_key(job, options, result), result)
                results[job["key"]] = result
                _progress(options, len(results), len(plan.jobs), begun, stats["n_cached"])
            stats["n_run"] = len(pending)
            stats["run_s"] = round(time.monotonic() - begun, 3)
    finally:
        executor.close()
        if own and options.scratch_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return results, stats


def _pool_options(options: VerifyOptions, scratch: Path) -> PoolOptions:
    return PoolOptions(
        scratch_dir=scratch,
        gpus=options.gpus,
        workers_per_gpu=options.workers_per_gpu,
        timeout_s=options.timeout_s,
        runner=options.runner,
    )


def _key(job: dict[str, Any], options: VerifyOptions, env: dict[str, Any]) -> str:
    return jr.result_key(job["key"], job["settings"], options.runner, env)


def _cached(
    plan: _Plan, journal: jr.ResultJournal, envs: list[dict[str, Any]], options: VerifyOptions
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for content, job in plan.jobs.items():
        for env in envs:
            result = journal.get(_key(job, options, env))
            if result is not None and jr.reusable(result, options.timeout_s):
                found[content] = result
                break
    return found


def _group(jobs: list[dict[str, Any]], batch_rows: int) -> list[list[dict[str, Any]]]:
    """Jobs of one reference together (they share a worker's warm reference), chunked."""
    by_reference: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_reference[job["reference_id"]].append(job)
    return [
        group[i : i + batch_rows]
        for group in by_reference.values()
        for i in range(0, len(group), batch_rows)
    ]


def _progress(options: VerifyOptions, done: int, total: int, begun: float, cached: int) -> None:
    if options.progress is None or (done % 50 and done != total):
        return
    ran = done - cached
    rate = ran / max(time.monotonic() - begun, 1e-9) * 60
    options.progress(f"verify: {done}/{total} jobs ({cached} from the journal), {rate:.0f}/min")


def _mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


# ---------------------------------------------------------------------- output


def _row_result(plan: _Plan, index: int, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    content = plan.row_contents[index]
    if content is None:
        return {"verified": False, "verify_error": plan.row_errors[index]}
    result = dict(results.get(content) or {"verified": False, "verify_error": "not_run"})
    if not result.get("verified") and not result.get("verify_error"):
        result["verify_error"] = "failed"  # a runner that gave no reason still gives one
    return result


def _write_output(
    inputs: Inputs, output: Path, row_results: list[dict[str, Any]], options: VerifyOptions
) -> int:
    keep = [bool(r.get("verified")) for r in row_results] if options.drop_failed else None
    return write_annotated(inputs, output, RESULT_COLUMNS, row_results, keep, options.limit)


def _write_rejects(
    inputs: Inputs, output: Path, row_results: list[dict[str, Any]], options: VerifyOptions
) -> int:
    def rows() -> Iterator[dict[str, Any]]:
        offset = 0
        for batch in read_batches(inputs, ["example_id", "info"], options.limit):
            ids, infos = column(batch, "example_id"), column(batch, "info")
            for example_id, info in zip(ids, infos, strict=True):
                result = row_results[offset]
                offset += 1
                if not result.get("verified"):
                    yield {
                        "example_id": example_id,
                        "module_name": (info or {}).get("module_name"),
                        "reason": reason_code(result.get("verify_error")),
                        "verify_error": result.get("verify_error"),
                    }

    return write_rejects(rows(), sidecar(output, "rejects"))


# ---------------------------------------------------------------------- summary


def reason_code(error: str | None) -> str:
    """`shape_mismatch: output 0 ...` -> `shape_mismatch`: the part stats count by."""
    return (error or "failed").split(":", 1)[0].strip()


def _summarize(rows: list[dict[str, Any]], options: VerifyOptions) -> dict[str, Any]:
    verified = [r for r in rows if r.get("verified")]
    speedups = sorted(r["speedup_measured"] for r in verified if r.get("speedup_measured"))
    return {
        "n_verified": len(verified),
        "n_failed": len(rows) - len(verified),
        "pass_rate": round(len(verified) / len(rows), 4) if rows else None,
        "failed_by_reason": dict(
            Counter(reason_code(r.get("verify_error")) for r in rows if not r.get("verified"))
        ),
        "speedup_quantiles": {
            f"p{round(q * 100)}": speedups[min(len(speedups) - 1, int(q * len(speedups)))]
            for q in SPEEDUP_QUANTILES
        }
        if speedups
        else {},
        "gpu_names": sorted({r["gpu_name"] for r in rows if r.get("gpu_name")}),
        "atol": options.atol,
        "rtol": options.rtol,
        "seeds": list(options.seeds),
    }


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
