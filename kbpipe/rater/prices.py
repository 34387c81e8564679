"""What a dry run's requests would cost: dollars per million tokens of the default models.

List prices of the model makers (OpenAI's page for gpt-5.2, Moonshot's for
kimi-k2-0905, uncached input), as of early 2026. The endpoint kbpipe talks to
(Prime Intellect's by default) may charge otherwise: `--price-per-mtok IN,OUT`
replaces the table for one run, and a model not in it gets no dollar figure.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """US dollars per million prompt (input) and completion (output) tokens."""

    prompt: float
    completion: float

    def dollars(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


PRICES: dict[str, Price] = {
    "openai/gpt-5.2": Price(1.75, 14.00),
    "moonshotai/kimi-k2-0905": Price(0.60, 2.50),
}


def price_for(model: str, override: Price | None = None) -> Price | None:
    """The override, else the table's price of `model` (with or without its org prefix)."""
    if override is not None:
        return override
    if model in PRICES:
        return PRICES[model]
    bare = {name.split("/", 1)[-1]: price for name, price in PRICES.items()}
    return bare.get(model.split("/", 1)[-1])


def parse_price(text: str) -> Price:
    """`--price-per-mtok 1.75,14`: dollars per million prompt and completion tokens."""
    parts = text.split(",")
    try:
        prompt, completion = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected IN,OUT dollars per million tokens, e.g. 1.75,14"
        ) from None
    if prompt < 0 or completion < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: prices cannot be negative")
    return Price(prompt, completion)
