"""Train/validation assignment: which rows of a table go to train and which to validation.

Three ways to split (``--split``):

- ``module`` (default): a module goes to validation when the sha256 of its
  ``info.module_name`` falls in the lowest 10 % of the hash space. The choice
  depends on the name alone, so every rollout of a module lands on the same
  side, adding rows or re-sorting the table never moves a module, and any
  machine computes the same split. Rows without a module name go to train:
  they cannot be checked for leakage, so they stay out of the held-out set.
  Near-identical code under different names (KernelBook has one ``ReLU`` per
  repo) must not straddle the split either: in a table with a
  ``module_cluster`` column (``kbpipe dedupe --near-duplicates``), modules
  whose code falls in one cluster are split as one, by the smallest module
  name among them. A module alone in its cluster keeps its own name, so
  clusters move only the modules that have near-duplicates.
- ``legacy``: exactly ``datasets.Dataset.train_test_split(test_size=0.1,
  seed=42)`` as the seed scripts called it, with ``test`` renamed
  ``validation``; both sides keep the permutation order, as datasets does.
- ``none``: one ``train`` split.

A table that already carries a ``split`` column (a Hub dataset pulled with its
train/validation files) keeps that assignment under ``module`` and ``legacy``;
the column itself is not published, the file names carry it.

Splits are decided once: a table made from another (unique, no-reasoning,
merged, ...) is split as the table it was made from, row by row through
``example_id``; see kbpipe.hub.carry.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.errors import ConfigError, InputError
from kbpipe.io.tables import ROW_GROUP_ROWS, parquet_schema

SPLIT_MODES = ("module", "legacy", "none")
VALIDATION_FRACTION = 0.1
LEGACY_SEED = 42
SPLIT_COLUMN = "split"
_SPLIT_ORDER = ("train", "validation", "test")
MERGED_CONFIGS = ("base", "synthetic")
_SPLIT_NAME_RE = re.compile(r"^(train|validation|valid|val|dev|test)(?=[-_.]|$)")
_SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation"}
# split name -> row indices into the source table, in output order.
SplitPlan = dict[str, np.ndarray]
# (table, mode, rows or None for all) -> their plan; plan_splits, or one that follows a parent.
Planner = Callable[[Path, str, "np.ndarray | None"], SplitPlan]


def module_in_validation(module_name: str | None, fraction: float = VALIDATION_FRACTION) -> bool:
    """True when a module belongs to validation under ``--split module``."""
    if module_name is None:
        return False
    digest = hashlib.sha256(module_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def legacy_split_indices(
    n: int, test_size: float = VALIDATION_FRACTION, seed: int = LEGACY_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices exactly as ``Dataset.train_test_split(test_size, seed)``."""
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0:
        raise InputError(
            f"--split legacy needs at least 2 rows (got {n}): train_test_split would leave "
            "train empty; use --split none"
        )
    permutation = np.random.default_rng(seed).permutation(n)
    return permutation[n_test : n_test + n_train], permutation[:n_test]


def module_names(path: Path) -> list[str | None]:
    """``info.module_name`` per row (or a top-level ``module_name``), read without other columns."""
    schema = parquet_schema(path)
    if "info" in schema.names and _has_child(schema.field("info").type, "module_name"):
        return read_column(path, "info.module_name")
    if "module_name" in schema.names:
        return read_column(path, "module_name")
    raise InputError(
        f"{path}: --split module needs info.module_name (or a module_name column); "
        "use --split legacy or --split none for this table"
    )


def split_keys(path: Path) -> list[str | None]:
    """The name each row is split by under ``module``: its module name, merged with
    the names of every module whose code is in the same near-duplicate cluster."""
    names = module_names(path)
    clusters = _module_clusters(path)
    if clusters is None:
        return names
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for name, cluster in zip(names, clusters, strict=True):
        if name is not None and cluster is not None:
            a, b = find("name:" + name), find("cluster:" + cluster)
            parent[max(a, b)] = min(a, b)  # "cluster:" < "name:": roots are clusters
    smallest: dict[str, str] = {}
    for name in names:
        if name is not None:
            root = find("name:" + name)
            smallest[root] = min(smallest.get(root, name), name)
    return [None if n is None else smallest[find("name:" + n)] for n in names]


