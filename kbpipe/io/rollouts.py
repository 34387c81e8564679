"""The vf-eval rollout format, and its reshaping into evals rows and Arrow batches.

One line of `vf-eval` output is one rollout. `normalize` checks a parsed line
and reshapes it into an evals row with the seed's semantics: the reasoning
of `trajectory[-1].response.choices[0].message.reasoning_content` is copied
as `reasoning` into every completion message, `trajectory` is dropped and
`oai_tools: null` added. The newer verifiers layout, where the reasoning
already sits on each completion message (`reasoning_content` or `reasoning`)
and `trajectory` / `task` may be absent, is accepted too. Which layout a file
is in, and the rest of each layout's reading (0.3.x nested timings, 0.4.x
episodes, rows without reasoning), is `kbpipe.io.vfeval`'s.

Required, else the line is bad: `example_id` (an integer), `prompt` and
`completion` (lists of messages, each with a string `role` and a string or
null `content`), `reward` (a finite number) and `info` (an object with a
string `module_name`, which dedupe and the module split key on), nesting at
most `MAX_NESTING` levels deep (checked before pyarrow sees the row). Null when
absent: `task`, `answer`, the three timings (also read from a `timing`
object), `speedup_reward` and `num_turns` (also read from a `metrics`
object), and a message's `reasoning`. Other top-level keys are dropped.

`read_chunks` streams a file as chunks of lines and `Chunk` parses one;
kbpipe.io.rollout_batches turns its rows into one Arrow record batch. Open-ended objects
(`info`, and extra keys on messages) keep every key seen: a chunk that brings
a new key, or an int where floats were, widens the schema it is given.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa

from kbpipe.io.tables import MAX_NESTING, nesting_depth

_STRING = pa.string()
_FLOAT = pa.float64()
MESSAGE = pa.struct([("role", _STRING), ("content", _STRING)])
COMPLETION_MESSAGE = pa.struct([("role", _STRING), ("content", _STRING), ("reasoning", _STRING)])
# Known info keys come first so the shape is stable from run to run; any other
# key found in the file is appended after them (see module docstring).
INFO = pa.struct([("module_name", _STRING), ("python_code", _STRING), ("triton_code", _STRING)])
SCHEMA = pa.schema(
    [
        ("example_id", pa.int64()),
        ("prompt", pa.list_(MESSAGE)),
        ("completion", pa.list_(COMPLETION_MESSAGE)),
        ("task", _STRING),
        ("reward", _FLOAT),
        ("generation_ms", _FLOAT),
        ("scoring_ms", _FLOAT),
        ("total_ms", _FLOAT),
        ("info", INFO),
        ("answer", _STRING),
        ("speedup_reward", _FLOAT),
        ("num_turns", _FLOAT),
        ("oai_tools", pa.null()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
_TIMINGS = ("generation_ms", "scoring_ms", "total_ms")
_METRICS = ("speedup_reward", "num_turns")
# Top-level keys we read; anything else (trajectory, error, is_truncated, ...) is dropped.
_READ_KEYS = frozenset(COLUMNS) | {"trajectory", "timing", "metrics"}

# A chunk is this many lines or this many bytes, whichever comes first:
# ~30 MB row groups for typical rows, and a hard cap for pathological ones.
BATCH_BYTES = 32 << 20
# The file is read in blocks this large and cut into lines as views on them, so a
# line's bytes are copied once (into the block), not again into a line object.
READ_BYTES = 8 << 20
_EXAMPLE_ID_RE = re.compile(rb'"example_id"\s*:\s*(-?\d+)')


class BadRow(Exception):
    """One input line that cannot become an evals row; `kind` is its drop reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# -- one row ---------------------------------------------------------------


def normalize(row: Any) -> dict[str, Any]:
    """Check one parsed line and reshape it into an evals row (keys in column order)."""
    if not isinstance(row, dict):
        raise BadRow("not an object", f"line is a JSON {type(row).__name__}, not an object")
    for name in ("example_id", "prompt", "completion", "reward", "info"):
        if row.get(name) is None:
            raise BadRow("missing field", f"missing required field {name!r}")
    example_id = row["example_id"]
    if type(example_id) is not int:
        raise BadRow("wrong type", f"example_id must be an integer, got {example_id!r:.40}")
    reward = _number(row["reward"], "reward")
    if not math.isfinite(reward):
        raise BadRow("bad value", f"reward is {reward}; a reward must be a finite number")
    info = row["info"]
    if not isinstance(info, dict):
        raise BadRow("wrong type", f"info must be an object, got {type(info).__name__}")
    if not isinstance(info.get("module_name"), str):
        raise BadRow("missing field", "info.module_name is missing or not a string")
    timing = _dict_or_empty(row.get("timing"))
    metrics = _dict_or_empty(row.get("metrics"))
    reasoning = _trajectory_reasoning(row.get("trajectory"))
    out = {
        "example_id": example_id,
        "prompt": _messages(row["prompt"], "prompt"),
        "completion": _messages(row["completion"], "completion", reasoning=reasoning),
        "task": _text(row.get("task"), "task"),
        "reward": reward,
    }
    for name in _TIMINGS:
        out[name] = _optional_number(row.get(name, timing.get(name)), name)
    out["info"] = info
    out["answer"] = _text(row.get("answer"), "answer")
    for name in _METRICS:
        out[name] = _optional_number(row.get(name, metrics.get(name)), name)
    out["oai_tools"] = None
    return out


