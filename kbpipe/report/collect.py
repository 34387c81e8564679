"""What the report reads from a run folder: every stats file, and a few columns of each table.

Only the columns a chart needs (rewards, difficulty, module names, token
counts, verdicts) are read, straight from their Parquet column chunks, so a run
whose tables hold gigabytes of reasoning text is summarised in milliseconds and
a few megabytes. A table that is not there, or cannot be read, becomes a note
on the page instead of an error: the report is most useful on half-built runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kbpipe.config import table_spec
from kbpipe.hub.splits import legacy_split_indices, module_in_validation

# table (a config.TABLES name) -> the columns the report uses. Dotted names are
# struct fields; they are read without the struct's other fields.
COLUMNS: dict[str, tuple[str, ...]] = {
    "evals": ("reward", "info.module_name"),
    "filtered": ("reward", "difficulty", "info.module_name"),
    "unique": ("reward", "difficulty", "info.module_name"),
    "synthetic": ("module_name",),
    "verified": ("verified", "verify_error", "speedup_measured", "speedup_reward"),
    "decontaminated": ("contaminated", "benchmark_match", "benchmark_overlap"),
    "audited": ("audit_flags", "audit_ok"),
}

# Pipeline order for the funnel; steps not listed follow in name order.
STEP_ORDER = (
    "convert",
    "filter",
    "audit",
    "decontaminate",
    "verify",
    "dedupe",
    "seqlen",
    "strip-reasoning",
    "prompts",
    "merge",
)
SPLIT_MODES = ("module", "legacy", "none")


@dataclass
class Table:
    """The columns of one table the report uses: numbers as float arrays (NaN for null)."""

    name: str
    path: Path
    n_rows: int
    columns: dict[str, Any]
    missing: list[str] = field(default_factory=list)

    def has(self, column: str) -> bool:
        return column in self.columns


@dataclass
class Seqlen:
    """One `seqlen_<table>.json` report and its per-row lengths, with each row's split."""

    table: str
    report: dict[str, Any]
    n_tokens: np.ndarray | None
    splits: np.ndarray | None


@dataclass
class Run:
    run_dir: Path
    stats: list[dict[str, Any]]
    tables: dict[str, Table]
    seqlen: list[Seqlen]
    split_mode: str
    # Human-readable notes about files that are missing or could not be read.
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)


def collect(run_dir: Path, split_mode: str = "module") -> Run:
    """Read everything the report shows from `run_dir`; never fails on a missing file."""
    run = Run(run_dir, [], {}, [], split_mode)
    run.stats = _read_stats(run_dir, run.notes)
    for name, columns in COLUMNS.items():
        path = run_dir / table_file(name)
        if path.exists():
            table = _read_table(name, path, columns, run.notes)
            if table is not None:
                run.tables[name] = table
    run.seqlen = _read_seqlen(run_dir, split_mode, run.notes)
    return run


def table_file(name: str) -> str:
    """A table's file name in a run folder, from the one registry in kbpipe.config."""
    return f"{table_spec(name).stem}.parquet"


def _read_stats(run_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    stats = []
    for path in sorted(run_dir.glob("*.stats.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            notes.append(f"{path.name}: not readable as JSON ({exc})")
            continue
        if isinstance(entry, dict) and "rows_in" in entry:
            entry["_file"] = path.name
            stats.append(entry)
    return sorted(stats, key=_step_rank)


def _step_rank(entry: dict[str, Any]) -> tuple[int, str]:
    step = str(entry.get("step"))
    rank = STEP_ORDER.index(step) if step in STEP_ORDER else len(STEP_ORDER)
    return rank, entry["_file"]


def _read_table(name: str, path: Path, wanted: tuple[str, ...], notes: list[str]) -> Table | None:
    try:
        pf = pq.ParquetFile(path)
        present = [c for c in wanted if _has_column(pf.schema_arrow, c)]
        data = pf.read(columns=present) if present else None
    except (pa.ArrowException, OSError) as exc:
        notes.append(f"{path.name}: could not be read ({str(exc).splitlines()[0]})")
        return None
    columns = {c: _values(_column(data, c)) for c in present} if data is not None else {}
    missing = [c for c in wanted if c not in present]
    return Table(name, path, pf.metadata.num_rows, columns, missing)


def _has_column(schema: pa.Schema, dotted: str) -> bool:
    top, _, child = dotted.partition(".")
    if top not in schema.names:
        return False
    kind = schema.field(top).type
    return not child or (pa.types.is_struct(kind) and kind.get_field_index(child) >= 0)


def _column(data: pa.Table, dotted: str) -> pa.ChunkedArray:
    top, _, child = dotted.partition(".")
    column = data.column(top)
    return pc.struct_field(column, child) if child else column


def _values(column: pa.ChunkedArray) -> Any:
    """Numbers become float arrays (NaN for null, so numpy can mask them); the rest lists."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return column.to_pylist()


def _read_seqlen(run_dir: Path, split_mode: str, notes: list[str]) -> list[Seqlen]:
    found = []
    for path in sorted(run_dir.glob("seqlen_*.json")):
        if path.name.endswith(".stats.json"):
            continue
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            notes.append(f"{path.name}: not readable as JSON ({exc})")
            continue
        table = str(report.get("table") or path.stem.removeprefix("seqlen_"))
        lengths, splits = _per_row_lengths(run_dir, report, table, split_mode, notes)
        found.append(Seqlen(table, report, lengths, splits))
    return found


def _per_row_lengths(
    run_dir: Path, report: dict[str, Any], table: str, split_mode: str, notes: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    # The report records the path it was written under (relative to where the
    # step ran); the file itself sits beside the JSON, so look there by name.
    name = Path(str(report.get("per_row") or f"seqlen_{table}.parquet")).name
    path = run_dir / name
    if not path.exists():
        notes.append(f"{name}: missing, so lengths per split are not shown")
        return None, None
    try:
        pf = pq.ParquetFile(path)
        columns = [c for c in ("n_tokens", "module_name") if c in pf.schema_arrow.names]
        data = pf.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        notes.append(f"{name}: could not be read ({str(exc).splitlines()[0]})")
        return None, None
    if "n_tokens" not in columns:
        notes.append(f"{name}: has no n_tokens column")
        return None, None
    lengths = data.column("n_tokens").to_numpy(zero_copy_only=False).astype(np.int64)
    modules = data.column("module_name").to_pylist() if "module_name" in columns else None
    return lengths, assign_splits(modules, len(lengths), split_mode)


def assign_splits(modules: list[str | None] | None, n: int, mode: str) -> np.ndarray:
    """Each row's split as publishing would assign it (`--split`), for the length table.

    `legacy` depends only on the row count and order, which the per-row length
    file keeps from its input table.
    """
    out = np.full(n, "train", dtype=object)
    if mode == "module" and modules is not None:
        out[[module_in_validation(m) for m in modules]] = "validation"
    elif mode == "legacy" and n >= 2:
        out[legacy_split_indices(n)[1]] = "validation"
    return out
