"""Chat-template rendering and token counting, without transformers.

Rendering follows `transformers.apply_chat_template(..., tokenize=False)`:
the same sandboxed Jinja environment and helpers (kbpipe.tokens.template), the
special-token names from the config passed in, no generation prompt. Two
things are done on purpose before rendering (see `prepare_messages`): keys
whose value is null are dropped, because Arrow structs give every message every
field and a template testing `is defined` would otherwise take a null for a
value; and the `reasoning` key our tables use (or `thinking`) is copied to
`reasoning_content`, the only name Qwen3-style templates read, so the
reasoning is not silently left out of the count. kbpipe.tokens.loading builds a
ChatTokenizer from what `--tokenizer` names.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import jinja2
from tokenizers import Tokenizer

from kbpipe.errors import InputError
from kbpipe.tokens.bpe_fast import TiktokenCounter
from kbpipe.tokens.facts import TokenizerFacts
from kbpipe.tokens.template import compile_template, render_error

ReasoningMode = Literal["include", "drop"]
REASONING_MODES: tuple[str, ...] = ("include", "drop")
CounterChoice = Literal["auto", "tokenizers"]
COUNTERS: tuple[str, ...] = ("auto", "tokenizers")

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
# Newer Hub repos keep the template in its own file instead of the config.
TEMPLATE_FILE = "chat_template.jinja"

# Names transformers exposes to templates (its `special_tokens_map`).
SPECIAL_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
    "additional_special_tokens",
)
# Message keys that carry reasoning in the tables and APIs we read.
REASONING_KEYS = ("reasoning", "thinking")


@dataclass(frozen=True)
class CountPlan:
    """Rendered rows cut into pieces, ready to encode.

    `jobs` holds, per row, the pieces that add up to the text with reasoning
    and the pieces that add up to it without; `pieces` lists each distinct
    piece once.
    """

    jobs: list[tuple[list[str], list[str]]]
    pieces: list[str]


@dataclass(frozen=True)
class ChatTokenizer:
    """A tokenizer (its facts, see kbpipe.tokens.facts) with the chat template and special
    tokens that go with it."""

    facts: TokenizerFacts
    chat_template: str
    special_tokens: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    # "auto": count with tiktoken where it provably gives the same ids
    # (kbpipe.tokens.bpe_fast), else with `tokenizers`; "tokenizers": always the latter.
    counter: CounterChoice = "auto"
    # Count every batch with `tokenizers` too and fall back to it on any difference:
    # `kbpipe seqlen --check`, an end-to-end proof of the fast path on one's own data.
    check: bool = False

    @property
    def tokenizer(self) -> Tokenizer:
        """The `tokenizers` Tokenizer, loaded on first use (the tiktoken path needs none)."""
        return self.facts.tokenizer()

    @property
    def template_sha256(self) -> str:
        return hashlib.sha256(self.chat_template.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Lineage for stats files: where the tokenizer came from and which template."""
        return {
            "source": self.source,
            "vocab_size": self.facts.vocab_size,
            "chat_template_sha256": self.template_sha256,
            "counter": self._fast.describe(),
        }

    def render(
        self, messages: Sequence[Mapping[str, Any]], *, reasoning: ReasoningMode = "include"
    ) -> str:
        """The conversation as the model sees it in training (no generation prompt)."""
        return render_chat(
            self.chat_template, prepare_messages(messages, reasoning), self.special_tokens
        )

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token counts of already-rendered texts, encoded in parallel in one batch.

        The template already wrote the special tokens, so none are added, as
        `apply_chat_template(tokenize=True)` does.
        """
        if not texts:
            return []
        fast = self._fast
        if fast.counter is None:
            return self._count_with_tokenizers(texts)
        counts = fast.counter.count(texts)
        if not self.check:
            return counts
        reference = self._count_with_tokenizers(texts)
        fast.batches_checked += 1
        if counts != reference:
            fast.give_up(
                f"tiktoken and tokenizers disagreed on checked batch {fast.batches_checked}"
            )
            return reference
        return counts

    def _count_with_tokenizers(self, texts: Sequence[str]) -> list[int]:
        skip_nfc = self.facts.without_nfc()
        if skip_nfc is None:
            return _lengths(self.tokenizer, texts)
        # NFC leaves text that is already NFC unchanged, so such text can skip the
        # normalizer (and its per-byte alignment bookkeeping): same ids, ~10 % faster.
        ready = [unicodedata.is_normalized("NFC", t) for t in texts]
        fast = iter(_lengths(skip_nfc, [t for t, ok in zip(texts, ready, strict=True) if ok]))
        slow = iter(
            _lengths(self.tokenizer, [t for t, ok in zip(texts, ready, strict=True) if not ok])
        )
        return [next(fast) if ok else next(slow) for ok in ready]

    @cached_property
    def _fast(self) -> _FastCounter:
        if self.counter == "tokenizers":
            return _FastCounter(None, "asked for with --counter tokenizers", self.check)
        spec = self.facts.tiktoken
        if spec is None:
            return _FastCounter(None, self.facts.tiktoken_reason, self.check)
        try:
            encoding = spec.encoding()
        except (ValueError, RuntimeError) as exc:  # e.g. a regex fancy-regex cannot compile
            return _FastCounter(None, f"tiktoken refused the tokenizer ({exc})", self.check)
        threads = os.cpu_count() or 1
        counter = TiktokenCounter(encoding, nfc=self.facts.nfc, threads=threads)
        return _FastCounter(counter, "", self.check)

    def count_conversations(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        *,
        reasoning: ReasoningMode = "include",
        labels: Sequence[str] | None = None,
    ) -> tuple[list[int], list[int]]:
        """Tokens per conversation, and how many of them the reasoning accounts for.

        The reasoning part is the rendering with reasoning minus the rendering
        without it, so it includes what the template writes around it; with
        `drop` it is 0. `labels` name the rows in errors (e.g. `example_id 12`).
        """
        return self.count_plan(self.plan(conversations, reasoning=reasoning, labels=labels))

    def plan(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        *,
        reasoning: ReasoningMode = "include",
        labels: Sequence[str] | None = None,
    ) -> CountPlan:
        """Render conversations and cut them into the pieces `count_plan` encodes.

        This is the pure-Python half of counting, so a caller can prepare the
        next batch in a thread while the current one is encoded. The two
        renderings of a row share their start and end, and text on either side
        of an added token such as `<think>` is encoded on its own, so only the
        part that differs is encoded twice (see `_split_shared`).
        """
        jobs: list[tuple[list[str], list[str]]] = []
        for i, messages in enumerate(conversations):
            where = labels[i] if labels is not None else f"conversation {i}"
            try:
                text = self.render(messages, reasoning=reasoning)
                without = (
                    self.render(messages, reasoning="drop") if reasoning == "include" else text
                )
            except jinja2.TemplateError as exc:
                raise render_error(exc, where) from exc
            except (TypeError, AttributeError) as exc:
                raise InputError(f"{where}: messages do not fit the chat template ({exc})") from exc
            split = _split_shared(text, without, self._boundaries) if without != text else None
            if split is not None:
                prefix, middle, bare_middle, suffix = split
                jobs.append(([prefix, middle, suffix], [prefix, bare_middle, suffix]))
            else:
                jobs.append(([text], [without]))
        # Identical pieces (a shared prompt, the closing tokens) are encoded once.
        unique = list(dict.fromkeys(piece for a, b in jobs for piece in (*a, *b)))
        return CountPlan(jobs, unique)

    def count_plan(self, plan: CountPlan) -> tuple[list[int], list[int]]:
        """Encode a plan's pieces in one parallel batch; (n_tokens, n_reasoning_tokens) per row."""
        n = dict(zip(plan.pieces, self.count(plan.pieces), strict=True))
        n_tokens = [sum(n[piece] for piece in a) for a, _ in plan.jobs]
        n_without = [sum(n[piece] for piece in b) for _, b in plan.jobs]
        return n_tokens, [t - w for t, w in zip(n_tokens, n_without, strict=True)]

    @property
    def _boundaries(self) -> tuple[str, ...]:
        return self.facts.boundaries


