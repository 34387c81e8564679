"""Fixtures shared across the suite: temp settings and the bundled sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbpipe.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose outputs land in a fresh temp folder."""
    return Settings(data_model="testmodel", output_dir=tmp_path / "outputs")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample (vf-eval JSONL + KernelBook table), generated once per session."""
    from kbpipe.sample.generator import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(out, n_rows=240, reasoning_bytes=4000, seed=0)
    return out


@pytest.fixture
def con(tmp_path: Path):
    """A DuckDB session as the steps open it, spilling beside tmp_path/out.parquet."""
    from kbpipe.io import sql

    with sql.session(tmp_path / "out.parquet") as connection:
        yield connection
