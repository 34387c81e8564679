"""Dataset cards: YAML header as datasets writes it, and the text built from stats."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from kbpipe.hub.cards import CardContext, RowSummary, render_readme
from kbpipe.hub.cardyaml import features_yaml, front_matter, read_data_files
from kbpipe.hub.provenance import lineage_chain
from kbpipe.hub.splits import SplitFiles, StagedConfig, hub_schema

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning", pa.string())])
SCHEMA = pa.schema(
    [
        ("example_id", pa.int64()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("completion", pa.list_(MESSAGE)),
        ("reward", pa.float64()),
        ("num_turns", pa.float32()),
        ("info", pa.struct([("module_name", pa.string()), ("python_code", pa.string())])),
        ("oai_tools", pa.null()),
        ("is_best", pa.bool_()),
        ("tiles", pa.list_(pa.list_(pa.int32()))),
        ("tags", pa.list_(pa.string())),
        ("created", pa.timestamp("us")),
        ("difficulty", pa.string()),
    ]
)


@pytest.mark.parametrize("schema", [SCHEMA, pa.schema([("a", pa.large_string())])])
def test_features_yaml_is_what_datasets_writes(schema: pa.Schema) -> None:
    import datasets

    expected = datasets.Features.from_arrow_schema(schema)._to_yaml_list()
    assert features_yaml(schema) == expected


def test_features_of_a_polars_table_after_normalising_match_the_seed_types() -> None:
    large = pa.schema([("completion", pa.large_list(pa.struct([("content", pa.large_string())])))])
    assert features_yaml(hub_schema(large)) == [
        {"name": "completion", "list": [{"name": "content", "dtype": "string"}]}
    ]


def _configs() -> list[StagedConfig]:
    train = SplitFiles("train", ["data/train-00000-of-00001.parquet"], 9, 900, 300)
    val = SplitFiles("validation", ["data/validation-00000-of-00001.parquet"], 1, 100, 50)
    return [
        StagedConfig(
            "default",
            [train, val],
            {"train": ["data/train-*"], "validation": ["data/validation-*"]},
        )
    ]


def test_front_matter_has_configs_and_dataset_info() -> None:
    meta = yaml.safe_load(yaml.safe_dump(front_matter(_configs(), SCHEMA)))
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "validation", "path": "data/validation-*"},
            ],
        }
    ]
    info = meta["dataset_info"]
    assert info["splits"] == [
        {"name": "train", "num_bytes": 900, "num_examples": 9},
        {"name": "validation", "num_bytes": 100, "num_examples": 1},
    ]
    assert (info["download_size"], info["dataset_size"]) == (350, 1000)
    assert [f["name"] for f in info["features"]] == SCHEMA.names


def _stats(tmp_path: Path) -> dict:
    evals = tmp_path / "evals_dataset.parquet"
    evals.write_bytes(b"x")
    upstream = {
        "step": "convert",
        "rows_in": 120,
        "rows_out": 118,
        "dropped": {"missing reasoning": 2},
        "inputs": [{"path": "kernelbook-env.jsonl"}],
        "output": str(evals),
    }
    (tmp_path / "evals_dataset.parquet.stats.json").write_text(json.dumps(upstream))
    return {
        "step": "filter",
        "kbpipe_version": "0.1.0",
        "command": "kbpipe filter --rater api --threshold 0.9",
        "output": str(tmp_path / "filtered_dataset.parquet"),
        "rows_in": 118,
        "rows_out": 10,
        "dropped": {"reward <= threshold": 100, "unparseable": 8},
        "inputs": [{"path": str(evals), "sha256": "f" * 64}],
        "params": {
            "reward_threshold": 0.9,
            "judge_model": "openai/gpt-5.2",
            "prompt_version": "difficulty-v2",
            "api_key": "sk-should-not-show",
            "concurrency": 256,
        },
        "wall_s": 12.5,
        "data_model": "glm4_7",
    }


def test_lineage_chain_walks_local_inputs_oldest_first(tmp_path: Path) -> None:
    chain = lineage_chain(_stats(tmp_path))
    assert [s["step"] for s in chain] == ["convert", "filter"]


def test_card_text_is_built_from_stats_and_rows(tmp_path: Path) -> None:
    rows = RowSummary()
    observe = rows.observer("default")
    observe("train", pa.table({"difficulty": ["low", "high", "high"], "reward": [0.9, 1.0, 0.95]}))
    observe("validation", pa.table({"difficulty": ["medium"], "reward": [0.875]}))
    ctx = CardContext(
        repo_id="siro1/kernelbook-glm4_7-evals-filtered",
        table="filtered",
        data_model="glm4_7",
        stats=_stats(tmp_path),
        split_mode="module",
        seqlen={
            "tokenizer": "Qwen/Qwen3",
            "total": 10,
            "max": 40_000,
            "recommended_seq_len": {"99": 32768, "100": 65536},
            "buckets": [{"le": 1}],
        },
    )
    text = render_readme(ctx, _configs(), SCHEMA, rows)
    body = text.split("---", 2)[2]
    # How it was made, in make form: no command line with local paths or flags.
    assert "make filtered DATA_MODEL=glm4_7 INPUT=kernelbook-env.jsonl REWARD_THRESHOLD=0.9" in body
    assert "kbpipe filter" not in body and "`0.1.0`" in body
    assert "judge model: `openai/gpt-5.2`" in body
    assert "prompt version: `difficulty-v2`" in body
    assert "reward threshold: `0.9`" in body
    assert "| convert | 120 | 118 | 2 missing reasoning |" in body
    assert "| filter | 118 | 10 | 100 reward <= threshold, 8 unparseable |" in body
    assert "| default | train | 1 (33 %) | 0 (0 %) | 2 (67 %) |" in body
    assert "| default | validation | 1 | 0.875 | 0.875 | 0.875 | 0.875 |" in body
    assert "| default | train | 3 | 0.950 | 0.900 | 0.950 | 1.000 |" in body
    assert "| recommended seq len | 99 | 100 |\n|---|---:|---:|\n| | 32,768 | 65,536 |" in body
    assert "| summary | total | max |\n|---|---:|---:|\n| | 10 | 40,000 |" in body
    assert 'load_dataset("siro1/kernelbook-glm4_7-evals-filtered")' in body
    assert "stable sha256 hash of `info.module_name`" in body
    assert "sk-should-not-show" not in text
    assert "| `reward` | `double` | score from the evaluation harness" in body


def test_card_from_a_hub_input_names_repo_and_revision(tmp_path: Path) -> None:
    stats = {
        **_stats(tmp_path),
        "inputs": [
            {
                "path": "hf://datasets/siro1/kernelbook-glm4_7-evals",
                "revision": "abc123",
            }
        ],
    }
    ctx = CardContext("siro1/x", "filtered", "glm4_7", stats, "legacy")
    text = render_readme(ctx, _configs(), SCHEMA, RowSummary())
    assert "[siro1/kernelbook-glm4_7-evals](https://huggingface.co/datasets/siro1/" in text
    assert "at revision `abc123`" in text
    assert "train_test_split(test_size=0.1, seed=42)" in text


def test_read_data_files_round_trips_the_written_configs(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    ctx = CardContext("o/n", "unique", "m", {"step": "dedupe"}, "module")
    readme.write_text(render_readme(ctx, _configs(), SCHEMA, RowSummary()))
    assert read_data_files(readme) == {
        "train": ["data/train-*"],
        "validation": ["data/validation-*"],
    }
    readme.write_text("# no yaml\n")
    assert read_data_files(readme) == {}
