"""Hashes of normalised token streams, and the worker pool both matchers share.

Hashes must agree across processes and runs (Python's `hash` of a str is
salted per process), so tokens are hashed with blake2b once per process and
n-grams are a polynomial over those 64-bit values, computed with numpy.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_BASE = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so every token position counts
_token_cache: dict[str, int] = {}
# Below this many codes a pool costs more (spawning, importing) than it saves.
MIN_CODES_FOR_POOL = 400


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def token_ids(tokens: list[str]) -> np.ndarray:
    cache = _token_cache
    ids = []
    for token in tokens:
        value = cache.get(token)
        if value is None:
            digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8)
            value = cache[token] = int.from_bytes(digest.digest(), "little")
        ids.append(value)
    return np.array(ids, dtype=np.uint64)


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Distinct hashes of every n-token window; a stream shorter than n is one window."""
    if len(ids) == 0:
        return np.empty(0, dtype=np.uint64)
    width = min(n, len(ids))
    windows = len(ids) - width + 1
    acc = np.zeros(windows, dtype=np.uint64)
    for j in range(width):
        acc = acc * _BASE + ids[j : j + windows]  # uint64 arithmetic wraps, as a hash should
    return np.unique(_mix(acc))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: the polynomial alone leaves low bits poorly spread."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stream_digest(tokens: list[str]) -> bytes:
    """Identity of a whole normalised stream (exact-duplicate test)."""
    text = "\x1f".join(tokens).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).digest()


def map_codes(
    fn: Callable[[str], T],
    codes: Iterable[str],
    *,
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[T]:
    """`fn` over `codes` in order, on `workers` processes when there are enough codes.

    Processes are spawned, not forked: the steps hold DuckDB connections, whose
    threads a fork would copy mid-flight.
    """
    codes = list(codes)
    if workers <= 1 or len(codes) < MIN_CODES_FOR_POOL:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, codes)
        return
    context = multiprocessing.get_context("spawn")
    chunksize = max(16, len(codes) // (workers * 16))
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        yield from pool.map(fn, codes, chunksize=chunksize)
