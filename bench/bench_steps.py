"""Every step as users run it: the `kbpipe` command in a fresh process, beside the
seed's way (baseline) and the bare operation (floor), on the same rows in the same run.

Data: BENCH_ROWS rollouts (default 3,000; the 1x scale) of ~60 KB of reasoning
that compresses like real reasoning (bench.data). Each variant runs REPEATS
times (BENCH_REPEATS, default 3), in turn with the others, and the table
shows each one's median wall time and highest peak RSS. kbpipe/floor is the
figure the targets are about; BENCH_SCALING=1 adds convert and seqlen at 1x,
3x and 6x the rows (BENCH_SCALING=only: that alone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.data import N_ROWS, evals_parquet, reasoning_zstd_ratio, rollouts_jsonl
from bench.harness import DATA_DIR, ROOT, Measurement, measure, median_of, python_cmd
from kbpipe.io.plan import count_rows

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
TOKENIZER_DIR = ROOT / ".cache" / "tokenizers" / "qwen3"
# The targets, kbpipe / floor.
TARGETS = {"convert": 2.0, "seqlen": 1.3}
TABLE_TARGET = 1.5


@dataclass
class Step:
    name: str
    kbpipe: list[str]
    baseline: list[str]
    floor: list[str]
    # Outputs whose example_ids must agree, in order (kbpipe's, the baseline's).
    same: tuple[Path, Path] | None = None


def _kbpipe(*args: object) -> list[str]:
    # Through bench.peak, which reports the command's own peak RSS: ru_maxrss would
    # start from this process's RSS at fork (large after generating the data).
    return python_cmd("kbpipe", *map(str, args), "--no-upload")


def _base(func: str, *args: object) -> list[str]:
    return python_cmd(f"bench.baselines:{func}", *map(str, args))


def table_steps(evals: Path, jsonl: Path, work: Path) -> list[Step]:
    k, b, f = work / "kbpipe", work / "baseline", work / "floor"
    for d in (k, b, f):
        d.mkdir(exist_ok=True)
    return [
        Step(
            "filter --rater none",
            _kbpipe("filter", "--rater", "none", "-i", evals, "-o", k / "filtered.parquet"),
            _base("baseline_filter", jsonl, b / "filtered.jsonl"),
            _base("floor_filter", evals, f / "filtered.parquet"),
            (k / "filtered.parquet", b / "filtered.jsonl"),
        ),
        Step(
            "dedupe",
            _kbpipe("dedupe", "-i", evals, "-o", k / "unique.parquet"),
            _base("baseline_dedupe", jsonl, b / "unique.jsonl"),
            _base("floor_dedupe", evals, f / "unique.parquet"),
            (k / "unique.parquet", b / "unique.jsonl"),
        ),
        Step(
            "strip-reasoning (drop)",
            _kbpipe(
                "strip-reasoning",
                "source",
                "--on-missing",
                "drop",
                # the seed's rule, which the baseline implements
                "--answer-format",
                "answer-tags",
                "-i",
                evals,
                "-o",
                k / "stripped.parquet",
            ),  # fmt: skip
            _base("baseline_strip", jsonl, b / "stripped.jsonl"),
            _base("floor_strip", evals, f / "stripped.parquet"),
            (k / "stripped.parquet", b / "stripped.jsonl"),
        ),
        Step(
            "merge (the table twice)",
            _kbpipe(
                "merge", "source", "-i", evals, "--synthetic", evals, "-o", k / "merged.parquet"
            ),  # fmt: skip
            _base("baseline_merge", jsonl, jsonl, b / "merged.jsonl"),
            _base("floor_merge", evals, evals, f / "merged.parquet"),
            (k / "merged.parquet", b / "merged.jsonl"),
        ),
    ]


def convert_step(src: Path, work: Path) -> Step:
    return Step(
        "convert",
        _kbpipe("convert", src, "-o", work / "kbpipe_evals.parquet"),
        _base("baseline_convert", src, work / "baseline_evals.parquet"),
        _base("floor_convert", src),
        (work / "kbpipe_evals.parquet", work / "baseline_evals.parquet"),
    )


def seqlen_step(filtered: Path, work: Path) -> Step:
    out = work / "seqlen"
    return Step(
        "seqlen (filtered)",
        # The benchmark's own cache folder, warmed before timing: set-up as on any rerun.
        _kbpipe("seqlen", "-i", filtered, "--tokenizer", TOKENIZER_DIR, "--output-dir", out),
        _base("baseline_seqlen", filtered, TOKENIZER_DIR),
        _base("floor_seqlen", filtered, TOKENIZER_DIR),
    )


def _timed(step: Step, repeats: int) -> dict[str, Measurement]:
    runs: dict[str, list[Measurement]] = {"kbpipe": [], "baseline": [], "floor": []}
    for _ in range(repeats):
        for variant in runs:
            argv = getattr(step, variant)
            runs[variant].append(measure(f"{step.name} {variant}", argv, env=_ENV))
    rows = {variant: median_of(ms) for variant, ms in runs.items()}
    floor_count = re.search(r"COUNT_S=([\d.]+)", rows["floor"].stdout)
    if floor_count:  # seqlen's floor times the encoding alone
        rows["floor"].wall_s = float(floor_count.group(1))
    return rows


def _same_ids(a: Path, b: Path) -> bool:
    def ids(path: Path) -> list:
        cmd = _base("print_ids", path)
        return json.loads(measure("ids", cmd).stdout.strip().splitlines()[-1])

    return ids(a) == ids(b)


_ENV = {"KBPIPE_CACHE_DIR": str(DATA_DIR / "cache"), "HF_HUB_OFFLINE": "1"}


def _print_table(results: list[tuple[Step, dict[str, Measurement], bool | None]]) -> None:
    print(f"\n== kbpipe / baseline / floor, {N_ROWS:,} rows, medians of {REPEATS} runs")
    head = f"  {'step':<26} {'kbpipe s':>9} {'MB':>6} {'baseline s':>11} {'MB':>6}"
    print(head + f" {'floor s':>8} {'MB':>6} {'base/kb':>8} {'kb/floor':>9} {'target':>7}  same")
    for step, m, same in results:
        k, b, f = m["kbpipe"], m["baseline"], m["floor"]
        target = TARGETS.get(step.name.split()[0], TABLE_TARGET)
        ratio = k.wall_s / f.wall_s
        verdict = "met" if ratio <= target else "NOT met"
        print(
            f"  {step.name:<26} {k.wall_s:>9.2f} {k.peak_rss_mb:>6.0f} {b.wall_s:>11.2f}"
            f" {b.peak_rss_mb:>6.0f} {f.wall_s:>8.2f} {f.peak_rss_mb:>6.0f}"
            f" {b.wall_s / k.wall_s:>7.2f}x {ratio:>8.2f}x {target:>6.1f}x  "
            f"{'-' if same is None else same} {verdict}"
        )


def _tokenizer() -> bool:
    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        subprocess.run(["make", "--no-print-directory", "tokenizer"], cwd=ROOT, check=False)
    return (TOKENIZER_DIR / "tokenizer.json").is_file()


def _evals_jsonl(evals: Path) -> Path:
    path = evals.with_suffix(".jsonl")
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        measure("jsonl", _base("write_evals_jsonl", evals, tmp))
        tmp.rename(path)
    return path


def _scaling(work: Path) -> None:
    """convert and seqlen at 1x, 3x and 6x the rows: medians of REPEATS interleaved runs
    (highest peak RSS), with convert's parse floor at each size and time per 1,000 rows."""
    print(f"\n== scaling: wall s (median of {REPEATS}) and peak RSS MB at 1x / 3x / 6x the rows")
    print(
        f"  {'':>3} {'rows':>7} | {'convert s':>9} {'MB':>5} {'s/1k':>5} {'floor s':>7}"
        f" {'kb/floor':>8} | {'seqlen s':>8} {'MB':>5} {'rows in':>7} {'s/1k':>5} | load"
    )
    for factor in (1, 3, 6):
        rows = N_ROWS * factor
        src, evals = rollouts_jsonl(rows), evals_parquet(rows)
        filtered = work / f"scale{rows}_filtered.parquet"
        measure("filter", _kbpipe("filter", "--rater", "none", "-i", evals, "-o", filtered))
        n_filtered = _row_count(filtered)
        step = convert_step(src, work)
        runs: dict[str, list[Measurement]] = {"convert": [], "floor": [], "seqlen": []}
        for _ in range(REPEATS):
            runs["convert"].append(measure("convert", step.kbpipe))
            runs["floor"].append(measure("floor", step.floor))
            runs["seqlen"].append(measure("seqlen", seqlen_step(filtered, work).kbpipe, env=_ENV))
        conv, floor, seq = (median_of(runs[k]) for k in ("convert", "floor", "seqlen"))
        print(
            f"  {factor}x {rows:>7,} | {conv.wall_s:>9.2f} {conv.peak_rss_mb:>5.0f}"
            f" {conv.wall_s / rows * 1000:>5.2f} {floor.wall_s:>7.2f}"
            f" {conv.wall_s / floor.wall_s:>7.2f}x | {seq.wall_s:>8.2f} {seq.peak_rss_mb:>5.0f}"
            f" {n_filtered:>7,} {seq.wall_s / n_filtered * 1000:>5.2f} | {_load()}",
            flush=True,
        )


