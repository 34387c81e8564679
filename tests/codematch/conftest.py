"""The KernelBench copy in data/kernelbench, loaded and indexed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbpipe.codematch.contamination import (
    BenchmarkIndex,
    Problem,
    benchmark_files,
    load_benchmark,
)

KERNELBENCH = Path(__file__).resolve().parents[2] / "data" / "kernelbench"


@pytest.fixture(scope="session")
def problems() -> list[Problem]:
    return load_benchmark(benchmark_files(KERNELBENCH))


@pytest.fixture(scope="session")
def index(problems: list[Problem]) -> BenchmarkIndex:
    return BenchmarkIndex.build(problems)
