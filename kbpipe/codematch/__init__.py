"""Matching PyTorch module code: normalisation, KernelBench contamination, near-duplicates."""
