"""Step 0.5 convert: vf-eval JSONL -> evals table, on hand-written rollouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.lineage import StepResult
from kbpipe.io.rollouts import COLUMNS
from kbpipe.io.tables import MAX_NESTING
from kbpipe.steps.convert import convert

INFO = {
    "module_name": "Add",
    "python_code": "class Add(nn.Module): ...",
    "triton_code": "@triton.jit",
}


def rollout(example_id: int = 0, *, reasoning: str | None = "think", **fields: Any) -> dict:
    """A vf-eval `-C trajectory` row; keyword arguments replace or (as None) remove fields."""
    content = f"<answer>kernel {example_id}</answer>"
    row = {
        "example_id": example_id,
        "prompt": [{"role": "user", "content": f"write module {example_id}"}],
        "completion": [{"role": "assistant", "content": content}],
        "task": "kernelbook",
        "info": dict(INFO),
        "reward": 0.5,
        "generation_ms": 1000.0,
        "scoring_ms": 500.0,
        "total_ms": 1500.0,
        "answer": "kernel",
        "speedup_reward": 0.25,
        "num_turns": 1.0,
        "trajectory": [turn(content, reasoning)],
    }
    for key, value in fields.items():
        if value is None:
            row.pop(key, None)
        else:
            row[key] = value
    return row


def turn(content: str, reasoning: str | None) -> dict:
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "prompt": [],
        "completion": [{"role": "assistant", "content": content}],
        "response": {"id": "x", "choices": [{"index": 0, "message": message}]},
    }


def write_lines(path: Path, rows: list[dict | str]) -> Path:
    """Rows as JSONL; a str entry is written verbatim (for broken lines)."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def run(
    tmp_path: Path, settings: Settings, rows: list[dict | str], **options: Any
) -> tuple[StepResult, list[dict[str, Any]]]:
    src = write_lines(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out" / "evals.parquet"
    result = convert(src, out, settings, **options)
    return result, pq.read_table(out).to_pylist()


# -- the seed's semantics --------------------------------------------------


def test_row_is_reshaped_exactly_as_the_seed_does(tmp_path: Path, settings: Settings) -> None:
    result, rows = run(tmp_path, settings, [rollout(7, reasoning="step by step", extra_col=1)])
    assert rows == [
        {
            "example_id": 7,
            "prompt": [{"role": "user", "content": "write module 7"}],
            "completion": [
                {
                    "role": "assistant",
                    "content": "<answer>kernel 7</answer>",
                    "reasoning": "step by step",
                }
            ],
            "task": "kernelbook",
            "reward": 0.5,
            "generation_ms": 1000.0,
            "scoring_ms": 500.0,
            "total_ms": 1500.0,
            "info": INFO,
            "answer": "kernel",
            "speedup_reward": 0.25,
            "num_turns": 1.0,
            "oai_tools": None,
        }
    ]
    assert list(rows[0]) == list(COLUMNS)
    assert (result.rows_in, result.rows_out, result.dropped) == (1, 1, {})
    assert result.metrics["dropped_input_fields"] == {"extra_col": 1}


def test_unicode_survives_byte_for_byte(tmp_path: Path, settings: Settings) -> None:
    text = "naïve → ∑ over 𝔽₂, 日本語, emoji 🚀, combining é, tab\tand \\ backslash"
    row = rollout(1, reasoning=f"思考: {text}")
    row["prompt"][0]["content"] = text
    row["info"]["module_name"] = "Ünïcode模块"
    _, rows = run(tmp_path, settings, [row])
    assert rows[0]["prompt"][0]["content"] == text
    assert rows[0]["completion"][0]["reasoning"] == f"思考: {text}"
    assert rows[0]["info"]["module_name"] == "Ünïcode模块"


def test_only_the_last_trajectory_turn_counts_and_every_message_gets_it(
    tmp_path: Path, settings: Settings
) -> None:
    row = rollout(2, trajectory=[turn("first try", "first thoughts"), turn("fixed", "final")])
    row["completion"] = [
        {"role": "assistant", "content": "part one"},
        {"role": "assistant", "content": "part two", "reasoning": "stale"},
    ]
    _, rows = run(tmp_path, settings, [row])
    assert [m["reasoning"] for m in rows[0]["completion"]] == ["final", "final"]
    assert [m["content"] for m in rows[0]["completion"]] == ["part one", "part two"]


def test_empty_reasoning_stays_an_empty_string(tmp_path: Path, settings: Settings) -> None:
    result, rows = run(tmp_path, settings, [rollout(3, reasoning="")])
    assert rows[0]["completion"][0]["reasoning"] == ""
    assert result.metrics["rows_without_reasoning"] == 0


def test_extra_info_keys_are_kept_even_when_first_seen_late(
    tmp_path: Path, settings: Settings
) -> None:
    rows_in = [
        rollout(0),
        rollout(1, info={**INFO, "uuid": "u-1"}),
        rollout(2, info={**INFO, "uuid": "u-2", "n_params": 3}),
        rollout(3, info={**INFO, "n_params": 4.5}),
    ]
    # One row per chunk, so each new key arrives after rows were already written.
    result, rows = run(tmp_path, settings, rows_in, batch_rows=1)
    assert [r["info"].get("uuid") for r in rows] == [None, "u-1", "u-2", None]
    assert [r["info"]["n_params"] for r in rows] == [None, None, 3.0, 4.5]
    assert result.metrics["info_fields"] == [*INFO, "uuid", "n_params"]
    info_type = pq.read_schema(tmp_path / "out" / "evals.parquet").field("info").type
    assert info_type.field("n_params").type == pa.float64()  # widened from int64
    assert result.metrics["schema_widenings"] == 3  # uuid, n_params, then int -> float


# Any valid UTF-8 text (no lone surrogates, which JSON allows but UTF-8 cannot hold).
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=_TEXT,
    reasoning=st.one_of(st.none(), _TEXT),
    module=_TEXT,
    reward=st.floats(allow_nan=False, allow_infinity=False),
    example_id=st.integers(-(2**63), 2**63 - 1),
)
def test_round_trip_keeps_every_value(
    tmp_path: Path,
    settings: Settings,
    content: str,
    reasoning: str | None,
    module: str,
    reward: float,
    example_id: int,
) -> None:
    row = rollout(example_id, reasoning=reasoning, reward=reward, info={"module_name": module})
    row["completion"][0]["content"] = content
    _, rows = run(tmp_path, settings, [row], allow_missing_reasoning=True)
    assert rows[0]["example_id"] == example_id and rows[0]["reward"] == reward
    assert rows[0]["completion"] == [
        {"role": "assistant", "content": content, "reasoning": reasoning}
    ]
    assert rows[0]["info"]["module_name"] == module


