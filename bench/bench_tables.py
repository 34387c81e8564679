"""The DuckDB steps at realistic scale, each beside a plain-Python baseline.

Each step first runs on the 18k-row benchmark evals table (~60 KB of reasoning
per row): filter (`--rater none`), dedupe, strip-reasoning `source` (with
`--on-missing drop`: ~3 % of the generated rollouts have no answer tags) and
merge `source` (the table as both runs). Then dedupe, strip-reasoning and merge
run again in pipeline order, on the filter step's 8k-row output. The
baselines do what the seed scripts did: load the whole JSONL with
`json.loads`, loop in Python, write JSONL with `json.dumps`. Every variant runs
in a fresh process on the same rows in the same run, the baseline and kbpipe
in turn REPEATS times (the tables show each one's median run), and the
outputs are checked to hold the same rows in the same order. This module imports only the
standard library at the top, so a baseline process pays for nothing it does
not use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from bench.data import evals_parquet
from bench.harness import DATA_DIR, measure, median_of, print_table, python_cmd

THRESHOLD = 0.85
# Runs of each variant per step (BENCH_REPEATS): the tables report the median.
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


# -- baselines: the seed's approach ------------------------------------------------


def _load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _save(rows: list[dict], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def baseline_filter(src: str, dest: str) -> None:
    kept = [r for r in _load(src) if r["reward"] > THRESHOLD]
    _save([{**r, "difficulty": None, "evaluation_raw": None} for r in kept], dest)


def baseline_dedupe(src: str, dest: str) -> None:
    best: dict = {}
    for entry in _load(src):
        name = entry["info"]["module_name"]
        if name not in best or entry["reward"] > best[name]["reward"]:
            best[name] = entry
    _save(sorted(best.values(), key=lambda e: e["reward"], reverse=True), dest)


def baseline_strip(src: str, dest: str, on_missing: str = "error") -> None:
    out, rejects = [], []
    for row in _load(src):
        message = row["completion"][0]
        match = ANSWER.search(message["content"])
        if not match:
            if on_missing == "error":
                raise ValueError(f"no <answer> in example {row['example_id']}")
            rejects.append({"reason": "no <answer>...</answer> in completion[0].content", **row})
            continue
        content = f"<answer>{match.group(1)}</answer>"
        out.append({**row, "completion": [{"role": message["role"], "content": content}]})
    _save(out, dest)
    if rejects:
        _save(rejects, dest.removesuffix(".jsonl") + ".rejects.jsonl")


def baseline_strip_drop(src: str, dest: str) -> None:
    baseline_strip(src, dest, on_missing="drop")


def baseline_merge(base: str, synthetic: str, dest: str) -> None:
    rows = [{**r, "data_source": "base"} for r in _load(base)]
    rows += [{**r, "data_source": "synthetic"} for r in _load(synthetic)]
    _save(rows, dest)


# -- kbpipe ------------------------------------------------------------------------


def _settings(dest: str):
    from kbpipe.config import Settings

    return Settings(output_dir=Path(dest).parent, reward_threshold=THRESHOLD)


def kbpipe_filter(src: str, dest: str) -> None:
    from kbpipe.steps.filter import filter_step

    filter_step(Path(src), Path(dest), _settings(dest), rater="none")


def kbpipe_dedupe(src: str, dest: str) -> None:
    from kbpipe.steps.dedupe import dedupe

    dedupe(Path(src), Path(dest), _settings(dest))


def kbpipe_strip(src: str, dest: str) -> None:
    from kbpipe.steps.strip_reasoning import strip_reasoning

    strip_reasoning(Path(src), Path(dest), _settings(dest))


def kbpipe_strip_drop(src: str, dest: str) -> None:
    from kbpipe.steps.strip_reasoning import strip_reasoning

    strip_reasoning(Path(src), Path(dest), _settings(dest), on_missing="drop")


def kbpipe_merge(base: str, synthetic: str, dest: str) -> None:
    from kbpipe.steps.merge import merge

    merge(Path(base), Path(synthetic), Path(dest), _settings(dest))


# -- harness -----------------------------------------------------------------------
# The parent process stays small: a child's peak RSS starts from its parent's
# RSS at fork (Linux carries it across exec), so anything that loads data runs
# in a child of its own through `_child`.


def write_evals_jsonl(src: str, dest: str) -> None:
    import polars as pl
    import pyarrow.parquet as pq

    with open(dest, "wb") as fh:
        for batch in pq.ParquetFile(src).iter_batches(batch_size=512):
            pl.from_arrow(batch).write_ndjson(fh)


def spread_modules(src: str, dest: str) -> None:
    """A copy of a filtered table whose rows spread over ~7,000 module names.

    The benchmark rollouts cover 48 modules, so their unique table is tiny; a
    real KernelBook run has about one rollout per module, and then dedupe has
    to put nearly every wide row in reward order. Module names get the
    example_id modulo 4,000 appended, which leaves ~6,800 distinct names.
    """
    if src.endswith(".parquet"):
        import duckdb

        duckdb.connect().execute(
            "copy (select * replace (struct_update(info, module_name := info.module_name"
            " || '_' || (example_id % 4000)::varchar) as info) from read_parquet(?))"
            " to ? (format parquet, compression zstd, row_group_size 512)",
            [src, dest],
        )
        return
    with open(src, encoding="utf-8") as fin, open(dest, "w", encoding="utf-8") as fout:
        for line in fin:
            row = json.loads(line)
            row["info"]["module_name"] += f"_{row['example_id'] % 4000}"
            fout.write(json.dumps(row) + "\n")


def print_same_order(a: str, b: str) -> None:
    """Print whether two outputs hold the same example_ids in the same order."""

    def ids(path: str) -> list:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=["example_id"])["example_id"].to_pylist()
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line)["example_id"] for line in fh]

    print(ids(a) == ids(b))


def _child(func: str, *args: str) -> str:
    return measure(func, python_cmd(f"bench.bench_tables:{func}", *args)).stdout.strip()


def evals_jsonl() -> Path:
    """The benchmark evals table as JSONL, the seed's format, made once from the Parquet."""
    src = evals_parquet()
    path = src.with_suffix(".jsonl")
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        _child("write_evals_jsonl", str(src), str(tmp))
        tmp.rename(path)
    return path


