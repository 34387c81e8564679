"""`--dry-run`, one meaning on every step: the plan, with nothing written and nothing sent.

A step's plan says how many rows it would read, what it would write, and, for
the steps that call an LLM, how many requests the journal does not answer yet,
with their estimated tokens and dollars (kbpipe.rater.tasks.DryRunPlan). No
output, scratch folder, lock or journal folder is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbpipe.errors import InputError
from kbpipe.io.tables import table_format


@dataclass
class StepPlan:
    step: str
    rows_in: int | None
    output: Path | None
    limit: int | None = None
    # Lines that only this step can give (rows kept by the threshold, ...).
    details: list[str] = field(default_factory=list)
    # One kbpipe.rater.tasks.DryRunPlan per rater task the step would run.
    requests: list[Any] = field(default_factory=list)
    publish_to: str | None = None

    def lines(self) -> list[str]:
        rows = "unknown" if self.rows_in is None else f"{self.rows_in:,}"
        limit = f" (--limit/TEST_MODE: first {self.limit:,})" if self.limit else ""
        out = [
            f"{self.step}: dry run, nothing written and nothing sent",
            f"  rows in {rows}{limit}",
        ]
        out += [f"  {line}" for line in self.details]
        for plan in self.requests:
            out += plan.lines()
        if not self.requests:
            out.append("  requests: none (this step calls no API), $0.00")
        if self.output is not None:
            out.append(f"  would write {self.output}")
        if self.publish_to:
            out.append(f"  would publish {self.publish_to}")
        return out


def count_rows(paths: Sequence[Path], limit: int | None = None) -> int:
    """Rows of local Parquet/JSONL files, from Parquet footers or by counting lines."""
    import pyarrow.parquet as pq

    total = 0
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        if table_format(path) == "parquet":
            total += pq.ParquetFile(path).metadata.num_rows
            continue
        with open(path, "rb") as fh:
            total += sum(1 for line in fh if line.strip())
    return min(total, limit) if limit is not None else total
