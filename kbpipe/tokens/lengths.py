"""Counting a table's rows under a chat template, a batch of rows at a time.

Rows are read as conversations (`prompt + completion`) from Parquet or JSONL,
rendered and counted by a ChatTokenizer while the next batch is read and
rendered on a helper thread. A row the template refuses is skipped and listed
(the seed skipped such rows too); `Lengths` holds a few numbers per row, so
memory stays flat on multi-GB tables.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.errors import InputError
from kbpipe.io.arrays import int64_array, string_array
from kbpipe.io.tables import parquet_schema, require_columns, table_format
from kbpipe.tokens.chat import ChatTokenizer, CountPlan, ReasoningMode

# The drop reason of a row the chat template refuses (or the tokenizer cannot encode).
UNRENDERABLE = "template_error"
# Columns the report is broken down by, when the table has them.
GROUP_COLUMNS = ("split", "difficulty")


class Lengths:
    """Per-row results gathered while counting; small (a few numbers per row)."""

    def __init__(self) -> None:
        self.example_id: list[Any] = []
        self.module_name: list[str | None] = []
        self.n_tokens: list[int] = []
        self.n_reasoning: list[int] = []
        self.groups: dict[str, list[Any]] = {key: [] for key in GROUP_COLUMNS}
        self.has_group = dict.fromkeys(GROUP_COLUMNS, False)
        # One flag per input row, in order: counted (True) or skipped as a reject.
        self.rendered: list[bool] = []
        self.skipped: list[dict[str, Any]] = []

    def per_row_table(self) -> pa.Table:
        return pa.table(
            {
                "example_id": int64_array(self.example_id, infer=True),
                "module_name": string_array(self.module_name),
                "n_tokens": int64_array(self.n_tokens),
                "n_reasoning_tokens": int64_array(self.n_reasoning),
            }
        )


def count_table(
    inputs: Sequence[Path],
    tok: ChatTokenizer,
    reasoning: ReasoningMode,
    limit: int | None,
    batch_rows: int,
    progress: bool | None,
) -> Lengths:
    out = Lengths()
    total = row_count(inputs)
    total = min(total, limit) if total is not None and limit is not None else total or limit
    bar = _progress_bar(total, progress)
    started, n_total = time.perf_counter(), 0
    chunks = read_chunks(inputs, batch_rows, limit)

    def prepare() -> tuple[Chunk, CountPlan, list[bool]] | None:
        chunk = next(chunks, None)
        if chunk is None:
            return None
        return _plan_chunk(tok, chunk, reasoning, out.skipped)

    # Reading and rendering the next batch (Python) runs while the current one
    # is encoded (Rust, GIL released), so the cores do not wait for Python.
    with bar, ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare)
        while (ready := pending.result()) is not None:
            pending = pool.submit(prepare)
            chunk, plan, rendered = ready
            out.rendered += rendered
            n_tokens, n_reasoning = tok.count_plan(plan)
            out.example_id += chunk.example_id
            out.module_name += chunk.module_name
            out.n_tokens += n_tokens
            out.n_reasoning += n_reasoning
            for key in out.groups:
                values = chunk.groups.get(key)
                out.has_group[key] |= values is not None
                out.groups[key] += values if values is not None else [None] * len(n_tokens)
            n_total += sum(n_tokens)
            bar.update(len(n_tokens))
            rate = n_total / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{rate / 1e6:.2f}M tok/s", refresh=False)
    return out


class _NoBar:
    """What the loop asks of a progress bar, doing nothing (tqdm is not even imported)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass


def _progress_bar(total: int | None, progress: bool | None) -> Any:
    """tqdm's bar when one is shown (`progress`, or by default on a terminal, as tqdm's
    own disable=None does); importing tqdm costs ~0.04 s of a small run otherwise."""
    if not (sys.stderr.isatty() if progress is None else progress):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="row", desc="seqlen", dynamic_ncols=True)


def _plan_chunk(
    tok: ChatTokenizer, chunk: Chunk, reasoning: ReasoningMode, skipped: list[dict[str, Any]]
) -> tuple[Chunk, CountPlan, list[bool]]:
    """The chunk's count plan; rows the template refuses are cut out of the chunk and
    listed in `skipped` (the seed skipped them too), with which rows stayed."""
    labels = [f"{chunk.path}: example_id {e}" for e in chunk.example_id]
    try:
        plan = tok.plan(chunk.conversations, reasoning=reasoning, labels=labels)
        return chunk, plan, [True] * len(labels)
    except InputError:
        pass
    # Rare: find the refused rows one by one, then plan the others together.
    rendered = []
    for i, (conversation, label) in enumerate(zip(chunk.conversations, labels, strict=True)):
        try:
            tok.plan([conversation], reasoning=reasoning, labels=[label])
        except InputError as exc:
            rendered.append(False)
            skipped.append(
                {
                    "reason": UNRENDERABLE,
                    "detail": str(exc),
                    "example_id": chunk.example_id[i],
                    "module_name": chunk.module_name[i],
                }
            )
        else:
            rendered.append(True)
    _keep_rows(chunk, rendered)
    labels = [label for label, ok in zip(labels, rendered, strict=True) if ok]
    return chunk, tok.plan(chunk.conversations, reasoning=reasoning, labels=labels), rendered


