"""verify throughput on GPUs: rows per minute on one GPU and on two.

The input is the bundled sample's rollouts repeated to BENCH_VERIFY_ROWS
(default 1,000) rows, each solution made textually unique so every row is its
own job (`bench.verify_data.repeated`). Each configuration runs
`python -m kbpipe.verify` in a fresh process with an empty journal and an empty
Triton cache, so every distinct kernel is compiled once per run, as a first
run over new rollouts would. `rows/min` counts the rows executed over the time
from the first job sent to the last result (workers already started);
`wall` includes starting the workers (importing torch, creating contexts).

Skipped (one line) where no GPU is visible, so `make bench` runs everywhere.
Targets: >= 300 rows/min on one H200, >= 1.8x with two GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.verify_data import repeated, sample_rows, write
from kbpipe.errors import ConfigError
from kbpipe.verify.pool import visible_gpus

ROOT = Path(__file__).resolve().parent.parent
N_ROWS = int(os.environ.get("BENCH_VERIFY_ROWS", "1000"))
WORKERS = os.environ.get("BENCH_VERIFY_WORKERS", "4")
TARGET_ROWS_PER_MIN = 300
TARGET_TWO_GPU_SPEEDUP = 1.8


def _measure(table: Path, gpus: tuple[str, ...], workdir: Path) -> dict[str, Any]:
    out = workdir / "verified.parquet"
    argv = [sys.executable, "-m", "kbpipe.verify", str(table), "-o", str(out),
            "--gpus", ",".join(gpus), "--workers-per-gpu", WORKERS,
            "--journal", str(workdir / "journal.jsonl"), "--timeout", "120"]  # fmt: skip
    env = {**os.environ, "TRITON_CACHE_DIR": str(workdir / "triton-cache")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"verify on GPUs {gpus}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    stats = json.loads((workdir / "verified.parquet.stats.json").read_text())
    return {
        "gpus": len(gpus),
        "workers_per_gpu": int(WORKERS),
        "rows": stats["rows_in"],
        "verified": stats["n_verified"],
        "failed_by_reason": stats["failed_by_reason"],
        "run_s": stats["run_s"],
        "wall_s": round(wall, 2),
        "rows_per_min": round(stats["n_run"] / stats["run_s"] * 60, 1),
        "gpu_names": stats["gpu_names"],
        "speedup_quantiles": stats["speedup_quantiles"],
    }


def run(out_dir: Path | None = None) -> dict[str, Any] | None:
    try:
        gpus = visible_gpus(os.environ)
    except ConfigError as exc:
        print(f"verify: skipped ({exc})")
        return None
    configs = [gpus[:1]] + ([gpus[:2]] if len(gpus) >= 2 else [])
    results = []
    with tempfile.TemporaryDirectory(prefix="kbpipe-bench-verify-") as tmp:
        table = Path(tmp) / f"sample_x{N_ROWS}.parquet"
        write(repeated(sample_rows(), N_ROWS), table)
        for config in configs:
            workdir = Path(tmp) / f"gpus{len(config)}"
            workdir.mkdir()
            results.append(_measure(table, config, workdir))
    report = {"rows": N_ROWS, "runs": results}
    if len(results) == 2:
        report["two_gpu_speedup"] = round(
            results[1]["rows_per_min"] / results[0]["rows_per_min"], 2
        )
    print("\n".join(_lines(report)))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "verify_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _lines(report: dict[str, Any]) -> list[str]:
    lines = [f"verify throughput, bundled sample repeated to {report['rows']:,} rows"]
    lines.append(f"{'GPUs':>5} {'workers':>8} {'rows/min':>9} {'run s':>7} {'wall s':>7}  verified")
    for r in report["runs"]:
        lines.append(
            f"{r['gpus']:>5} {r['workers_per_gpu']:>8} {r['rows_per_min']:>9.0f} "
            f"{r['run_s']:>7.1f} {r['wall_s']:>7.1f}  {r['verified']}/{r['rows']}"
        )
    one = report["runs"][0]["rows_per_min"]
    lines.append(f"one GPU: {one:.0f} rows/min (target >= {TARGET_ROWS_PER_MIN})")
    if "two_gpu_speedup" in report:
        lines.append(
            f"two GPUs: {report['two_gpu_speedup']:.2f}x (target >= {TARGET_TWO_GPU_SPEEDUP}x)"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_verify")
    parser.add_argument("--out", type=Path, help="folder for verify_bench.json")
    run(parser.parse_args().out)