def _trajectory_reasoning(trajectory: Any) -> str | None:
    """Reasoning of the last trajectory step, or None when there is no trajectory."""
    if not trajectory:
        return None
    try:
        response = trajectory[-1]["response"]
        # Older vf-eval saved the raw OpenAI response; newer verifiers its own
        # Response model, whose message hangs directly off the response.
        message = (
            response["choices"][0]["message"] if "choices" in response else response["message"]
        )
    except (KeyError, IndexError, TypeError):
        raise BadRow(
            "missing field", "trajectory[-1].response.choices[0].message is missing"
        ) from None
    if not isinstance(message, dict):
        raise BadRow("wrong type", "trajectory[-1].response.choices[0].message is not an object")
    value = message.get("reasoning_content")
    if value is None:
        value = message.get("reasoning")
    return _text(value, "trajectory reasoning_content")


def _messages(value: Any, name: str, *, reasoning: str | None = None) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadRow("wrong type", f"{name} must be a list of messages, got {type(value).__name__}")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise BadRow("wrong type", f"{name}[{i}] is not an object")
        if not isinstance(message.get("role"), str):
            raise BadRow("missing field", f"{name}[{i}].role is missing or not a string")
        _text(message.get("content"), f"{name}[{i}].content")
        if name == "completion":
            message = dict(message)
            own = message.pop("reasoning_content", None)
            if own is None:
                own = message.get("reasoning")
            message["reasoning"] = _text(
                reasoning if reasoning is not None else own, f"{name}[{i}].reasoning"
            )
        out.append(message)
    return out


def _number(value: Any, name: str) -> float:
    if type(value) not in (int, float):
        raise BadRow("wrong type", f"{name} must be a number, got {value!r:.40}")
    return float(value)


