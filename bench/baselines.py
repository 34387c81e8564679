"""What each step is measured against: the seed's plain-Python way, and the floor.

Baselines do what the seed scripts did: load the whole JSONL with `json.loads`,
loop in Python, write with `json.dumps` (or `pa.Table.from_pylist` for
convert; render and encode one sample at a time for seqlen). Floors do the
bare operation with the best tool installed here and nothing else: parse
every line with orjson and keep nothing (convert), one DuckDB `COPY` with the
step's output options (the table steps), tiktoken's batch encoder over texts
rendered beforehand (seqlen). Every function runs in a fresh process through
bench.peak, so this module imports only the standard library at the top.
"""

from __future__ import annotations

import json
import re
import time

THRESHOLD = 0.85
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
COLUMNS = (
    "example_id", "prompt", "completion", "task", "reward", "generation_ms", "scoring_ms",
    "total_ms", "info", "answer", "speedup_reward", "num_turns", "oai_tools",
)  # fmt: skip
# The output options kbpipe's writer uses (kbpipe.io.tables.BatchWriter).
COPY_OPTIONS = "(format parquet, compression zstd, row_group_size 512)"


# -- baselines: the seed's approach ------------------------------------------------


def _load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _save(rows: list[dict], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def baseline_convert(src: str, dest: str) -> None:
    """Load everything, reshape in Python, build one table, write it in one call."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    with open(src, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            message = row["trajectory"][-1]["response"]["choices"][0]["message"]
            reasoning = message["reasoning_content"]
            row["completion"] = [{**m, "reasoning": reasoning} for m in row["completion"]]
            rows.append({name: row.get(name) for name in COLUMNS})
    pq.write_table(pa.Table.from_pylist(rows), dest, compression="zstd")


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


def baseline_strip(src: str, dest: str) -> None:
    """--on-missing drop: rows without the tags go to a rejects file."""
    out, rejects = [], []
    for row in _load(src):
        message = row["completion"][0]
        match = ANSWER.search(message["content"])
        if not match:
            rejects.append({"reason": "no <answer>...</answer> in completion[0].content", **row})
            continue
        content = f"<answer>{match.group(1)}</answer>"
        out.append({**row, "completion": [{"role": message["role"], "content": content}]})
    _save(out, dest)
    _save(rejects, dest.removesuffix(".jsonl") + ".rejects.jsonl")


def baseline_merge(base: str, synthetic: str, dest: str) -> None:
    rows = [{**r, "data_source": "base"} for r in _load(base)]
    rows += [{**r, "data_source": "synthetic"} for r in _load(synthetic)]
    _save(rows, dest)


def baseline_seqlen(table: str, tokenizer_dir: str) -> None:
    """Seed-style: render one sample, encode it with tokenizers, next sample."""
    import pyarrow.parquet as pq

    from kbpipe.tokens.loading import load_chat_tokenizer

    tok = load_chat_tokenizer(tokenizer_dir)
    total = 0
    columns = ["prompt", "completion"]
    for batch in pq.ParquetFile(table).iter_batches(batch_size=64, columns=columns):
        prompts, completions = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for prompt, completion in zip(prompts, completions, strict=True):
            text = tok.render(prompt + completion)
            total += len(tok.tokenizer.encode(text, add_special_tokens=False).ids)
    print(f"TOKENS={total}")


# -- floors: the bare operation ------------------------------------------------------


def floor_convert(src: str) -> None:
    """Parse every line with orjson, keep nothing: what any convert must at least do."""
    import orjson

    with open(src, "rb") as fh:
        for line in fh:
            orjson.loads(line)


def _copy(sql: str, params: list, dest: str) -> None:
    import duckdb

    duckdb.connect().execute(f"copy ({sql}) to ? {COPY_OPTIONS}", [*params, dest])


def floor_filter(src: str, dest: str) -> None:
    _copy(
        "select *, null::varchar as difficulty, null::varchar as evaluation_raw"
        " from read_parquet(?) where reward > ?",
        [src, THRESHOLD],
        dest,
    )


def floor_dedupe(src: str, dest: str) -> None:
    _copy(
        "select * exclude (file_row_number) from read_parquet(?, file_row_number = true)"
        " qualify row_number() over (partition by info.module_name"
        " order by reward desc, file_row_number) = 1 order by reward desc, file_row_number",
        [src],
        dest,
    )


def floor_strip(src: str, dest: str) -> None:
    _copy(
        "select * replace ([{'role': completion[1].role, 'content': '<answer>' ||"
        " regexp_extract(completion[1].content, '(?s)<answer>(.*?)</answer>', 1) ||"
        " '</answer>'}] as completion) from read_parquet(?)"
        " where regexp_matches(completion[1].content, '(?s)<answer>.*?</answer>')",
        [src],
        dest,
    )


def floor_merge(base: str, synthetic: str, dest: str) -> None:
    _copy(
        "select *, 'base' as data_source from read_parquet(?)"
        " union all select *, 'synthetic' as data_source from read_parquet(?)",
        [base, synthetic],
        dest,
    )


def floor_seqlen(table: str, tokenizer_dir: str) -> None:
    """tiktoken's batch encoder on every core over the rendered texts; only that is timed."""
    import os

    import pyarrow.parquet as pq

    from kbpipe.tokens.loading import load_chat_tokenizer

    tok = load_chat_tokenizer(tokenizer_dir)
    texts = []
    for batch in pq.ParquetFile(table).iter_batches(columns=["prompt", "completion"]):
        for p, c in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            texts.append(tok.render(p + c))
    assert tok.facts.tiktoken is not None, "the floor needs a tiktoken-shaped tokenizer"
    encoding = tok.facts.tiktoken.encoding()
    started = time.perf_counter()
    ids = encoding.encode_batch(texts, allowed_special="all", num_threads=os.cpu_count() or 1)
    count_s = time.perf_counter() - started
    print(f"TOKENS={sum(map(len, ids))} COUNT_S={count_s:.3f}")


# -- helpers run in a child of their own ------------------------------------------------


def write_evals_jsonl(src: str, dest: str) -> None:
    """The evals table as JSONL, the seed's format, for the baselines."""
    import polars as pl
    import pyarrow.parquet as pq

    with open(dest, "wb") as fh:
        for batch in pq.ParquetFile(src).iter_batches(batch_size=512):
            pl.from_arrow(batch).write_ndjson(fh)


def print_ids(path: str) -> None:
    """The example_ids of a table, in order, as one JSON line."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        ids = pq.read_table(path, columns=["example_id"])["example_id"].to_pylist()
    else:
        with open(path, encoding="utf-8") as fh:
            ids = [json.loads(line)["example_id"] for line in fh]
    print(json.dumps(ids))
