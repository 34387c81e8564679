"""Solution extraction, the static reward-hack audit and GPU re-execution.

Importing this package imports nothing heavy: the audit needs only `ast`, and
torch/triton are imported inside the GPU worker processes (see docs/verify.md).
"""