def _module_clusters(path: Path) -> list[str | None] | None:
    """Per row, its code's near-duplicate cluster; None when the table has no clusters."""
    if "module_cluster" not in parquet_schema(path).names:
        return None
    return read_column(path, "module_cluster")


def plan_splits(path: Path, mode: str, rows: np.ndarray | None = None) -> SplitPlan:
    """Assign the rows of a Parquet table (or the subset ``rows``) to splits.

    Splits with no rows are left out, since a split without files cannot be
    loaded; an empty table yields an empty ``train``.
    """
    if mode not in SPLIT_MODES:
        raise ConfigError(f"unknown split mode {mode!r}; expected one of {', '.join(SPLIT_MODES)}")
    n_total = pq.ParquetFile(path).metadata.num_rows
    rows = np.arange(n_total, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    if mode == "none" or len(rows) == 0:
        return {"train": rows}
    if SPLIT_COLUMN in parquet_schema(path).names:
        values = read_column(path, SPLIT_COLUMN)
        return plan_from_labels(path, [values[i] for i in rows], rows)
    if mode == "legacy":
        train, test = legacy_split_indices(len(rows))
        plan = {"train": rows[train], "validation": rows[test]}
    else:
        names = split_keys(path)
        in_validation = _validation_mask([names[i] for i in rows])
        plan = {"train": rows[~in_validation], "validation": rows[in_validation]}
    return {name: idx for name, idx in plan.items() if len(idx)}


def _validation_mask(names: list[str | None]) -> np.ndarray:
    # Hash each distinct name once: a module has many rollouts.
    verdict = {name: module_in_validation(name) for name in set(names)}
    return np.fromiter((verdict[n] for n in names), dtype=bool, count=len(names))


def plan_from_labels(path: Path, labels: list[str | None], rows: np.ndarray) -> SplitPlan:
    """``rows`` grouped by their split label, splits in their usual order."""
    if any(label is None for label in labels):
        raise InputError(f"{path}: the {SPLIT_COLUMN!r} column has empty values")
    names = sorted(set(labels), key=split_sort_key)
    array = np.asarray(labels, dtype=object)
    return {name: rows[array == name] for name in names}


def split_sort_key(name: str) -> tuple[int, str]:
    """train, validation, test first, then any other split by name."""
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def split_from_path(rel_path: str) -> str:
    """The split a data file belongs to by datasets' naming convention (train when unnamed)."""
    for part in reversed(rel_path.split("/")):
        match = _SPLIT_NAME_RE.match(part)
        if match:
            return _SPLIT_ALIASES.get(match.group(1), match.group(1))
    return "train"


def _has_child(kind: pa.DataType, name: str) -> bool:
    return pa.types.is_struct(kind) and kind.get_field_index(name) >= 0


def parquet_file(source: Path) -> pq.ParquetFile:
    # Page by page, one thread: memory follows the batch being read, not the row group.
    return pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20)


def iter_batches(source: Path, columns: list[str] | None = None, size: int = ROW_GROUP_ROWS) -> Any:
    return parquet_file(source).iter_batches(batch_size=size, columns=columns, use_threads=False)


def read_column(path: Path, column: str) -> list[Any]:
    """One column (``a.b`` for a struct field) as Python values, read in batches."""
    values: list[Any] = []
    for batch in iter_batches(path, [column], 8192):
        array = batch.column(0)
        for name in column.split(".")[1:]:
            # flatten() merges the struct's own nulls into its fields.
            array = array.flatten()[array.type.get_field_index(name)]
        values += array.to_pylist()
    return values
