"""The static audit's vocabulary: its flags and its allow- and deny-lists, as data.

Everything the audit (`kbpipe.verify.audit`) decides by name is here, so a
reviewer changes a list, not the walker.

How a call on the forward path is classified (dotted names are resolved
through the file's imports and module-level aliases first, so `F.conv2d`,
`torch.nn.functional.conv2d` and `from torch.nn.functional import conv2d`
are one name):

- `torch.<name>`: compute only when `name` is in `TORCH_COMPUTE`. The torch
  namespace is huge and mostly allocation, views and dtype bookkeeping, so an
  unknown name counts as bookkeeping: a new allocation helper must not flag an
  honest kernel.
- `torch.nn.functional.<name>` and the other `COMPUTE_NAMESPACES`: compute
  unless `name` is in `FUNCTIONAL_ALLOWED` (padding and other pure data
  movement). Nearly everything there computes.
- `torch.nn.<Class>` submodules (built in `__init__` and called in forward, or
  built and called in forward): compute unless the class is in `NN_ALLOWED`
  (containers, parameters, identity-in-eval layers). A container is compute
  when it holds a compute module.
- a method call on a local value (`x.softmax(-1)`, `w.t().matmul(x)`): compute
  when the method is in `TENSOR_METHOD_COMPUTE`; the receiver's type is unknown
  statically, so the list holds only names that mean tensor compute.
- `a @ b` is compute (a matmul).
- Any name containing a segment of `COMPUTE_SEGMENTS` (inductor's
  `extern_kernels.mm`/`convolution`) is compute.

Elementwise Python operators (`+`, `*`) are never counted: a launcher adding a
bias after a kernel is common, harmless and indistinguishable from shape math.
"""

from __future__ import annotations

# Flag -> what it means. The order is the order flags are reported in.
FLAGS: dict[str, str] = {
    "no_answer": "the completion holds no solution in any accepted answer format",
    "syntax_error": "the solution does not parse as Python",
    "missing_class": "no module-level class `{module}New`",
    "no_triton_kernel": "no function decorated with triton.jit (alone or under autotune)",
    "kernel_not_launched": "Triton kernels exist but none is launched (`kernel[grid](...)`) "
    "from code reachable from `{module}New.forward`",
    "torch_compute_in_forward": "the forward path computes with torch ops and launches no "
    "Triton kernel",
    "partial_torch_compute": "a Triton kernel is launched, but the forward path also computes "
    "with torch ops (informational)",
    "reference_fallback": "a try/except around a launch whose handler computes with torch, or "
    "an import, instantiation or subclass of the reference class",
}

# Flags that describe a row without failing `audit_ok`.
INFORMATIONAL = frozenset({"partial_torch_compute"})

# Decorators that make a function a Triton kernel (resolved dotted names).
JIT_DECORATORS = frozenset(
    {
        "triton.jit",
        "triton.autotune",
        "triton.heuristics",
        "triton.runtime.jit",
        "triton.runtime.jit.jit",
        "triton.runtime.autotune",
        "triton.runtime.autotuner.autotune",
    }
)

# Launching a kernel: `kernel[grid](...)`, or inductor's older `kernel.run(..., grid=...)`.
LAUNCH_METHODS = frozenset({"run"})

TORCH_COMPUTE = frozenset(
    {
        # matmul family
        "matmul", "mm", "bmm", "addmm", "addmv", "addbmm", "baddbmm", "mv", "dot",
        "einsum", "tensordot", "chain_matmul", "cdist",
        # convolutions and pooling
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "convolution", "max_pool1d", "max_pool2d", "max_pool3d",
        "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
        "adaptive_max_pool1d",
        # normalisation and attention
        "softmax", "log_softmax", "layer_norm", "group_norm", "batch_norm",
        "instance_norm", "rms_norm", "native_layer_norm", "native_batch_norm",
        "scaled_dot_product_attention",
        # reductions
        "sum", "mean", "var", "std", "var_mean", "std_mean", "prod", "cumsum", "cumprod",
        "logsumexp", "norm", "amax", "amin", "max", "min", "argmax", "argmin", "topk",
        "sort", "median",
        # elementwise math and activations
        "relu", "relu_", "sigmoid", "tanh", "exp", "exp2", "expm1", "log", "log1p", "log2",
        "sqrt", "rsqrt", "pow", "square", "abs", "neg", "reciprocal", "erf", "sin", "cos",
        "clamp", "clip", "maximum", "minimum", "where", "lerp", "addcmul", "addcdiv",
        "add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod",
        "hardtanh", "selu", "celu", "rrelu", "prelu", "threshold", "dropout",
        "embedding", "embedding_bag", "pixel_shuffle", "flip",
    }
)  # fmt: skip

COMPUTE_NAMESPACES = (
    "torch.nn.functional.",
    "torch.ops.aten.",
    "torch._C._nn.",
    "torch.linalg.",
    "torch.fft.",
    "torch.special.",
)

COMPUTE_SEGMENTS = frozenset({"extern_kernels"})

# Pure data movement inside the compute namespaces.
FUNCTIONAL_ALLOWED = frozenset({"pad", "unfold", "fold", "one_hot"})

NN_ALLOWED = frozenset(
    {
        "Module", "ModuleList", "ModuleDict", "Sequential", "Parameter", "ParameterList",
        "ParameterDict", "Buffer", "Identity", "Flatten", "Unflatten",
        # identities in eval mode, which is how verify runs both modules
        "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
    }
)  # fmt: skip

# nn containers: compute when one of their arguments builds a compute module.
NN_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})

TENSOR_METHOD_COMPUTE = frozenset(
    {
        "matmul", "mm", "bmm", "addmm", "baddbmm", "softmax", "log_softmax", "relu",
        "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "exp", "exp_", "log", "sqrt",
        "rsqrt", "pow", "sum", "mean", "var", "std", "amax", "amin", "max", "min",
        "argmax", "argmin", "logsumexp", "norm", "cumsum", "prod", "abs", "clamp",
        "clamp_", "erf", "topk", "sort",
    }
)  # fmt: skip

# Modules whose names may shadow the reference class without being it
# (`from torch.nn import Softmax` in a solution for a module named Softmax).
LIBRARY_ROOTS = frozenset({"torch", "triton", "math", "numpy", "typing", "functools"})


def is_informational(flag: str) -> bool:
    return flag in INFORMATIONAL


def is_compute_path(path: str) -> bool:
    """Whether calling the resolved dotted name `path` is torch compute (module docstring)."""
    parts = path.split(".")
    if COMPUTE_SEGMENTS.intersection(parts):
        return True
    for namespace in COMPUTE_NAMESPACES:
        if path.startswith(namespace):
            return parts[-1] not in FUNCTIONAL_ALLOWED
    if len(parts) == 2 and parts[0] == "torch":
        return parts[1] in TORCH_COMPUTE
    if path.startswith("torch.nn.") and len(parts) == 3:
        return is_compute_layer(parts[2])  # building (and calling) a layer inside forward
    return False


def is_compute_layer(cls: str) -> bool:
    """Whether the `torch.nn` class `cls` computes (containers are judged by their contents)."""
    return cls[:1].isupper() and cls not in NN_ALLOWED
