"""Near-duplicate clusters of modules: MinHash signatures, LSH bands, union-find.

- Each module's normalised stream (placeholders reduced to their kind, see
  `NormalizedCode.shape`) is cut into 5-token shingles; rensa computes 128
  MinHash values per module from their 64-bit hashes. rensa was chosen over
  datasketch by measurement (bench/bench_codematch.py): about 10x faster for
  the signatures with the same estimation error, and no scipy.
- LSH: the signature is cut into `b` bands of `r` rows, (b, r) chosen for the
  similarity threshold as datasketch does (least false positive + false
  negative probability mass). Modules sharing a band are candidates; a
  candidate joins a cluster only when the signatures agree on at least
  `similarity` of their values, so a chance band collision cannot chain two
  unrelated clusters together.
- Modules whose exact normalised streams are equal are always joined first,
  whatever the signatures say (union-find), so exact duplicates can never be
  split.
- A cluster's id is `mc-` + the smallest stream digest among its members:
  it does not depend on row order, and the same module keeps its id across
  runs as long as its cluster's smallest member stays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kbpipe.codematch import DEFAULT_SIMILARITY
from kbpipe.codematch.normalize import normalize_code
from kbpipe.codematch.streams import map_codes, ngram_hashes, stream_digest, token_ids

NUM_PERM = 128
SHINGLE = 5
# Fixed: a different seed gives different signatures, and so other borderline merges.
SEED = 20240611


@dataclass(frozen=True)
class Clusters:
    cluster_ids: list[str]  # one per input code, in input order
    size_histogram: dict[int, int]  # distinct modules in a cluster -> how many clusters
    n_distinct: int
    n_unparsed: int


def _shingles(code: str) -> tuple[bytes, np.ndarray, bool]:
    normalized = normalize_code(code)
    shingles = ngram_hashes(token_ids(normalized.shape()), SHINGLE)
    return stream_digest(normalized.tokens), shingles, normalized.parsed


def module_clusters(
    codes: Iterable[str], *, similarity: float = DEFAULT_SIMILARITY, workers: int = 1
) -> Clusters:
    """Cluster ids for `codes`; equal codes (and equal normalised streams) share one."""
    if not 0.0 < similarity <= 1.0:
        raise ValueError(f"similarity must be in (0, 1], got {similarity}")
    codes = list(codes)
    distinct = list(dict.fromkeys(codes))
    digests, shingles, n_unparsed = [], [], 0
    for digest, grams, parsed in map_codes(_shingles, distinct, workers=workers):
        digests.append(digest)
        shingles.append(grams)
        n_unparsed += not parsed
    parent = list(range(len(distinct)))
    _join_equal(parent, digests)
    for a, b in _similar_pairs(_signatures(shingles), similarity):
        _union(parent, a, b)
    roots = [_find(parent, i) for i in range(len(distinct))]
    smallest: dict[int, bytes] = {}
    for i, root in enumerate(roots):
        if root not in smallest or digests[i] < smallest[root]:
            smallest[root] = digests[i]
    ids = {code: f"mc-{smallest[roots[i]].hex()[:16]}" for i, code in enumerate(distinct)}
    histogram = dict(sorted(Counter(Counter(roots).values()).items()))
    return Clusters([ids[c] for c in codes], histogram, len(distinct), n_unparsed)


def _signatures(shingles: list[np.ndarray]) -> np.ndarray:
    """(modules x NUM_PERM) MinHash values; a module without shingles gets a row of its own."""
    import rensa

    lengths = np.array([len(s) for s in shingles], dtype=np.uint64)
    empty = lengths == 0
    # rensa cannot hash an empty set; those rows are replaced below and never collide
    padded = [s if len(s) else np.zeros(1, np.uint64) for s in shingles]
    offsets = np.concatenate([[0], np.cumsum(np.maximum(lengths, 1))]).astype(np.uint64)
    flat = np.concatenate(padded) if padded else np.zeros(0, np.uint64)
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        flat, offsets, num_perm=NUM_PERM, seed=SEED
    )
    signatures = np.array(matrix.to_rows(), dtype=np.uint64).reshape(len(shingles), NUM_PERM)
    # unique values above any 32-bit MinHash value: empty rows match nothing, not each other
    signatures[empty] = (np.arange(empty.sum(), dtype=np.uint64) + np.uint64(2**32))[:, None]
    return signatures


@lru_cache
def lsh_bands(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) minimising false positive + false negative probability mass."""
    s = np.linspace(0.0, 1.0, 1001)
    step = s[1] - s[0]
    best, best_cost = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s**r) ** b
            error = np.where(s < threshold, p, 1.0 - p)
            cost = float((error[1:] + error[:-1]).sum() * step / 2)
            if cost < best_cost:
                best, best_cost = (b, r), cost
    return best


def _similar_pairs(signatures: np.ndarray, similarity: float) -> Iterable[tuple[int, int]]:
    """Pairs that share an LSH band and whose signatures agree on >= `similarity` of values."""
    n = len(signatures)
    if n < 2:
        return
    bands, rows = lsh_bands(similarity)
    for band in range(bands):
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        same = sorted_keys[1:] == sorted_keys[:-1]
        # each member of a bucket is checked against its predecessor and the bucket's first
        starts = np.maximum.accumulate(np.where(np.r_[True, ~same], np.arange(n), 0))
        a = np.r_[order[:-1][same], order[starts[1:][same]]]
        b = np.r_[order[1:][same], order[1:][same]]
        agree = (signatures[a] == signatures[b]).mean(axis=1) >= similarity
        yield from zip(a[agree].tolist(), b[agree].tolist(), strict=True)


def _join_equal(parent: list[int], digests: list[bytes]) -> None:
    first: dict[bytes, int] = {}
    for i, digest in enumerate(digests):
        _union(parent, first.setdefault(digest, i), i)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _union(parent: list[int], a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)
