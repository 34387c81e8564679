"""Splits decided once: a derived table is split as the table it was made from.

A table made by a step that only keeps, drops or reorders its input's rows
(`INHERITING_STEPS`: dedupe, strip-reasoning, merge, decontaminate, verify,
audit; not `dedupe --near-duplicates`, whose table is split by its
`module_cluster` column) is published with each row on the side its `example_id` has in that
input, the *parent*. The parent is the local input its `<table>.stats.json`
names (one per run for a merged table), and its own split is decided the same
way, up to the table that first got a split (the filtered table, or any table
made by another step or without a stats file) or one that carries a `split`
column (a Hub dataset pulled with its splits, which wins everywhere).

So under `--split legacy`, whose permutation depends on the row count, a
no-reasoning table that lost rows keeps every row on its filtered parent's
side; under `module` the sides are the same as the hash gives, and a parent's
`split` column still carries over. Keys are example_ids, or (data_source,
example_id) below a merged table, whose two runs both number examples from 0.
Where a key is on both sides of the parent (several rollouts of one example
under `legacy`), its rows follow the parent's first row with that key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from kbpipe.errors import InputError
from kbpipe.hub.splits import (
    SPLIT_COLUMN,
    Planner,
    SplitPlan,
    plan_from_labels,
    plan_splits,
    read_column,
    split_sort_key,
)
from kbpipe.io.tables import parquet_schema, read_stats, table_format

# Steps whose output rows are rows of their input (kept, dropped, reordered, columns
# changed), so their tables take their input's split.
INHERITING_STEPS = frozenset(
    {"dedupe", "strip-reasoning", "merge", "decontaminate", "verify", "audit"}
)
# A chain of derived tables longer than this is a lineage loop, not a pipeline.
_MAX_LINEAGE = 16


def planner_for(table: Path) -> Planner:
    """The split planner for publishing ``table``: its parents' sides, or its own plan.

    ``table`` is the built file whose stats name its parents; the planner is
    called on the Parquet staged from it (the same rows in the same order).
    """
    parents = split_parents(table)
    if not parents:
        return plan_splits

    def plan(source: Path, mode: str, rows: np.ndarray | None) -> SplitPlan:
        if rows is None:
            rows = _all_rows(source)
        if mode == "none" or len(rows) == 0 or SPLIT_COLUMN in parquet_schema(source).names:
            return plan_splits(source, mode, rows)
        return _plan_from_parents(source, mode, rows, parents, depth=0)

    return plan


def carried_label(table: Path, split: str) -> str:
    """How the card names the split of ``table`` published with ``split``."""
    if split != "none" and split_parents(table):
        return "inherited"
    return split


def split_parents(table: Path) -> dict[str | None, Path]:
    """The local tables ``table`` was made from, by run (None, or base/synthetic for a
    merge), read from its stats sidecar; empty when it decides its own split."""
    stats = read_stats(Path(table))
    if stats is None or stats.get("step") not in INHERITING_STEPS:
        return {}
    if (stats.get("params") or {}).get("near_duplicates"):
        # dedupe --near-duplicates clustered the modules: the table is split by its
        # clusters, so that no cluster straddles, whatever side its parent put a row
        return {}
    by_run: dict[str | None, list[Path]] = {}
    for entry in stats.get("inputs") or []:
        if entry.get("role"):  # a reference the step read (decontaminate's benchmark)
            continue
        by_run.setdefault(entry.get("run"), []).append(Path(str(entry.get("path"))))
    # A Hub input carries a split column, which wins; several files form no one table.
    return {
        run: paths[0]
        for run, paths in by_run.items()
        if len(paths) == 1 and paths[0].is_file() and not str(paths[0]).startswith("hf:")
    }


def _plan_from_parents(
    table: Path, mode: str, rows: np.ndarray, parents: dict[str | None, Path], depth: int
) -> SplitPlan:
    if len(parents) == 1:
        [parent] = parents.values()
        return _inherited_plan(table, mode, rows, parent, depth)
    # A merged table: each run's rows follow that run's table.
    sources = np.asarray(read_column(table, "data_source"), dtype=object)[rows]
    parts: dict[str, list[np.ndarray]] = {}
    for run, parent in parents.items():
        subset = rows[sources == run]
        if len(subset):
            for name, indices in _inherited_plan(table, mode, subset, parent, depth).items():
                parts.setdefault(name, []).append(indices)
    plan = {name: np.sort(np.concatenate(idx)) for name, idx in parts.items()}
    return {name: plan[name] for name in sorted(plan, key=split_sort_key)}


def _inherited_plan(path: Path, mode: str, rows: np.ndarray, parent: Path, depth: int) -> SplitPlan:
    """``rows`` of ``path`` on the sides their keys have in ``parent``."""
    found = _sides(parent, mode, depth + 1)
    if found is None:  # a JSONL parent under --split module: the hash gives the same sides
        return plan_splits(path, mode, rows)
    side, by_source = found
    keys = _row_keys(path, by_source)
    labels = [side.get(keys[i]) for i in rows]
    unknown = [keys[i] for i, label in zip(rows, labels, strict=True) if label is None]
    if unknown:
        shown = ", ".join(map(str, unknown[:10]))
        raise InputError(
            f"{path}: {len(unknown)} row(s) have example_ids its parent {parent} does not "
            f"have ({shown}); the parent changed since, rebuild {path.name}"
        )
    return plan_from_labels(path, labels, rows)


def _sides(table: Path, mode: str, depth: int) -> tuple[dict[Any, str], bool] | None:
    """Row key -> split in ``table``'s own plan (itself carried, up its lineage)."""
    if depth > _MAX_LINEAGE:
        raise InputError(f"{table}: the lineage of its split loops through its stats files")
    if table_format(table) != "parquet":
        if mode == "module":
            return None
        raise InputError(
            f"{table}: --split {mode} follows the split of the table this one was made from, "
            "which must be Parquet for that; rebuild it as .parquet or use --split module"
        )
    parents = split_parents(table)
    rows = _all_rows(table)
    if parents and SPLIT_COLUMN not in parquet_schema(table).names:
        plan = _plan_from_parents(table, mode, rows, parents, depth)
    else:
        plan = plan_splits(table, mode)
    by_source = "data_source" in parquet_schema(table).names
    keys = _row_keys(table, by_source)
    label = np.empty(len(keys), dtype=object)
    for name, indices in plan.items():
        label[indices] = name
    side: dict[Any, str] = {}
    for key, name in zip(keys, label, strict=True):
        side.setdefault(key, name)
    return side, by_source


def _row_keys(table: Path, by_source: bool) -> list[Any]:
    names = parquet_schema(table).names
    if "example_id" not in names:
        raise InputError(f"{table}: a split carried by example_id needs an example_id column")
    ids = read_column(table, "example_id")
    if not by_source:
        return ids
    if "data_source" not in names:
        raise InputError(f"{table}: its parent is a merged table, so it needs data_source too")
    return list(zip(read_column(table, "data_source"), ids, strict=True))


def _all_rows(path: Path) -> np.ndarray:
    return np.arange(pq.ParquetFile(path).metadata.num_rows, dtype=np.int64)
