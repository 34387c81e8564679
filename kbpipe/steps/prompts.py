"""Step 2, `kbpipe prompts`: a task specification for every KernelBook module.

Each row of the KernelBook table (Hub `GPUMODE/KernelBook` by default, or `-i`
a local table) goes to the spec writer (`kbpipe.rater.specs`, via the API or
the offline backend); the text inside `<specification>` plus the answer-format
instruction becomes the row's `prompt`. Output columns, as the seed wrote them:
`prompt, module_name, python_code, triton_code, uuid`. Rows without a usable
spec (no tag after the re-asks, API failures, no PyTorch code) go to the
rejects file with the reason and the raw answer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.hub.pull import HubUnreachable, resolve_input
from kbpipe.io.lineage import ResolvedInput, StepResult
from kbpipe.io.plan import StepPlan
from kbpipe.io.tables import read_table, write_table
from kbpipe.rater.cliargs import add_rater_arguments, options_from_args
from kbpipe.rater.specs import DEFAULT_ANSWER_FORMAT, SPECS, training_prompt
from kbpipe.rater.tasks import RaterOptions, plan_task, run_task
from kbpipe.rater.tasks import report_lines as rater_report_lines

COLUMNS = ("prompt", "module_name", "python_code", "triton_code", "uuid")
SOURCE_COLUMNS = COLUMNS[1:]
MISSING_CODE = "python_code_missing"
# What step 2 reads when the Hub is unreachable and nothing is published.
STANDIN = "bundled KernelBook stand-in (the modules of kbpipe.sample)"

EXAMPLES = """examples:
  kbpipe prompts --no-upload                  # GPUMODE/KernelBook -> synthetic prompts, LLM
  kbpipe prompts --dry-run --no-upload       # requests and prompt tokens it would send
  kbpipe prompts -i outputs/sample/kernelbook.parquet --rater offline --no-upload
  kbpipe prompts --model moonshotai/kimi-k2-0905 --concurrency 512 --limit 100 --no-upload
  kbpipe prompts --answer-format 'Answer with the code of {module_name}New in a python block.'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_rater_arguments(parser, SPECS)
    parser.add_argument(
        "--answer-format",
        metavar="TEXT",
        default=DEFAULT_ANSWER_FORMAT,
        help="instruction appended after every spec; {module_name} is replaced "
        "(default: the code between BEGIN_PYTHON and END_PYTHON lines)",
    )


def read_kernelbook(paths: Sequence[Path], limit: int | None = None) -> pl.DataFrame:
    """The columns step 2 needs from one or more KernelBook files, in file order."""
    frames = [read_table(p, columns=SOURCE_COLUMNS) for p in paths]
    df = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    if limit is not None:
        df = df.head(limit)
    if df.height == 0:
        raise InputError(f"{paths[0]}: no rows")
    return df


def _payloads(df: pl.DataFrame) -> list[dict[str, Any]]:
    return df.select("module_name", "python_code").to_dicts()


def plan(args: argparse.Namespace, inputs: None, output: Path, settings: Settings) -> StepPlan:
    """`--dry-run`: the KernelBook rows and the spec requests the journal does not answer."""
    options = options_from_args(args, settings)
    limit = settings.limit(args.limit)
    df = read_kernelbook(_kernelbook(args, settings).paths, limit)
    usable = _usable(_payloads(df))
    step = StepPlan("prompts", df.height, output, limit=limit)
    if len(usable) < df.height:
        step.details.append(f"rows without PyTorch code (rejected): {df.height - len(usable):,}")
    step.requests.append(plan_task(SPECS, usable, settings, options, args.price_per_mtok))
    return step


def _kernelbook(args: argparse.Namespace, settings: Settings) -> ResolvedInput:
    """-i, else KERNELBOOK_REPO from the Hub; when the Hub cannot be reached and the
    table would not be published, the bundled stand-in, said in one line."""
    try:
        return resolve_input(
            args.input,
            default_local=None,
            default_repo=settings.kernelbook_repo,
            settings=settings,
            make_hint="KERNELBOOK=<a local KernelBook table>",
        )
    except HubUnreachable:
        # Specs of the sample modules must never be published as KernelBook's.
        sends = args.upload and args.hub_dry_run is None and not settings.partial_rows
        if args.input is not None or (sends and not args.dry_run):
            raise
    path = settings.cache_dir / "standin" / "kernelbook.parquet"
    if not path.is_file():
        from kbpipe.sample.generator import write_kernelbook

        write_kernelbook(path)
    print(
        f"prompts: the Hub cannot be reached; reading the {STANDIN} from {path} instead of "
        f"{settings.kernelbook_repo}",
        file=sys.stderr,
    )
    return ResolvedInput([path], STANDIN)


