"""The sample's reasoning text: model-like thinking drawn from the phrase banks
in `kbpipe.sample.modules`, sized to a byte budget."""

from __future__ import annotations

import random
from typing import Any

from kbpipe.sample import modules as data


class Phrases:
    """Every phrase bank formatted once for one rollout, drawn like shuffled decks.

    Formatting up front (~100 strings) is much cheaper than formatting each of the
    ~400 sentences a 60 KB reasoning draws, and dealing from decks means no
    sentence repeats until its bank is used up, as long texts would otherwise.
    """

    def __init__(self, rng: random.Random, ctx: dict[str, Any], kind: str) -> None:
        def bank(texts: tuple[str, ...]) -> list[tuple[str, int]]:
            formatted = (t.format_map(ctx) for t in texts)
            return [(t, len(t.encode())) for t in formatted]

        self._rng = rng
        self.topics = data.GENERAL_TOPICS + data.KIND_TOPICS[kind] * 2  # own family weighs double
        self._banks = {t: bank(data.TOPICS[t]) for t in set(self.topics)}
        self._banks["doubt"] = bank(data.DOUBTS)
        self._banks["unicode"] = bank(data.UNICODE_SENTENCES)
        self._decks: dict[str, list[tuple[str, int]]] = {}
        self.closers = sorted(bank(data.CLOSERS), key=lambda item: item[1])

    def deal(self, topic: str, k: int) -> list[tuple[str, int]]:
        """`k` distinct sentences of `topic` (fewer if the bank is smaller)."""
        bank = self._banks[topic]
        deck = self._decks.setdefault(topic, [])
        hand: list[tuple[str, int]] = []
        for _ in range(min(k, len(bank))):
            if not deck:
                deck.extend(item for item in bank if item not in hand)
                self._rng.shuffle(deck)
            hand.append(deck.pop())
        return hand


def reasoning_text(
    rng: random.Random,
    phrases: Phrases,
    ctx: dict[str, Any],
    code_lines: list[str],
    target: int,
    with_unicode: bool,
) -> str:
    """Paragraphs of model-like thinking, at most `target` UTF-8 bytes and close to it."""
    opening = rng.choice(data.OPENINGS).format_map(ctx)
    paragraphs = [opening]
    size = len(opening.encode())
    unicode_left = 2 if with_unicode else 0
    misses = 0  # sentences that no longer fit; a few more tries fill the gap with short ones
    while misses < 8:
        if rng.random() < 0.1:
            lead = rng.choice(data.SKETCH_LEADS)
            start = rng.randrange(max(1, len(code_lines) - 8))
            sketch = "\n".join([lead, *code_lines[start : start + rng.randint(4, 9)]])
            sentences = [(sketch, len(sketch.encode()))]
        else:
            sentences = phrases.deal(rng.choice(phrases.topics), rng.randint(2, 5))
            if rng.random() < 0.3:
                sentences = phrases.deal("doubt", 1) + sentences
            if unicode_left:
                sentences += phrases.deal("unicode", 1)
                unicode_left -= 1
        kept: list[str] = []
        for text, n in sentences:
            # +2 for the paragraph break before the first sentence, +1 for a space after that
            cost = n + (1 if kept else 2)
            if size + cost > target:
                misses += 1
                continue
            kept.append(text)
            size += cost
        if kept:
            paragraphs.append(" ".join(kept))
    fitting = [text for text, n in phrases.closers if size + 2 + n <= target]
    if fitting:
        paragraphs.append(fitting[-1])
    return "\n\n".join(paragraphs)
