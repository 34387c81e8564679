"""Step 1, `kbpipe filter`: keep `reward > threshold`, then rate each row's difficulty.

Two stages over one DuckDB session: `filter_by_reward` (kbpipe.steps.filter.reward)
leaves the kept rows as a lazy relation in input order, and `rate` turns them
into the filtered table. `--rater none` adds `difficulty` and `evaluation_raw`
as null columns, so the table has the same schema whether or not it was rated
(an input that already has both columns keeps its values).
"""

from __future__ import annotations

import argparse
import dataclasses
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from kbpipe.config import RATING_COLUMNS, Settings
from kbpipe.io import sql, sql_output
from kbpipe.io.lineage import ResolvedInput, StepInput, StepResult, as_resolved
from kbpipe.steps.filter.reward import RewardFilter, filter_by_reward, summary_lines

# The rater (aiohttp, pyarrow) is imported only when rows are rated:
# `--rater none` is a DuckDB-only step and starts in a fraction of the time
# (tests/steps/test_filter.py pins the modules it imports).
if TYPE_CHECKING:
    from kbpipe.io.plan import StepPlan
    from kbpipe.rater.tasks import RaterOptions
    from kbpipe.steps.filter.rating import JudgeOptions

RATERS = ("none", "offline", "api")

EXAMPLES = """examples:
  kbpipe filter --no-upload                       # evals -> filtered, LLM judge (api)
  kbpipe filter --rater none --threshold 0.9 -i outputs/glm4_7/evals_dataset.parquet
  kbpipe filter --rater offline --limit 20 --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rater",
        choices=RATERS,
        default="api",
        help="difficulty rater: api (LLM judge), offline (deterministic, no network) "
        "or none (reward filter only; difficulty left null). Default: api",
    )
    parser.add_argument(
        "--threshold",
        dest="reward_threshold",
        type=float,
        metavar="T",
        help="keep rows with reward strictly greater than T (default 0.85, REWARD_THRESHOLD)",
    )
    from kbpipe.rater.cliargs import add_rater_arguments
    from kbpipe.rater.judge import JUDGE

    # --rater itself is defined above (it adds `none`); the judge's engine options here.
    add_rater_arguments(parser, JUDGE, with_backend=False)
    # Light imports only: `--rater none` must not load the rating stage to parse its flags.
    from kbpipe.verify.extract import add_answer_format_argument

    add_answer_format_argument(
        parser,
        help="where the solution the judge rates sits in the completion (default: auto, "
        "every format in turn, on the last assistant message that holds one)",
    )
    parser.add_argument(
        "--on-unrated",
        choices=("keep", "drop"),
        default="keep",
        help="a row the judge gave no rating (no tag after the re-asks, an API error): keep "
        "it with difficulty null (default, as the seed) or drop it; both list it in the rejects",
    )


def filter_step(
    inputs: StepInput,
    output: Path,
    settings: Settings,
    *,
    rater: str = "api",
    limit: int | None = None,
    rater_options: RaterOptions | None = None,
    judge_options: JudgeOptions | None = None,
) -> StepResult:
    """Reward-filter the evals table, rate the kept rows, write the filtered table."""
    _check_rater(rater)
    resolved = as_resolved(inputs)
    output = Path(output)
    result = StepResult(
        "filter",
        output=output,
        inputs=resolved.lineage(),
        params={"reward_threshold": settings.reward_threshold, "rater": rater, "limit": limit},
    )
    with sql.session(output) as con:
        table = sql.open_input(con, resolved.paths)
        with sql.reading(table.label):
            reward = filter_by_reward(con, table, threshold=settings.reward_threshold, limit=limit)
            reward.record(result)
            rejects = reward.reject_rows()
            has_ratings = all(c in table.types for c in RATING_COLUMNS)
            if rater == "none":
                result.rows_out = rate(con, reward, output, has_ratings=has_ratings)
            else:
                from kbpipe.rater.tasks import RaterOptions
                from kbpipe.steps.filter.rating import check_judge_inputs, rate_kept

                # The judge (kbpipe.steps.filter.rating): rated rows out, failures to rejects.
                check_judge_inputs(table)
                options = dataclasses.replace(rater_options or RaterOptions(), backend=rater)
                rated = rate_kept(con, reward.kept, output, settings, options, judge_options)
                rated.record(result)
                rejects += rated.rejects
                result.rows_out = rated.rows_out
    result.write_rejects(rejects)
    return result.finish(settings)


def rate(
    con: duckdb.DuckDBPyConnection, reward: RewardFilter, output: Path, *, has_ratings: bool
) -> int:
    """Stage 2 for `--rater none`: write the kept rows with empty rating columns.

    Returns the rows written. Rows the input already rated keep their rating.
    """
    if has_ratings:
        return sql_output.write_relation(reward.kept, output)
    reward.kept.create_view("reward_kept", replace=True)
    return sql_output.write_relation(sql.run(con, "filtered_unrated"), output)


def _check_rater(rater: str) -> None:
    if rater not in RATERS:
        raise ValueError(f"rater must be one of {RATERS}, got {rater!r}")


READS = "source"
# Under make, the evals table comes from converting INPUT (or the Hub without it).
MAKE_INPUT_HINT = "INPUT=<vf-eval JSONL> (or build the evals table first)"
WRITES = ("filtered", "")


def check_args(args: argparse.Namespace, settings: Settings) -> None:
    """Settings errors (a missing API key) before the input, which may come from the Hub."""
    if args.rater != "none":
        from kbpipe.rater.cliargs import options_from_args

        options_from_args(args, settings)


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult | None:
    options = None
    if args.rater != "none":
        from kbpipe.rater.cliargs import options_from_args

        options = options_from_args(args, settings)
    return filter_step(
        inputs,
        output,
        settings,
        rater=args.rater,
        limit=settings.limit(args.limit),
        rater_options=options,
        judge_options=_judge_options(args) if options is not None else None,
    )


def plan(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepPlan:
    """`--dry-run`: the reward filter's counts and the judge's requests; writes nothing."""
    from kbpipe.io.plan import StepPlan

    limit = settings.limit(args.limit)
    # --limit keeps the first N rows that pass the threshold; every row is read.
    step = StepPlan("filter", None, output)
    # A plain connection: a session would make a spill folder beside the output.
    with closing(sql.connect()) as con:
        table = sql.open_input(con, as_resolved(inputs).paths)
        with sql.reading(table.label):
            reward = filter_by_reward(con, table, threshold=settings.reward_threshold, limit=limit)
            step.rows_in = reward.n_rows
            kept = f"kept by reward > {settings.reward_threshold}: {reward.n_passing:,} rows"
            step.details.append(kept + (f"; --limit keeps the first {limit:,}" if limit else ""))
            if args.rater != "none":
                from kbpipe.rater.cliargs import options_from_args
                from kbpipe.steps.filter.rating import check_judge_inputs, plan_judge

                check_judge_inputs(table)
                options = options_from_args(args, settings)
                judge = plan_judge(
                    con,
                    reward.kept,
                    settings,
                    options,
                    judge_options=_judge_options(args),
                    price=args.price_per_mtok,
                )
                step.requests.append(judge)
    return step


def _judge_options(args: argparse.Namespace) -> JudgeOptions:
    from kbpipe.steps.filter.rating import JudgeOptions

    return JudgeOptions(answer_format=args.answer_format, on_unrated=args.on_unrated)


def report_lines(result: StepResult) -> list[str]:
    lines = summary_lines(result.metrics["reward_filter"])
    if "judge" in result.metrics:
        from kbpipe.rater.tasks import report_lines as rater_report_lines

        lines += rater_report_lines("judge", result.metrics["judge"], value_label="difficulty")
        unrated = result.metrics.get("judge_unrated_kept") or {}
        if unrated:
            lines.append(
                f"  kept {sum(unrated.values()):,} unrated rows with difficulty null "
                "(listed in the rejects; --on-unrated drop leaves them out)"
            )
    return lines
