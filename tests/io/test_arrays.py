"""Arrays built from buffers are the arrays `pa.array` would build."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.io.arrays import NotExact, int64_array, string_array, typed_array
from kbpipe.io.rollout_batches import _typed_batch, _widen
from kbpipe.io.rollouts import SCHEMA, Chunk, read_chunks
from kbpipe.io.vfeval import RowReader, detect_file_layout

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@hsettings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text())))
def test_string_array_matches_pa_array(values: list[str | None]) -> None:
    assert string_array(values).equals(pa.array(values, pa.string()))


@given(st.lists(st.one_of(st.none(), INT64)))
def test_int64_array_infers_like_pa_array(values: list[int | None]) -> None:
    got, expected = int64_array(values, infer=True), pa.array(values)
    assert got.type == expected.type and got.equals(expected)


@given(st.lists(INT64))
def test_int64_array_is_int64(values: list[int]) -> None:
    assert int64_array(values).equals(pa.array(values, pa.int64()))


# Values of the shapes convert's rows have, and a few it must leave to pa.array.
SCALAR = st.one_of(
    st.none(), st.text(), st.floats(allow_nan=False), INT64, st.booleans(), st.just(2**70)
)
MESSAGE = st.dictionaries(st.sampled_from(["role", "content", "reasoning", "name"]), SCALAR)
ROW = st.fixed_dictionaries(
    {
        "example_id": st.one_of(INT64, st.just(2**64)),
        "prompt": st.lists(MESSAGE, max_size=3),
        "reward": st.one_of(st.floats(allow_nan=False), st.integers(0, 3)),
        "info": st.dictionaries(st.sampled_from(["module_name", "uuid", "n"]), SCALAR),
    }
)
TARGET = pa.struct(
    [
        ("example_id", pa.int64()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("reward", pa.float64()),
        ("info", pa.struct([("module_name", pa.string()), ("uuid", pa.null())])),
    ]
)


@hsettings(deadline=None, max_examples=300)
@given(st.lists(ROW, max_size=5))
def test_typed_array_is_pa_array_cast_or_declines(rows: list[dict]) -> None:
    """typed_array gives what pa.array then a cast gives, or NotExact; never another value."""
    try:
        got = typed_array(rows, TARGET)
    except NotExact:
        return
    expected = pa.array(rows, TARGET) if not rows else pa.array(rows).cast(TARGET)
    assert got.type == TARGET and got.to_pylist() == expected.to_pylist()
    assert got.validate(full=True) is None


def _inferred_batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    """to_batch's inferring path, for comparison."""
    array = pa.array(rows)
    target = pa.struct(_widen(schema, array.type))
    return pa.RecordBatch.from_struct_array(array.cast(target))


def _evals_row(i: int, info: dict, completion_extra: dict | None = None) -> dict:
    return {
        "example_id": i,
        "prompt": [{"role": "user", "content": f"p{i}"}],
        "completion": [
            {"role": "assistant", "content": None, **(completion_extra or {}), "reasoning": "r"}
        ],
        "task": None,
        "reward": 0.5,
        "generation_ms": None,
        "scoring_ms": 1.0,
        "total_ms": None,
        "info": info,
        "answer": None,
        "speedup_reward": None,
        "num_turns": 1.0,
        "oai_tools": None,
    }


@pytest.mark.parametrize(
    "rows",
    [
        # info keys in different orders and sets, null-only keys, extra message keys
        [
            _evals_row(0, {"module_name": "A", "x": None, "b": "1"}),
            _evals_row(1, {"b": "2", "module_name": "B", "y": "3"}, {"tool_calls": None}),
            _evals_row(2, {"module_name": "C", "z": None}, {"thinking_blocks": None}),
        ],
        [_evals_row(5, {"module_name": "A", "python_code": None})],
    ],
)
def test_typed_batch_is_the_inferred_batch(rows: list[dict]) -> None:
    got = _typed_batch(rows, SCHEMA)
    expected = _inferred_batch(rows, SCHEMA)
    assert got is not None and got.schema == expected.schema and got.equals(expected)


@pytest.mark.parametrize("name", ["v0.3.1", "v0.3.1-trajectory", "v0.4.0"])
def test_typed_batch_takes_every_vfeval_layout_as_inferred(name: str) -> None:
    [path] = (Path(__file__).parent / "data" / "vfeval" / name).glob("*.jsonl")
    reader = RowReader(detect_file_layout(path), allow_missing_reasoning=True)
    [lines] = read_chunks(path, batch_rows=10_000)
    rows = Chunk(lines, reader, reader.read_keys).rows
    got = _typed_batch(rows, SCHEMA)
    expected = _inferred_batch(rows, SCHEMA)
    assert got is not None and got.schema == expected.schema and got.equals(expected)
