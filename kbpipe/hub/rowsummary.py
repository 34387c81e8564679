"""What the published rows look like: difficulty counts and rewards per config and split,
gathered while the shards are written, for the card."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa


@dataclass
class RowSummary:
    """Difficulty counts and rewards per (config, split), gathered as shards are written."""

    difficulty: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    rewards: dict[tuple[str, str], list[np.ndarray]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def observer(self, config: str) -> Any:
        def observe(split: str, batch: pa.Table) -> None:
            key = (config, split)
            if "difficulty" in batch.column_names:
                values = batch.column("difficulty").to_pylist()
                self.difficulty[key].update("(none)" if v is None else str(v) for v in values)
            if "reward" in batch.column_names and is_number(batch.schema.field("reward").type):
                values = batch.column("reward").to_numpy(zero_copy_only=False)
                self.rewards[key].append(np.asarray(values, dtype=np.float64))

        return observe


def is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)
