"""Step 4 at realistic scale: batched parallel counting beside the seed's one-sample-at-a-time way.

The seed called `tokenizer.apply_chat_template(prompt + completion,
tokenize=True)` per row: render, then one `encode` (with offsets) per sample.
The baseline here does the same with the same rendering (reasoning included,
so both count the same tokens). kbpipe runs the whole step: render per row,
`encode_batch_fast` over 64-row batches on every core, the reasoning share,
the per-row Parquet and the JSON report.

Per-sample encoding runs at a steady rate per token, so the baseline counts
the first BASELINE_ROWS rows only (all 18k would add ~10 minutes); kbpipe
runs on the same rows for a like-for-like wall-time ratio, then on the whole
18k-row table. Ratios are of tokens per second, measured end to end (process
start, tokenizer load and output writing included).
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.data import evals_parquet
from bench.harness import DATA_DIR, ROOT, Measurement, measure, print_table, python_cmd

TOKENIZER_DIR = ROOT / ".cache" / "tokenizers" / "qwen3"
BASELINE_ROWS = 2000


def baseline(table: str, tokenizer_dir: str, n_rows: str) -> None:
    """Seed-style: render one sample, encode it, next sample."""
    import pyarrow.parquet as pq

    from kbpipe.tokens.chat import load_chat_tokenizer

    tok = load_chat_tokenizer(tokenizer_dir)
    total, done, limit = 0, 0, int(n_rows)
    started = time.perf_counter()
    columns = ["prompt", "completion"]
    for batch in pq.ParquetFile(table).iter_batches(batch_size=64, columns=columns):
        for prompt, completion in zip(
            batch.column("prompt").to_pylist(), batch.column("completion").to_pylist(), strict=True
        ):
            text = tok.render(prompt + completion)
            total += len(tok.tokenizer.encode(text, add_special_tokens=False).ids)
            done += 1
            if done >= limit:
                break
        if done >= limit:
            break
    print(
        f"ROWS={done} TOKENS={total} COUNT_S={time.perf_counter() - started:.3f} CPU_S={_cpu_s()}"
    )


def kbpipe_seqlen(table: str, tokenizer_dir: str, n_rows: str, out_dir: str) -> None:
    from kbpipe.config import Settings
    from kbpipe.steps.seqlen import seqlen
    from kbpipe.tokens.chat import load_chat_tokenizer

    settings = Settings(data_model="bench", output_dir=Path(out_dir))
    result = seqlen(
        [Path(table)],
        settings,
        tokenizer=load_chat_tokenizer(tokenizer_dir),
        limit=int(n_rows) or None,
        progress=False,
    )
    m = result.metrics
    print(
        f"ROWS={result.rows_in} TOKENS={m['total_tokens']} COUNT_S={m['count_s']} CPU_S={_cpu_s()}"
    )


def _cpu_s() -> float:
    # CPU time of all threads: shows the work done per token whatever else runs on the machine.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def _tokenizer() -> Path | None:
    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        subprocess.run(["make", "--no-print-directory", "tokenizer"], cwd=ROOT, check=False)
    return TOKENIZER_DIR if (TOKENIZER_DIR / "tokenizer.json").is_file() else None


def _with_figures(m: Measurement) -> Measurement:
    found = dict(re.findall(r"(\w+)=([\d.]+)", m.stdout))
    tokens = float(found["TOKENS"])
    m.figures = {
        "rows": float(found["ROWS"]),
        "M tokens": tokens / 1e6,
        "k tok/s": tokens / m.wall_s / 1e3,
        "k tok/s counting": tokens / float(found["COUNT_S"]) / 1e3,
        "k tok/CPU-s": tokens / float(found["CPU_S"]) / 1e3,
    }
    return m


def run() -> None:
    tok_dir = _tokenizer()
    if tok_dir is None:
        print("\n== seqlen: skipped, the Qwen3 tokenizer could not be fetched (make tokenizer)")
        return
    table = evals_parquet()
    work = Path(tempfile.mkdtemp(prefix="seqlen-", dir=DATA_DIR))
    args = (str(table), str(tok_dir))
    try:
        base = _with_figures(
            measure(
                f"seed-style, first {BASELINE_ROWS:,} rows",
                python_cmd("bench.bench_seqlen:baseline", *args, str(BASELINE_ROWS)),
            )
        )
        same = _with_figures(
            measure(
                f"kbpipe, first {BASELINE_ROWS:,} rows",
                python_cmd(
                    "bench.bench_seqlen:kbpipe_seqlen", *args, str(BASELINE_ROWS), str(work)
                ),
            )
        )
        full = _with_figures(
            measure(
                "kbpipe, whole table",
                python_cmd("bench.bench_seqlen:kbpipe_seqlen", *args, "0", str(work)),
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(
        f"seqlen: {table.name}, Qwen3 tokenizer, reasoning included",
        [base, same, full],
        baseline=base.name,
    )
    base_rate = base.figures["k tok/s"]
    for m in (same, full):
        print(f"  {m.name}: {m.figures['k tok/s'] / base_rate:.2f}x the baseline's tokens/s")
    print("  (speedup column: wall-time ratio, meaningful for the same rows only)")
