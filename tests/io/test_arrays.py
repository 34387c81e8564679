"""Arrays built from buffers are the arrays `pa.array` would build."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.io.arrays import NotExact, int64_array, string_array, typed_array

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
