#!/usr/bin/env bash
# verify on a GPU machine: the GPU tests, the bundled sample and the broken
# candidates, and throughput on one and two GPUs.
#
# It runs from the repository root of a plain checkout with PYTHONPATH=.:
# torch, triton, numpy and pyarrow come from the machine's image; polars,
# duckdb and a package index are not needed. Everything it writes goes under
# $OUT (default outputs/gpu_verify).
#
#   bash bench/gpu_verify.sh prepare           # here: pure-Python pytest into .cache/gpu-pydeps
#   bash bench/gpu_verify.sh [STAGE ...]       # there; stages: env tests verify bench (all four)
#
# `prepare` copies pytest and its pure-Python dependencies out of .venv, so a
# machine without pytest can run the GPU tests when that folder travels with
# the checkout. Without it the tests stage says so and the others still run.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-outputs/gpu_verify}
PY=${PYTHON:-python3}
DEPS=.cache/gpu-pydeps
# The machine's own packages first; the copied pytest only fills a gap.
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}:$DEPS"

prepare() {
    local site
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -rf "$DEPS" && mkdir -p "$DEPS"
    for pkg in _pytest pytest pluggy iniconfig packaging pygments py.py; do
        cp -r "$site/$pkg" "$DEPS/"
    done
    cp -r "$site"/pytest-*.dist-info "$site"/pluggy-*.dist-info "$DEPS/"
    find "$DEPS" -name __pycache__ -prune -exec rm -rf {} +
    du -sh "$DEPS"
}

env_report() {
    mkdir -p "$OUT"
    {
        nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv || true
        "$PY" -c 'import sys, torch, triton, pyarrow; print("python", sys.version.split()[0]);
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count());
print("triton", triton.__version__, "pyarrow", pyarrow.__version__)'
        for absent in polars duckdb; do
            "$PY" -c "import $absent" 2>/dev/null && echo "$absent: present" || echo "$absent: absent"
        done
        echo "cpus $(nproc)"
    } 2>&1 | tee "$OUT/env.txt"
}

gpu_tests() {
    mkdir -p "$OUT/tests"
    if ! "$PY" -c 'import pytest' 2>/dev/null; then
        echo "tests: skipped, no pytest here (run 'bash bench/gpu_verify.sh prepare' and carry $DEPS)" \
            | tee "$OUT/tests/skipped.txt"
        return 0
    fi
    "$PY" -m pytest -m gpu tests/verify/test_gpu.py -v -p no:cacheprovider \
        --junitxml "$OUT/tests/junit.xml" 2>&1 | tee "$OUT/tests/pytest.log"
}

verify_sample_and_broken() {
    local data=$OUT/data
    mkdir -p "$data" "$OUT/sample" "$OUT/broken"
    "$PY" -m bench.verify_data sample "$data/sample.parquet" --rows 240
    "$PY" -m bench.verify_data broken "$data/broken.parquet"
    "$PY" -m kbpipe.verify "$data/sample.parquet" -o "$OUT/sample/verified.parquet" \
        --timeout 120 --journal "$OUT/sample/journal.jsonl" --scratch-dir "$OUT/sample/scratch" \
        2>&1 | tee "$OUT/sample/verify.log"
    "$PY" -m kbpipe.verify "$data/broken.parquet" -o "$OUT/broken/verified.parquet" \
        --timeout 30 --journal "$OUT/broken/journal.jsonl" --scratch-dir "$OUT/broken/scratch" \
        2>&1 | tee "$OUT/broken/verify.log"
    "$PY" -m bench.verify_data check "$OUT/broken/verified.parquet" | tee "$OUT/broken/check.txt"
    # Stricter tolerances as a query over the recorded errors, as users would cut them.
    "$PY" - "$OUT/sample/verified.parquet" <<'EOF' | tee "$OUT/sample/tolerances.txt"
import sys
import pyarrow.parquet as pq

rows = pq.read_table(sys.argv[1]).to_pylist()
modules = {r["info"]["module_name"] for r in rows}
print(f"{len(rows)} rows over {len(modules)} modules; verified at 1e-2: "
      f"{sum(bool(r['verified']) for r in rows)}")
for tol in (1e-3, 1e-4, 1e-5):
    ok = [r for r in rows if r["verified"] and r["max_abs_err"] <= tol]
    print(f"max_abs_err <= {tol:g}: {len(ok)} rows, "
          f"{len({r['info']['module_name'] for r in ok})} of {len(modules)} modules")
speedups = sorted(r["speedup_measured"] for r in rows if r["speedup_measured"])
print("measured speedup p10/p50/p90:", [round(speedups[int(q * (len(speedups) - 1))], 2)
                                       for q in (0.1, 0.5, 0.9)])
EOF
}

throughput() {
    "$PY" -m bench.bench_verify --out "$OUT" 2>&1 | tee "$OUT/bench.log"
}

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
    stages=(env tests verify bench)
fi
for stage in "${stages[@]}"; do
    echo "=== $stage ($(date -u +%H:%M:%S))"
    case $stage in
        prepare) prepare ;;
        env) env_report ;;
        tests) gpu_tests ;;
        verify) verify_sample_and_broken ;;
        bench) throughput ;;
        *) echo "unknown stage $stage (prepare env tests verify bench)" >&2; exit 2 ;;
    esac
done
