"""`kbpipe decontaminate`: flag (or drop) rollouts whose module is a KernelBench problem.

Each distinct `info.python_code` is normalised and compared with every
KernelBench problem (`kbpipe.codematch.contamination`: exact match of the
normalised stream, or two-way 13-gram overlap). Three columns are added:
`contaminated`, `benchmark_match` (`level_N/<problem>`, null when clean) and
`benchmark_overlap` (0-1, 1.0 for an exact match). Rows keep their input order.
`--drop` moves the contaminated rows to the rejects file, each with the problem
it matches as the reason. The stats list every problem that matched, with its
row and module counts.

The benchmark is the Hub dataset by default, pulled through the Hub cache
like any input; `--benchmark PATH` reads a local copy of the same layout (a
folder holding `data/level_N-*.parquet`, or one Parquet file).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pyarrow as pa

from kbpipe.codematch import contamination as cm
from kbpipe.codematch.streams import default_workers
from kbpipe.config import Settings
from kbpipe.errors import ConfigError
from kbpipe.io import sql, sql_output
from kbpipe.io.lineage import ResolvedInput, StepInput, StepResult, as_resolved

CONTAMINATED = "kernelbench_match"
TOP_N = 20

EXAMPLES = """examples:
  kbpipe decontaminate --no-upload                          # filtered -> decontaminated
  kbpipe decontaminate --benchmark data/kernelbench --drop --no-upload
  kbpipe decontaminate -i filtered.parquet --threshold 0.7 --no-upload"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("matching")
    g.add_argument(
        "--benchmark",
        default=cm.DEFAULT_BENCHMARK,
        metavar="PATH",
        help="KernelBench: hf://datasets/ORG/NAME[@rev], a folder in its Hub layout, or one "
        "Parquet file (default: %(default)s)",
    )
    g.add_argument(
        "--ngram", type=int, default=cm.DEFAULT_NGRAM, metavar="N", help="n-gram size in tokens"
    )
    g.add_argument(
        "--threshold",
        type=float,
        default=cm.DEFAULT_THRESHOLD,
        metavar="F",
        help="overlap (0-1) from which a row counts as contaminated (default: %(default)s)",
    )
    g.add_argument(
        "--min-shared",
        type=int,
        default=cm.DEFAULT_MIN_SHARED,
        metavar="N",
        help="n-grams a row must share with the problem for an overlap match (default: "
        "%(default)s)",
    )
    g.add_argument(
        "--drop",
        action="store_true",
        help="move contaminated rows to <output>.rejects.jsonl instead of only flagging them",
    )
    g.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes (default: CPUs)"
    )


def decontaminate(
    inputs: StepInput,
    output: Path,
    settings: Settings,
    *,
    benchmark: ResolvedInput,
    ngram: int = cm.DEFAULT_NGRAM,
    threshold: float = cm.DEFAULT_THRESHOLD,
    min_shared: int = cm.DEFAULT_MIN_SHARED,
    drop: bool = False,
    workers: int | None = None,
    limit: int | None = None,
) -> StepResult:
    """Write the input with the contamination columns (without the matches when `drop`)."""
    resolved = as_resolved(inputs)
    output = Path(output)
    params = {"ngram": ngram, "threshold": threshold, "min_shared": min_shared, "drop": drop}
    result = StepResult(
        "decontaminate",
        output=output,
        # The benchmark is a reference, not a parent: tagged so the split follows the input alone.
        inputs=resolved.lineage() + [{**e, "role": "benchmark"} for e in benchmark.lineage()],
        params={**params, "benchmark": benchmark.source, "limit": limit},
    )
    problems = cm.load_benchmark(benchmark.paths)
    index = cm.BenchmarkIndex.build(problems, n=ngram)
    with sql.session(output) as con:
        table = sql.open_input(con, resolved.paths, limit=limit)
        table.require_struct_field("info", "python_code")
        with sql.reading(table.label):
            verdicts = _judge_modules(con, index, threshold, min_shared, workers)
            sql.run(con, "row_verdicts", drop=drop).create("row_verdicts")
            result.rows_in = table.n_rows
            result.metrics = _metrics(con, verdicts, len(problems))
            n_out = result.rows_in - (result.metrics["n_contaminated_rows"] if drop else 0)
            result.rows_out = sql_output.write_ordered(
                con,
                sql.run(con, "decontaminated_rows"),
                output,
                n_rows=n_out,
                row_bytes=table.row_bytes,
            )
            rejects = sql_output.iter_dicts(con, "contaminated_rejects") if drop else []
            result.drop(CONTAMINATED, result.write_rejects(rejects))
    return result.finish(settings)


