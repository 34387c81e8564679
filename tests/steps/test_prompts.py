"""Step 2, `kbpipe prompts`, through the CLI: offline, against a local API, dry run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from kbpipe.cli import main
from kbpipe.steps.prompts import COLUMNS
from kbpipe.testing.openai_server import ServerThread
from tests.rater.rater_helpers import api_workdir

API_FLAGS = ["--rater", "api", "--no-progress", "--max-retries", "3", "--timeout", "2"]


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as running:
        yield running


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return api_workdir(tmp_path, monkeypatch)


def test_offline_writes_one_prompt_per_module(
    sample_dir: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kernelbook = sample_dir / "kernelbook.parquet"
    argv = ["prompts", "-i", str(kernelbook), "--rater", "offline", "--no-upload"]
    assert main([*argv, "-o", "synthetic.parquet"]) == 0
    out = pl.read_parquet(cwd / "synthetic.parquet")
    source = pl.read_parquet(kernelbook)
    assert tuple(out.columns) == COLUMNS
    assert out.height == source.height
    assert out["module_name"].to_list() == source["module_name"].to_list()
    for name, prompt in zip(out["module_name"], out["prompt"], strict=True):
        assert f"`{name}New`" in prompt
        assert prompt.rstrip().endswith("END_PYTHON.")
        assert "<specification>" not in prompt
    stats = json.loads((cwd / "synthetic.parquet.stats.json").read_text())
    assert stats["rows_in"] == stats["rows_out"] == source.height
    assert stats["metrics"]["prompt_chars"]["n"] == source.height
    assert not (cwd / "synthetic.rejects.jsonl").exists()
    printed = capsys.readouterr().out
    assert "prompt length (chars): mean" in printed


def _kernelbook(path: Path, n: int, *, blank: tuple[int, ...] = ()) -> Path:
    pl.DataFrame(
        {
            "module_name": [f"Mod{i}" for i in range(n)],
            "python_code": [
                "" if i in blank else f"class Mod{i}(nn.Module): pass" for i in range(n)
            ],
            "triton_code": [f"# triton {i}" for i in range(n)],
            "uuid": list(range(1000, 1000 + n)),
            "repo_name": ["r"] * n,
        }
    ).write_parquet(path)
    return path


def test_api_rows_without_a_spec_go_to_rejects(server: ServerThread, cwd: Path) -> None:
    server.set(faults={"notag": 0.35, "500": 0.1}, faults_per_message=100, seed=3)
    table = _kernelbook(cwd / "kb.parquet", 60, blank=(7,))
    argv = ["prompts", "-i", str(table), "--base-url", server.url, "--no-upload", *API_FLAGS]
    # A third of the answers lack the tag here, far past the default --max-reject-rate.
    assert main([*argv, "-o", "syn.parquet", "--max-reasks", "1", "--max-reject-rate", "1"]) == 0

    stats = json.loads((cwd / "syn.parquet.stats.json").read_text())
    rejects = [json.loads(line) for line in (cwd / "syn.rejects.jsonl").read_text().splitlines()]
    dropped = stats["dropped"]
    assert dropped["python_code_missing"] == 1
    assert dropped["spec_no_tag"] > 0
    assert stats["rows_in"] == 60 == stats["rows_out"] + sum(dropped.values())
    assert len(rejects) == sum(dropped.values())
    no_tag = [r for r in rejects if r["reason"] == "spec writer failed: no_tag"]
    assert len(no_tag) == dropped["spec_no_tag"]
    assert all("forgot the tags" in r["raw_answer"] for r in no_tag)
    assert {r["uuid"] for r in rejects if "no PyTorch code" in r["reason"]} == {1007}
    out = pl.read_parquet(cwd / "syn.parquet")
    assert out.height == stats["rows_out"]
    assert out["uuid"].dtype == pl.Int64  # KernelBook's int ids are kept as they are
    assert all("implement the module in Triton" in p for p in out["prompt"])


def test_dry_run_counts_and_sends_nothing(
    server: ServerThread, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _kernelbook(cwd / "kb.parquet", 20)
    flags = ["prompts", "-i", str(table), "--base-url", server.url, "--no-upload", *API_FLAGS]
    assert main([*flags, "-o", "first.parquet", "--limit", "8"]) == 0
    capsys.readouterr()
    requests = server.stats.requests

    assert main([*flags, "-o", "syn.parquet", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert server.stats.requests == requests == 8
    assert "answered in the journal 8" in printed
    assert "would send 12 requests" in printed
    assert "prompt tokens" in printed

    # Another output path is an unrelated setting: the journal still answers 8 rows.
    assert main([*flags, "-o", "syn.parquet"]) == 0
    assert server.stats.requests == 20
    assert pl.read_parquet(cwd / "syn.parquet").height == 20


def test_custom_answer_format(cwd: Path, sample_dir: Path) -> None:
    table = str(sample_dir / "kernelbook.parquet")
    instruction = "Reply with {module_name}New in a ```python block."
    argv = ["prompts", "-i", table, "--rater", "offline", "--no-upload", "-o", "s.parquet"]
    assert main([*argv, "--limit", "3", "--answer-format", instruction]) == 0
    prompts = pl.read_parquet(cwd / "s.parquet")
    assert prompts.height == 3
    for name, prompt in zip(prompts["module_name"], prompts["prompt"], strict=True):
        assert prompt.endswith(f"Reply with {name}New in a ```python block.")


def test_missing_column_names_the_file(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pl.DataFrame({"module_name": ["A"], "python_code": ["x"]}).write_parquet(cwd / "bad.parquet")
    assert main(["prompts", "-i", "bad.parquet", "--rater", "offline", "--no-upload"]) == 1
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "triton_code" in err
