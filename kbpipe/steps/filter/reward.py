"""The reward half of step 1: keep rollouts with `reward > threshold`.

Strictly greater, as the seed did, so a reward of exactly the threshold is
dropped. A null or NaN reward cannot be compared; those rows are not plain
threshold drops, so they go to the rejects file with the reason. `--limit N`
keeps the first N passing rows (the seed's TEST_MODE cut the rows to rate,
not the rows read).

`filter_by_reward` leaves the kept rows as a lazy DuckDB relation so the
rating stage (or, with `--rater none`, the writer) streams them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from kbpipe.errors import ConfigError
from kbpipe.io import sql
from kbpipe.io.lineage import StepResult

BELOW_THRESHOLD = "reward_at_or_below_threshold"
REWARD_MISSING = "reward_missing"
BEYOND_LIMIT = "beyond_limit"


@dataclass
class RewardFilter:
    """The kept rows (lazy, input order) and the counts the seed printed."""

    kept: duckdb.DuckDBPyRelation
    threshold: float
    limit: int | None
    n_rows: int
    n_passing: int
    n_kept: int
    n_below: int
    n_missing: int
    reward_min: float | None
    reward_max: float | None
    reward_mean: float | None
    con: duckdb.DuckDBPyConnection

    @property
    def n_skipped(self) -> int:
        return self.n_rows - self.n_kept

    def metrics(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "limit": self.limit,
            "n_rows": self.n_rows,
            "n_passing_threshold": self.n_passing,
            "n_kept": self.n_kept,
            "n_skipped": self.n_skipped,
            "n_reward_missing": self.n_missing,
            "n_beyond_limit": self.n_passing - self.n_kept,
            "pct_kept": round(100 * self.n_kept / self.n_rows, 2) if self.n_rows else 0.0,
            "kept_reward_min": self.reward_min,
            "kept_reward_max": self.reward_max,
            "kept_reward_mean": self.reward_mean,
        }

    def record(self, result: StepResult) -> None:
        """Account for every input row in a step's result."""
        result.rows_in = self.n_rows
        result.drop(BELOW_THRESHOLD, self.n_below)
        result.drop(REWARD_MISSING, self.n_missing)
        result.drop(BEYOND_LIMIT, self.n_passing - self.n_kept)
        result.metrics["reward_filter"] = self.metrics()

    def reject_rows(self) -> list[dict[str, Any]]:
        """Rows whose reward is null or NaN, each with a `reason`, in input order.

        Returned rather than written so the rating stage can add its own
        rejects (unparseable answers, API failures) to the same file.
        """
        if not self.n_missing:
            return []
        return sql.run(self.con, "reward_missing_rejects").to_arrow_table().to_pylist()


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """The seed's DATASET METRICS block, from `RewardFilter.metrics()`."""
    lines = [
        f"Total samples in dataset:     {metrics['n_rows']:,}",
        f"Reward threshold:             > {metrics['threshold']}",
        f"Samples passing threshold:    {metrics['n_kept']:,}",
        f"Samples skipped:              {metrics['n_skipped']:,}",
        f"Percentage to evaluate:       {metrics['pct_kept']:.1f}%",
    ]
    if metrics["n_reward_missing"]:
        lines.append(f"  of which reward null/NaN:   {metrics['n_reward_missing']:,} (see rejects)")
    if metrics["n_beyond_limit"]:
        lines.append(f"  of which beyond --limit:    {metrics['n_beyond_limit']:,}")
    if metrics["n_kept"]:
        lines += [
            "Filtered samples reward stats:",
            f"  Min reward:  {metrics['kept_reward_min']:.4f}",
            f"  Max reward:  {metrics['kept_reward_max']:.4f}",
            f"  Avg reward:  {metrics['kept_reward_mean']:.4f}",
        ]
    return lines


def filter_by_reward(
    con: duckdb.DuckDBPyConnection,
    table: sql.InputTable,
    *,
    threshold: float,
    limit: int | None = None,
) -> RewardFilter:
    """Keep `reward > threshold` from the view `open_input` made; first `limit` kept rows."""
    table.require_number("reward")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    summary = sql.fetch_one(con, "reward_filter_summary", threshold=threshold, limit=limit)
    # Null when no limit is set or no row passes; either way the filter alone decides.
    kept = sql.run(
        con,
        "filtered_by_reward",
        threshold=threshold,
        last_input_row=summary["last_kept_input_row"] if limit is not None else None,
    )
    return RewardFilter(
        kept=kept,
        threshold=threshold,
        limit=limit,
        n_rows=summary["n_rows"],
        n_passing=summary["n_passing"],
        n_kept=summary["n_kept"],
        n_below=summary["n_at_or_below_threshold"],
        n_missing=summary["n_reward_missing"],
        reward_min=_float(summary["kept_reward_min"]),
        reward_max=_float(summary["kept_reward_max"]),
        reward_mean=_float(summary["kept_reward_mean"]),
        con=con,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