# -- the newer verifiers layout --------------------------------------------


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_verifiers_layout_takes_reasoning_from_the_message(
    tmp_path: Path, settings: Settings, key: str
) -> None:
    row = rollout(4, trajectory=None, task=None, answer=None)
    row["completion"][0][key] = "own thoughts"
    for name in ("generation_ms", "scoring_ms", "total_ms", "speedup_reward", "num_turns"):
        del row[name]
    row["timing"] = {"generation_ms": 10.0, "scoring_ms": 2.0, "total_ms": 12.0}
    row["metrics"] = {"speedup_reward": 0.75}
    result, rows = run(tmp_path, settings, [row])
    assert rows[0]["completion"] == [
        {"role": "assistant", "content": "<answer>kernel 4</answer>", "reasoning": "own thoughts"}
    ]
    assert rows[0]["task"] is None and rows[0]["answer"] is None and rows[0]["num_turns"] is None
    assert (rows[0]["generation_ms"], rows[0]["total_ms"]) == (10.0, 12.0)
    assert rows[0]["speedup_reward"] == 0.75
    assert result.metrics["rows_verifiers_layout"] == 1


@pytest.mark.parametrize(
    "row",
    [rollout(5, trajectory=None), rollout(5, reasoning=None)],
    ids=["no trajectory", "no reasoning_content"],
)
def test_row_without_any_reasoning_is_a_bad_line_as_in_the_seed(
    tmp_path: Path, settings: Settings, row: dict
) -> None:
    with pytest.raises(InputError, match=r"line 1 \(example_id 5\): no reasoning"):
        run(tmp_path, settings, [row, rollout(6)])


