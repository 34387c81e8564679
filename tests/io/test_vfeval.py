"""Every vf-eval layout: files the real vf-eval 0.3.1 and 0.4.0 wrote, and hand-made edge rows.

The fixtures under data/vfeval/ come from tests/io/data/make_vfeval_fixtures.sh.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.rollouts import COLUMNS
from kbpipe.io.vfeval import detect_file_layout
from kbpipe.steps.convert import convert

DATA = Path(__file__).parent / "data" / "vfeval"
FIXTURES = {
    "v0.3.1-trajectory/results.jsonl": "results-0.3",
    "v0.3.1/results.jsonl": "results-0.3",
    "v0.4.0/traces.jsonl": "traces-0.4",
}
REASONING = (
    "The module is elementwise, so one masked load/store kernel over the flat tensor is enough."
)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", list(FIXTURES))
def test_real_vf_eval_output_converts_with_reasoning_and_timings(
    name: str, tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "evals.parquet"
    result = convert(DATA / name, out, settings)
    rows = pq.read_table(out).to_pylist()
    assert result.metrics["layout"] == FIXTURES[name] == detect_file_layout(DATA / name)
    assert [list(r) for r in rows] == [list(COLUMNS)] * 3
    assert sorted(r["example_id"] for r in rows) == [0, 1, 2]
    assert {r["info"]["module_name"] for r in rows} == {"Relu", "AddOne", "RowSum"}
    for row in rows:
        assert row["completion"][-1]["role"] == "assistant"
        assert row["completion"][-1]["reasoning"] == REASONING
        assert "<answer>" in row["completion"][-1]["content"]
        assert (row["reward"], row["speedup_reward"], row["num_turns"]) == (1.0, 0.5, 1.0)
        # Nested seconds (0.3) and stage timestamps (0.4) become milliseconds.
        assert 0 < row["generation_ms"] <= row["total_ms"] < 60_000
        assert 0 < row["scoring_ms"] < 60_000
        assert row["prompt"][-1]["role"] == "user" and "Triton" in row["prompt"][-1]["content"]


def test_results_0_3_timings_are_the_nested_durations_in_ms(tmp_path: Path) -> None:
    src = DATA / "v0.3.1-trajectory/results.jsonl"
    out = tmp_path / "evals.parquet"
    result = convert(src, out, Settings())
    by_id = {r["example_id"]: r for r in pq.read_table(out).to_pylist()}
    for raw in lines(src):
        row, timing = by_id[raw["example_id"]], raw["timing"]
        assert row["generation_ms"] == timing["generation"]["duration"] * 1000
        assert row["scoring_ms"] == timing["scoring"]["duration"] * 1000
        assert row["total_ms"] == timing["total"] * 1000
    # 0.3.1 writes no task and no answer: their nulls are counted, not silent.
    assert result.metrics["null_fields"] == {"answer": 3, "task": 3}


def test_traces_0_4_rows_come_from_the_first_trace(tmp_path: Path) -> None:
    src = DATA / "v0.4.0/traces.jsonl"
    out = tmp_path / "evals.parquet"
    result = convert(src, out, Settings())
    rows = {r["example_id"]: r for r in pq.read_table(out).to_pylist()}
    for episode in lines(src):
        trace, data = episode["traces"][0], episode["task"]["data"]
        row = rows[data["idx"]]
        assert row["info"] == data["info"] and row["answer"] == data["answer"]
        assert row["task"] == episode["env"]["id"]
        assert [m["content"] for m in row["prompt"] + row["completion"]] == [
            n["message"]["content"] for n in trace["nodes"]
        ]
        timing = trace["timing"]
        assert row["scoring_ms"] == pytest.approx(
            (timing["scoring"]["end"] - timing["scoring"]["start"]) * 1000
        )
    assert result.metrics["null_fields"] == {}
    assert result.metrics["layout_notes"] == {"num_turns_counted_from_messages": 3}
    assert {"id", "run", "ok", "errors"} <= set(result.metrics["dropped_input_fields"])


# -- hand-made 0.4 episodes --------------------------------------------------------


def episode(**changes: Any) -> dict[str, Any]:
    """The first real 0.4 episode, with a multi-turn branch and two rewards."""
    ep = copy.deepcopy(lines(DATA / "v0.4.0/traces.jsonl")[0])
    trace = ep["traces"][0]
    tool_call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    first = {"role": "assistant", "content": None, "reasoning_content": "look first"}
    trace["nodes"][2:] = [
        {"parent": 1, "message": {**first, "tool_calls": [tool_call]}, "sampled": True},
        {"parent": 2, "message": {"role": "tool", "content": "ok", "tool_call_id": "c1"}},
        {"parent": 3, "message": trace["nodes"][2]["message"], "sampled": True},
        {"parent": 4, "message": {"role": "user", "content": "Compilation succeeded"}},
    ]
    trace["rewards"] = {
        "correct": {"score": 1.0, "weight": 0.8},
        "speedup_reward": {"score": 0.5, "weight": 0.4},
    }
    trace.update(changes)
    return ep


def test_multi_turn_episode_keeps_each_message_and_its_own_reasoning(tmp_path: Path) -> None:
    out = tmp_path / "evals.parquet"
    convert(write(tmp_path / "traces.jsonl", [episode()]), out, Settings())
    [row] = pq.read_table(out).to_pylist()
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert [m["role"] for m in row["completion"]] == ["assistant", "tool", "assistant", "user"]
    assert [m["reasoning"] for m in row["completion"]] == ["look first", None, REASONING, None]
    assert row["completion"][0]["tool_calls"][0]["function"]["name"] == "bash"
    assert row["reward"] == pytest.approx(1.0 * 0.8 + 0.5 * 0.4)  # the rubric's total
    assert row["speedup_reward"] == 0.5
    assert row["num_turns"] == 2  # the model's messages


def test_reward_field_picks_one_score(tmp_path: Path, settings: Settings) -> None:
    out = tmp_path / "evals.parquet"
    src = write(tmp_path / "traces.jsonl", [episode()])
    convert(src, out, settings, reward_field="correct")
    assert pq.read_table(out).column("reward").to_pylist() == [1.0]
    with pytest.raises(InputError, match="--reward-field 'nope'"):
        convert(src, out, settings, reward_field="nope")


def test_unscored_episode_is_a_bad_line_naming_the_task_index(tmp_path: Path) -> None:
    ep = episode(rewards={"correct": None})
    ep["errors"] = [{"type": "ProviderError", "message": "upstream stream ended"}]
    with pytest.raises(InputError) as exc:
        convert(write(tmp_path / "t.jsonl", [episode(), ep]), tmp_path / "o.parquet", Settings())
    assert f"line 2 (example_id {ep['task']['data']['idx']})" in str(exc.value)
    assert "rewards.correct has no score" in str(exc.value) and "ProviderError" in str(exc.value)


def test_episode_without_reasoning_is_bad_unless_allowed(tmp_path: Path) -> None:
    ep = episode()
    for node in ep["traces"][0]["nodes"]:
        node["message"].pop("reasoning_content", None)
    src = write(tmp_path / "t.jsonl", [ep])
    with pytest.raises(InputError, match="no reasoning"):
        convert(src, tmp_path / "o.parquet", Settings())
    result = convert(src, tmp_path / "o.parquet", Settings(), allow_missing_reasoning=True)
    assert result.metrics["rows_without_reasoning"] == 1


def test_a_line_of_another_layout_is_named(tmp_path: Path) -> None:
    rollout = lines(DATA / "v0.3.1/results.jsonl")[0]
    src = write(tmp_path / "t.jsonl", [episode(), rollout])
    with pytest.raises(InputError, match="line 2 .*not a verifiers 0.4 episode"):
        convert(src, tmp_path / "o.parquet", Settings())


def test_cli_reports_the_layout_and_null_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "evals.parquet"
    argv = ["convert", str(DATA / "v0.3.1/results.jsonl"), "-o", str(out), "--no-upload"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Layout: results-0.3" in printed
    assert "task is null in 3 rows" in printed
