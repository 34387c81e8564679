"""The worker pool's isolation, with pure-Python stand-in programs (no torch, no GPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kbpipe.verify.pool import STANDIN_RUNNER, LocalPool, PoolOptions, WorkerStartError

OK = "def check():\n    return True\n"
PID = "import os\ndef check():\n    return {'pid': os.getpid()}\n"
PROGRAMS = {
    "hang": "def check():\n    while True:\n        pass\n",
    "os_exit": "import os\ndef check():\n    os._exit(7)\n",
    "raise": "def check():\n    raise ValueError('boom')\n",
    "sys_exit": "import sys\ndef check():\n    sys.exit(2)\n",
    "exit_on_import": "import sys\nsys.exit(0)\n",
    "segfault": "import ctypes\ndef check():\n    ctypes.string_at(0)\n",
    "garbage": (
        "import os, sys\nprint('garbage ' * 1000)\nos.write(1, b'\\x00\\xff\\n')\n"
        'def check():\n    sys.stdout.write(\'{"op": "result"}\')\n    return True\n'
    ),
    "wrong": "def check():\n    return False\n",
    "no_check": "x = 1\n",
    "cuda_poisoned": (
        "def check():\n"
        "    raise RuntimeError('CUDA error: an illegal memory access was encountered')\n"
    ),
}
EXPECTED = {
    "hang": "timeout: no result in 1.5 s",
    "os_exit": "worker_died: exit code 7",
    "raise": "ValueError: boom",
    "sys_exit": "SystemExit: 2",
    "exit_on_import": "SystemExit: 0",
    "segfault": "worker_died: signal SIGSEGV",
    "garbage": None,
    "wrong": "mismatch",
    "no_check": "missing_check",  # a runner's own reason, exactly
    "cuda_poisoned": "RuntimeError: CUDA error: an illegal memory access was encountered",
}


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[LocalPool]:
    options = PoolOptions(
        scratch_dir=tmp_path,
        gpus=("0",),
        workers_per_gpu=1,
        timeout_s=1.5,
        startup_timeout_s=30,
        runner=STANDIN_RUNNER,
    )
    pool = LocalPool(options)
    yield pool
    pool.close()


def job(key: str, code: str) -> dict:
    return {"key": key, "code": code}


def test_every_misbehaving_program_gets_its_reason_and_the_pool_goes_on(pool: LocalPool) -> None:
    pool.start()
    batch = [job("first", PID)]
    for name, code in PROGRAMS.items():
        batch += [job(name, code), job(f"after_{name}", PID)]
    results = {j["key"]: r for j, r in pool.run([batch])}
    assert len(results) == len(batch)
    for name, reason in EXPECTED.items():
        got = results[name]["verify_error"]
        assert got == reason, (name, got)
        assert results[f"after_{name}"]["verified"] is True, name
    pids = [results[f"after_{n}"]["pid"] for n in PROGRAMS]
    # a fresh worker after each death, timeout and poisoned context; the same one otherwise
    replaced = {"hang", "os_exit", "segfault", "cuda_poisoned"}
    previous = results["first"]["pid"]
    for name, pid in zip(PROGRAMS, pids, strict=True):
        assert (pid != previous) == (name in replaced), name
        previous = pid


def test_a_timeout_records_the_limit_it_hit(pool: LocalPool) -> None:
    pool.start()
    [(_, result)] = list(pool.run([[job("hang", PROGRAMS["hang"])]]))
    assert result["timeout_s"] == 1.5
    assert 1.5 <= result["wall_s"] < 10


def test_results_carry_the_environment_of_the_worker(pool: LocalPool) -> None:
    [env] = pool.start()
    [(_, result)] = list(pool.run([[job("ok", OK)]]))
    assert env["gpu_name"] == result["gpu_name"] == "cpu-standin"
    [(_, failed)] = list(pool.run([[job("raise", PROGRAMS["raise"])]]))
    assert failed["gpu_name"] == "cpu-standin"  # failures too: the journal keys on it


def test_each_worker_sees_only_its_gpu_and_a_batch_stays_on_one_worker(tmp_path: Path) -> None:
    code = (
        "import os\ndef check():\n"
        "    return {'gpu': os.environ['CUDA_VISIBLE_DEVICES'], 'pid': os.getpid()}\n"
    )
    options = PoolOptions(
        scratch_dir=tmp_path, gpus=("0", "1"), workers_per_gpu=2, runner=STANDIN_RUNNER
    )
    pool = LocalPool(options)
    try:
        pool.start()
        batches = [[job(f"{b}-{i}", code + f"# {b}-{i}\n") for i in range(5)] for b in range(12)]
        results = list(pool.run(batches))
    finally:
        pool.close()
    assert len(results) == 60
    gpu_of_pid: dict[int, str] = {}
    pids_of_batch: dict[str, set[int]] = {}
    for j, r in results:
        assert gpu_of_pid.setdefault(r["pid"], r["gpu"]) == r["gpu"]
        pids_of_batch.setdefault(j["key"].split("-")[0], set()).add(r["pid"])
    assert set(gpu_of_pid.values()) == {"0", "1"}
    assert all(len(pids) == 1 for pids in pids_of_batch.values())


def test_a_worker_that_cannot_start_is_one_clear_error(tmp_path: Path) -> None:
    options = PoolOptions(scratch_dir=tmp_path, runner="kbpipe.verify.no_such_module:Runner")
    pool = LocalPool(options)
    with pytest.raises(WorkerStartError, match="did not start: ModuleNotFoundError"):
        pool.start()
    assert all(w.proc is None for w in pool.workers)


def test_programs_are_files_in_the_scratch_folder_and_output_goes_to_the_log(
    pool: LocalPool, tmp_path: Path
) -> None:
    pool.start()
    list(pool.run([[job("garbage", PROGRAMS["garbage"])]]))
    assert len(list(tmp_path.glob("standin_*.py"))) == 1
    log = (tmp_path / "logs" / "gpu0-worker0.log").read_text(errors="replace")
    assert "garbage garbage" in log