class _FastCounter:
    """The tiktoken path of one ChatTokenizer: whether it is used, checked, or why not."""

    def __init__(self, counter: TiktokenCounter | None, reason: str, check: bool) -> None:
        self.counter = counter
        self.reason = reason
        self.check = check
        self.batches_checked = 0

    def give_up(self, reason: str) -> None:
        self.counter, self.reason = None, reason

    def describe(self) -> str:
        if self.counter is None:
            return f"tokenizers ({self.reason})"
        if self.check:
            return (
                "tiktoken (same ids as tokenizers for this vocabulary; "
                f"{self.batches_checked:,} batches checked against tokenizers)"
            )
        return "tiktoken (same ids as tokenizers for this vocabulary)"


def _lengths(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    return [len(e) for e in tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]


def _split_shared(
    full: str, bare: str, boundaries: Sequence[str]
) -> tuple[str, str, str, str] | None:
    """(prefix, full's middle, bare's middle, suffix), cut just after and just before added tokens.

    The prefix and suffix are common to both texts and end (start) with an
    added token, so count(full) = count(prefix) + count(full's middle) +
    count(suffix) exactly, and the same for bare. None when there is no such cut.
    """
    if not boundaries:
        return None
    shared_start = _common_prefix_len(full, bare)
    shared_end = _common_suffix_len(full, bare, min(len(full), len(bare)) - shared_start)
    cut_a = max(
        (at + len(tok) for tok in boundaries if (at := full.rfind(tok, 0, shared_start)) >= 0),
        default=-1,
    )
    tail = len(full) - shared_end
    cut_b = min((at for tok in boundaries if (at := full.find(tok, tail)) >= 0), default=-1)
    if cut_a < 0 or cut_b < 0:
        return None
    bare_cut_b = cut_b - (len(full) - len(bare))
    return full[:cut_a], full[cut_a:cut_b], bare[cut_a:bare_cut_b], full[cut_b:]


def _common_prefix_len(a: str, b: str) -> int:
    # Binary search on slice equality: each comparison runs in C, unlike a character loop.
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix_len(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def prepare_messages(
    messages: Iterable[Mapping[str, Any]], reasoning: ReasoningMode = "include"
) -> list[dict[str, Any]]:
    """Messages ready for the template: nulls dropped, reasoning under `reasoning_content`.

    With `drop`, reasoning keys are removed and an inline `<think>...</think>`
    block is cut from assistant content, so the template sees an answer only.
    """
    if reasoning not in REASONING_MODES:
        raise ValueError(f"reasoning must be one of {REASONING_MODES}, not {reasoning!r}")
    out: list[dict[str, Any]] = []
    for message in messages:
        msg = {k: v for k, v in message.items() if v is not None}
        if reasoning == "include":
            if "reasoning_content" not in msg:
                for key in REASONING_KEYS:
                    if key in msg:
                        msg["reasoning_content"] = msg[key]
                        break
        else:
            for key in (*REASONING_KEYS, "reasoning_content"):
                msg.pop(key, None)
            content = msg.get("content")
            if (
                msg.get("role") == "assistant"
                and isinstance(content, str)
                and "</think>" in content
            ):
                msg["content"] = content.split("</think>")[-1].lstrip("\n")
        out.append(msg)
    return out


def render_chat(
    chat_template: str,
    messages: Sequence[Mapping[str, Any]],
    special_tokens: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> str:
    """Render prepared messages with a chat template the way transformers does.

    A template's own `raise_exception(...)` surfaces as `jinja2.TemplateError`;
    callers turn it into an error naming the row.
    """
    template = compile_template(chat_template)
    context = {**(special_tokens or {}), **kwargs}
    context.setdefault("add_generation_prompt", False)
    return template.render(messages=list(messages), tools=None, documents=None, **context)