def _judge_modules(
    con: Any, index: cm.BenchmarkIndex, threshold: float, min_shared: int, workers: int | None
) -> list[cm.Contamination]:
    """Match each distinct code once and register the verdicts as the table code_verdicts."""
    codes = [code for (code,) in sql.run(con, "distinct_module_code").fetchall()]
    verdicts = cm.match_codes(
        codes,
        index,
        threshold=threshold,
        min_shared=min_shared,
        workers=workers or default_workers(),
    )
    con.register("code_verdicts", _verdict_table(codes, verdicts))
    return verdicts


def _verdict_table(codes: list[str], verdicts: list[cm.Contamination]) -> pa.Table:
    return pa.table(
        {
            "python_code": pa.array(codes, pa.string()),
            "contaminated": pa.array([v.contaminated for v in verdicts], pa.bool_()),
            "benchmark_match": pa.array([v.benchmark_match for v in verdicts], pa.string()),
            "benchmark_overlap": pa.array([v.benchmark_overlap for v in verdicts], pa.float64()),
        }
    )


def _metrics(con: Any, verdicts: list[cm.Contamination], n_problems: int) -> dict[str, Any]:
    by_problem = sql.run(con, "contamination_by_problem")
    matches = [dict(zip(by_problem.columns, row, strict=True)) for row in by_problem.fetchall()]
    return {
        "n_problems": n_problems,
        "n_modules": len(verdicts),
        "n_modules_unparsed": sum(not v.parsed for v in verdicts),
        "n_contaminated_modules": sum(v.contaminated for v in verdicts),
        "n_exact_modules": sum(v.exact for v in verdicts),
        "n_contaminated_rows": sum(m["n_rows"] for m in matches),
        "matched_problems": matches,
    }


def summary_lines(result: StepResult) -> list[str]:
    m = result.metrics
    lines = [
        f"KernelBench problems:       {m['n_problems']:,}",
        f"Distinct modules compared:  {m['n_modules']:,} ({m['n_modules_unparsed']:,} unparsable, "
        "compared as text)",
        f"Contaminated modules:       {m['n_contaminated_modules']:,} "
        f"({m['n_exact_modules']:,} exact after normalisation)",
        f"Contaminated rows:          {m['n_contaminated_rows']:,} of {result.rows_in:,}",
    ]
    if m["matched_problems"]:
        lines += ["", f"Matched problems ({len(m['matched_problems'])}, most rows first):"]
        for row in m["matched_problems"][:TOP_N]:
            lines.append(
                f"  {row['benchmark_match']:55s} rows={row['n_rows']:<5,} "
                f"modules={row['n_modules']:<4,} overlap={row['max_overlap']:.2f}"
            )
        if len(m["matched_problems"]) > TOP_N:
            lines.append(
                f"  ... and {len(m['matched_problems']) - TOP_N} more (see the stats file)"
            )
    return lines


def resolve_benchmark(source: str, settings: Settings) -> ResolvedInput:
    """The benchmark's Parquet files: pulled from the Hub (cached), or a local folder or file."""
    if source.startswith("hf://"):
        from kbpipe.hub.pull import pull_table

        return pull_table(source, settings)
    return ResolvedInput(cm.benchmark_files(Path(source)), source)


READS = "filtered"
WRITES = ("decontaminated", "")


def check_args(args: argparse.Namespace, settings: Settings) -> None:
    if not 0.0 < args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.ngram < 1 or args.min_shared < 1:
        raise ConfigError("--ngram and --min-shared must be at least 1")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")


def execute(
    args: argparse.Namespace, inputs: ResolvedInput, output: Path, settings: Settings
) -> StepResult:
    return decontaminate(
        inputs,
        output,
        settings,
        benchmark=resolve_benchmark(args.benchmark, settings),
        ngram=args.ngram,
        threshold=args.threshold,
        min_shared=args.min_shared,
        drop=args.drop,
        workers=args.workers,
        limit=settings.limit(args.limit),
    )


report_lines = summary_lines
