"""A small hand-made run folder: every table the report reads, with the shapes the steps write.

The verify, decontaminate and audit tables are built from their issues'
column contracts, so the report is tested before (and apart from) those steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kbpipe.tokens.length_report import summarize

N_MODULES = 30
ROLLOUTS = 8
THRESHOLD = 0.85
LEVELS = ("low", "medium", "high")


def _stats(run: Path, output: str, step: str, rows_in: int, rows_out: int, **extra: Any) -> None:
    entry = {
        "step": step,
        "output": f"outputs/{run.name}/{output}",
        "rejects": None,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "dropped": extra.pop("dropped", {}),
        "inputs": [],
        "params": extra.pop("params", {"limit": None}),
        "metrics": {},
        "wall_s": 0.25,
        "data_model": run.name,
    }
    (run / f"{output}.stats.json").write_text(json.dumps(entry))


def _rollouts(module_names: list[str], rng: np.random.Generator) -> pa.Table:
    n = len(module_names)
    reward = np.round(rng.beta(3, 1.4, n), 4)
    completion = [
        [{"role": "assistant", "content": "<answer>x</answer>", "reasoning": "r" * 50}]
    ] * n
    return pa.table(
        {
            "example_id": np.arange(n),
            "completion": completion,
            "reward": reward,
            "info": [{"module_name": m, "python_code": "import torch"} for m in module_names],
        }
    )


def write_run(
    run: Path,
    *,
    checks: bool = True,
    seed: int = 0,
    n_modules: int = N_MODULES,
    rollouts: int = ROLLOUTS,
) -> Path:
    """Write the pipeline's tables and stats (and, with `checks`, the three check tables)."""
    rng = np.random.default_rng(seed)
    run.mkdir(parents=True, exist_ok=True)
    modules = [f"Module{i:02d}" for i in range(n_modules)]
    # One module nobody solves, so "modules with rollouts but none kept" has a row;
    # its name would break the page if anything went in unescaped.
    modules[-1] = "<script>Bad</script>"
    evals = _rollouts([m for m in modules for _ in range(rollouts)], rng)
    rewards = evals.column("reward").to_numpy().copy()
    rewards[-rollouts:] = 0.1
    evals = evals.set_column(2, "reward", pa.array(rewards))
    pq.write_table(evals, run / "evals_dataset.parquet")
    keep = rewards > THRESHOLD
    filtered = evals.filter(pa.array(keep))
    filtered = filtered.append_column(
        "difficulty", pa.array([LEVELS[i % 3] for i in range(filtered.num_rows)])
    )
    pq.write_table(filtered, run / "filtered_dataset.parquet")
    unique = filtered.take(_best_per_module(filtered))
    pq.write_table(unique, run / "unique_dataset.parquet")
    synthetic = pa.table({"prompt": ["spec"] * n_modules, "module_name": modules})
    pq.write_table(synthetic, run / "synthetic_prompts.parquet")
    n_in, n_kept = evals.num_rows, filtered.num_rows
    _stats(run, "evals_dataset.parquet", "convert", n_in, n_in)
    _stats(
        run,
        "filtered_dataset.parquet",
        "filter",
        n_in,
        n_kept,
        dropped={"reward_at_or_below_threshold": n_in - n_kept},
        params={"reward_threshold": THRESHOLD, "rater": "offline", "limit": None},
    )
    dropped = {"duplicate_module": n_kept - unique.num_rows}
    _stats(run, "unique_dataset.parquet", "dedupe", n_kept, unique.num_rows, dropped=dropped)
    _stats(run, "synthetic_prompts.parquet", "prompts", n_modules, n_modules)
    _write_seqlen(run, filtered, rng)
    if checks:
        write_checks(run, filtered, rng)
    return run


def _best_per_module(table: pa.Table) -> list[int]:
    best: dict[str, int] = {}
    rewards = table.column("reward").to_pylist()
    for i, info in enumerate(table.column("info").to_pylist()):
        m = info["module_name"]
        if m not in best or rewards[i] > rewards[best[m]]:
            best[m] = i
    return sorted(best.values())


def _write_seqlen(run: Path, filtered: pa.Table, rng: np.random.Generator) -> None:
    n = filtered.num_rows
    lengths = rng.lognormal(7.6, 0.45, n).astype(np.int64) + 300
    modules = [i["module_name"] for i in filtered.column("info").to_pylist()]
    per_row = pa.table(
        {
            "example_id": filtered.column("example_id"),
            "module_name": modules,
            "n_tokens": lengths,
            "n_reasoning_tokens": lengths // 2,
        }
    )
    pq.write_table(per_row, run / "seqlen_filtered.parquet")
    report = summarize(lengths) | {
        "table": "filtered",
        "tokenizer": "tiny-bpe",
        "reasoning": "include",
        "per_row": f"outputs/{run.name}/seqlen_filtered.parquet",
    }
    (run / "seqlen_filtered.json").write_text(json.dumps(report))
    _stats(run, "seqlen_filtered.parquet", "seqlen", n, n)


def write_checks(run: Path, filtered: pa.Table, rng: np.random.Generator) -> None:
    n = filtered.num_rows
    verified = [bool(v) for v in rng.random(n) > 0.25]
    verified[0] = None
    errors = [
        None if v else ["mismatch: max_abs_err 0.3", "timeout after 60 s", "CUDA error"][i % 3]
        for i, v in enumerate(verified)
    ]
    measured = np.where(np.array([v is True for v in verified]), rng.lognormal(0, 0.6, n), np.nan)
    table = filtered.append_column("verified", pa.array(verified, pa.bool_()))
    table = table.append_column("verify_error", pa.array(errors, pa.string()))
    table = table.append_column("speedup_measured", pa.array(measured, from_pandas=True))
    table = table.append_column("speedup_reward", pa.array(rng.random(n)))
    pq.write_table(table, run / "verified_dataset.parquet")
    n_ok = sum(v is True for v in verified)
    _stats(run, "verified_dataset.parquet", "verify", n, n_ok, dropped={"not_verified": n - n_ok})

    overlap = np.round(rng.beta(1, 6, n), 3)
    overlap[:3] = [1.0, 0.93, 0.88]
    contaminated = overlap > 0.8
    match = [f"level_1/{i % 2}_Swish" if c else None for i, c in enumerate(contaminated)]
    decon = filtered.select(["example_id", "reward", "info"])
    decon = decon.append_column("contaminated", pa.array(contaminated))
    decon = decon.append_column("benchmark_match", pa.array(match, pa.string()))
    decon = decon.append_column("benchmark_overlap", pa.array(overlap))
    pq.write_table(decon, run / "decontaminated_dataset.parquet")
    _stats(run, "decontaminated_dataset.parquet", "decontaminate", n, n)

    flags_pool = ([], [], ["partial_torch_compute"], ["no_triton_kernel"], ["kernel_not_launched"])
    flags = [flags_pool[i % len(flags_pool)] for i in range(n)]
    ok = [not f or f == ["partial_torch_compute"] for f in flags]
    audited = filtered.select(["example_id", "reward", "info"])
    audited = audited.append_column("audit_flags", pa.array(flags, pa.list_(pa.string())))
    audited = audited.append_column("audit_ok", pa.array(ok))
    pq.write_table(audited, run / "audited_dataset.parquet")
    _stats(run, "audited_dataset.parquet", "audit", n, n)
