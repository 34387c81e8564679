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
