"""Every vf-eval output layout users have, each read into the evals row of `rollouts.normalize`.

`detect_layout` names a file's layout from its first JSON line; `RowReader`
turns each line of that file into an evals row, or raises `BadRow`:

- ``seed``: the layout the seed documents, one rollout per line, reasoning at
  ``trajectory[-1].response.choices[0].message.reasoning_content`` (vf-eval
  with ``-C trajectory`` before verifiers 0.3).
- ``results-0.3``: verifiers 0.3.x ``results.jsonl``. Reasoning on
  ``completion[-1].reasoning_content`` (and, with ``-C trajectory``, at
  ``trajectory[-1].response.message.reasoning_content``, no ``choices[0]``);
  timings nested in seconds (``timing.generation.duration``,
  ``timing.scoring.duration``, ``timing.total``), converted to ms here.
- ``messages``: reasoning already on each completion message and flat
  ``*_ms`` timings (kbpipe's own ``sample --layout verifiers``).
- ``traces-0.4``: verifiers 0.4.x ``traces.jsonl``, one episode per line. The
  row is built from ``traces[0]``: ``example_id`` = ``task.data.idx``; the
  messages along the final branch of ``traces[0].nodes`` split at the first
  message the model sampled (before it: ``prompt``, from it: ``completion``,
  each assistant message keeping its own ``reasoning_content``); ``reward`` =
  the rubric's total, the sum of ``score * weight`` over ``traces[0].rewards``
  (or ``--reward-field``); ``speedup_reward`` and ``num_turns`` by name from
  the rewards or metrics (``num_turns`` otherwise counts the model's messages);
  ``info`` and ``answer`` from ``task.data``; ``task`` = ``env.id``; timings
  from the stage timestamps in ``traces[0].timing``.

A row with no reasoning anywhere is a ``missing reasoning`` BadRow (the seed
stopped with a KeyError there) unless ``allow_missing_reasoning``. `notes`
counts what a reader derived or passed over, for the stats.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from kbpipe.io.rollouts import BadRow, normalize

LAYOUTS = ("seed", "results-0.3", "messages", "traces-0.4")
TRACES = "traces-0.4"
_ROW_KEYS = frozenset(
    {"example_id", "prompt", "completion", "task", "reward", "info", "answer", "oai_tools"}
    | {"generation_ms", "scoring_ms", "total_ms", "speedup_reward", "num_turns"}
    | {"trajectory", "timing", "metrics"}
)
# Keys of an episode line that the row is built from; the others are counted as dropped.
EPISODE_KEYS = frozenset({"task", "traces", "env"})
# 0.3.x nests durations in seconds: evals column -> path under `timing`.
_NESTED_TIMINGS = {
    "generation_ms": ("generation", "duration"),
    "scoring_ms": ("scoring", "duration"),
    "total_ms": ("total",),
}
_NAMED_SCORES = ("speedup_reward", "num_turns")


def detect_layout(row: Any) -> str:
    """The layout of one parsed line (see module docstring); a non-object gives ``seed``."""
    if not isinstance(row, dict):
        return "seed"
    if isinstance(row.get("traces"), list) and isinstance(row.get("task"), dict):
        return TRACES
    timing = row.get("timing")
    if isinstance(timing, dict) and isinstance(timing.get("generation"), dict):
        return "results-0.3"
    trajectory = row.get("trajectory")
    if trajectory and isinstance(trajectory, list) and isinstance(trajectory[-1], dict):
        response = trajectory[-1].get("response")
        if isinstance(response, dict) and "choices" not in response:
            return "results-0.3"
        return "seed"
    return "messages"


class RowReader:
    """Reads the lines of one file, of one layout, into evals rows."""

    def __init__(
        self,
        layout: str,
        *,
        reward_field: str | None = None,
        allow_missing_reasoning: bool = False,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown vf-eval layout {layout!r}; expected one of {LAYOUTS}")
        self.layout = layout
        self.reward_field = reward_field
        self.allow_missing_reasoning = allow_missing_reasoning
        self.read_keys = EPISODE_KEYS if layout == TRACES else _ROW_KEYS
        self.notes: Counter[str] = Counter()

    def __call__(self, row: Any) -> dict[str, Any]:
        is_episode = isinstance(row, dict) and "traces" in row
        if (self.layout == TRACES) != is_episode:
            raise BadRow(
                "wrong layout",
                f"this line is {'a' if is_episode else 'not a'} verifiers 0.4 episode, but the "
                f"file's first line is in the {self.layout} layout",
            )
        out = normalize(episode_row(row, self.reward_field, self.notes) if is_episode else row)
        if not is_episode:
            _nested_timings(row, out)
            if self.reward_field is not None:
                out["reward"] = _flat_score(row, self.reward_field)
        if all(m["reasoning"] is None for m in out["completion"]):
            if not self.allow_missing_reasoning:
                raise BadRow("missing reasoning", _no_reasoning_detail(row, self.layout))
            self.notes["rows_without_reasoning_kept"] += 1
        return out


def _no_reasoning_detail(row: dict[str, Any], layout: str) -> str:
    if row.get("trajectory"):
        where = "trajectory[-1] has no reasoning_content, and no completion message has any"
    elif layout == "seed":
        where = "the row has no trajectory, and no completion message has reasoning"
    else:
        where = "no completion message has reasoning_content or reasoning"
    return f"no reasoning: {where} (--allow-missing-reasoning keeps such rows, with null)"


def _nested_timings(row: dict[str, Any], out: dict[str, Any]) -> None:
    timing = row.get("timing")
    if not isinstance(timing, dict):
        return
    for name, path in _NESTED_TIMINGS.items():
        if out[name] is not None:
            continue
        value: Any = timing
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out[name] = _seconds(value, f"timing.{'.'.join(path)}") * 1000.0


def _seconds(value: Any, name: str) -> float:
    if type(value) not in (int, float):
        raise BadRow("wrong type", f"{name} must be a number of seconds, got {value!r:.40}")
    return float(value)


def _flat_score(row: dict[str, Any], name: str) -> Any:
    metrics = row.get("metrics") if isinstance(row.get("metrics"), dict) else {}
    value = row.get(name, metrics.get(name))
    if value is None:
        raise BadRow("missing field", f"--reward-field {name!r}: the row has no such score")
    return value


# -- verifiers 0.4 episodes ------------------------------------------------------


def episode_row(episode: dict[str, Any], reward_field: str | None, notes: Counter[str]) -> dict:
    """A 0.4 episode as a row of the ``messages`` layout, for `normalize` to check."""
    data = _dig(episode, "task", "data")
    traces = episode["traces"]
    if not traces or not isinstance(traces[0], dict):
        raise BadRow("missing field", "the episode has no traces")
    if len(traces) > 1:
        notes["episodes_with_extra_traces_ignored"] += 1
    trace = traces[0]
    if episode.get("ok") is False:
        notes["episodes_not_ok"] += 1
    messages, first_sampled = _branch(trace.get("nodes"))
    rewards = trace.get("rewards") if isinstance(trace.get("rewards"), dict) else {}
    metrics = trace.get("metrics") if isinstance(trace.get("metrics"), dict) else {}
    row = {
        "example_id": data.get("idx"),
        "prompt": messages[:first_sampled],
        "completion": messages[first_sampled:],
        "task": (episode.get("env") or {}).get("id"),
        "reward": _episode_reward(rewards, metrics, reward_field, episode),
        "info": data.get("info"),
        "answer": data.get("answer"),
        **_stage_timings(trace.get("timing")),
    }
    for name in _NAMED_SCORES:
        row[name] = _named(rewards, metrics, name)
    if row["num_turns"] is None:
        row["num_turns"] = sum(m.get("role") == "assistant" for m in row["completion"])
        notes["num_turns_counted_from_messages"] += 1
    return row


def _dig(row: dict[str, Any], *path: str) -> dict[str, Any]:
    value: Any = row
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, dict):
        raise BadRow("missing field", f"{'.'.join(path)} is missing or not an object")
    return value


def _branch(nodes: Any) -> tuple[list[dict[str, Any]], int]:
    """The messages from the root to the last node, and where the model's part starts."""
    if not isinstance(nodes, list) or not nodes:
        raise BadRow("missing field", "traces[0].nodes is missing or empty")
    chain, index = [], len(nodes) - 1
    while index is not None:
        node = nodes[index]
        if not isinstance(node, dict) or not isinstance(node.get("message"), dict):
            raise BadRow("missing field", f"traces[0].nodes[{index}].message is missing")
        chain.append(node)
        parent = node.get("parent")
        # Parents come before their children; anything else would loop.
        index = parent if type(parent) is int and 0 <= parent < index else None
    chain.reverse()
    sampled = [i for i, node in enumerate(chain) if node.get("sampled")]
    first = sampled[0] if sampled else len(chain)
    return [_message(node["message"]) for node in chain], first


