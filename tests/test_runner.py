"""The step runner (kbpipe.runner.run_step): partial runs, failed uploads, offline, dry runs.

3: a partial run (--limit, TEST_MODE) never replaces the full outputs, locally or on the Hub.
4: an upload that fails after a good write exits 3 and leaves a marker; upload clears it.
5: messages name make variables under make; the KernelBook stand-in when the Hub is away.
6: `--dry-run` on every step: the plan, nothing written, nothing sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import kbpipe.hub.publish as hub
from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.steps.prompts import STANDIN
from tests.test_chat import write_tiny_tokenizer
from tests.test_hub import TOKEN, RecordingApi, UnreachableHub


@pytest.fixture(scope="module")
def run(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs/t with evals, filtered (offline judge) and unique tables of the sample."""
    out = tmp_path_factory.mktemp("run") / "outputs"
    common = ["--output-dir", str(out), "--data-model", "t", "--env-file", "none", "--no-upload"]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_TOKEN", raising=False)
        mp.delenv("TEST_MODE", raising=False)
        assert main(["convert", str(sample_dir / "kernelbook-env.jsonl"), *common]) == 0
        assert main(["filter", "--rater", "offline", *common]) == 0
        assert main(["dedupe", *common]) == 0
    return out


@pytest.fixture
def env(run: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    for name in ("HF_TOKEN", "TEST_MODE", "KBPIPE_FROM_MAKE", "KBPIPE_API_KEY", "PRIME_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return ["--output-dir", str(run), "--data-model", "t", "--env-file", "none"]


def snapshot(*folders: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for f in folders if f.exists() for p in f.rglob("*")}


# --- case 6: one meaning of --dry-run --------------------------------------------------------

DRY_RUNS = {
    "convert": ["convert", "{sample}/kernelbook-env.jsonl"],
    "filter none": ["filter", "--rater", "none"],
    "filter offline": ["filter", "--rater", "offline"],
    "filter api": ["filter", "--rater", "api"],
    "prompts api": ["prompts", "-i", "{sample}/kernelbook.parquet", "--rater", "api"],
    "prompts offline": ["prompts", "-i", "{sample}/kernelbook.parquet", "--rater", "offline"],
    "dedupe": ["dedupe"],
    "seqlen": ["seqlen"],
    "strip-reasoning": ["strip-reasoning", "filtered"],
    "audit": ["audit"],
    "decontaminate": ["decontaminate"],
    "merge": ["merge", "filtered"],
}


@pytest.mark.parametrize("name", DRY_RUNS)
def test_dry_run_writes_nothing_and_sends_nothing(
    name: str, env: list[str], run: Path, sample_dir: Path, tmp_path: Path, capsys
) -> None:
    argv = [a.format(sample=sample_dir) for a in DRY_RUNS[name]]
    before = snapshot(run, tmp_path)
    assert main([*argv, "--dry-run", *env]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert snapshot(run, tmp_path) == before  # no output, scratch folder, lock or journal
    assert f"{argv[0]}: dry run, nothing written and nothing sent" in out
    if name.endswith("api"):
        assert "would send" in out and "cost: $" in out and "journal " in out
    elif name.endswith("offline"):
        assert "rated by the offline rater: 0 requests, $0.00" in out
    else:
        assert "requests: none (this step calls no API), $0.00" in out


def test_the_plan_counts_rows_in_and_what_the_filter_keeps(
    env: list[str], run: Path, capsys
) -> None:
    rewards = pq.read_table(run / "t" / "evals_dataset.parquet", columns=["reward"])
    passing = sum(1 for r in rewards.column("reward").to_pylist() if r is not None and r > 0.85)
    assert main(["filter", "--rater", "none", "--dry-run", "--limit", "50", *env]) == 0
    out = capsys.readouterr().out
    assert f"rows in {rewards.num_rows:,}\n" in out
    assert f"kept by reward > 0.85: {passing:,} rows; --limit keeps the first 50" in out


def test_price_per_mtok_overrides_the_table(env: list[str], sample_dir: Path, capsys) -> None:
    argv = ["prompts", "-i", str(sample_dir / "kernelbook.parquet"), "--dry-run", *env]
    assert main([*argv, "--price-per-mtok", "2,8"]) == 0
    assert "at $2/$8 per million tokens" in capsys.readouterr().out
    assert main([*argv, "--model", "acme/unknown"]) == 0
    assert (
        "cost: unknown for acme/unknown (pass --price-per-mtok IN,OUT)" in capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        main([*argv, "--price-per-mtok", "cheap"])


# --- case 3: partial runs never replace full ones -------------------------------------------------


def test_seqlen_limit_writes_its_own_report_beside_the_full_one(
    env: list[str], run: Path, tmp_path: Path, capsys
) -> None:
    tok = write_tiny_tokenizer(tmp_path / "tiny")
    full = run / "t" / "seqlen_filtered.json"
    full.write_text('{"rows": 96, "the": "full report"}')
    assert main(["seqlen", "--limit", "6", "--tokenizer", str(tok), *env]) == 0
    assert full.read_text() == '{"rows": 96, "the": "full report"}'
    partial = json.loads((run / "t" / "limit-6" / "seqlen_filtered.json").read_text())
    assert partial["rows"] == 6


def test_a_limited_step_reads_the_full_input_and_publishes_nothing(
    env: list[str], run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    api = RecordingApi()
    monkeypatch.setattr(hub, "api_factory", lambda token: api)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    full = (run / "t" / "unique_dataset.parquet").read_bytes()
    assert main(["dedupe", "--limit", "20", *env]) == 0
    assert "not published: a partial run (first 20 rows) never replaces" in capsys.readouterr().out
    assert api.calls == []
    assert (run / "t" / "unique_dataset.parquet").read_bytes() == full
    assert pq.ParquetFile(run / "t" / "limit-20" / "unique_dataset.parquet").metadata.num_rows > 0


def test_test_mode_tables_are_never_uploaded_and_their_card_says_partial(
    env: list[str], run: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv("TEST_MODE", "true")
    assert main(["dedupe", "--no-upload", *env]) == 0
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["upload", "unique", *env]) == 1
    assert "never replaces the full tables on the Hub" in capsys.readouterr().err
    assert main(["upload", "unique", "--dry-run", str(tmp_path / "hub"), *env]) == 0
    card = (tmp_path / "hub" / "kernelbook-t-evals-unique" / "README.md").read_text()
    assert "**Partial:** built from the first 5 rows only" in card


# --- case 4: an upload failure after a good write --------------------------------------------


def test_a_failed_upload_keeps_the_table_exits_3_and_leaves_a_marker(
    env: list[str], run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("KBPIPE_FROM_MAKE", "1")
    monkeypatch.setattr(hub, "api_factory", lambda token: UnreachableHub())
    table = run / "t" / "unique_dataset.parquet"
    assert main(["dedupe", *env]) == 3
    err = capsys.readouterr().err
    assert "publish it later with `make publish`" in err and TOKEN not in err
    marker = json.loads((run / "t" / "unique_dataset.parquet.unpublished").read_text())
    assert marker["repo_id"] == "siro1/kernelbook-t-evals-unique" and table.is_file()

    api = RecordingApi()
    monkeypatch.setattr(hub, "api_factory", lambda token: api)
    assert main(["upload", "unique", *env]) == 0
    assert not (run / "t" / "unique_dataset.parquet.unpublished").exists()
    assert api.files["README.md"]


# --- case 5: hints in make's words; the KernelBook stand-in -------------------------------


@pytest.mark.parametrize(
    ("from_make", "words"),
    [("1", ["set RATER=offline", "set UPLOAD=0"]), ("0", ["--rater offline", "--no-upload"])],
)
def test_hints_name_make_variables_when_make_runs_kbpipe(
    env: list[str], monkeypatch: pytest.MonkeyPatch, from_make: str, words: list[str], capsys
) -> None:
    monkeypatch.setenv("KBPIPE_FROM_MAKE", from_make)
    assert main(["filter", "--rater", "api", "--no-upload", *env]) == 1
    assert words[0] in capsys.readouterr().err
    assert main(["dedupe", *env]) == 1
    assert words[1] in capsys.readouterr().err


def _kbpipe(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """kbpipe in a fresh process, with the Hub unreachable and an empty Hub cache."""
    environ = {
        "PATH": os.environ["PATH"],
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "kbpipe", *argv],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_prompts_use_the_bundled_stand_in_when_the_hub_is_away(tmp_path: Path) -> None:
    argv = ["prompts", "--rater", "offline", "--data-model", "s", "--limit", "4"]
    done = _kbpipe(tmp_path, *argv, "--no-upload", "--env-file", "none")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if STANDIN in line]
    assert len(said) == 1 and "instead of GPUMODE/KernelBook" in said[0]
    stats = json.loads(
        (tmp_path / "outputs/s/limit-4/synthetic_prompts.parquet.stats.json").read_text()
    )
    assert stats["params"]["kernelbook"] == STANDIN
    # A table that would be published is never made from the stand-in.
    argv = argv[:-2]  # the whole table: a full run, which would be published
    done = _kbpipe(tmp_path, *argv, "--env-file", "none", HF_TOKEN="hf_x", KBPIPE_FROM_MAKE="1")
    assert done.returncode == 1 and "set KERNELBOOK=" in done.stderr


def test_settings_know_the_full_run_beside_a_partial_one() -> None:
    partial = Settings(data_model="m", test_mode=True)
    assert partial.model_dir == Path("outputs/m/limit-5")
    assert partial.full().model_dir == partial.run_dir == Path("outputs/m")
    assert Settings(data_model="m", row_limit=7).table_path("filtered").parent.name == "limit-7"
