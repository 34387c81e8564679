"""Dataset cards: YAML header as datasets writes it, and the text built from stats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from kbpipe.hub.cards import CardContext, render_readme
from kbpipe.hub.cardyaml import features_yaml, front_matter, read_data_files
from kbpipe.hub.provenance import lineage_chain
from kbpipe.hub.rowsummary import RowSummary
from kbpipe.hub.shards import SplitFiles, StagedConfig, hub_schema

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


# --- cards a Hub visitor can trust -------------------------------------------------------


@pytest.fixture(scope="module")
def staged(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every table of a small offline run, staged as the Hub would get it."""
    from kbpipe.cli import main

    root = tmp_path_factory.mktemp("cards")
    out = root / "outputs"
    common = ["--output-dir", str(out), "--data-model", "c", "--env-file", str(root / "none")]
    bench = Path(__file__).resolve().parent.parent / "data" / "kernelbench"
    steps = [
        ["convert", str(sample_dir / "kernelbook-env.jsonl")],
        ["filter", "--rater", "offline"],
        ["dedupe"],
        ["prompts", "-i", str(sample_dir / "kernelbook.parquet"), "--rater", "offline"],
        ["strip-reasoning", "filtered"],
        ["audit"],
        ["decontaminate", "--benchmark", str(bench)],
    ]
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_TOKEN", "TEST_MODE", "LICENSE"):
            mp.delenv(name, raising=False)
        for argv in steps:
            assert main([*argv, "--no-upload", *common]) == 0, argv
        mp.setenv("LICENSE", "apache-2.0")
        assert main(["upload", "all", "--dry-run", str(root / "hub"), *common]) == 0
        for table in ("audited", "decontaminated"):
            assert main(["upload", table, "--dry-run", str(root / "hub"), *common]) == 0
    return root


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def _column_rows(body: str) -> dict[str, str]:
    section = body.split("## Columns", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^\| `([^`]+)` \| `[^|]*` \| (.*) \|$", section, flags=re.M)
    return dict(found)


def test_every_staged_card_describes_every_column_of_its_table(staged: Path) -> None:
    cards = sorted(p for p in (staged / "hub").iterdir() if p.is_dir())
    assert len(cards) == 7, [p.name for p in cards]
    for folder in cards:
        meta, body = _card(folder)
        shard = next((folder / "data").glob("*.parquet"))
        names = pq.read_schema(shard).names
        described = _column_rows(body)
        assert list(described) == names, folder.name
        assert all(described.values()), f"{folder.name}: {described}"
        assert [f["name"] for f in meta["dataset_info"]["features"]] == names


def test_cards_tell_the_truth_about_reasoning_and_prompts(staged: Path) -> None:
    hub_dir = staged / "hub"
    _, stripped = _card(hub_dir / "kernelbook-c-evals-filtered-no-reasoning")
    assert "`reasoning` holds its thinking" not in stripped
    assert "the model's reasoning is removed" in _column_rows(stripped)["completion"]
    _, tasks = _card(hub_dir / "kernelbook-c-synthetic-tasks")
    assert "chat messages" not in _column_rows(tasks)["prompt"]
    assert _column_rows(tasks)["prompt"].startswith("the training prompt")


def test_cards_carry_hub_metadata_and_no_local_paths_or_flags(staged: Path) -> None:
    for folder in (p for p in (staged / "hub").iterdir() if p.is_dir()):
        meta, body = _card(folder)
        assert meta["license"] == "apache-2.0"
        assert meta["language"] == ["en"] and meta["task_categories"] == ["text-generation"]
        assert {"triton", "gpu-kernels", "sft"} <= set(meta["tags"])
        assert meta["size_categories"] == ["n<1K"]
        text = (folder / "README.md").read_text()
        for local in (str(staged), ".cache/", "outputs/", "--no-upload", " -o ", "--env-file"):
            assert local not in text, (folder.name, local)
        assert re.search(r"^make \S+ DATA_MODEL=c ", body, flags=re.M), folder.name
    _, filtered = _card(staged / "hub" / "kernelbook-c-evals-filtered")
    assert "make filtered DATA_MODEL=c INPUT=kernelbook-env.jsonl REWARD_THRESHOLD=0.85" in filtered
    meta, _ = _card(staged / "hub" / "kernelbook-c-evals-filtered-no-reasoning")
    assert "reasoning" not in meta["tags"]


def test_the_license_is_left_out_and_the_publisher_warned_when_unset(
    settings_free_env: None, staged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kbpipe.cli import main

    out = staged / "outputs"
    argv = ["upload", "unique", "--dry-run", str(tmp_path), "--output-dir", str(out)]
    assert main([*argv, "--data-model", "c", "--env-file", str(tmp_path / "none")]) == 0
    assert "note: LICENSE is not set" in capsys.readouterr().out
    meta, _ = _card(tmp_path / "kernelbook-c-evals-unique")
    assert "license" not in meta


def test_the_report_plots_are_card_images(staged: Path) -> None:
    pytest.importorskip("matplotlib")
    folder = staged / "hub" / "kernelbook-c-evals-filtered"
    _, body = _card(folder)
    images = re.findall(r"!\[[^\]]*\]\((images/[\w.-]+\.png)\)", body)
    assert "images/rewards.png" in images and "images/difficulty.png" in images
    for image in images:
        assert (folder / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_column_a_step_adds_has_a_description() -> None:
    from kbpipe.hub.columns import COLUMNS
    from kbpipe.steps.audit import AUDIT_COLUMNS
    from kbpipe.verify.table import RESULT_COLUMNS

    assert set(AUDIT_COLUMNS) | set(RESULT_COLUMNS) <= set(COLUMNS)


@pytest.fixture
def settings_free_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_TOKEN", "TEST_MODE", "LICENSE"):
        monkeypatch.delenv(name, raising=False)