def _message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        # Content parts: the text ones joined, as the chat templates read them.
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        message = {**message, "content": "".join(t for t in texts if isinstance(t, str))}
    return message


def _episode_reward(
    rewards: dict[str, Any], metrics: dict[str, Any], field: str | None, episode: dict
) -> float | None:
    if field is not None:
        value = _named(rewards, metrics, field)
        if value is None:
            raise BadRow("missing field", f"--reward-field {field!r}: no such reward or metric")
        return value
    if not rewards:
        raise BadRow("missing field", f"traces[0].rewards is empty{_episode_errors(episode)}")
    total = 0.0
    for name, reward in rewards.items():
        if not isinstance(reward, dict) or reward.get("score") is None:
            raise BadRow(
                "missing field",
                f"traces[0].rewards.{name} has no score: scoring did not run"
                + _episode_errors(episode),
            )
        total += reward["score"] * reward.get("weight", 1.0)
    return total


def _episode_errors(episode: dict[str, Any]) -> str:
    errors = episode.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[-1], dict):
        return f" (the episode failed: {errors[-1].get('type') or errors[-1]!s:.80})"
    return ""


def _named(rewards: dict[str, Any], metrics: dict[str, Any], name: str) -> Any:
    reward = rewards.get(name)
    if isinstance(reward, dict) and reward.get("score") is not None:
        return reward["score"]
    return metrics.get(name)


def _stage_timings(timing: Any) -> dict[str, float | None]:
    """generation = the agent stage, scoring = the scoring stage, total = start to last end."""
    out: dict[str, float | None] = dict.fromkeys(_NESTED_TIMINGS)
    if not isinstance(timing, dict):
        return out
    for name, stage in (("generation_ms", "agent"), ("scoring_ms", "scoring")):
        span = timing.get(stage)
        if isinstance(span, dict) and _is_number(span.get("start"), span.get("end")):
            out[name] = (span["end"] - span["start"]) * 1000.0
    ends = [s["end"] for s in timing.values() if isinstance(s, dict) and _is_number(s.get("end"))]
    if ends and _is_number(timing.get("start")):
        out["total_ms"] = (max(ends) - timing["start"]) * 1000.0
    return out


def _is_number(*values: Any) -> bool:
    return all(type(v) in (int, float) for v in values)


def detect_file_layout(path: Path, max_lines: int = 100) -> str:
    """The layout of a file: that of its first line that parses as a JSON object."""
    with open(path, "rb") as fh:
        for _, raw in zip(range(max_lines), fh, strict=False):
            if raw.isspace():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            if isinstance(row, dict):
                return detect_layout(row)
    return "seed"
