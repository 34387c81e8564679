"""Benchmark data at realistic scale, generated once and reused.

18,000 rollouts with ~60 KB of reasoning each (~1.8 GB of JSONL), the size of
a real KernelBook run by a reasoning model. Files are keyed by their
parameters, so a changed generator setting never reuses stale data.
"""

from __future__ import annotations

from pathlib import Path

from bench.harness import DATA_DIR

N_ROWS = 18_000
REASONING_BYTES = 60_000


def rollouts_jsonl(n_rows: int = N_ROWS, reasoning_bytes: int = REASONING_BYTES) -> Path:
    from kbpipe.sample.generator import write_rollouts_jsonl

    path = DATA_DIR / f"rollouts-{n_rows}x{reasoning_bytes}.jsonl"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", flush=True)
        write_rollouts_jsonl(path, n_rows=n_rows, reasoning_bytes=reasoning_bytes, seed=0)
    return path


def evals_parquet(n_rows: int = N_ROWS, reasoning_bytes: int = REASONING_BYTES) -> Path:
    """The converted evals table (step 0.5 output) for the same rollouts."""
    from kbpipe.steps.convert import convert

    path = DATA_DIR / f"evals-{n_rows}x{reasoning_bytes}.parquet"
    if not path.exists():
        from kbpipe.config import Settings

        convert(rollouts_jsonl(n_rows, reasoning_bytes), path, Settings(), skip_bad=True)
    return path