def _compare(title: str, func: str, inputs: dict[str, list[Path]], work: Path) -> dict[str, Path]:
    """Measure the baseline and kbpipe on the same rows; print the table; return the outputs.

    The two run in turn REPEATS times, so both see the same drift of the
    machine; each row is the median run.
    """
    slug = re.sub(r"\W+", "_", title)
    outs = {"baseline": work / f"baseline_{slug}.jsonl", "kbpipe": work / f"kbpipe_{slug}.parquet"}
    labels = {"baseline": "baseline: json load-loop-dump", "kbpipe": f"kbpipe {func} (DuckDB)"}
    runs: dict[str, list] = {variant: [] for variant in outs}
    for _ in range(REPEATS):
        for variant, label in labels.items():
            args = [str(p) for p in inputs[variant]] + [str(outs[variant])]
            cmd = python_cmd(f"bench.bench_tables:{variant}_{func}", *args)
            runs[variant].append(measure(label, cmd))
    rows = [median_of(runs[variant]) for variant in outs]
    # The step's own clock: the wall time less interpreter start-up and imports.
    stats = json.loads(outs["kbpipe"].with_name(outs["kbpipe"].name + ".stats.json").read_text())
    for m, variant in zip(rows, outs, strict=True):
        m.figures = {
            "rows/s": stats["rows_in"] / m.wall_s,
            "out MB": outs[variant].stat().st_size / 1e6,
            **m.figures,
        }
    rows[1].figures["step s"] = stats["wall_s"]
    print_table(f"{title}: {stats['rows_in']:,} rows in", rows, baseline=rows[0].name)
    same = _child("print_same_order", str(outs["baseline"]), str(outs["kbpipe"]))
    print(f"  same rows in the same order as the baseline: {same}")
    return outs


def run() -> None:
    parquet, jsonl = evals_parquet(), evals_jsonl()
    print(
        f"\nevals: {parquet.name} ({parquet.stat().st_size / 1e6:,.0f} MB), "
        f"baselines read {jsonl.name} ({jsonl.stat().st_size / 1e9:.2f} GB)"
    )
    work = Path(tempfile.mkdtemp(prefix="tables-", dir=DATA_DIR))
    try:
        evals = {"baseline": [jsonl], "kbpipe": [parquet]}
        print("\n-- each step on the 18k-row evals table")
        filtered = _compare("filter", "filter", evals, work)
        _compare("dedupe", "dedupe", evals, work)
        _compare("strip-reasoning source, --on-missing drop", "strip_drop", evals, work)
        _compare(
            "merge source (the table twice)", "merge", {v: p * 2 for v, p in evals.items()}, work
        )

        print("\n-- in pipeline order, on the filter step's output (8k rows)")
        both = {v: [p] for v, p in filtered.items()}
        _compare("dedupe filtered", "dedupe", both, work)
        spread = {v: [work / f"spread_{v}{p.suffix}"] for v, p in filtered.items()}
        for v in spread:
            _child("spread_modules", str(filtered[v]), str(spread[v][0]))
        _compare("dedupe filtered, ~7k modules", "dedupe", spread, work)
        _compare("strip-reasoning filtered", "strip", both, work)
        _compare("merge filtered", "merge", {v: [p, p] for v, p in filtered.items()}, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
