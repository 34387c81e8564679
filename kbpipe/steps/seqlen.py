"""Step 4: token length of every sample under the model's chat template.

Each row's `prompt + completion` is rendered with the chat template (reasoning
kept under `reasoning_content`, see kbpipe.tokens.chat) and counted with the fast
tokenizer in parallel batches of rows, reading the table one batch at a time so
memory stays flat on multi-GB tables. The report gives the seed's figures
(percentiles, buckets, counts over common limits, recommended `seq_len`) for
the whole table and per split and difficulty; per-row lengths go to a Parquet
file that joins back on `example_id`. `--drop-over N -o FILE` writes the table
without the rows longer than N tokens, so training at N truncates nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.config import Settings
from kbpipe.errors import ConfigError, InputError
from kbpipe.io.arrays import int64_array, string_array
from kbpipe.io.lineage import ResolvedInput, StepResult, describe_input, settled
from kbpipe.io.tables import (
    BatchWriter,
    atomic_output,
    parquet_schema,
    read_table,
    require_columns,
    table_format,
    write_json,
    write_table,
)
from kbpipe.tokens.chat import (
    COUNTERS,
    REASONING_MODES,
    ChatTokenizer,
    CounterChoice,
    CountPlan,
    ReasoningMode,
    load_chat_tokenizer,
)
from kbpipe.tokens.length_report import (
    PERCENTILE_METHODS,
    REASONING_WORD,
    format_report,
    plot_histogram,
    summarize,
)

if TYPE_CHECKING:
    from kbpipe.io.plan import StepPlan

EXAMPLES = """examples:
  kbpipe seqlen                                  # outputs/$DATA_MODEL/filtered_dataset.parquet
  kbpipe seqlen --unique --tokenizer .cache/tokenizers/qwen3 --plot lengths.png
  kbpipe seqlen --tokenizer tokenizer.json --chat-template qwen3.jinja --reasoning drop
  kbpipe seqlen --drop-over 32768 -o outputs/glm4_7/filtered_32k.parquet"""

# Rows rendered and encoded together. ~60 KB of reasoning per row makes a batch
# ~4 MB of text: enough work to keep every core busy, small enough that the
# encodings (ids only, no offsets) stay well under 100 MB.
BATCH_ROWS = 64
# The drop reason of a row the chat template refuses (or the tokenizer cannot encode).
UNRENDERABLE = "template_error"
# Columns the report is broken down by, when the table has them.
GROUP_COLUMNS = ("split", "difficulty")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--unique",
        dest="which",
        action="store_const",
        const="unique",
        help="analyse the unique table (step 3) instead of filtered",
    )
    which.add_argument(
        "--source",
        dest="which",
        action="store_const",
        const="source",
        help="analyse the source evals table (step 0.5) instead of filtered",
    )
    # seqlen never publishes, so it must not ask for HF_TOKEN.
    parser.set_defaults(which="filtered", upload=False)
    g = parser.add_argument_group("seqlen")
    g.add_argument(
        "--tokenizer",
        dest="tokenizer",
        metavar="ID|DIR|FILE",
        help="Hub model id, folder with tokenizer.json + tokenizer_config.json, or a "
        "tokenizer.json (default: TOKENIZER or Qwen/Qwen3-30B-A3B-Thinking-2507)",
    )
    g.add_argument(
        "--chat-template",
        type=Path,
        metavar="FILE",
        help="Jinja chat template to use instead of the tokenizer config's",
    )
    g.add_argument(
        "--reasoning",
        choices=REASONING_MODES,
        default="include",
        help="count the completion's reasoning (include, default) or leave it out (drop)",
    )
    g.add_argument(
        "--drop-over",
        type=int,
        metavar="N",
        help="write the table without rows longer than N tokens to -o FILE",
    )
    g.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the length histogram")
    g.add_argument(
        "--percentiles",
        choices=PERCENTILE_METHODS,
        default="interpolate",
        help="interpolate (default, numpy's linear interpolation) or seed: the seed's order "
        "statistics sorted[int(n*p)-1] and median sorted[n//2], to compare figures exactly",
    )
    g.add_argument(
        "--counter",
        choices=COUNTERS,
        default="auto",
        help="auto (default): count with tiktoken when the tokenizer is a byte-level BPE "
        "built from tiktoken ranks, which gives the same ids ~4x faster; tokenizers: always "
        "count with the tokenizers library",
    )
    g.add_argument(
        "--check",
        action="store_true",
        help="count every batch with the tokenizers library as well and use its counts "
        "wherever the fast counter disagrees (about 3x slower; proves the fast path on your data)",
    )
    g.add_argument("--batch-rows", type=int, default=BATCH_ROWS, help=argparse.SUPPRESS)


def READS(args: argparse.Namespace) -> str:  # noqa: N802 - the runner's contract
    return args.which


# seqlen writes a report, not a table: nothing to publish.
WRITES = None


def check_args(args: argparse.Namespace, settings: Settings) -> None:
    if args.hub_dry_run is not None:
        raise ConfigError("seqlen does not publish; drop --hub-dry-run")
    if args.output is not None and args.drop_over is None:
        raise ConfigError("-o/--output is the table written by --drop-over N; pass both")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path | None, settings: Settings
) -> StepResult:
    return seqlen(
        inputs.paths,
        settings,
        which=args.which,
        reasoning=args.reasoning,
        chat_template=args.chat_template,
        limit=settings.limit(args.limit),
        drop_over=args.drop_over,
        output=output,
        plot=args.plot,
        batch_rows=args.batch_rows,
        lineage=inputs.lineage(),
        counter=args.counter,
        check=args.check,
        percentiles=args.percentiles,
    )


def plan(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path | None, settings: Settings
) -> StepPlan:
    """`--dry-run`: the rows it would count and the files it would write; no tokenizer loaded."""
    from kbpipe.io.plan import StepPlan, count_rows

    limit = settings.limit(args.limit)
    step = StepPlan("seqlen", count_rows(inputs.paths, limit), output, limit=limit)
    step.details.append(
        f"would write {settings.seqlen_json_path(args.which)} and "
        f"{settings.seqlen_rows_path(args.which)}"
    )
    return step


def report_lines(result: StepResult) -> list[str]:
    report = json.loads(Path(result.metrics["report"]).read_text(encoding="utf-8"))
    m = result.metrics
    rate = f" ({m['tokens_per_s'] / 1e6:.2f} M tokens/s)" if m["tokens_per_s"] else ""
    return [
        format_report(report),
        f"\ncounted {m['total_tokens']:,} tokens in {m['count_s']:.1f}s{rate}",
        f"counter: {report['tokenizer_info']['counter']}",
        f"wrote {m['report']}",
    ]


def seqlen(
    inputs: Sequence[Path],
    settings: Settings,
    *,
    which: str = "filtered",
    tokenizer: ChatTokenizer | None = None,
    chat_template: Path | None = None,
    reasoning: ReasoningMode = "include",
    limit: int | None = None,
    drop_over: int | None = None,
    output: Path | None = None,
    plot: Path | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: bool | None = None,
    lineage: list[dict[str, Any]] | None = None,
    counter: CounterChoice = "auto",
    check: bool = False,
    percentiles: str = "interpolate",
) -> StepResult:
    """Count tokens per row, write the report JSON and per-row Parquet, optionally drop long rows.

    `tokenizer` defaults to `settings.tokenizer` (with `chat_template` over
    its config's template). Writes `settings.seqlen_json_path(which)` and
    `settings.seqlen_rows_path(which)`; with `drop_over`, also `output`.
    """
    inputs = [Path(p) for p in inputs]
    if drop_over is not None and (output is None or drop_over < 1):
        raise ConfigError("--drop-over needs a positive token count and -o FILE")
    if batch_rows < 1:
        raise ConfigError("--batch-rows must be at least 1")
    if tokenizer is None:
        tokenizer = load_chat_tokenizer(
            settings.tokenizer,
            chat_template=chat_template,
            token=settings.hf_token,
            counter=counter,
            cache_dir=settings.cache_dir,
            check=check,
        )
    result = StepResult("seqlen", inputs=lineage or _lineage(inputs))
    result.params = {
        "table": which,
        "tokenizer": tokenizer.describe(),
        "reasoning": reasoning,
        "limit": limit,
        "drop_over": drop_over,
        "batch_rows": batch_rows,
        "percentiles": percentiles,
    }
    started = time.perf_counter()
    rows = _count_table(inputs, tokenizer, reasoning, limit, batch_rows, progress)
    count_s = time.perf_counter() - started
    # Again after counting: with --check, a disagreement switches counters.
    result.params["tokenizer"] = tokenizer.describe()
    total_tokens = sum(rows.n_tokens)
    result.rows_in = len(rows.rendered)
    result.rows_out = len(rows.n_tokens)
    result.drop(UNRENDERABLE, len(rows.skipped))
    result.metrics = {
        "total_tokens": total_tokens,
        "count_s": round(count_s, 3),
        "tokens_per_s": round(total_tokens / count_s) if count_s > 0 else None,
        "rows_skipped": len(rows.skipped),
    }

    rows_path = write_table(rows.per_row_table(), settings.seqlen_rows_path(which))
    result.output = rows_path
    report = _report(rows, result, tokenizer, which, reasoning, rows_path, percentiles)
    if drop_over is not None:
        assert output is not None
        report["drop_over"] = _drop_long_rows(inputs, output, rows, drop_over, result)
    else:
        result.write_rejects(rows.skipped)  # beside the per-row lengths
    if result.rejects is not None:
        report["rejects"] = str(result.rejects)
    if plot is not None:
        plot_histogram(rows.n_tokens, report, plot, title=_plot_title(report))
        report["plot"] = str(plot)
    report_path = write_json(report, settings.seqlen_json_path(which))
    result.metrics["report"] = str(report_path)
    result.metrics["recommended_seq_len"] = report.get("recommended_seq_len", {})
    return result.finish(settings)


class _Lengths:
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


def _count_table(
    inputs: Sequence[Path],
    tok: ChatTokenizer,
    reasoning: ReasoningMode,
    limit: int | None,
    batch_rows: int,
    progress: bool | None,
) -> _Lengths:
    out = _Lengths()
    total = _row_count(inputs)
    total = min(total, limit) if total is not None and limit is not None else total or limit
    bar = _progress_bar(total, progress)
    started, n_total = time.perf_counter(), 0
    chunks = _read_chunks(inputs, batch_rows, limit)

    def prepare() -> tuple[_Chunk, CountPlan, list[bool]] | None:
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
    tok: ChatTokenizer, chunk: _Chunk, reasoning: ReasoningMode, skipped: list[dict[str, Any]]
) -> tuple[_Chunk, CountPlan, list[bool]]:
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


def _keep_rows(chunk: _Chunk, keep: list[bool]) -> None:
    def kept(values: list[Any]) -> list[Any]:
        return [v for v, ok in zip(values, keep, strict=True) if ok]

    chunk.conversations = kept(chunk.conversations)
    chunk.example_id = kept(chunk.example_id)
    chunk.module_name = kept(chunk.module_name)
    chunk.groups = {k: (kept(v) if v is not None else None) for k, v in chunk.groups.items()}


class _Chunk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conversations: list[list[dict[str, Any]]] = []
        self.example_id: list[Any] = []
        self.module_name: list[str | None] = []
        self.groups: dict[str, list[Any] | None] = {}


def _read_chunks(inputs: Sequence[Path], batch_rows: int, limit: int | None) -> Iterator[_Chunk]:
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


def _truncate(chunk: _Chunk, n: int) -> None:
    chunk.conversations = chunk.conversations[:n]
    chunk.example_id = chunk.example_id[:n]
    chunk.module_name = chunk.module_name[:n]
    chunk.groups = {k: (v[:n] if v is not None else None) for k, v in chunk.groups.items()}


def _parquet_chunks(path: Path, batch_rows: int) -> Iterator[_Chunk]:
    schema = parquet_schema(path)
    require_columns(schema, ["prompt", "completion"], path)
    names = set(schema.names)
    columns = ["prompt", "completion"] + [c for c in ("example_id", *GROUP_COLUMNS) if c in names]
    has_module = "info" in names and _struct_has(schema.field("info").type, "module_name")
    if has_module:
        columns.append("info.module_name")
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        chunk = _Chunk(path)
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


def _jsonl_chunks(path: Path, batch_rows: int) -> Iterator[_Chunk]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    chunk, seen = _Chunk(path), set()
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
                chunk, seen = _Chunk(path), set()
    if chunk.conversations:
        yield _only_seen_groups(chunk, seen)


def _only_seen_groups(chunk: _Chunk, seen: set[str]) -> _Chunk:
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


def _row_count(inputs: Sequence[Path]) -> int | None:
    if all(table_format(p) == "parquet" for p in inputs):
        return sum(pq.ParquetFile(p).metadata.num_rows for p in inputs)
    return None


def _lineage(inputs: Sequence[Path]) -> list[dict[str, Any]]:
    return [describe_input(p) for p in inputs]


# -- the report ----------------------------------------------------------------------


def _report(
    rows: _Lengths,
    result: StepResult,
    tok: ChatTokenizer,
    which: str,
    reasoning: ReasoningMode,
    rows_path: Path,
    percentiles: str = "interpolate",
) -> dict[str, Any]:
    """The whole table's summary at the top level, then per split and per difficulty."""
    lengths = np.asarray(rows.n_tokens, dtype=np.int64)
    reasoning_lengths = np.asarray(rows.n_reasoning, dtype=np.int64)
    report: dict[str, Any] = {
        "table": which,
        "tokenizer": tok.source,
        "reasoning": reasoning,
        "rows_skipped": len(rows.skipped),
        **summarize(lengths, reasoning_lengths, percentiles),
    }
    for key in GROUP_COLUMNS:
        if rows.has_group[key]:
            labels = np.asarray(["(none)" if g is None else str(g) for g in rows.groups[key]])
            report[f"by_{key}"] = {
                g: summarize(lengths[labels == g], reasoning_lengths[labels == g], percentiles)
                for g in sorted(set(labels.tolist()))
            }
    report["n_reasoning_tokens_means"] = (
        "tokens the reasoning adds: the sample rendered with it minus rendered without it"
        if reasoning == "include"
        else "0: the reasoning was dropped before counting"
    )
    report["tokenizer_info"] = tok.describe()
    report["inputs"] = settled(result.inputs)
    report["per_row"] = str(rows_path)
    return report


def _plot_title(report: dict[str, Any]) -> str:
    return (
        f"{report['table']}: {report['rows']:,} rows, {report['tokenizer']}, "
        f"reasoning {REASONING_WORD[report['reasoning']]}"
    )


# -- acting on it: drop rows longer than N ---------------------------------------------


def _drop_long_rows(
    inputs: Sequence[Path],
    output: Path,
    rows: _Lengths,
    limit_tokens: int,
    result: StepResult,
) -> dict[str, Any]:
    """Write the input rows with n_tokens <= limit_tokens to `output`, the others (and the
    rows the template refused) to rejects."""
    fits = np.asarray(rows.n_tokens, dtype=np.int64) <= limit_tokens
    keep = np.zeros(len(rows.rendered), dtype=bool)
    keep[np.flatnonzero(rows.rendered)] = fits
    n_rows = len(keep)
    if table_format(output) == "parquet" and all(table_format(p) == "parquet" for p in inputs):
        _stream_parquet(inputs, output, keep)
    elif table_format(output) == "jsonl" and all(table_format(p) == "jsonl" for p in inputs):
        _copy_jsonl_lines(inputs, output, keep)
    else:
        # Mixed formats go through one in-memory table; fine for the sizes that mix them.
        import polars as pl

        frames = [read_table(p) for p in inputs]
        table = pl.concat(frames, how="diagonal_relaxed").head(n_rows)
        write_table(table.filter(pl.Series(keep)), output)
    rejects = rows.skipped + [
        {
            "reason": "over_seq_len",
            "seq_len": limit_tokens,
            "example_id": rows.example_id[i],
            "module_name": rows.module_name[i],
            "n_tokens": rows.n_tokens[i],
            "n_reasoning_tokens": rows.n_reasoning[i],
        }
        for i in np.flatnonzero(~fits)
    ]
    result.output = output
    result.write_rejects(rejects)
    result.rows_out = int(keep.sum())
    result.drop("over_seq_len", int((~fits).sum()))
    return {
        "seq_len": limit_tokens,
        "output": str(output),
        "rows_kept": result.rows_out,
        "rows_dropped": n_rows - result.rows_out,
        "rejects": str(result.rejects or ""),
    }


def _stream_parquet(inputs: Sequence[Path], output: Path, keep: np.ndarray) -> None:
    offset = 0
    with atomic_output(output) as tmp:
        writer: BatchWriter | None = None
        try:
            for path in inputs:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS * 8):
                    if offset >= len(keep):
                        break
                    batch = batch.slice(0, len(keep) - offset)
                    mask = pa.array(keep[offset : offset + batch.num_rows])
                    offset += batch.num_rows
                    table = pa.Table.from_batches([batch]).filter(mask)
                    if writer is None:
                        writer = BatchWriter(tmp, table.schema, "parquet")
                    writer.write(table)
            if writer is None:
                schema = parquet_schema(inputs[0]) if inputs else pa.schema([])
                writer = BatchWriter(tmp, schema, "parquet")
        finally:
            if writer is not None:
                writer.close()


def _copy_jsonl_lines(inputs: Sequence[Path], output: Path, keep: np.ndarray) -> None:
    index = 0
    with atomic_output(output) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for path in inputs:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    if index >= len(keep):
                        return
                    if keep[index]:
                        out.write(line if line.endswith("\n") else line + "\n")
                    index += 1
