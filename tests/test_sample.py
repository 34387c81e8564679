"""The bundled-sample generator: determinism, shape of the rows, and the variety they promise."""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from kbpipe.sample.generator import (
    KERNELBOOK_COLUMNS,
    MODULES,
    TIERS,
    write_kernelbook,
    write_rollouts_jsonl,
    write_sample,
)

ROLLOUT_KEYS = [
    "example_id",
    "prompt",
    "completion",
    "task",
    "info",
    "reward",
    "generation_ms",
    "scoring_ms",
    "total_ms",
    "answer",
    "speedup_reward",
    "num_turns",
    "trajectory",
]
INFO_KEYS = ["module_name", "python_code", "triton_code", "entry_point", "uuid"]
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def last_reasoning(row: dict[str, Any]) -> str:
    return row["trajectory"][-1]["response"]["choices"][0]["message"]["reasoning_content"]


@pytest.fixture(scope="module")
def rows(sample_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(sample_dir / "kernelbook-env.jsonl")


def test_same_parameters_give_the_same_bytes(tmp_path: Path) -> None:
    for run in ("a", "b"):
        write_rollouts_jsonl(tmp_path / f"{run}.jsonl", n_rows=50, reasoning_bytes=1500, seed=3)
        write_kernelbook(tmp_path / f"{run}.parquet", seed=3)
    write_rollouts_jsonl(tmp_path / "other.jsonl", n_rows=50, reasoning_bytes=1500, seed=4)

    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "other.jsonl").read_bytes()


def test_write_sample_writes_both_files_and_nothing_else(tmp_path: Path) -> None:
    paths = write_sample(tmp_path / "out", n_rows=12, reasoning_bytes=800, layout="verifiers")

    assert paths == {
        "rollouts": tmp_path / "out" / "kernelbook-env.jsonl",
        "kernelbook": tmp_path / "out" / "kernelbook.parquet",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "kernelbook-env.jsonl",
        "kernelbook.parquet",
    ]
    rollouts = read_jsonl(paths["rollouts"])
    assert len(rollouts) == 12
    assert all("reasoning_content" in row["completion"][0] for row in rollouts)


def test_modules_are_many_distinct_and_span_every_tier() -> None:
    names = [m.name for m in MODULES]
    assert len(set(names)) == len(names) >= 40
    assert len({m.python_code for m in MODULES}) == len(MODULES)
    assert len({m.uuid for m in MODULES}) == len(MODULES)
    assert {m.tier for m in MODULES} == set(TIERS)
    for tier in TIERS:
        assert sum(m.tier == tier for m in MODULES) >= 8, tier


@pytest.mark.parametrize("spec", MODULES, ids=lambda m: m.name)
def test_module_sources_parse_and_have_the_kernelbook_shape(spec: Any) -> None:
    defined = {
        node.name: node
        for node in ast.parse(spec.python_code).body
        if isinstance(node, ast.ClassDef | ast.FunctionDef)
    }
    assert {spec.name, "get_inputs", "get_init_inputs"} <= defined.keys()
    methods = {n.name for n in defined[spec.name].body if isinstance(n, ast.FunctionDef)}
    assert {"__init__", "forward"} <= methods

    triton = ast.parse(spec.triton_code)
    classes = [n.name for n in triton.body if isinstance(n, ast.ClassDef)]
    assert classes == [f"{spec.name}New"]
    assert "@triton.jit" in spec.triton_code
    assert spec.entry_point == spec.name


def test_every_row_has_the_vf_eval_keys_in_order_and_types(rows: list[dict[str, Any]]) -> None:
    names = {m.name for m in MODULES}
    for i, row in enumerate(rows):
        assert list(row) == ROLLOUT_KEYS
        assert row["example_id"] == i
        assert row["task"] == "kernelbook"
        assert list(row["info"]) == INFO_KEYS
        assert row["info"]["module_name"] in names

        [prompt] = row["prompt"]
        assert prompt["role"] == "user"
        assert row["info"]["python_code"].strip() in prompt["content"]
        assert f"{row['info']['module_name']}New" in prompt["content"]
        [completion] = row["completion"]
        assert completion == {"role": "assistant", "content": completion["content"]}

        for key in ("reward", "generation_ms", "scoring_ms", "total_ms", "speedup_reward"):
            assert isinstance(row[key], float), key
        assert 0.0 <= row["reward"] <= 1.0
        assert row["total_ms"] == pytest.approx(row["generation_ms"] + row["scoring_ms"])
        assert isinstance(row["answer"], str)

        assert row["num_turns"] in (1.0, 2.0)
        assert len(row["trajectory"]) == row["num_turns"]
        for turn in row["trajectory"]:
            assert list(turn) == ["prompt", "completion", "response"]
            [choice] = turn["response"]["choices"]
            assert choice["index"] == 0 and choice["finish_reason"] == "stop"
            assert choice["message"]["content"] == turn["completion"][0]["content"]
            assert isinstance(choice["message"]["reasoning_content"], str)
            assert set(turn["response"]["usage"]) == {
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
            }
        assert row["trajectory"][-1]["completion"] == row["completion"]


