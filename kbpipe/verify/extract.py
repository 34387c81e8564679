"""The one solution extractor: which code a rollout submitted, in which answer format.

The judge, strip-reasoning, audit and verify all read the solution through
`extract_solution`, so a rollout is judged, stripped, audited and re-run on
the same code.

Rules:
- Only assistant messages hold solutions. Multi-turn rollouts often end with
  the environment's feedback as a `user` message, and earlier turns may hold a
  failed attempt, so the solution is taken from the *last* assistant message
  that holds one in the requested format.
- `answer-tags`: the first non-greedy `<answer>(.*?)</answer>` match, dot
  matching newlines: the seed's rule, kept exactly (so nested tags end at the
  first `</answer>`, and an unclosed `<answer>` is no match). The code is the
  text between the tags, newlines included, as the seed stored it.
- `begin-python`: the lines between a line that is only `BEGIN_PYTHON` and the
  next line that is only `END_PYTHON` (surrounding whitespace ignored); the last
  such block wins, since a model that writes two has revised the first.
- `fenced`: the last closed ```` ```python ```` block, for the same reason.
- `auto` tries `answer-tags`, `begin-python`, `fenced` on each message in that
  order, so a tagged answer that quotes a fenced snippet still yields the tagged
  code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ANSWER_FORMATS = ("answer-tags", "begin-python", "fenced")
AUTO = "auto"

_ANSWER_TAGS = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BEGIN = re.compile(r"^[ \t]*BEGIN_PYTHON[ \t]*\r?$", re.MULTILINE)
_END = re.compile(r"^[ \t]*END_PYTHON[ \t]*\r?$", re.MULTILINE)
_FENCED = re.compile(r"^[ \t]*```python[ \t]*\r?\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Solution:
    code: str
    format: str  # one of ANSWER_FORMATS
    message_index: int  # position in the completion list


def _answer_tags(text: str) -> str | None:
    found = _ANSWER_TAGS.search(text)
    return found.group(1) if found else None


def _begin_python(text: str) -> str | None:
    code = None
    pos = 0
    while begin := _BEGIN.search(text, pos):
        start = text.find("\n", begin.end())
        if start < 0:
            break
        end = _END.search(text, start + 1)
        if end is None:
            break
        code = text[start + 1 : end.start()]
        pos = end.end()
    return code


def _fenced(text: str) -> str | None:
    found = _FENCED.findall(text)
    return found[-1] if found else None


_FINDERS: dict[str, Callable[[str], str | None]] = {
    "answer-tags": _answer_tags,
    "begin-python": _begin_python,
    "fenced": _fenced,
}


def formats_for(fmt: str) -> tuple[str, ...]:
    """The formats `fmt` tries, in order; a ValueError names the valid choices."""
    if fmt == AUTO:
        return ANSWER_FORMATS
    if fmt in ANSWER_FORMATS:
        return (fmt,)
    raise ValueError(f"unknown answer format {fmt!r}; choose {AUTO} or one of {ANSWER_FORMATS}")


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text; OpenAI-style content parts are joined, null content is ''."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def extract_from_text(text: str, fmt: str = AUTO) -> tuple[str, str] | None:
    """(code, format) of the first format of `fmt` found in one message's text."""
    for name in formats_for(fmt):
        code = _FINDERS[name](text)
        if code is not None:
            return code, name
    return None


def extract_solution(
    completion: Sequence[Mapping[str, Any]] | None, fmt: str = AUTO
) -> Solution | None:
    """The solution of the last assistant message holding one, or None."""
    formats_for(fmt)  # a bad name fails even when there is nothing to search
    for index in range(len(completion or ()) - 1, -1, -1):
        message = completion[index]
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        found = extract_from_text(message_text(message), fmt)
        if found is not None:
            return Solution(code=found[0], format=found[1], message_index=index)
    return None


def add_answer_format_argument(
    parser: Any,
    help: str = "where the solution is in the completion (default: auto, every format in turn)",
) -> None:
    """`--answer-format` on a parser or argument group: every step that finds a solution
    takes it with the same choices and default. Kept here, with the stdlib-only
    extractor, so a step can declare it without importing anything heavier."""
    parser.add_argument("--answer-format", choices=[AUTO, *ANSWER_FORMATS], default=AUTO, help=help)
