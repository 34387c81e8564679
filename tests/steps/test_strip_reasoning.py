"""Step 5 strip-reasoning: the first non-greedy <answer> block, as Python's re finds it."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.config import Settings
from kbpipe.errors import InputError
from kbpipe.io.tables import sidecar
from kbpipe.steps.strip_reasoning import strip_reasoning

SEED_PATTERN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def contents(path: Path) -> list[str]:
    return [row["completion"][0]["content"] for row in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize(
    ("content", "answer"),
    [
        ("reasoning... <answer>x = 1</answer> trailing", "<answer>x = 1</answer>"),
        ("<answer>\nline 1\nline 2\n</answer>", "<answer>\nline 1\nline 2\n</answer>"),
        # Nested: the first opening tag up to the first closing tag, inner tag and all.
        ("<answer>a<answer>b</answer>c</answer>", "<answer>a<answer>b</answer>"),
        ("<answer>one</answer> then <answer>two</answer>", "<answer>one</answer>"),
        ("</answer> stray <answer>ok</answer>", "<answer>ok</answer>"),
        ("<answer></answer>", "<answer></answer>"),
        ("Ünïcödé 思考 <answer>核 ü 🚀</answer>", "<answer>核 ü 🚀</answer>"),
        ("<ANSWER>no</ANSWER><answer>yes</answer>", "<answer>yes</answer>"),
    ],
)
@pytest.mark.parametrize("answer_format", ["answer-tags", "auto"])
def test_answer_is_the_first_non_greedy_block(
    tmp_path: Path,
    settings: Settings,
    evals_row,
    to_parquet,
    content: str,
    answer: str,
    answer_format: str,
) -> None:
    assert f"<answer>{SEED_PATTERN.search(content).group(1)}</answer>" == answer
    out = tmp_path / "no_reasoning.parquet"
    src = to_parquet([evals_row(0, content=content)], tmp_path / "f.parquet")
    result = strip_reasoning(src, out, settings, answer_format=answer_format)
    assert contents(out) == [answer]
    assert result.metrics["answer_format"]["answer-tags"] == 1


def test_completion_becomes_one_message_and_other_columns_stay(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [
        evals_row(i, content=f"think <answer>k{i}</answer>", split=split, difficulty="medium")
        for i, split in enumerate(["train", "validation", "train"])
    ]
    out = tmp_path / "no_reasoning.parquet"

    result = strip_reasoning(to_parquet(rows, tmp_path / "f.parquet"), out, settings)

    table = pq.read_table(out)
    assert table.column_names == list(rows[0])
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    assert table.schema.field("completion").type == pa.list_(message)
    expected = [
        {**row, "completion": [{"role": "assistant", "content": f"<answer>k{i}</answer>"}]}
        for i, row in enumerate(rows)
    ]
    assert table.to_pylist() == expected
    assert (result.rows_in, result.rows_out, result.dropped) == (3, 3, {})


def test_rows_without_answer_fail_listing_the_first_20_ids(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    rows = [evals_row(i, content="no tags" if i >= 5 else "<answer>ok</answer>") for i in range(30)]
    rows[1]["completion"] = []
    rows[2]["completion"] = [{"role": "assistant", "content": "", "reasoning": "r"}]
    src = to_parquet(rows, tmp_path / "f.parquet")
    out = tmp_path / "no_reasoning.parquet"

    with pytest.raises(InputError) as exc:
        strip_reasoning(src, out, settings, answer_format="answer-tags")

    listed = ", ".join(map(str, [1, 2, *range(5, 23)]))
    assert str(exc.value) == (
        f"{src}: 27 row(s) have no <answer>...</answer> in completion[0].content: "
        f"example_id {listed} and 7 more; pass --on-missing drop to move them to a rejects file"
    )
    assert list(tmp_path.iterdir()) == [src]
    with pytest.raises(InputError) as exc:
        strip_reasoning(src, out, settings)
    assert str(exc.value).startswith(
        f"{src}: 27 row(s) have no solution (auto: answer-tags, begin-python, fenced) in any "
        f"assistant message: example_id {listed} and 7 more"
    )


@pytest.mark.parametrize(
    ("answer_format", "reason"),
    [
        ("answer-tags", "no <answer>...</answer> in completion[0].content"),
        ("auto", "no solution in auto format in any assistant message"),
    ],
)
def test_on_missing_drop_moves_rows_to_rejects(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, answer_format: str, reason: str
) -> None:
    rows = [evals_row(0), evals_row(1, content="<answer>unclosed"), evals_row(2)]
    rows[1]["completion"] = None
    rows.append(evals_row(3, content="<answer>unclosed, and no other format"))
    out = tmp_path / "no_reasoning.parquet"

    result = strip_reasoning(
        to_parquet(rows, tmp_path / "f.parquet"),
        out,
        settings,
        on_missing="drop",
        answer_format=answer_format,
    )

    assert [r["example_id"] for r in pq.read_table(out).to_pylist()] == [0, 2]
    assert result.dropped == {"missing_answer": 2}
    rejects = [json.loads(x) for x in sidecar(out, "rejects").read_text().splitlines()]
    assert [r["example_id"] for r in rejects] == [1, 3]
    assert {r["reason"] for r in rejects} == {reason}
    assert rejects[1]["completion"] == rows[3]["completion"]  # reasoning and all


@pytest.mark.parametrize("answer_format", ["answer-tags", "auto"])
@pytest.mark.parametrize("limit", [None, 5])
def test_parquet_shards_and_jsonl_give_the_same_rows_in_order(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, limit, answer_format
) -> None:
    # Parquet is read leaf by leaf (no reasoning), JSONL whole: same rows out.
    rows = [
        evals_row(i, content="no tags" if i % 3 == 1 else f"思 <answer>k{i}</answer>")
        for i in range(8)
    ]
    shards = [to_parquet(rows[:4], tmp_path / "b.parquet"), tmp_path / "a.parquet"]
    pq.write_table(
        pa.Table.from_pylist(rows[4:], pq.read_schema(shards[0])), shards[1], row_group_size=2
    )
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    outs = {}
    for name, inputs in (("parquet", shards), ("jsonl", [jsonl])):
        out = tmp_path / name / "no_reasoning.parquet"
        result = strip_reasoning(
            inputs, out, settings, on_missing="drop", limit=limit, answer_format=answer_format
        )
        rejects = sidecar(out, "rejects").read_text().splitlines()
        outs[name] = (pq.read_table(out).to_pylist(), [json.loads(r) for r in rejects], result)

    kept, rejects, result = outs["parquet"]
    n = limit or len(rows)
    assert [r["example_id"] for r in kept] == [i for i in range(n) if i % 3 != 1]
    assert [r["completion"][0]["content"] for r in kept][:2] == [
        "<answer>k0</answer>",
        "<answer>k2</answer>",
    ]
    assert [r["example_id"] for r in rejects] == [i for i in range(n) if i % 3 == 1]
    assert rejects[0]["completion"] == rows[1]["completion"]  # reasoning and all
    assert (result.rows_in, result.rows_out) == (n, len(kept))
    assert outs["jsonl"][:2] == (kept, rejects)


@pytest.mark.parametrize("row_group", [0, 3])
def test_damaged_parquet_page_is_named_and_leaves_no_output(
    tmp_path: Path, settings: Settings, evals_row, to_parquet, row_group: int
) -> None:
    # The lean read goes through pyarrow; its errors must read like DuckDB's.
    src = tmp_path / "f.parquet"
    rows = [evals_row(i) for i in range(40)]
    pq.write_table(
        pa.Table.from_pylist(rows, pq.read_schema(to_parquet(rows[:1], src))),
        src,
        row_group_size=10,
        compression="none",
    )
    group = pq.ParquetFile(src).metadata.row_group(row_group)
    start = min(group.column(i).data_page_offset for i in range(group.num_columns))
    data = bytearray(src.read_bytes())
    data[start : start + 200] = b"\xff" * 200
    src.write_bytes(bytes(data))
    out = tmp_path / "out" / "no_reasoning.parquet"

    with pytest.raises(InputError, match=re.escape(str(src))):
        strip_reasoning(src, out, settings)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_wrong_completion_type_is_named(tmp_path: Path, settings: Settings) -> None:
    src = tmp_path / "f.parquet"
    pq.write_table(pa.table({"example_id": [0], "completion": ["<answer>x</answer>"]}), src)
    with pytest.raises(
        InputError,
        match=f"{src}: column 'completion' has type VARCHAR; expected a list of messages",
    ):
        strip_reasoning(src, tmp_path / "out.parquet", settings)


# -- the other answer formats ---------------------------------------------------

BEGIN = "I will write it.\nBEGIN_PYTHON\nimport triton\nx = 1\nEND_PYTHON\n"
FENCED = "Done:\n```python\nfirst = 1\n```\nbetter:\n```python\nimport triton\ny = 2\n```\n"


@pytest.mark.parametrize(
    ("content", "answer_format", "answer"),
    [
        (BEGIN, "auto", "<answer>\nimport triton\nx = 1\n</answer>"),
        (BEGIN, "begin-python", "<answer>\nimport triton\nx = 1\n</answer>"),
        (FENCED, "auto", "<answer>\nimport triton\ny = 2\n</answer>"),  # the last block
        (FENCED, "fenced", "<answer>\nimport triton\ny = 2\n</answer>"),
        # Tags win in auto, and keep the seed's text byte for byte.
        (f"<answer>t</answer>\n{FENCED}", "auto", "<answer>t</answer>"),
        # An unclosed tag is no answer; auto goes on to the next format.
        (f"<answer>unclosed\n{BEGIN}", "auto", "<answer>\nimport triton\nx = 1\n</answer>"),
    ],
)
def test_other_formats_are_written_inside_answer_tags(
    tmp_path: Path,
    settings: Settings,
    evals_row,
    to_parquet,
    content: str,
    answer_format: str,
    answer: str,
) -> None:
    out = tmp_path / "no_reasoning.parquet"
    src = to_parquet([evals_row(0, content=content)], tmp_path / "f.parquet")
    strip_reasoning(src, out, settings, answer_format=answer_format)
    assert contents(out) == [answer]


def test_multi_turn_answer_comes_from_the_last_assistant_message_holding_one(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    row = evals_row(0, content="try 1 <answer>old</answer>")
    row["completion"] += [
        {"role": "user", "content": "Test failed", "reasoning": None},
        {"role": "assistant", "content": BEGIN, "reasoning": "again"},
        {"role": "user", "content": "Compilation succeeded", "reasoning": None},
    ]
    src = to_parquet([row], tmp_path / "f.parquet")
    out = tmp_path / "no_reasoning.parquet"
    strip_reasoning(src, out, settings)
    [got] = pq.read_table(out).to_pylist()
    assert got["completion"] == [
        {"role": "assistant", "content": "<answer>\nimport triton\nx = 1\n</answer>"}
    ]
    # The seed's rule reads completion[0] only.
    strip_reasoning(src, out, settings, answer_format="answer-tags")
    assert contents(out) == ["<answer>old</answer>"]


def test_merged_base_and_synthetic_runs_strip_to_one_shape(
    tmp_path: Path, settings: Settings, evals_row, to_parquet
) -> None:
    base = [evals_row(i, content=f"think <answer>\nk{i}\n</answer>") for i in range(3)]
    synthetic = [evals_row(10 + i, content=BEGIN.replace("x = 1", f"s{i}")) for i in range(2)]
    rows = [
        {**r, "data_source": src}
        for src, part in (("base", base), ("synthetic", synthetic))
        for r in part
    ]
    out = tmp_path / "merged_no_reasoning.parquet"
    result = strip_reasoning(to_parquet(rows, tmp_path / "merged.parquet"), out, settings)
    assert contents(out) == [
        *(f"<answer>\nk{i}\n</answer>" for i in range(3)),
        *(f"<answer>\nimport triton\ns{i}\n</answer>" for i in range(2)),
    ]
    assert result.metrics["answer_format"] == {"answer-tags": 3, "begin-python": 2, "fenced": 0}
    with pytest.raises(InputError, match="2 row\\(s\\) have no <answer>"):
        strip_reasoning(tmp_path / "merged.parquet", out, settings, answer_format="answer-tags")


def test_cli_defaults_to_the_tables_of_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evals_row, to_parquet, run_step
) -> None:
    run_dir = tmp_path / "outputs" / "m"
    run_dir.mkdir(parents=True)
    to_parquet([evals_row(0), evals_row(1)], run_dir / "unique_dataset.parquet")
    assert run_step("strip-reasoning", "unique", outputs=tmp_path / "outputs") == 0

    assert "2 of 2 rows" in capsys.readouterr().out
    assert contents(run_dir / "unique_no_reasoning.parquet") == [
        "<answer>\nkernel 0\n</answer>",
        "<answer>\nkernel 1\n</answer>",
    ]


# -- property: DuckDB's RE2 match equals Python's re on random text -------------

PIECES = ["<answer>", "</answer>", "<answer", "answer>", "a", "\n", "é", "思", " ", "<", "/"]


@hsettings(max_examples=15, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(PIECES), max_size=12).map("".join), min_size=1, max_size=25
    )
)
@pytest.mark.parametrize("answer_format", ["answer-tags", "auto"])
def test_matches_python_re_on_random_text(
    evals_row, to_parquet, texts: list[str], answer_format: str
) -> None:
    rows = [evals_row(i, content=t) for i, t in enumerate(texts)]
    expected = {
        i: f"<answer>{m.group(1)}</answer>"
        for i, t in enumerate(texts)
        if (m := SEED_PATTERN.search(t))
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "out.parquet"
        result = strip_reasoning(
            to_parquet(rows, folder / "in.parquet"),
            out,
            Settings(output_dir=folder),
            on_missing="drop",
            answer_format=answer_format,
        )
        got = {
            r["example_id"]: r["completion"][0]["content"] for r in pq.read_table(out).to_pylist()
        }
        assert got == expected
        assert result.dropped.get("missing_answer", 0) == len(texts) - len(expected)
