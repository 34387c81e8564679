"""Matching PyTorch module code: normalisation, KernelBench contamination, near-duplicates."""

# Estimated Jaccard similarity from which two modules share a near-duplicate cluster.
DEFAULT_SIMILARITY = 0.85
