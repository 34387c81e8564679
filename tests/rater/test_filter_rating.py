"""`kbpipe filter` with the judge: offline and against a local API, rejects, dry run, 401."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.io.tables import sidecar
from kbpipe.steps.convert import convert
from kbpipe.steps.filter import filter_step
from kbpipe.testing.openai_server import ServerThread
from tests.rater.rater_helpers import api_workdir

API = ["--rater", "api", "--no-progress", "--max-retries", "3", "--timeout", "2"]


def filter_argv(evals: Path, url: str, *extra: str) -> list[str]:
    return [
        "filter",
        "-i",
        str(evals),
        "-o",
        "f.parquet",
        "--no-upload",
        "--base-url",
        url,
        *API,
        *extra,
    ]


@pytest.fixture(scope="module")
def evals(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evals") / "evals.parquet"
    convert(sample_dir / "kernelbook-env.jsonl", out, Settings())
    return out


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return api_workdir(tmp_path, monkeypatch)


def test_offline_rates_every_kept_row_and_keeps_every_column(
    evals: Path, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "filtered.parquet"
    result = filter_step(evals, out, settings, rater="offline")
    table = pl.read_parquet(out)
    source = pl.read_parquet(evals)
    kept = source.filter(pl.col("reward") > 0.85)
    assert table.columns == [*source.columns, "difficulty", "evaluation_raw"]
    assert table["example_id"].to_list() == kept["example_id"].to_list()
    assert set(table["difficulty"]) <= {"low", "medium", "high"}
    assert table["evaluation_raw"].str.contains("Decided by:").all()
    # The rollout columns come through untouched.
    assert table.drop("difficulty", "evaluation_raw").equals(kept)
    judge = result.metrics["judge"]
    assert judge["backend"] == "offline"
    assert sum(judge["values"].values()) == kept.height == result.rows_out


def _judge_with_faults(evals: Path, *extra: str) -> tuple[dict, list[dict], pl.DataFrame]:
    with ServerThread() as server:
        server.set(
            faults={"notag": 0.3, "429": 0.1, "drop": 0.05},
            faults_per_message=100,
            retry_after_s=0.01,
            seed=5,
        )
        assert main(filter_argv(evals, server.url, "--max-reasks", "1", *extra)) == 0
    out = Path("f.parquet")
    stats = json.loads(sidecar(out, "stats").read_text())
    rejects = [json.loads(x) for x in sidecar(out, "rejects").read_text().splitlines()]
    return stats, rejects, pl.read_parquet(out)


def test_rows_the_judge_cannot_rate_stay_unrated_and_are_listed(
    evals: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats, rejects, out = _judge_with_faults(evals)
    kept = stats["metrics"]["reward_filter"]["n_kept"]
    assert stats["rows_out"] == out.height == kept  # nothing lost to the judge
    assert "judge_no_tag" not in stats["dropped"]
    assert stats["metrics"]["judge_unrated_kept"] == {"judge_no_tag": len(rejects)}
    assert len(rejects) > 0 and all(r["kept_in_output"] for r in rejects)
    unrated = out.filter(pl.col("difficulty").is_null())
    assert sorted(unrated["example_id"]) == sorted(r["example_id"] for r in rejects)
    by_id = {r["example_id"]: r["raw_answer"] for r in rejects}
    assert all(by_id[e] == raw for e, raw in unrated.select("example_id", "evaluation_raw").rows())
    assert stats["params"]["on_unrated"] == "keep"
    printed = capsys.readouterr().out
    assert f"kept {len(rejects)} unrated rows" in printed


def test_on_unrated_drop_rejects_rows_it_cannot_rate(
    evals: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A third of the answers lack the tag here, far past the default --max-reject-rate.
    stats, rejects, out = _judge_with_faults(
        evals, "--on-unrated", "drop", "--max-reject-rate", "1"
    )
    kept = stats["metrics"]["reward_filter"]["n_kept"]
    assert stats["dropped"]["judge_no_tag"] == len(rejects) > 0
    assert stats["rows_out"] + len(rejects) == kept
    assert all(
        r["raw_answer"] and r["reason"] == "difficulty judge failed: no_tag" for r in rejects
    )
    assert out.height == stats["rows_out"]
    assert not set(out["example_id"]) & {r["example_id"] for r in rejects}
    assert stats["params"]["judge_model"] == "openai/gpt-5.2"
    printed = capsys.readouterr().out
    assert "judge: " in printed and "difficulty: low" in printed and "no_tag" in printed


def test_dry_run_sends_and_writes_nothing(
    evals: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ServerThread() as server:
        assert main(filter_argv(evals, server.url, "--dry-run")) == 0
        assert server.stats.requests == 0
    printed = capsys.readouterr().out
    kept = re.search(r"kept by reward > 0.85: (\d+) rows", printed)
    assert kept and f"would send {kept.group(1)} requests" in printed
    assert "cost: $" in printed and "at $1.75/$14 per million tokens" in printed
    # Nothing written: no output, no scratch folder, no journal folder.
    assert sorted(p.name for p in cwd.iterdir()) == []


def test_bad_key_stops_with_a_plain_message_and_no_output(
    evals: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ServerThread() as server:
        server.set(force_status=401)
        code = main(filter_argv(evals, server.url))
    assert code == 1
    err = capsys.readouterr().err
    assert "kbpipe filter: error: the API at" in err and "401" in err
    assert not (cwd / "f.parquet").exists()


def test_missing_key_fails_before_reading_the_input(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KBPIPE_API_KEY")
    monkeypatch.delenv("PRIME_API_KEY", raising=False)
    argv = ["filter", "-i", "nowhere.parquet", "--no-upload", "--env-file", str(cwd / "none")]
    assert main([*argv, "--rater", "api"]) == 1
    assert "KBPIPE_API_KEY or PRIME_API_KEY" in capsys.readouterr().err


def _with_feedback_turn(evals: Path, dest: Path) -> Path:
    """The evals table with the environment's feedback appended to every completion."""
    table = pl.read_parquet(evals)
    feedback = {"role": "user", "content": "Compilation succeeded", "reasoning": None}
    table = table.with_columns(
        pl.col("completion").list.concat(pl.lit([feedback], dtype=table.schema["completion"]))
    )
    table.write_parquet(dest)
    return dest


