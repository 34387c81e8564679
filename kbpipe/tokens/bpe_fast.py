"""Exact token counts at tiktoken's speed, for byte-level BPE tokenizers built from tiktoken ranks.

Counting is the cost of `kbpipe seqlen`: `tokenizers` encodes ~1.8 M tokens/s
on two cores here, tiktoken ~8 M. Some byte-level BPE tokenizers on the Hub
(Qwen2 and Qwen3 among them) were converted from tiktoken rank files: every
non-byte token has exactly one merge, and merges come in rank (id) order. For
those, tiktoken's rule (merge the adjacent pair whose result has the lowest
rank) and the `tokenizers` rule (apply the pair with the lowest merge index)
pick the same merges, so the ids are the same. (Llama 3's tokenizer.json sets
`ignore_merges`, which changes the rule, so it stays with `tokenizers`.)

`tiktoken_for` checks that shape in the tokenizer's JSON and builds the
equivalent `tiktoken.Encoding`; anything else (a normalizer other than NFC,
added tokens that strip spaces, dropout, a word-piece prefix, merges out of
rank order, ...) gets None and a reason, and counting stays with
`tokenizers`. `kbpipe seqlen --check` counts every batch both ways; the tests
compare the two on hard texts with the real Qwen3 files.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Eligibility:
    encoding: Any | None  # tiktoken.Encoding
    reason: str  # why not, when encoding is None


@dataclass(frozen=True)
class TiktokenSpec:
    """What a tiktoken Encoding is built from: plain data, so it can be cached on disk."""

    ranks: dict[bytes, int]
    pattern: str
    special_tokens: dict[str, int]

    def encoding(self) -> Any:
        import tiktoken

        return tiktoken.Encoding(
            "kbpipe",
            pat_str=self.pattern,
            mergeable_ranks=self.ranks,
            special_tokens=self.special_tokens,
        )


def tiktoken_for(spec: dict[str, Any]) -> Eligibility:
    """The tiktoken Encoding equal to a `tokenizer.json` (parsed), or None and why not."""
    found = tiktoken_spec(spec)
    if isinstance(found, str):
        return Eligibility(None, found)
    try:
        return Eligibility(found.encoding(), "")
    except (ValueError, RuntimeError) as exc:  # e.g. a regex fancy-regex cannot compile
        return Eligibility(None, f"tiktoken refused the tokenizer ({exc})")


def tiktoken_spec(spec: dict[str, Any]) -> TiktokenSpec | str:
    """The ranks, pattern and special tokens equal to a `tokenizer.json`, or why there are none.

    This checks every merge in Python (about a second for Qwen3's 151k), which
    is why kbpipe.tokens.facts caches the result keyed by the file's hash.
    """
    why = _ineligible(spec)
    if why:
        return why
    model = spec["model"]
    to_byte = _unicode_to_byte()
    ranks: dict[bytes, int] = {}
    for text, rank in model["vocab"].items():
        if any(ch not in to_byte for ch in text):
            return f"vocab entry {text!r} is not byte-level"
        ranks[bytes(to_byte[ch] for ch in text)] = rank
    if len(ranks) != len(model["vocab"]) or any(bytes([b]) not in ranks for b in range(256)):
        return "vocab does not hold each of the 256 bytes exactly once"
    why = _merges_out_of_rank_order(model, len(ranks))
    if why:
        return why
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    if any(content.encode() in ranks for content in special):
        return "an added token is also a BPE token"
    pattern = spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
    return TiktokenSpec(ranks, pattern, special)


def _ineligible(spec: dict[str, Any]) -> str:
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"model is {model.get('type')}, not BPE"
    if model.get("dropout") or model.get("unk_token") is not None or model.get("byte_fallback"):
        return "BPE uses dropout, an unknown token or byte fallback"
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return "BPE uses a subword prefix or an end-of-word suffix"
    if model.get("ignore_merges"):
        return "BPE skips merges for whole-word vocab entries (ignore_merges)"
    normalizer = spec.get("normalizer")
    if normalizer is not None and normalizer.get("type") != "NFC":
        return f"normalizer is {normalizer.get('type')}, not NFC or none"
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2:
        return "pre-tokenizer is not a regex split followed by byte-level mapping"
    split, byte_level = steps
    if (
        split.get("type") != "Split"
        or "Regex" not in (split.get("pattern") or {})
        or split.get("behavior") != "Isolated"
        or split.get("invert")
    ):
        return "pre-tokenizer's first step is not an isolating regex split"
    if (
        byte_level.get("type") != "ByteLevel"
        or byte_level.get("add_prefix_space")
        or byte_level.get("use_regex")
    ):
        return "pre-tokenizer's second step is not a plain byte-level mapping"
    for token in spec.get("added_tokens", []):
        if token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
            return f"added token {token.get('content')!r} strips spaces or matches whole words"
        if token.get("normalized"):
            return f"added token {token.get('content')!r} is matched after normalization"
    return ""


def _merges_out_of_rank_order(model: dict[str, Any], n_vocab: int) -> str:
    vocab = model["vocab"]
    merges = model["merges"]
    if len(merges) != n_vocab - 256:
        return f"{len(merges)} merges for {n_vocab - 256} non-byte tokens"
    last = -1
    for i, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank = vocab.get(left + right)
        if (
            rank is None
            or rank <= last
            or rank <= vocab.get(left, rank)
            or rank <= vocab.get(right, rank)
        ):
            return f"merge {i} ({left!r}, {right!r}) is not in rank order"
        last = rank
    return ""


def _unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's byte-to-printable-character table that ByteLevel uses."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = dict(zip(printable, printable, strict=True))
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


class TiktokenCounter:
    """Token counts of rendered texts with a tiktoken Encoding, on every core.

    `nfc` applies the NFC normalizer the `tokenizers` pipeline would (text that
    is already NFC is left as is). Added tokens written by the chat template
    are matched in the text, as `tokenizers` matches them.
    """

    def __init__(self, encoding: Any, *, nfc: bool, threads: int) -> None:
        self.encoding = encoding
        self.nfc = nfc
        self.threads = max(1, threads)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.threads, thread_name_prefix="kbpipe-count")

    def count(self, texts: Sequence[str]) -> list[int]:
        # tiktoken releases the GIL while it encodes, so threads use every core;
        # encode_to_numpy skips building a Python int per token.
        return list(self._pool.map(self._count_one, texts))

    def _count_one(self, text: str) -> int:
        if self.nfc and not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        return len(self.encoding.encode_to_numpy(text, allowed_special="all"))
