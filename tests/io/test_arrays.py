"""Arrays built from buffers are the arrays `pa.array` would build."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbpipe.io.arrays import int64_array, string_array

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
