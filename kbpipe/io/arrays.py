"""Arrow arrays from Python lists, without the start-up cost of `pa.array`.

`pa.array` on a Python list imports pandas whenever pandas is installed (to
check for pandas types), which is ~0.5 s of a small step's start-up. The
columns kbpipe builds itself from Python values are plain int64 and string
lists, and their buffers are easy to lay out with numpy; anything else goes
through `pa.array` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa


def int64_array(values: Sequence[Any], *, infer: bool = False) -> pa.Array:
    """An int64 array of ints. With `infer`, values that are not all ints (or none at
    all) get the type `pa.array` infers for them, e.g. null for no values."""
    if infer and not (values and all(type(v) is int for v in values)):
        return pa.array(values)
    data = np.fromiter(values, dtype=np.int64, count=len(values))
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(data)])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """A string array; None becomes null."""
    n = len(values)
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    n_null = n - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if n_null else None
    return pa.Array.from_buffers(
        pa.string(), n, [bitmap, pa.py_buffer(offsets), data], null_count=n_null
    )


class NotExact(Exception):
    """`typed_array` cannot build these values as `pa.array` would: take the slow path."""


def typed_array(values: list[Any], typ: pa.DataType) -> pa.Array:
    """The array `pa.array(values)` would give once cast to `typ`, built column by column.

    Only for values that already are of `typ`: str (string), float (float64), int
    (int64), dicts whose keys are fields of the struct (a missing key is null),
    lists, and None for null. Anything else (a key the struct lacks, an int where
    a float is expected, a bool, a string that is not valid UTF-8) raises
    NotExact, so no value is ever converted, truncated or dropped silently.
    """
    n = len(values)
    if pa.types.is_string(typ):
        return _strings(values)
    if pa.types.is_null(typ):
        if any(v is not None for v in values):
            raise NotExact("a value where only nulls were")
        return pa.nulls(n)
    if pa.types.is_float64(typ) or pa.types.is_int64(typ):
        kind, dtype = (float, np.float64) if pa.types.is_float64(typ) else (int, np.int64)
        valid = [v is not None for v in values]
        if not all(type(v) is kind for v, ok in zip(values, valid, strict=True) if ok):
            raise NotExact(f"a value that is not {kind.__name__}")
        zero = kind()
        try:
            data = np.fromiter((zero if v is None else v for v in values), dtype, count=n)
        except OverflowError as exc:
            raise NotExact(str(exc)) from None
        return _with_validity(typ, n, valid, pa.py_buffer(data))
    if pa.types.is_struct(typ):
        names = {field.name for field in typ}
        for v in values:
            if type(v) is not dict or not names.issuperset(v):
                raise NotExact("not an object, or a key the struct lacks")
        children = [typed_array([v.get(f.name) for v in values], f.type) for f in typ]
        return pa.StructArray.from_arrays(children, fields=list(typ))
    if pa.types.is_list(typ):
        if not all(type(v) is list for v in values):
            raise NotExact("not a list")
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=n), out=offsets[1:])
        flat = [item for v in values for item in v]
        offset_array = pa.Array.from_buffers(pa.int32(), n + 1, [None, pa.py_buffer(offsets)])
        return pa.ListArray.from_arrays(offset_array, typed_array(flat, typ.value_type), type=typ)
    raise NotExact(f"type {typ}")


def _strings(values: list[Any]) -> pa.Array:
    n = len(values)
    try:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    except (AttributeError, UnicodeEncodeError) as exc:  # not a str, or a lone surrogate
        raise NotExact(str(exc)) from None
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise NotExact("more than 2 GiB of text in one column")
    data = pa.py_buffer(b"".join(encoded))
    valid = [v is not None for v in values]
    return _with_validity(pa.string(), n, valid, pa.py_buffer(offsets.astype(np.int32)), data)


def _with_validity(typ: pa.DataType, n: int, valid: list[bool], *buffers: Any) -> pa.Array:
    n_null = n - sum(valid)
    bitmap = None
    if n_null:
        bitmap = pa.py_buffer(np.packbits(np.array(valid, dtype=bool), bitorder="little"))
    return pa.Array.from_buffers(typ, n, [bitmap, *buffers], null_count=n_null)
