"""Which rows copy a KernelBench problem: exact normalised match or n-gram overlap.

Both sides go through `normalize_code`, so a copy under another class name,
other variable names, other import aliases or another layout is still a copy.

- **exact**: the row's whole normalised stream equals a problem's. Several
  problems can share one stream (KernelBench's level-4 problems differ only
  in the checkpoint name, a module constant the normaliser drops; some level-1
  convolutions differ only in their sizes); the match names the first by level
  and problem id.
- **overlap**: of the row's distinct n-grams (`n` tokens, 13 by default, over
  the stream with placeholders reduced to their kind, so an inserted local does
  not renumber the rest), the share found in a problem, and of the problem's
  the share found in the row; the overlap is the smaller of the two, maximised
  over problems. Datatrove measures only the first share; on code that flags
  a one-layer module (`self.fc(x)`) as a copy of every problem that starts
  with a Linear layer, because all of its few n-grams are in theirs.
  N-grams found in at least `common_fraction` of the problems are left out on
  both sides: they are the `nn.Module` skeleton every problem shares
  (`class C$0(torch.nn.Module): def __init__(v$0): super().__init__()...`).

A row is contaminated when it matches exactly, or when its overlap reaches
`threshold` on at least `min_shared` shared n-grams: tiny modules have a handful
of n-grams, and two of those in common prove nothing. The defaults are
measured (tests/codematch/, bench/bench_codematch.py; figures in
docs/decontamination.md): renamed and reformatted copies of all 270 problems
are found exactly; copies with one edit on top are found at 97 %; none of
1,500 generated unrelated modules and none of the bundled sample's modules
that are not a KernelBench problem is flagged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from kbpipe.codematch.normalize import normalize_code
from kbpipe.codematch.streams import map_codes, ngram_hashes, stream_digest, token_ids
from kbpipe.errors import InputError

DEFAULT_BENCHMARK = "hf://datasets/ScalingIntelligence/KernelBench"
DEFAULT_NGRAM = 13
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_SHARED = 10
DEFAULT_COMMON_FRACTION = 0.1
BENCHMARK_COLUMNS = ("code", "level", "name")


@dataclass(frozen=True)
class Problem:
    key: str  # "level_1/19_ReLU": the Hub split and the problem's file name
    code: str


@dataclass(frozen=True)
class Contamination:
    contaminated: bool
    benchmark_match: str | None  # the problem's key when contaminated
    benchmark_overlap: float  # best n-gram overlap with any problem; 1.0 for an exact match
    shared_ngrams: int  # n-grams the row shares with that problem
    exact: bool
    parsed: bool  # False: the row's code did not parse and was compared as raw text


def benchmark_files(path: Path) -> list[Path]:
    """The Parquet files of a KernelBench copy: one file, or a folder in the Hub's layout."""
    if path.is_file():
        return [path]
    files = sorted(path.glob("**/level_*.parquet")) or sorted(path.glob("**/*.parquet"))
    if not files:
        raise InputError(f"{path}: no Parquet files (expected data/level_N-*.parquet)")
    return files


