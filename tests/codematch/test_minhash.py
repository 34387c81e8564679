import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from kbpipe.codematch.minhash import lsh_bands, module_clusters
from kbpipe.codematch.normalize import normalize_code
from kbpipe.codematch.variants import kernelbook_copy, random_modules


def test_lsh_bands_for_085_favour_candidates_above_the_threshold() -> None:
    bands, rows = lsh_bands(0.85)
    assert bands * rows <= 128
    p = lambda s: 1 - (1 - s**rows) ** bands  # noqa: E731
    assert p(0.95) > 0.99 and p(0.5) < 0.01


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(2, 40))
def test_exact_normalised_duplicates_are_never_split(seed, n) -> None:
    rng = random.Random(seed)
    codes, _ = random_modules(n, seed=seed, copy_share=0.0)
    # renamed, reformatted copies: different text, one normalised stream
    copies = [kernelbook_copy(rng.choice(codes), rng) for _ in range(n)]
    every = codes + copies
    rng.shuffle(every)
    clusters = module_clusters(every, similarity=0.99)
    by_stream = defaultdict(set)
    for code, cluster in zip(every, clusters.cluster_ids, strict=True):
        by_stream[tuple(normalize_code(code).tokens)].add(cluster)
    assert all(len(ids) == 1 for ids in by_stream.values())


def test_copies_cluster_with_their_original_and_strangers_do_not() -> None:
    codes, origin = random_modules(600, seed=1, copy_share=0.15)
    ids = module_clusters(codes).cluster_ids
    clusters_of = defaultdict(set)
    for o, c in zip(origin, ids, strict=True):
        clusters_of[o].add(c)
    copied = [o for o in set(origin) if origin.count(o) > 1]
    together = sum(len(clusters_of[o]) == 1 for o in copied) / len(copied)
    assert together >= 0.9  # edited copies of tiny modules can fall below 0.85
    assert len(set(ids)) > 0.8 * len(set(origin))


def test_cluster_ids_do_not_depend_on_row_order_or_workers() -> None:
    codes, _ = random_modules(450, seed=2, copy_share=0.2)
    first = dict(zip(codes, module_clusters(codes).cluster_ids, strict=True))
    shuffled = codes[::-1]
    again = module_clusters(shuffled, workers=2)
    assert dict(zip(shuffled, again.cluster_ids, strict=True)) == first
    assert sum(k * v for k, v in again.size_histogram.items()) == again.n_distinct


def test_empty_and_unparsable_modules_get_clusters_of_their_own() -> None:
    result = module_clusters(["", "print 'x'", "", "def f(:"])
    assert result.cluster_ids[0] == result.cluster_ids[2]
    assert len(set(result.cluster_ids)) == 3
    assert result.n_unparsed == 2