def _row_count(path: Path) -> int:
    return count_rows([path])


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run() -> None:
    src, evals = rollouts_jsonl(), evals_parquet()
    jsonl = _evals_jsonl(evals)
    print(
        f"\ndata: {N_ROWS:,} rollouts, {src.stat().st_size / 1e9:.2f} GB of vf-eval JSONL; "
        f"evals table {evals.stat().st_size / 1e6:,.0f} MB; reasoning column zstd ratio "
        f"{reasoning_zstd_ratio(evals):.1f}x (real GLM-4.5 reasoning ~8.5x)"
    )
    print(f"load average (1/5/15 min) at the start: {_load()} on {os.cpu_count()} cores")
    work = Path(tempfile.mkdtemp(prefix="steps-", dir=DATA_DIR))
    if os.environ.get("BENCH_SCALING") == "only":  # the scaling check alone
        try:
            if _tokenizer():
                _scaling(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        steps = [convert_step(src, work), *table_steps(evals, jsonl, work)]
        if _tokenizer():
            filtered = work / "kbpipe" / "filtered.parquet"
            measure("warm", _kbpipe("filter", "--rater", "none", "-i", evals, "-o", filtered))
            measure("warm", seqlen_step(filtered, work).kbpipe + ["--limit", "1"], env=_ENV)
            steps.append(seqlen_step(filtered, work))
        else:
            print("seqlen: skipped, the Qwen3 tokenizer could not be fetched (make tokenizer)")
        results = []
        for step in steps:
            print(f"  timing {step.name} ...", flush=True)
            timed = _timed(step, REPEATS)
            results.append((step, timed, _same_ids(*step.same) if step.same else None))
        _print_table(results)
        print("  (seqlen: floor = tiktoken batch encoding of pre-rendered texts)")
        print(f"  load average (1/5/15 min) at the end: {_load()} on {os.cpu_count()} cores")
        if os.environ.get("BENCH_SCALING"):
            _scaling(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