def load_benchmark(files: Iterable[Path]) -> list[Problem]:
    """Problems ordered by level and problem id (or name), so 'first match' is stable."""
    rows = []
    for file in files:
        table = pq.read_table(file)
        missing = [c for c in BENCHMARK_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(f"{file}: no column(s) {', '.join(missing)}; is it KernelBench?")
        ids = table["problem_id"] if "problem_id" in table.column_names else table["name"]
        rows += zip(
            table["level"].to_pylist(),
            ids.to_pylist(),
            table["name"].to_pylist(),
            table["code"].to_pylist(),
            strict=True,
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    return [Problem(f"level_{level}/{name}", code) for level, _, name, code in rows]


@dataclass(frozen=True)
class BenchmarkIndex:
    keys: tuple[str, ...]
    n: int
    exact: dict[bytes, int]  # stream digest -> first problem with that stream
    grams: np.ndarray  # sorted distinct n-gram hashes over all problems, common ones left out
    starts: np.ndarray  # the problems holding grams[i] are owners[starts[i]:starts[i + 1]]
    owners: np.ndarray
    sizes: np.ndarray  # distinct n-grams per problem, common ones left out
    common: np.ndarray  # sorted hashes of the skeleton n-grams, left out of every row too

    @classmethod
    def build(
        cls,
        problems: list[Problem],
        *,
        n: int = DEFAULT_NGRAM,
        common_fraction: float = DEFAULT_COMMON_FRACTION,
    ) -> BenchmarkIndex:
        if n < 1:
            raise ValueError(f"n-gram size must be at least 1, got {n}")
        if not problems:
            raise InputError("the benchmark holds no problems")
        exact: dict[bytes, int] = {}
        per_problem = []
        for i, problem in enumerate(problems):
            normalized = normalize_code(problem.code)
            exact.setdefault(stream_digest(normalized.tokens), i)
            per_problem.append(ngram_hashes(token_ids(normalized.shape()), n))
        owners = np.concatenate([np.full(len(g), i, np.int32) for i, g in enumerate(per_problem)])
        hashes = np.concatenate(per_problem)
        order = np.argsort(hashes, kind="stable")
        hashes, owners = hashes[order], owners[order]
        grams, df = np.unique(hashes, return_counts=True)
        common = grams[df >= max(2, common_fraction * len(problems))]
        keep = ~np.isin(hashes, common)
        hashes, owners = hashes[keep], owners[keep]
        grams, starts = np.unique(hashes, return_index=True)
        starts = np.append(starts, len(hashes))
        sizes = np.bincount(owners, minlength=len(problems))
        keys = tuple(p.key for p in problems)
        return cls(keys, n, exact, grams, starts, owners, sizes, common)

    def match(self, code: str) -> tuple[int | None, float, int, bool, bool]:
        """(best problem or None, overlap, shared n-grams, exact?, parsed?) for one module."""
        normalized = normalize_code(code)
        found = self.exact.get(stream_digest(normalized.tokens))
        if found is not None:
            return found, 1.0, int(self.sizes[found]), True, normalized.parsed
        grams = ngram_hashes(token_ids(normalized.shape()), self.n)
        grams = grams[~np.isin(grams, self.common, assume_unique=True)]
        hits = self._shared(grams)
        if hits is None:
            return None, 0.0, 0, False, normalized.parsed
        overlap = np.minimum(hits / len(grams), hits / np.maximum(self.sizes, 1))
        best = int(overlap.argmax())
        return best, float(overlap[best]), int(hits[best]), False, normalized.parsed

    def _shared(self, grams: np.ndarray) -> np.ndarray | None:
        """How many of `grams` each problem holds; None when none does."""
        if len(grams) == 0 or len(self.grams) == 0:
            return None
        pos = np.minimum(np.searchsorted(self.grams, grams), len(self.grams) - 1)
        pos = pos[self.grams[pos] == grams]
        if len(pos) == 0:
            return None
        # the owners of every matched n-gram, gathered from their CSR slices at once
        lengths = self.starts[pos + 1] - self.starts[pos]
        first = np.repeat(self.starts[pos] - np.cumsum(lengths) + lengths, lengths)
        return np.bincount(self.owners[first + np.arange(lengths.sum())], minlength=len(self.keys))


_worker_index: BenchmarkIndex | None = None


def _install(index: BenchmarkIndex) -> None:
    global _worker_index
    _worker_index = index


def _match_in_worker(code: str) -> tuple[int | None, float, int, bool, bool]:
    assert _worker_index is not None, "map_codes runs _install first"
    return _worker_index.match(code)


def match_codes(
    codes: Iterable[str],
    index: BenchmarkIndex,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_shared: int = DEFAULT_MIN_SHARED,
    workers: int = 1,
) -> list[Contamination]:
    """One verdict per code, in order. Pass distinct codes: each is normalised once per call."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"overlap threshold must be in (0, 1], got {threshold}")
    verdicts = []
    results = map_codes(
        _match_in_worker, codes, workers=workers, initializer=_install, initargs=(index,)
    )
    for best, overlap, shared, exact, parsed in results:
        flagged = exact or (best is not None and overlap >= threshold and shared >= min_shared)
        key = index.keys[best] if flagged and best is not None else None
        verdicts.append(Contamination(flagged, key, round(overlap, 4), shared, exact, parsed))
    return verdicts