def test_rewards_spread_over_the_range_with_ties(rows: list[dict[str, Any]]) -> None:
    rewards = [row["reward"] for row in rows]
    assert 0.0 in rewards and 0.85 in rewards and 1.0 in rewards
    assert any(0.0 < r < 0.85 for r in rewards)
    assert 0.35 <= sum(r > 0.85 for r in rewards) / len(rewards) <= 0.55

    by_module: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_module[row["info"]["module_name"]].append(row["reward"])
    assert min(len(v) for v in by_module.values()) >= 3
    # dedupe's tie-break (first row wins) only matters when the top reward repeats
    assert any(v.count(max(v)) > 1 and max(v) > 0.85 for v in by_module.values())


def test_answer_is_the_text_inside_the_tags(rows: list[dict[str, Any]]) -> None:
    untagged = 0
    for row in rows:
        match = ANSWER.search(row["completion"][0]["content"])
        if match is None:
            untagged += 1
            assert row["answer"] == "" and row["reward"] == 0.0
        else:
            assert row["answer"] == match.group(1)
            assert f"class {row['info']['module_name']}New(nn.Module)" in row["answer"]
    assert 1 <= untagged <= 0.08 * len(rows)


def test_last_turn_reasoning_is_within_ten_percent_of_target(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        size = len(last_reasoning(row).encode())
        assert 0.9 * 4000 <= size <= 1.1 * 4000, row["example_id"]
        assert row["info"]["module_name"] in last_reasoning(row)


@pytest.mark.parametrize("target", [1_000, 25_000])
def test_reasoning_size_follows_the_parameter(tmp_path: Path, target: int) -> None:
    path = tmp_path / "r.jsonl"
    write_rollouts_jsonl(path, n_rows=20, reasoning_bytes=target)
    for row in read_jsonl(path):
        assert 0.9 * target <= len(last_reasoning(row).encode()) <= 1.1 * target


def test_some_rows_take_two_turns_and_feed_back_the_first(rows: list[dict[str, Any]]) -> None:
    two = [row for row in rows if row["num_turns"] == 2.0]
    assert 1 <= len(two) < len(rows) / 4
    for row in two:
        first, last = row["trajectory"]
        assert first["prompt"] == row["prompt"]
        assert last["prompt"][:2] == [*row["prompt"], first["completion"][0]]
        assert last["prompt"][2]["role"] == "user"


def test_a_few_rows_carry_unicode(sample_dir: Path) -> None:
    lines = (sample_dir / "kernelbook-env.jsonl").read_text(encoding="utf-8").splitlines()
    non_ascii = [line for line in lines if not line.isascii()]
    assert 1 <= len(non_ascii) <= len(lines) / 5
    assert any(mark in line for line in non_ascii for mark in ("→", "µs", "é"))


def test_verifiers_layout_moves_reasoning_onto_the_completion(tmp_path: Path) -> None:
    write_rollouts_jsonl(tmp_path / "t.jsonl", n_rows=30, reasoning_bytes=1200)
    write_rollouts_jsonl(tmp_path / "v.jsonl", n_rows=30, reasoning_bytes=1200, layout="verifiers")
    expected_keys = [k for k in ROLLOUT_KEYS if k not in ("task", "trajectory")]

    for t, v in zip(
        read_jsonl(tmp_path / "t.jsonl"), read_jsonl(tmp_path / "v.jsonl"), strict=True
    ):
        assert list(v) == expected_keys
        [message] = v["completion"]
        assert list(message) == ["role", "content", "reasoning_content"]
        assert message["reasoning_content"] == last_reasoning(t)
        assert message["content"] == t["completion"][0]["content"]


def test_unknown_layout_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        write_rollouts_jsonl(tmp_path / "x.jsonl", layout="chat")
    assert not list(tmp_path.iterdir())


def test_kernelbook_table_has_one_row_per_module(sample_dir: Path) -> None:
    table = pq.read_table(sample_dir / "kernelbook.parquet")

    assert table.column_names == list(KERNELBOOK_COLUMNS)
    assert all(str(t) == "string" for t in table.schema.types)
    names = table.column("module_name").to_pylist()
    assert sorted(names) == sorted(m.name for m in MODULES)


def test_rollouts_and_table_describe_the_same_modules(
    rows: list[dict[str, Any]], sample_dir: Path
) -> None:
    table = pq.read_table(sample_dir / "kernelbook.parquet").to_pylist()
    by_name = {r["module_name"]: r for r in table}
    for row in rows:
        info = row["info"]
        ref = by_name[info["module_name"]]
        assert (info["python_code"], info["triton_code"], info["uuid"]) == (
            ref["python_code"],
            ref["triton_code"],
            ref["uuid"],
        )
