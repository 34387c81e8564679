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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kbpipe.config import Settings
from kbpipe.errors import ConfigError
from kbpipe.io.lineage import ResolvedInput, StepInput, StepResult, as_resolved, settled
from kbpipe.io.masked import write_kept_rows
from kbpipe.io.tables import (
    write_json,
    write_table,
)
from kbpipe.tokens.chat import (
    COUNTERS,
    REASONING_MODES,
    ChatTokenizer,
    CounterChoice,
    ReasoningMode,
)
from kbpipe.tokens.length_report import (
    PERCENTILE_METHODS,
    REASONING_WORD,
    format_report,
    plot_histogram,
    summarize,
)
from kbpipe.tokens.lengths import GROUP_COLUMNS, UNRENDERABLE, Lengths, count_table
from kbpipe.tokens.loading import load_chat_tokenizer

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
        inputs,
        settings,
        which=args.which,
        reasoning=args.reasoning,
        chat_template=args.chat_template,
        limit=settings.limit(args.limit),
        drop_over=args.drop_over,
        output=output,
        plot=args.plot,
        batch_rows=args.batch_rows,
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
    inputs: StepInput,
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
    counter: CounterChoice = "auto",
    check: bool = False,
    percentiles: str = "interpolate",
) -> StepResult:
    """Count tokens per row, write the report JSON and per-row Parquet, optionally drop long rows.

    `tokenizer` defaults to `settings.tokenizer` (with `chat_template` over
    its config's template). Writes `settings.seqlen_json_path(which)` and
    `settings.seqlen_rows_path(which)`; with `drop_over`, also `output`.
    """
    resolved = as_resolved(inputs)
    inputs = resolved.paths
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
    result = StepResult("seqlen", inputs=resolved.lineage())
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
    rows = count_table(inputs, tokenizer, reasoning, limit, batch_rows, progress)
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


# -- the report ----------------------------------------------------------------------


def _report(
    rows: Lengths,
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
    rows: Lengths,
    limit_tokens: int,
    result: StepResult,
) -> dict[str, Any]:
    """Write the input rows with n_tokens <= limit_tokens to `output`, the others (and the
    rows the template refused) to rejects."""
    fits = np.asarray(rows.n_tokens, dtype=np.int64) <= limit_tokens
    keep = np.zeros(len(rows.rendered), dtype=bool)
    keep[np.flatnonzero(rows.rendered)] = fits
    n_rows = len(keep)
    write_kept_rows(inputs, output, keep)
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
