"""convert's line reader: orjson where it agrees with json, json where it would not."""

from __future__ import annotations

import json
from pathlib import Path

import xxhash
from hypothesis import given
from hypothesis import strategies as st

from kbpipe.io.rollouts import loads, read_chunks

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner)),
    max_leaves=12,
)
KEYS = st.sampled_from(["example_id", "reward", "info", "prompt", "trajectory", "extra"])


@given(st.dictionaries(KEYS, VALUES))
def test_loads_gives_what_json_gives(row: dict) -> None:
    line = json.dumps(row).encode()
    got = loads(memoryview(line))
    expected = json.loads(line)
    # Only the keys that reach the evals row must agree (the others are dropped).
    # repr: NaN != NaN, and 1 == 1.0 would hide an int read as a float.
    dropped = {"trajectory", "extra"}
    kept = {k: v for k, v in expected.items() if k not in dropped}
    assert repr({k: v for k, v in got.items() if k not in dropped}) == repr(kept)


def test_big_integers_and_nan_stay_as_json_reads_them() -> None:
    line = b'{"example_id": 1180591620717411303424, "reward": NaN, "info": {"n": -2e400}}'
    row = loads(line)
    assert row["example_id"] == 2**70 and type(row["example_id"]) is int
    assert repr(row["reward"]) == "nan" and row["info"]["n"] == float("-inf")


def test_read_chunks_cuts_lines_across_blocks_and_hashes_the_whole_file(
    tmp_path: Path, monkeypatch
) -> None:
    import kbpipe.io.rollouts as rollouts

    monkeypatch.setattr(rollouts, "READ_BYTES", 7)  # lines straddle every block
    body = b'{"a": 1}\n\n  \n{"b": [2, 3]}\r\n{"c": "last, no newline"}'
    path = tmp_path / "in.jsonl"
    path.write_bytes(body)
    hasher = xxhash.xxh3_128()

    chunks = list(read_chunks(path, batch_rows=2, hasher=hasher))

    lines = [(n, bytes(raw)) for chunk in chunks for n, raw in chunk]
    assert lines == [(1, b'{"a": 1}\n'), (4, b'{"b": [2, 3]}\r\n'), (5, body.rsplit(b"\n")[-1])]
    assert [len(c) for c in chunks] == [2, 1]
    assert hasher.hexdigest() == xxhash.xxh3_128(body).hexdigest()
    limited = xxhash.xxh3_128()
    assert len(list(read_chunks(path, batch_rows=9, limit=1, hasher=limited))[0]) == 1
    assert limited.hexdigest() == hasher.hexdigest()