def _keep_rows(chunk: Chunk, keep: list[bool]) -> None:
    def kept(values: list[Any]) -> list[Any]:
        return [v for v, ok in zip(values, keep, strict=True) if ok]

    chunk.conversations = kept(chunk.conversations)
    chunk.example_id = kept(chunk.example_id)
    chunk.module_name = kept(chunk.module_name)
    chunk.groups = {k: (kept(v) if v is not None else None) for k, v in chunk.groups.items()}


class Chunk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conversations: list[list[dict[str, Any]]] = []
        self.example_id: list[Any] = []
        self.module_name: list[str | None] = []
        self.groups: dict[str, list[Any] | None] = {}


def read_chunks(inputs: Sequence[Path], batch_rows: int, limit: int | None) -> Iterator[Chunk]:
    """Rows as message lists, `batch_rows` at a time, across all input files, up to `limit`."""
    left = math.inf if limit is None else limit
    for path in inputs:
        if left <= 0:
            return
        reader = _parquet_chunks if table_format(path) == "parquet" else _jsonl_chunks
        for chunk in reader(path, batch_rows):
            n = len(chunk.conversations)
            if n > left:
                _truncate(chunk, int(left))
                n = int(left)
            left -= n
            yield chunk
            if left <= 0:
                return


def _truncate(chunk: Chunk, n: int) -> None:
    chunk.conversations = chunk.conversations[:n]
    chunk.example_id = chunk.example_id[:n]
    chunk.module_name = chunk.module_name[:n]
    chunk.groups = {k: (v[:n] if v is not None else None) for k, v in chunk.groups.items()}


def _parquet_chunks(path: Path, batch_rows: int) -> Iterator[Chunk]:
    schema = parquet_schema(path)
    require_columns(schema, ["prompt", "completion"], path)
    names = set(schema.names)
    columns = ["prompt", "completion"] + [c for c in ("example_id", *GROUP_COLUMNS) if c in names]
    has_module = "info" in names and _struct_has(schema.field("info").type, "module_name")
    if has_module:
        columns.append("info.module_name")
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        chunk = Chunk(path)
        n = batch.num_rows
        prompts = batch.column("prompt").to_pylist()
        completions = batch.column("completion").to_pylist()
        chunk.example_id = (
            batch.column("example_id").to_pylist() if "example_id" in names else [None] * n
        )
        chunk.conversations = [
            _conversation(p, c, path, e)
            for p, c, e in zip(prompts, completions, chunk.example_id, strict=True)
        ]
        chunk.module_name = (
            batch.column("info").field("module_name").to_pylist() if has_module else [None] * n
        )
        for key in GROUP_COLUMNS:
            if key in names:
                chunk.groups[key] = batch.column(key).to_pylist()
        yield chunk


def _jsonl_chunks(path: Path, batch_rows: int) -> Iterator[Chunk]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    chunk, seen = Chunk(path), set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "prompt" not in row or "completion" not in row:
                raise InputError(f"{path}:{lineno}: row has no prompt and completion")
            example_id = row.get("example_id")
            info = row.get("info") if isinstance(row.get("info"), dict) else {}
            chunk.conversations.append(
                _conversation(row["prompt"], row["completion"], path, example_id, lineno)
            )
            chunk.example_id.append(example_id)
            chunk.module_name.append(info.get("module_name"))
            for key in GROUP_COLUMNS:
                chunk.groups.setdefault(key, []).append(row.get(key))
                if key in row:
                    seen.add(key)
            if len(chunk.conversations) == batch_rows:
                yield _only_seen_groups(chunk, seen)
                chunk, seen = Chunk(path), set()
    if chunk.conversations:
        yield _only_seen_groups(chunk, seen)


def _only_seen_groups(chunk: Chunk, seen: set[str]) -> Chunk:
    # A JSONL file has a group column only where some row has the key.
    chunk.groups = {k: v for k, v in chunk.groups.items() if k in seen}
    return chunk


def _conversation(
    prompt: Any, completion: Any, path: Path, example_id: Any, lineno: int | None = None
) -> list[dict[str, Any]]:
    where = f"{path}:{lineno}" if lineno else str(path)
    for name, value in (("prompt", prompt), ("completion", completion)):
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            raise InputError(
                f"{where}: example_id {example_id}: {name} is not a list of messages "
                f"({type(value).__name__})"
            )
    return prompt + completion


def _struct_has(dtype: pa.DataType, name: str) -> bool:
    return pa.types.is_struct(dtype) and dtype.get_field_index(name) >= 0


def row_count(inputs: Sequence[Path]) -> int | None:
    if all(table_format(p) == "parquet" for p in inputs):
        return sum(pq.ParquetFile(p).metadata.num_rows for p in inputs)
    return None