def test_allow_missing_reasoning_keeps_the_row_with_null_and_counts_it(
    tmp_path: Path, settings: Settings
) -> None:
    rows_in = [rollout(5, trajectory=None), rollout(6)]
    result, rows = run(tmp_path, settings, rows_in, allow_missing_reasoning=True)
    assert [r["completion"][0]["reasoning"] for r in rows] == [None, "think"]
    assert result.metrics["rows_without_reasoning"] == 1
    assert result.metrics["layout_notes"] == {"rows_without_reasoning_kept": 1}


def test_both_sample_layouts_convert_to_the_same_messages(
    tmp_path: Path, settings: Settings
) -> None:
    from kbpipe.sample.generator import write_rollouts_jsonl

    tables = {}
    for layout in ("trajectory", "verifiers"):
        assert write_rollouts_jsonl(tmp_path / f"{layout}.jsonl", 30, 500, 3, layout=layout) == 30
        out = tmp_path / f"{layout}.parquet"
        convert(tmp_path / f"{layout}.jsonl", out, settings)
        tables[layout] = pq.read_table(out)
    old, new = tables["trajectory"], tables["verifiers"]
    assert old.column("completion").equals(new.column("completion"))
    assert old.column("reward").equals(new.column("reward"))
    assert set(old.column("task").to_pylist()) == {"kernelbook"}
    assert new.column("task").null_count == 30


# -- bad input -------------------------------------------------------------

