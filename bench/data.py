"""Benchmark data, generated once per size and reused (files keyed by their parameters).

The rollouts are the sample generator's (kbpipe.sample.generator), made to
look like real reasoning to a compressor: the generator draws its sentences
from small banks, so its reasoning compresses ~25x with zstd, where real model
reasoning (GLM-4.5 KernelBook traces) compresses ~8.5x, and every Parquet read
and write would be cheaper here than on real data. So FRESH_WORDS of the
reasoning's words are replaced by words drawn (Zipf-weighted) from a made-up
vocabulary of 30,000 letter strings, the rare words, names and numbers real
text is full of; 5 % lands at ~8.7x. The bench prints the ratio it measures.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import DATA_DIR

# Rows of the 1x scale: `make bench` runs here (BENCH_ROWS overrides it); the
# full-scale figures are at 18,000 (BENCH_ROWS=18000).
N_ROWS = int(os.environ.get("BENCH_ROWS", "3000"))
REASONING_BYTES = 60_000
FRESH_WORDS = 0.05
VOCAB_WORDS = 30_000
GENERATOR_VERSION = 2  # bump when the text changes, so old files are not reused


def rollouts_jsonl(n_rows: int = N_ROWS) -> Path:
    """vf-eval JSONL with realistic reasoning (trajectory layout)."""
    path = DATA_DIR / f"rollouts-{n_rows}x{REASONING_BYTES}-v{GENERATOR_VERSION}.jsonl"
    if not path.exists():
        from kbpipe.sample.generator import write_rollouts_jsonl

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} ...", flush=True)
        plain = path.with_suffix(".plain.tmp")
        write_rollouts_jsonl(plain, n_rows=n_rows, reasoning_bytes=REASONING_BYTES, seed=0)
        tmp = path.with_suffix(".tmp")
        _roughen(plain, tmp)
        plain.unlink()
        tmp.rename(path)
    return path


def evals_parquet(n_rows: int = N_ROWS) -> Path:
    """The converted evals table (step 0.5 output) of the same rollouts."""
    path = DATA_DIR / f"evals-{n_rows}x{REASONING_BYTES}-v{GENERATOR_VERSION}.parquet"
    if not path.exists():
        from kbpipe.config import Settings
        from kbpipe.steps.convert import convert

        convert(rollouts_jsonl(n_rows), path, Settings())
    return path


def _roughen(src: Path, dest: Path) -> None:
    import numpy as np
    import orjson

    rng = np.random.default_rng(0)
    vocab = _vocabulary(rng)
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1))
    cdf /= cdf[-1]
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        for i, line in enumerate(fin):
            row = orjson.loads(line)
            message = row["trajectory"][-1]["response"]["choices"][0]["message"]
            text = message["reasoning_content"]
            message["reasoning_content"] = _fresh_words(text, vocab, cdf, np.random.default_rng(i))
            fout.write(orjson.dumps(row) + b"\n")


def _vocabulary(rng):
    import numpy as np

    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    weights = np.array(
        [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
         2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
    )  # fmt: skip
    weights /= weights.sum()
    lengths = rng.integers(2, 11, VOCAB_WORDS)
    return np.array(["".join(rng.choice(letters, n, p=weights)) for n in lengths], dtype=object)


def _fresh_words(text: str, vocab, cdf, rng) -> str:
    import numpy as np

    words = np.array(text.split(" "), dtype=object)
    mask = rng.random(len(words)) < FRESH_WORDS
    picks = np.searchsorted(cdf, rng.random(int(mask.sum())))
    words[mask] = vocab[picks]
    return " ".join(words)


def reasoning_zstd_ratio(table: Path) -> float:
    """Uncompressed / compressed bytes of the reasoning column in a Parquet table."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(table).metadata
    raw = packed = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            if column.path_in_schema.endswith(".reasoning"):
                raw += column.total_uncompressed_size
                packed += column.total_compressed_size
    return raw / packed if packed else float("nan")