def _optional_number(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRow("wrong type", f"{name} must be a string, got {type(value).__name__}")
    return value


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- chunks of lines -------------------------------------------------------


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def read_chunks(
    path: Path,
    *,
    batch_rows: int,
    batch_bytes: int = BATCH_BYTES,
    limit: int | None = None,
    hasher: Hasher | None = None,
) -> Iterator[list[tuple[int, memoryview]]]:
    """Yield lists of (line number, raw line); blank lines are skipped, `limit` caps rows.

    `hasher` is fed every byte of the file as it is read (the rest of it too when
    `limit` stops early), so the input is fingerprinted without a second read.
    """
    chunk: list[tuple[int, memoryview]] = []
    size = rows = 0
    with open(path, "rb", buffering=0) as fh:
        lines = _lines(_blocks(fh, hasher))
        try:
            for lineno, raw in enumerate(lines, 1):
                if limit is not None and rows >= limit:
                    break
                if _is_blank(raw):
                    continue
                chunk.append((lineno, raw))
                size += len(raw)
                rows += 1
                if len(chunk) >= batch_rows or size >= batch_bytes:
                    yield chunk
                    chunk, size = [], 0
        finally:
            # Closing the generators hashes the block read ahead, in order.
            lines.close()
        if hasher is not None:
            while block := fh.read(READ_BYTES):
                hasher.update(block)
    if chunk:
        yield chunk


def _blocks(fh: Any, hasher: Hasher | None) -> Iterator[bytes]:
    """The file's blocks; the next one is read and hashed on a thread (both release
    the GIL) while the caller parses this one. One thread: blocks are hashed in order,
    and a block read ahead when the caller stops is hashed before the pool closes."""

    def read() -> bytes:
        block = fh.read(READ_BYTES)
        if hasher is not None and block:
            hasher.update(block)
        return block

    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(read)
        while block := ahead.result():
            ahead = pool.submit(read)
            yield block


def _lines(blocks: Iterator[bytes]) -> Iterator[memoryview]:
    """Lines as views on the blocks; only a line that straddles two blocks is copied."""
    tail: list[bytes] = []
    try:
        for block in blocks:
            view = memoryview(block)
            start = 0
            if tail:
                end = block.find(b"\n")
                if end < 0:
                    tail.append(block)
                    continue
                tail.append(block[: end + 1])
                yield memoryview(b"".join(tail))
                tail, start = [], end + 1
            while (end := block.find(b"\n", start)) >= 0:
                yield view[start : end + 1]
                start = end + 1
            if start < len(block):
                tail.append(block[start:])
        if tail:
            yield memoryview(b"".join(tail))
    finally:
        if hasattr(blocks, "close"):
            blocks.close()


def _is_blank(raw: memoryview) -> bool:
    # A line starts with `{` nearly always; only then is a whole-line scan skipped.
    return raw[0] in b" \t\r\n\x0b\x0c" and bytes(raw).isspace()


def loads(raw: bytes | memoryview) -> Any:
    """One JSON line, parsed to the values the standard library's json gives.

    orjson is ~3x faster, but it refuses NaN/Infinity (json accepts them, and
    the reward check then names the bad value) and reads an integer beyond
    64 bits as a float (json keeps it an int, which the Arrow conversion then
    rejects). Lines it refuses, and lines with such a float in the part that
    is kept, are parsed again with json, whose errors the rejects have always
    carried; for all other lines the two give the same values.
    """
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(bytes(raw))
    if type(parsed) is dict and any(
        _maybe_big_int(v) for k, v in parsed.items() if k in _KEPT_KEYS
    ):
        return json.loads(bytes(raw))
    return parsed


# Where a value ends up in the evals row; the trajectory is read for one string only.
_KEPT_KEYS = _READ_KEYS - {"trajectory"}
# orjson reads integers beyond u64 (above) or i64 (below) as floats.
_INT_EDGE = float(2**63)


def _maybe_big_int(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return abs(value) >= _INT_EDGE
    if kind is dict:
        return any(_maybe_big_int(v) for v in value.values())
    if kind is list:
        return any(_maybe_big_int(v) for v in value)
    return False


def _too_deep() -> BadRow:
    return BadRow(
        "too deep",
        f"nests deeper than {MAX_NESTING} levels of objects and lists; kbpipe reads at most "
        f"{MAX_NESTING}",
    )


class Chunk:
    """The good rows of one chunk of lines, with their line numbers and example_ids."""

    def __init__(
        self,
        lines: list[tuple[int, memoryview]],
        read: Callable[[Any], dict[str, Any]] = normalize,
        read_keys: frozenset[str] = _READ_KEYS,
    ) -> None:
        # `read` is the file's layout reader (kbpipe.io.vfeval.RowReader); other
        # top-level keys than `read_keys` are counted as dropped.
        self.lines = lines
        self.rows: list[dict[str, Any]] = []
        self.linenos: list[int] = []
        self.with_trajectory: list[bool] = []
        self.bad: list[tuple[int, Any, BadRow, memoryview]] = []
        self.dropped_keys: Counter[str] = Counter()
        self._extra: dict[int, set[str]] = {}
        for lineno, raw in lines:
            try:
                parsed = loads(raw)
            except RecursionError:
                self.bad.append((lineno, _fish_example_id(raw), _too_deep(), raw))
                continue
            except ValueError as exc:  # JSONDecodeError and bad UTF-8 alike
                self.bad.append(
                    (
                        lineno,
                        _fish_example_id(raw),
                        BadRow("not JSON", f"not valid JSON ({exc})"),
                        raw,
                    )
                )
                continue
            try:
                # How deep the row nests is checked by `to_batch`, before pyarrow
                # sees the row, and only where the inferring path is taken.
                row = read(parsed)
            except RecursionError:
                self.bad.append((lineno, _example_id(parsed), _too_deep(), raw))
                continue
            except BadRow as exc:
                example_id = _example_id(parsed)
                self.bad.append((lineno, example_id, exc, raw))
                continue
            self.rows.append(row)
            self.linenos.append(lineno)
            self.with_trajectory.append(bool(parsed.get("trajectory")))
            extra = parsed.keys() - read_keys
            if extra:
                self.dropped_keys.update(extra)
                self._extra[lineno] = extra

    def reject_too_deep(self) -> None:
        """Move the rows nesting deeper than MAX_NESTING to the bad rows (pyarrow and
        DuckDB both fail hard on deep nesting); their dropped keys are not counted."""
        for index in reversed(range(len(self.rows))):
            if nesting_depth(self.rows[index]) > MAX_NESTING:
                for key in self._extra.get(self.linenos[index], ()):
                    self.dropped_keys[key] -= 1
                    if not self.dropped_keys[key]:
                        del self.dropped_keys[key]
                self.reject(index, _too_deep())

    def reject(self, index: int, error: BadRow) -> None:
        row = self.rows.pop(index)
        self.with_trajectory.pop(index)
        lineno = self.linenos.pop(index)
        raw = next(raw for n, raw in self.lines if n == lineno)
        self.bad.append((lineno, row["example_id"], error, raw))


def _example_id(parsed: Any) -> Any:
    """A bad line's example_id: the key, or a verifiers 0.4 episode's task index."""
    if not isinstance(parsed, dict):
        return None
    if "example_id" in parsed:
        return parsed["example_id"]
    task = parsed.get("task")
    data = task.get("data") if isinstance(task, dict) else None
    return data.get("idx") if isinstance(data, dict) else None


def _fish_example_id(raw: bytes | memoryview) -> int | None:
    """example_id of a line that is not valid JSON (e.g. truncated by a crash), if visible."""
    match = _EXAMPLE_ID_RE.search(raw[:4096])
    return int(match.group(1)) if match else None