BAD_CASES = {
    "missing reward": (rollout(11, reward=None), "line 2 (example_id 11)", "'reward'"),
    "reward is text": (
        rollout(12, reward="abc"),
        "line 2 (example_id 12)",
        "reward must be a number",
    ),
    "example_id is text": ({**rollout(0), "example_id": "13"}, "line 2 (example_id 13)", "integer"),
    "no module_name": (rollout(14, info={"python_code": "x"}), "example_id 14", "module_name"),
    "example_id beyond int64": (
        {**rollout(0), "example_id": 2**70},
        f"line 2 (example_id {2**70})",
        "cannot be stored",
    ),
    "lone surrogate": (
        '{"example_id": 18, "prompt": [{"role": "user", "content": "\\ud800"}], "completion": '
        '[{"role": "assistant", "content": "", "reasoning_content": "r"}], "reward": 1, '
        '"info": {"module_name": "M"}}',
        "line 2 (example_id 18)",
        "surrogates not allowed",
    ),
    "not JSON": ('{"example_id": 15, "prompt": [{"role": "us', "line 2 (example_id 15)", "JSON"),
    "not an object": ("[1, 2]", "line 2 (example_id unknown)", "not an object"),
    "broken trajectory": (
        rollout(16, trajectory=[{"response": {}}]),
        "example_id 16",
        "trajectory",
    ),
    "content not text": (
        rollout(17, completion=[{"role": "assistant", "content": 5}]),
        "example_id 17",
        "completion[0].content must be a string",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_line_names_line_and_example_id_and_writes_nothing(
    tmp_path: Path, settings: Settings, case: str
) -> None:
    bad, where, what = BAD_CASES[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "evals.parquet").write_bytes(b"previous output")
    with pytest.raises(InputError) as exc:
        run(tmp_path, settings, [rollout(1), bad, rollout(3)])
    message = str(exc.value)
    assert where in message and what in message and "in.jsonl" in message
    # The previous output is untouched and no temp file, stats or rejects appear.
    assert [p.name for p in out_dir.iterdir()] == ["evals.parquet"]
    assert (out_dir / "evals.parquet").read_bytes() == b"previous output"


def test_bad_line_after_rows_were_written_leaves_no_output(
    tmp_path: Path, settings: Settings
) -> None:
    rows = [rollout(i) for i in range(5)] + ["", rollout(99, prompt="oops")]
    with pytest.raises(InputError, match=r"line 7 \(example_id 99\): prompt must be a list"):
        run(tmp_path, settings, rows, batch_rows=2)
    assert list((tmp_path / "out").iterdir()) == []


def test_type_clash_in_info_names_the_field(tmp_path: Path, settings: Settings) -> None:
    rows = [rollout(0, info={**INFO, "uuid": 1}), rollout(1, info={**INFO, "uuid": [1]})]
    with pytest.raises(InputError, match=r"line 2 \(example_id 1\): info.uuid is list<.*int64"):
        run(tmp_path, settings, rows, batch_rows=1)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error(tmp_path: Path, settings: Settings, content: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    with pytest.raises(InputError, match="no rows"):
        convert(src, tmp_path / "out" / "evals.parquet", settings)
    assert list((tmp_path / "out").iterdir()) == []


def test_skip_bad_writes_good_rows_and_a_rejects_file(tmp_path: Path, settings: Settings) -> None:
    lines = [
        rollout(0),
        "not json at all",
        rollout(2, reward="abc"),
        rollout(3),
        rollout(4, info={**INFO, "uuid": 1}),
        rollout(5, info={**INFO, "uuid": "clashes with an int"}),
    ]
    result, rows = run(tmp_path, settings, lines, skip_bad=True)
    assert [r["example_id"] for r in rows] == [0, 3, 4]
    rejects = [json.loads(x) for x in (tmp_path / "out" / "evals.rejects.jsonl").open()]
    assert [(r["line"], r["example_id"], r["reason"]) for r in rejects] == [
        (2, None, "not JSON"),
        (3, 2, "wrong type"),
        (6, 5, "wrong type"),
    ]
    assert "reward must be a number" in rejects[1]["detail"]
    assert rejects[0]["excerpt"] == "not json at all\n"
    stats = json.loads((tmp_path / "out" / "evals.parquet.stats.json").read_text())
    assert (stats["rows_in"], stats["rows_out"]) == (6, 3)
    assert stats["dropped"] == {"not JSON": 1, "wrong type": 2}
    assert result.rejects == tmp_path / "out" / "evals.rejects.jsonl"


def test_a_too_deep_row_is_a_reject_whose_extra_keys_are_not_counted(
    tmp_path: Path, settings: Settings
) -> None:
    deep: object = 1
    for _ in range(MAX_NESTING + 5):
        deep = [deep]
    lines = [rollout(0, extra_col=1), rollout(1, extra_col=1, info={**INFO, "deep": deep})]
    result, rows = run(tmp_path, settings, lines, skip_bad=True)
    assert [r["example_id"] for r in rows] == [0]
    assert result.metrics["dropped_input_fields"] == {"extra_col": 1}
    assert result.metrics["info_fields"] == ["module_name", "python_code", "triton_code"]
    rejects = [json.loads(x) for x in (tmp_path / "out" / "evals.rejects.jsonl").open()]
    assert [(r["line"], r["example_id"], r["reason"]) for r in rejects] == [(2, 1, "too deep")]


def test_skip_bad_with_only_bad_rows_is_an_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InputError, match="all 2 rows are bad"):
        run(tmp_path, settings, ["{", "}"], skip_bad=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["evals.rejects.jsonl"]


def test_a_clean_rerun_removes_a_stale_rejects_file(tmp_path: Path, settings: Settings) -> None:
    run(tmp_path, settings, [rollout(0), "{"], skip_bad=True)
    result, _ = run(tmp_path, settings, [rollout(0)], skip_bad=True)
    assert result.rejects is None
    assert not (tmp_path / "out" / "evals.rejects.jsonl").exists()


# -- limit, output formats, readers ----------------------------------------


def test_limit_takes_the_first_rows(tmp_path: Path, settings: Settings) -> None:
    result, rows = run(tmp_path, settings, [rollout(i) for i in range(10)] + ["{"], limit=4)
    assert [r["example_id"] for r in rows] == [0, 1, 2, 3]
    assert result.rows_in == 4


def test_jsonl_output_has_the_seed_format(tmp_path: Path, settings: Settings) -> None:
    src = write_lines(tmp_path / "in.jsonl", [rollout(0), rollout(1, trajectory=None)])
    out = tmp_path / "evals.jsonl"
    convert(src, out, settings, allow_missing_reasoning=True)
    rows = [json.loads(line) for line in out.open()]
    assert [list(r) for r in rows] == [list(COLUMNS)] * 2
    assert rows[0]["completion"][0]["reasoning"] == "think"
    assert rows[1]["completion"][0]["reasoning"] is None


def test_output_loads_in_duckdb_with_order_and_nested_types(
    tmp_path: Path, settings: Settings
) -> None:
    run(tmp_path, settings, [rollout(0), rollout(1, info={**INFO, "uuid": "u"})])
    path = str(tmp_path / "out" / "evals.parquet")
    described = duckdb.execute("describe select * from read_parquet(?)", [path]).fetchall()
    types = {name: kind for name, kind, *_ in described}
    assert [d[0] for d in described] == list(COLUMNS)
    assert types["prompt"] == 'STRUCT("role" VARCHAR, "content" VARCHAR)[]'
    assert types["completion"] == 'STRUCT("role" VARCHAR, "content" VARCHAR, reasoning VARCHAR)[]'
    assert (
        types["info"].startswith("STRUCT(module_name VARCHAR") and "uuid VARCHAR" in types["info"]
    )
    assert (types["example_id"], types["reward"]) == ("BIGINT", "DOUBLE")
    got = duckdb.execute(
        "select completion[1].reasoning, info.uuid from read_parquet(?) order by example_id", [path]
    ).fetchall()
    assert got == [("think", None), ("think", "u")]


def seed_convert(src: Path, dest: Path) -> None:
    """What the seed script does: load everything, rewrite each row, dump JSONL."""
    with open(src) as fh, open(dest, "w") as out:
        for line in fh:
            row = json.loads(line)
            reasoning = row["trajectory"][-1]["response"]["choices"][0]["message"][
                "reasoning_content"
            ]
            completion = [{**m, "reasoning": reasoning} for m in row["completion"]]
            new = {k: row[k] for k in COLUMNS if k in row} | {"completion": completion}
            out.write(json.dumps({k: new.get(k) for k in COLUMNS}) + "\n")


def test_output_has_the_same_datasets_features_as_the_seeds_jsonl(
    sample_dir: Path, tmp_path: Path, settings: Settings
) -> None:
    import datasets

    src = sample_dir / "kernelbook-env.jsonl"
    seed_jsonl, ours = tmp_path / "seed.jsonl", tmp_path / "ours.parquet"
    seed_convert(src, seed_jsonl)
    result = convert(src, ours, settings)
    cache = str(tmp_path / "hf-cache")
    theirs_ds = datasets.load_dataset("json", data_files=str(seed_jsonl), cache_dir=cache)["train"]
    ours_ds = datasets.load_dataset("parquet", data_files=str(ours), cache_dir=cache)["train"]
    assert ours_ds.features == theirs_ds.features
    assert ours_ds.num_rows == theirs_ds.num_rows == result.rows_out == 240
    assert ours_ds[17] == theirs_ds[17]


# -- command line ----------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TEST_MODE", "DATA_MODEL", "OUTPUT_DIR", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_cli_converts_to_the_default_path_and_prints_stats(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(cli_env / "in.jsonl", [rollout(0), rollout(1, reward=1)])
    assert main(["convert", "in.jsonl", "--no-upload", "--data-model", "m1"]) == 0
    out = capsys.readouterr().out
    assert "Loaded 2 rows" in out
    assert "Reward: min 0.5000  max 1.0000  mean 0.7500" in out
    assert "Columns: example_id, prompt, completion, task, reward" in out
    assert pq.read_table(cli_env / "outputs/m1/evals_dataset.parquet").num_rows == 2
    assert (cli_env / "outputs/m1/evals_dataset.parquet.stats.json").is_file()


def test_cli_accepts_dash_i_and_test_mode_limits_rows(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lines(cli_env / "in.jsonl", [rollout(i) for i in range(8)])
    monkeypatch.setenv("TEST_MODE", "true")
    assert main(["convert", "-i", "in.jsonl", "-o", "e.parquet", "--no-upload"]) == 0
    assert pq.read_table(cli_env / "e.parquet").num_rows == 5
    assert (
        main(["convert", "-i", "in.jsonl", "-o", "e.parquet", "--no-upload", "--limit", "2"]) == 0
    )
    assert pq.read_table(cli_env / "e.parquet").num_rows == 2


def test_cli_bad_input_exits_1_with_the_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(cli_env / "in.jsonl", [rollout(0), rollout(1, completion=None)])
    assert main(["convert", "in.jsonl", "-o", "e.parquet", "--no-upload"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kbpipe convert: error: in.jsonl line 2 (example_id 1): missing")
    assert not (cli_env / "e.parquet").exists()
    # One bad line of two is past the default --max-reject-rate: exit 1, table and rejects kept.
    assert main(["convert", "in.jsonl", "-o", "e.parquet", "--no-upload", "--skip-bad"]) == 1
    assert "--max-reject-rate" in capsys.readouterr().err
    assert (cli_env / "e.parquet").is_file() and (cli_env / "e.rejects.jsonl").is_file()
    skip = ["--skip-bad", "--max-reject-rate", "50%"]
    assert main(["convert", "in.jsonl", "-o", "e.parquet", "--no-upload", *skip]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["convert", "--no-upload"], "name the vf-eval JSONL"),
        (["convert", "a.jsonl", "-i", "b.jsonl", "--no-upload"], "two inputs"),
        (["convert", "missing.jsonl", "--no-upload"], "missing.jsonl: no such file"),
    ],
)
def test_cli_usage_errors_exit_1(
    cli_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_cli_without_no_upload_needs_a_token(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(cli_env / "in.jsonl", [rollout(0)])
    assert main(["convert", "in.jsonl"]) == 1
    assert "HF_TOKEN" in capsys.readouterr().err
    assert not (cli_env / "outputs").exists()


def test_sample_command_writes_both_layouts(cli_env: Path) -> None:
    assert main(["sample", "-o", "s", "--rows", "6", "--reasoning-bytes", "300"]) == 0
    first = json.loads((cli_env / "s/kernelbook-env.jsonl").open().readline())
    assert "trajectory" in first and (cli_env / "s/kernelbook.parquet").is_file()
    assert main(["sample", "-o", "v", "--rows", "6", "--layout", "verifiers"]) == 0
    lines = (cli_env / "v/kernelbook-env.jsonl").read_text().splitlines()
    assert len(lines) == 6 and "trajectory" not in json.loads(lines[0])
    assert main(["sample", "--rows", "3", "--output-dir", "root"]) == 0
    assert (cli_env / "root/sample/kernelbook-env.jsonl").is_file()


def test_cli_hub_dry_run_stages_the_evals_repo_without_splits(cli_env: Path) -> None:
    write_lines(cli_env / "in.jsonl", [rollout(i) for i in range(3)])
    argv = ["convert", "in.jsonl", "-o", "e.parquet", "--data-model", "m2", "--hub-dry-run", "hub"]
    assert main(argv) == 0
    staged = sorted((cli_env / "hub/kernelbook-m2-evals/data").iterdir())
    assert [p.name for p in staged] == ["train-00000-of-00001.parquet"]
    assert pq.read_table(staged[0]).column("example_id").to_pylist() == [0, 1, 2]