def test_multi_turn_rollout_is_judged_on_its_solution_not_the_feedback(
    evals: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    estimates = []
    for table in (evals, _with_feedback_turn(evals, cwd / "multi.parquet")):
        with ServerThread() as server:
            assert main(filter_argv(table, server.url, "--dry-run")) == 0
        printed = capsys.readouterr().out
        estimates.append(printed.split("~")[1].split(" prompt tokens")[0])
    assert estimates[0] == estimates[1]  # the same prompts: the feedback turn is ignored


def test_judged_solution_takes_the_last_assistant_message_holding_one() -> None:
    from kbpipe.steps.filter.rating import NO_SOLUTION, judged_solution

    messages = [
        {"role": "assistant", "content": "try 1\n<answer>\nold = 1\n</answer>"},
        {"role": "user", "content": "Test failed"},
        {"role": "assistant", "content": "fixed:\nBEGIN_PYTHON\nnew = 2\nEND_PYTHON\n"},
        {"role": "user", "content": "Compilation succeeded"},
    ]
    assert judged_solution(messages, "auto") == ("new = 2", "begin-python")
    assert judged_solution(messages, "answer-tags") == ("old = 1", "answer-tags")
    # No format matches: the last assistant message whole, as the seed's fallback.
    assert judged_solution(messages, "fenced") == (
        "fixed:\nBEGIN_PYTHON\nnew = 2\nEND_PYTHON",
        NO_SOLUTION,
    )
    assert judged_solution([{"role": "user", "content": "x"}], "auto") == ("", NO_SOLUTION)