def _has_code(payload: dict[str, Any]) -> bool:
    """Whether a row has PyTorch code to specify; the others are rejects, in runs and plans."""
    return bool((payload["python_code"] or "").strip())


def _usable(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in payloads if _has_code(p)]


def generate_prompts(
    inputs: ResolvedInput | Path,
    output: Path,
    settings: Settings,
    options: RaterOptions,
    *,
    answer_format: str = DEFAULT_ANSWER_FORMAT,
    limit: int | None = None,
) -> StepResult:
    """Write `output` with one training prompt per KernelBook row that got a spec."""
    if isinstance(inputs, Path):
        inputs = ResolvedInput([inputs], str(inputs))
    output = Path(output)
    df = read_kernelbook(inputs.paths, limit)
    result = StepResult(
        "prompts",
        output=output,
        rows_in=df.height,
        inputs=inputs.lineage(),
        params={"limit": limit, "answer_format": answer_format, "kernelbook": inputs.source},
    )
    payloads = _payloads(df)
    uuids = df.get_column("uuid").to_list()
    has_code = [_has_code(p) for p in payloads]
    usable = [i for i, ok in enumerate(has_code) if ok]
    run = run_task(SPECS, [payloads[i] for i in usable], settings, options)
    prompts: list[str | None] = [None] * df.height
    rejects = [
        {
            "reason": "the row has no PyTorch code to specify",
            "uuid": uuids[i],
            "module_name": payloads[i]["module_name"],
        }
        for i, ok in enumerate(has_code)
        if not ok
    ]
    result.drop(MISSING_CODE, len(rejects))
    for outcome in run.outcomes:
        row = usable[outcome.ref]
        name = payloads[row]["module_name"] or ""
        if outcome.ok:
            prompts[row] = training_prompt(outcome.value or "", name, answer_format)
            continue
        result.drop(f"spec_{outcome.reason}")
        rejects.append(
            {
                "reason": f"spec writer failed: {outcome.reason}",
                "detail": outcome.detail,
                "raw_answer": outcome.text,
                "uuid": uuids[row],
                "module_name": name,
            }
        )
    table = (
        df.with_columns(pl.Series("prompt", prompts, dtype=pl.String))
        .filter(pl.col("prompt").is_not_null())
        .select(COLUMNS)
    )
    write_table(table, output)
    result.rows_out = table.height
    result.write_rejects(rejects)
    result.params.update(run.params)
    result.metrics["specs"] = run.metrics()
    result.metrics["prompt_chars"] = length_stats([p for p in prompts if p is not None])
    return result.finish(settings)


def length_stats(prompts: Sequence[str]) -> dict[str, float]:
    """Prompt length in characters (the seed printed these after generating)."""
    if not prompts:
        return {}
    lengths = sorted(len(p) for p in prompts)
    return {
        "n": len(lengths),
        "mean": round(statistics.fmean(lengths), 1),
        "median": statistics.median(lengths),
        "min": lengths[0],
        "max": lengths[-1],
    }


# KernelBook is not a table of the run: read from -i or the KERNELBOOK_REPO dataset.
READS = None
WRITES = ("synthetic", "")


def execute(
    args: argparse.Namespace, inputs: None, output: Path, settings: Settings
) -> StepResult | None:
    options = options_from_args(args, settings)
    resolved = _kernelbook(args, settings)
    limit = settings.limit(args.limit)
    return generate_prompts(
        resolved, output, settings, options, answer_format=args.answer_format, limit=limit
    )


def report_lines(result: StepResult) -> list[str]:
    lines = rater_report_lines("specs", result.metrics["specs"])
    stats = result.metrics["prompt_chars"]
    if stats:
        lines.append(
            f"  prompt length (chars): mean {stats['mean']:,.0f}, median "
            f"{stats['median']:,.0f}, min {stats['min']:,}, max {stats['max']:,}"
        )
    return lines
