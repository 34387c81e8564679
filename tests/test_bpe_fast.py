"""The tiktoken counting path: same counts as tokenizers, or not used at all."""

from __future__ import annotations

import json
from pathlib import Path

from kbpipe.tokens.bpe_fast import tiktoken_for
from kbpipe.tokens.loading import load_chat_tokenizer
from tests.test_chat import QWEN3_DIR, needs_qwen3, write_tiny_tokenizer

# Text that stresses pre-tokenization: contractions, digit runs, whitespace
# runs and newlines, punctuation runs, code, CJK, emoji, combining marks
# (not NFC), and the chat template's added tokens.
HARD_TEXTS = [
    "<|im_start|>user\nWrite a Triton kernel for x*y.<|im_end|>\n<|im_start|>assistant\n<think>\n",
    "I'm sure they'll do it; we've seen it, she'd say... DON'T & WON'T!!",
    "1234567890 3.14159 0x1f 1e-9 12,345,678",
    "    indented\n\n\n\ttabs\t\tand  double  spaces   \r\n windows\r\nline ",
    "@triton.jit\ndef add_kernel(x_ptr, y_ptr, n: tl.constexpr):\n    pid = tl.program_id(0)\n",
    "数据并行 カーネル 한국어 العربية Ελληνικά",
    "emoji 🚀🔥👩‍💻 flags 🇫🇷 and e\u0301 o\u0308 (combining) vs é ö",
    "</think>\n\n<answer>\n```python\nout = a @ b\n```\n</answer><|im_end|>\n",
    "",
    " ",
    "\n",
    "a" * 5000,
    "".join(chr(c) for c in range(0x20, 0x250)),
]


def _bpe(ranks: dict[bytes, int], piece: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's rule on one word, using only tokens ranked below max_rank."""
    parts = [bytes([b]) for b in piece]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            return parts
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


@needs_qwen3
def test_qwen3_uses_tiktoken_and_counts_like_tokenizers() -> None:
    fast = load_chat_tokenizer(QWEN3_DIR)
    reference = load_chat_tokenizer(QWEN3_DIR, counter="tokenizers")

    assert fast.describe()["counter"].startswith("tiktoken")
    assert reference.describe()["counter"] == "tokenizers (asked for with --counter tokenizers)"
    assert fast.count(HARD_TEXTS) == reference.count(HARD_TEXTS)
    # Past the first (checked) batch the fast path answers alone.
    assert fast.count(HARD_TEXTS[::-1]) == reference.count(HARD_TEXTS[::-1])
    assert fast.describe()["counter"].startswith("tiktoken")


@needs_qwen3
def test_qwen3_merges_are_what_tiktokens_rule_builds() -> None:
    """Each merge is the last step tiktoken's rule takes to build its token.

    This is how merges are derived from a tiktoken rank file; when it holds for
    every token, both libraries merge any word the same way, step by step.
    """
    spec = json.loads((QWEN3_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    encoding = tiktoken_for(spec).encoding
    assert encoding is not None
    ranks = encoding._mergeable_ranks
    by_rank = {rank: token for token, rank in ranks.items()}
    to_bytes = {v: k for k, v in ranks.items()}
    checked = 0
    for merge in spec["model"]["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank = spec["model"]["vocab"][left + right]
        token = by_rank[rank]
        parts = _bpe(ranks, token, rank)
        assert [ranks[p] for p in parts] == [
            spec["model"]["vocab"][left],
            spec["model"]["vocab"][right],
        ], f"merge {left!r} + {right!r}"
        assert to_bytes[rank] == b"".join(parts)
        checked += 1
    assert checked == len(ranks) - 256


def test_a_tokenizer_with_another_normalizer_stays_with_tokenizers(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "Lowercase"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))

    tok = load_chat_tokenizer(folder)

    assert tok.describe()["counter"] == "tokenizers (normalizer is Lowercase, not NFC or none)"
    text = "<|im_start|>user\nTILE kernel<|im_end|>\n"
    assert tok.count([text]) == [len(tok.tokenizer.encode(text, add_special_tokens=False))]


@needs_qwen3
def test_check_counts_both_ways_and_falls_back_on_disagreement() -> None:
    tok = load_chat_tokenizer(QWEN3_DIR, check=True)
    assert tok.count(HARD_TEXTS[:3]) == tok.count(HARD_TEXTS[:3])
    assert tok.describe()["counter"].endswith("2 batches checked against tokenizers)")
    tok._fast.counter.count = lambda texts: [0 for _ in texts]  # a broken fast path

    got = tok.count(HARD_TEXTS)

    assert got == [len(tok.tokenizer.encode(t, add_special_tokens=False)) for t in HARD_TEXTS]
    assert tok.describe()["counter"] == (
        "tokenizers (tiktoken and tokenizers disagreed on checked batch 3)"
    )
    assert tok.count(HARD_TEXTS[:2]) == got[:2]


@needs_qwen3
def test_cached_facts_count_without_loading_tokenizers(tmp_path: Path) -> None:
    first = load_chat_tokenizer(QWEN3_DIR, cache_dir=tmp_path)
    assert first.facts.vocab_size == first.tokenizer.get_vocab_size(with_added_tokens=True)
    (cached,) = (tmp_path / "tokenizers").glob("*.pickle")

    again = load_chat_tokenizer(QWEN3_DIR, cache_dir=tmp_path)

    assert again.count(HARD_TEXTS) == first.count(HARD_TEXTS)
    assert again.facts._tokenizer is None  # the tiktoken path never loaded tokenizer.json
    assert again.describe() == first.describe()
    cached.write_bytes(b"not a pickle")  # a damaged cache file is rebuilt, not trusted
    rebuilt = load_chat_tokenizer(QWEN3_DIR, cache_dir=tmp_path)
    assert rebuilt.facts.tiktoken == first.facts.tiktoken


def test_the_nfc_free_copy_is_cached_and_counts_the_same(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "NFC"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    texts = ["tile kernel", "e\u0301 tile"]
    reference = load_chat_tokenizer(folder, counter="tokenizers")

    for _ in range(2):
        tok = load_chat_tokenizer(folder, counter="tokenizers", cache_dir=tmp_path / "cache")
        assert tok.count(texts) == reference.count(texts)
    assert len(list((tmp_path / "cache" / "tokenizers").glob("*nonfc.json"))) == 1
