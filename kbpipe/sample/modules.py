"""Data for the bundled sample: hand-written PyTorch modules and the Triton templates.

Each `ModuleSource` is one KernelBook-style task: a real `nn.Module` with
`get_inputs()` / `get_init_inputs()`, a difficulty tier, and the recipe for its
Triton answer (which kernel templates to instantiate and the body of
`{name}New.forward`, which calls the launchers those templates define). The
generator in `kbpipe.sample.generator` turns the recipe into code; this file is only data.

Kernel templates use `string.Template` (`$name`) placeholders because the
generated Python is full of braces and parentheses but never contains `$`.
"""

from __future__ import annotations

from typing import NamedTuple


class Kernel(NamedTuple):
    """One template instance: `template` names an entry of TEMPLATES, `fn` its launcher."""

    template: str
    fn: str
    params: tuple[tuple[str, str], ...] = ()


class ModuleSource(NamedTuple):
    name: str
    tier: str
    kind: str
    summary: str
    repo_name: str
    python_code: str
    kernels: tuple[Kernel, ...]
    forward: str


def unary(fn: str, body: str, scalars: tuple[str, ...] = ()) -> Kernel:
    return Kernel("unary", fn, (("body", body), ("scalars", ",".join(scalars))))


def binary(fn: str, body: str) -> Kernel:
    return Kernel("binary", fn, (("body", body),))


def row_map(fn: str, body: str, other: str = "0.0", ptrs: tuple[str, ...] = ()) -> Kernel:
    return Kernel("row_map", fn, (("body", body), ("other", other), ("ptrs", ",".join(ptrs))))


def row_reduce(fn: str, combine: str, finish: str, init: str = "0.0", other: str = "0.0") -> Kernel:
    params = (("combine", combine), ("finish", finish), ("init", init), ("other", other))
    return Kernel("row_reduce", fn, params)


def linear(fn: str, epilogue: str = "") -> Kernel:
    return Kernel("linear", fn, (("epilogue", epilogue),))


def bmm(fn: str = "bmm") -> Kernel:
    return Kernel("bmm", fn)


def channel_affine(fn: str, epilogue: str = "") -> Kernel:
    return Kernel("channel_affine", fn, (("epilogue", epilogue),))


def raw(fn: str) -> Kernel:
    return Kernel("raw_" + fn, fn)


RELU = "acc = tl.maximum(acc, 0.0)"
GELU = "acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))"
SIGMOID = "acc = tl.sigmoid(acc)"

SOFTMAX = """row_max = tl.max(x, axis=0)
num = tl.exp(x - row_max)
den = tl.sum(num, axis=0)
out = num / den"""

LAYER_NORM = """mean = tl.sum(x, axis=0) / n_cols
diff = tl.where(mask, x - mean, 0.0)
var = tl.sum(diff * diff, axis=0) / n_cols
rstd = 1.0 / tl.sqrt(var + eps)
w = tl.load(weight_ptr + cols, mask=mask, other=1.0)
b = tl.load(bias_ptr + cols, mask=mask, other=0.0)
out = diff * rstd * w + b"""

SUM_ROWS = ("acc + x", "tl.sum(acc, axis=0)")
MEAN_ROWS = ("acc + x", "tl.sum(acc, axis=0) / n_cols")

# --------------------------------------------------------------------------- templates

_ELEMENTWISE_HEAD = """    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements"""

TEMPLATES: dict[str, str] = {
    "unary": """@triton.jit
def _${fn}_kernel(x_ptr, out_ptr, ${scalar_params}n_elements, BLOCK_SIZE: tl.constexpr):
"""
    + _ELEMENTWISE_HEAD
    + """
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    ${body}
    tl.store(out_ptr + offsets, out, mask=mask)


def ${fn}(x${scalar_args}):
    x = x.contiguous()
    out = torch.empty_like(x)
    n_elements = x.numel()
    grid = (triton.cdiv(n_elements, ${block}),)
    _${fn}_kernel[grid](x, out, ${scalar_pass}n_elements, BLOCK_SIZE=${block}, num_warps=${warps})
    return out
""",
    "binary": """@triton.jit
def _${fn}_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
"""
    + _ELEMENTWISE_HEAD
    + """
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    y = tl.load(y_ptr + offsets, mask=mask, other=0.0)
    ${body}
    tl.store(out_ptr + offsets, out, mask=mask)


def ${fn}(x, y):
    # broadcasting is resolved on the host so the kernel only sees flat, equal-length buffers
    x, y = torch.broadcast_tensors(x, y)
    x = x.contiguous()
    y = y.contiguous()
    out = torch.empty_like(x)
    n_elements = out.numel()
    grid = (triton.cdiv(n_elements, ${block}),)
    _${fn}_kernel[grid](x, y, out, n_elements, BLOCK_SIZE=${block}, num_warps=${warps})
    return out
""",
    "row_map": """@triton.jit
def _${fn}_kernel(x_ptr, ${ptr_params}out_ptr, stride_row, n_cols, eps, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_row + cols, mask=mask, other=${other}).to(tl.float32)
    ${body}
    tl.store(out_ptr + row * stride_row + cols, out, mask=mask)


def ${fn}(x${ptr_args}, eps=1e-5):
    shape = x.shape
    x2d = x.reshape(-1, shape[-1]).contiguous()
    out = torch.empty_like(x2d)
    n_rows, n_cols = x2d.shape
    # one program owns a whole row, so the block must cover it
    BLOCK_SIZE = triton.next_power_of_2(n_cols)
    _${fn}_kernel[(n_rows,)](x2d, ${ptr_pass}out, x2d.stride(0), n_cols, eps, BLOCK_SIZE=BLOCK_SIZE)
    return out.reshape(shape)
""",
    "row_reduce": """@triton.jit
def _${fn}_kernel(x_ptr, out_ptr, stride_row, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    acc = tl.zeros([BLOCK_SIZE], dtype=tl.float32) + ${init}
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        mask = cols < n_cols
        x = tl.load(x_ptr + row * stride_row + cols, mask=mask, other=${other}).to(tl.float32)
        acc = ${combine}
    out = ${finish}
    tl.store(out_ptr + row, out)


def ${fn}(x, dim=-1, keepdim=False):
    x_t = x.movedim(dim, -1)
    out_shape = x_t.shape[:-1]
    x2d = x_t.reshape(-1, x_t.shape[-1]).contiguous()
    n_rows, n_cols = x2d.shape
    out = torch.empty(n_rows, device=x.device, dtype=x.dtype)
    BLOCK_SIZE = min(triton.next_power_of_2(n_cols), ${block})
    _${fn}_kernel[(n_rows,)](x2d, out, x2d.stride(0), n_cols, BLOCK_SIZE=BLOCK_SIZE)
    out = out.reshape(out_shape)
    return out.unsqueeze(dim) if keepdim else out
""",
    "linear": """@triton.jit
def _${fn}_kernel(
    a_ptr, b_ptr, bias_ptr, c_ptr, M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(axis=0)
    pid_n = tl.program_id(axis=1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a_mask = (offs_m[:, None] < M) & (offs_k[None, :] + k < K)
        b_mask = (offs_k[:, None] + k < K) & (offs_n[None, :] < N)
        a = tl.load(a_ptr + offs_m[:, None] * stride_am + (offs_k[None, :] + k) * stride_ak,
                    mask=a_mask, other=0.0)
        b = tl.load(b_ptr + (offs_k[:, None] + k) * stride_bk + offs_n[None, :] * stride_bn,
                    mask=b_mask, other=0.0)
        acc += tl.dot(a, b)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0)[None, :]
    ${epilogue}
    c_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn, acc, mask=c_mask)


def ${fn}(x, weight, bias=None):
    lead = x.shape[:-1]
    a = x.reshape(-1, x.shape[-1]).contiguous()
    M, K = a.shape
    N = weight.shape[0]
    out = torch.empty((M, N), device=x.device, dtype=x.dtype)
    grid = (triton.cdiv(M, ${bm}), triton.cdiv(N, ${bn}))
    # weight is (N, K) as in nn.Linear: swapping its strides reads it as W^T without a copy
    _${fn}_kernel[grid](
        a, weight, bias if bias is not None else a, out, M, N, K,
        a.stride(0), a.stride(1), weight.stride(1), weight.stride(0),
        out.stride(0), out.stride(1),
        HAS_BIAS=bias is not None, BLOCK_M=${bm}, BLOCK_N=${bn}, BLOCK_K=${bk},
    )
    return out.reshape(*lead, N)
""",
    "bmm": """@triton.jit
def _${fn}_kernel(
    a_ptr, b_ptr, c_ptr, M, N, K, scale,
    stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn,
    stride_cb, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(axis=0)
    pid_n = tl.program_id(axis=1)
    pid_b = tl.program_id(axis=2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptr += pid_b * stride_ab
    b_ptr += pid_b * stride_bb
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + offs_m[:, None] * stride_am + (offs_k[None, :] + k) * stride_ak,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] + k < K), other=0.0)
        b = tl.load(b_ptr + (offs_k[:, None] + k) * stride_bk + offs_n[None, :] * stride_bn,
                    mask=(offs_k[:, None] + k < K) & (offs_n[None, :] < N), other=0.0)
        acc += tl.dot(a, b)
    acc = acc * scale
    c_ptrs = c_ptr + pid_b * stride_cb + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, acc, mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def ${fn}(a, b, scale=1.0):
    lead = a.shape[:-2]
    a3 = a.reshape(-1, a.shape[-2], a.shape[-1])
    b3 = b.reshape(-1, b.shape[-2], b.shape[-1])
    n_batch, M, K = a3.shape
    N = b3.shape[-1]
    out = torch.empty((n_batch, M, N), device=a.device, dtype=a.dtype)
    grid = (triton.cdiv(M, ${bm}), triton.cdiv(N, ${bn}), n_batch)
    _${fn}_kernel[grid](
        a3, b3, out, M, N, K, scale,
        a3.stride(0), a3.stride(1), a3.stride(2), b3.stride(0), b3.stride(1), b3.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        BLOCK_M=${bm}, BLOCK_N=${bn}, BLOCK_K=${bk},
    )
    return out.reshape(*lead, M, N)
""",
    "channel_affine": """@triton.jit
def _${fn}_kernel(
    x_ptr, scale_ptr, shift_ptr, out_ptr, n_elements, C, HW,
    HAS_SCALE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
"""
    + _ELEMENTWISE_HEAD
    + """
    channel = (offsets // HW) % C
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    shift = tl.load(shift_ptr + channel, mask=mask, other=0.0)
    if HAS_SCALE:
        acc = x * tl.load(scale_ptr + channel, mask=mask, other=1.0) + shift
    else:
        acc = x + shift
    ${epilogue}
    tl.store(out_ptr + offsets, acc, mask=mask)


def ${fn}(x, scale, shift):
    x = x.contiguous()
    out = torch.empty_like(x)
    n_elements = x.numel()
    C = x.shape[1]
    HW = n_elements // (x.shape[0] * C)
    grid = (triton.cdiv(n_elements, ${block}),)
    # without a scale the shift doubles as a dummy pointer; HAS_SCALE keeps it unread
    _${fn}_kernel[grid](
        x, scale if scale is not None else shift, shift, out, n_elements, C, HW,
        HAS_SCALE=scale is not None, BLOCK_SIZE=${block}, num_warps=${warps},
    )
    return out
""",
    "raw_fold_bn": """def fold_bn(bn):
    # eval-mode BatchNorm is a per-channel affine map; folding it keeps the kernel elementwise
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale
""",
    "raw_logsumexp": """@triton.jit
def _logsumexp_kernel(x_ptr, out_ptr, stride_row, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_row + cols, mask=mask, other=-float('inf')).to(tl.float32)
    row_max = tl.max(x, axis=0)
    total = tl.sum(tl.exp(x - row_max), axis=0)
    tl.store(out_ptr + row, row_max + tl.log(total))


def logsumexp(x):
    x2d = x.reshape(-1, x.shape[-1]).contiguous()
    n_rows, n_cols = x2d.shape
    out = torch.empty(n_rows, device=x.device, dtype=x.dtype)
    BLOCK_SIZE = triton.next_power_of_2(n_cols)
    _logsumexp_kernel[(n_rows,)](x2d, out, x2d.stride(0), n_cols, BLOCK_SIZE=BLOCK_SIZE)
    return out.reshape(x.shape[:-1])
""",
    "raw_cosine_rows": """@triton.jit
def _cosine_rows_kernel(a_ptr, b_ptr, out_ptr, n_cols, eps, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(axis=0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    a = tl.load(a_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    dot = tl.sum(a * b, axis=0)
    norm_a = tl.sqrt(tl.sum(a * a, axis=0))
    norm_b = tl.sqrt(tl.sum(b * b, axis=0))
    tl.store(out_ptr + row, dot / tl.maximum(norm_a * norm_b, eps))


def cosine_rows(a, b, eps=1e-8):
    a, b = torch.broadcast_tensors(a, b)
    a2 = a.reshape(-1, a.shape[-1]).contiguous()
    b2 = b.reshape(-1, b.shape[-1]).contiguous()
    n_rows, n_cols = a2.shape
    out = torch.empty(n_rows, device=a.device, dtype=a.dtype)
    BLOCK_SIZE = triton.next_power_of_2(n_cols)
    _cosine_rows_kernel[(n_rows,)](a2, b2, out, n_cols, eps, BLOCK_SIZE=BLOCK_SIZE)
    return out.reshape(a.shape[:-1])
""",
    "raw_gru_gates": """@triton.jit
def _gru_gates_kernel(gi_ptr, gh_ptr, h_ptr, out_ptr, n_elements, H, BLOCK_SIZE: tl.constexpr):
"""
    + _ELEMENTWISE_HEAD
    + """
    b = offsets // H
    j = offsets % H
    base = b * 3 * H + j
    r = tl.sigmoid(tl.load(gi_ptr + base, mask=mask) + tl.load(gh_ptr + base, mask=mask))
    z = tl.sigmoid(tl.load(gi_ptr + base + H, mask=mask) + tl.load(gh_ptr + base + H, mask=mask))
    n_pre = tl.load(gi_ptr + base + 2 * H, mask=mask)
    n_pre += r * tl.load(gh_ptr + base + 2 * H, mask=mask)
    n = 2.0 * tl.sigmoid(2.0 * n_pre) - 1.0
    h = tl.load(h_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, n + z * (h - n), mask=mask)


def gru_gates(gi, gh, h):
    h = h.contiguous()
    out = torch.empty_like(h)
    n_elements = h.numel()
    grid = (triton.cdiv(n_elements, ${block}),)
    _gru_gates_kernel[grid](gi.contiguous(), gh.contiguous(), h, out, n_elements, h.shape[1],
                            BLOCK_SIZE=${block})
    return out
""",
    "raw_lstm_gates": """@triton.jit
def _lstm_gates_kernel(g_ptr, c_ptr, h_out_ptr, c_out_ptr, n_elements, H, BLOCK_SIZE: tl.constexpr):
"""
    + _ELEMENTWISE_HEAD
    + """
    base = (offsets // H) * 4 * H + offsets % H
    i = tl.sigmoid(tl.load(g_ptr + base, mask=mask))
    f = tl.sigmoid(tl.load(g_ptr + base + H, mask=mask))
    g = 2.0 * tl.sigmoid(2.0 * tl.load(g_ptr + base + 2 * H, mask=mask)) - 1.0
    o = tl.sigmoid(tl.load(g_ptr + base + 3 * H, mask=mask))
    c = f * tl.load(c_ptr + offsets, mask=mask) + i * g
    tl.store(c_out_ptr + offsets, c, mask=mask)
    tl.store(h_out_ptr + offsets, o * (2.0 * tl.sigmoid(2.0 * c) - 1.0), mask=mask)


def lstm_gates(gates, c):
    c = c.contiguous()
    h_out = torch.empty_like(c)
    c_out = torch.empty_like(c)
    n_elements = c.numel()
    grid = (triton.cdiv(n_elements, ${block}),)
    _lstm_gates_kernel[grid](gates.contiguous(), c, h_out, c_out, n_elements, c.shape[1],
                             BLOCK_SIZE=${block})
    return h_out, c_out
""",
    "raw_scale_channels": """@triton.jit
def _scale_channels_kernel(x_ptr, s_ptr, out_ptr, n_elements, HW, BLOCK_SIZE: tl.constexpr):
"""
    + _ELEMENTWISE_HEAD
    + """
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    s = tl.load(s_ptr + offsets // HW, mask=mask, other=0.0)
    tl.store(out_ptr + offsets, x * s, mask=mask)


def scale_channels(x, s):
    x = x.contiguous()
    out = torch.empty_like(x)
    n_elements = x.numel()
    HW = n_elements // s.numel()
    grid = (triton.cdiv(n_elements, ${block}),)
    _scale_channels_kernel[grid](x, s.contiguous(), out, n_elements, HW, BLOCK_SIZE=${block})
    return out
""",
}

# One line per template for the short explanation in the completion.
KERNEL_NOTES: dict[str, str] = {
    "unary": "elementwise over the flattened tensor, BLOCK_SIZE={block} with a masked tail",
    "binary": "elementwise over two broadcast inputs, BLOCK_SIZE={block}, masked tail",
    "row_map": "one program per row, the whole row in registers, fp32 math",
    "row_reduce": "one program per output row, looping over the reduced dim in blocks",
    "linear": "tiled GEMM ({bm}x{bn}x{bk}) with the bias and epilogue fused into the store",
    "bmm": "batched tiled GEMM ({bm}x{bn}x{bk}), the scale applied before the store",
    "channel_affine": "per-channel scale/shift fused with the activation, BLOCK_SIZE={block}",
    "raw_fold_bn": "host helper folding eval-mode BatchNorm into a per-channel affine map",
    "raw_logsumexp": "one program per row, max-shifted exp-sum for stability",
    "raw_cosine_rows": "one program per row computing dot and both norms in one pass",
    "raw_gru_gates": "all GRU gate math fused into one elementwise pass over the hidden state",
    "raw_lstm_gates": "all LSTM gate math fused, writing h and c in one pass",
    "raw_scale_channels": "broadcast multiply of each (batch, channel) plane by its gate",
}

# --------------------------------------------------------------------------- modules
# Repos are invented; a few modules share one, as KernelBook modules often do.
_ACT = "tinyml-lab/activation-zoo"
_OPS = "gridwise/tensor-ops"
_NORM = "kestrel-ai/normalization-layers"
_ATTN = "mlfromscratch/attention-playground"
_VISION = "pixelforge/vision-blocks"
_RNN = "seqmodels/recurrent-cells"
_PORTS = "gpu-katas/kernel-exercises"

MODULES: tuple[ModuleSource, ...] = (
    # ---------------------------------------------------------------- low: copies, elementwise
    ModuleSource(
        name="Identity",
        tier="low",
        kind="copy",
        summary="It returns its input unchanged.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class Identity(nn.Module):

    def __init__(self):
        super(Identity, self).__init__()

    def forward(self, x):
        return x


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("copy", "out = x"),),
        forward="return copy(x)",
    ),
    ModuleSource(
        name="ReLU",
        tier="low",
        kind="elementwise",
        summary="It applies max(x, 0) to every element.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn


class ReLU(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("relu", "out = tl.maximum(x, 0.0)"),),
        forward="return relu(x)",
    ),
    ModuleSource(
        name="AddTensors",
        tier="low",
        kind="elementwise",
        summary="It adds two tensors of the same shape.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class AddTensors(nn.Module):

    def __init__(self):
        super(AddTensors, self).__init__()

    def forward(self, x, y):
        return x + y


def get_inputs():
    return [torch.rand([4, 4, 4, 4]), torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(binary("add", "out = x + y"),),
        forward="return add(x, y)",
    ),
    ModuleSource(
        name="Scale",
        tier="low",
        kind="elementwise",
        summary="It multiplies the input by a fixed scalar.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class Scale(nn.Module):
    # a constant multiplier, e.g. to damp a residual branch

    def __init__(self, scale=0.5):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {'scale': 0.5}]
""",
        kernels=(unary("scale_mul", "out = x * alpha", ("alpha",)),),
        forward="return scale_mul(x, self.scale)",
    ),
    ModuleSource(
        name="GELU",
        tier="low",
        kind="elementwise",
        summary="It applies the exact (erf) GELU activation.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class GELU(nn.Module):

    def __init__(self):
        super(GELU, self).__init__()

    def forward(self, x):
        return F.gelu(x)


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("gelu", "out = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))"),),
        forward="return gelu(x)",
    ),
    ModuleSource(
        name="Swish",
        tier="low",
        kind="elementwise",
        summary="It computes x * sigmoid(x).",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn


class Swish(nn.Module):

    def __init__(self):
        super(Swish, self).__init__()

    def forward(self, x):
        return x * torch.sigmoid(x)


def get_inputs():
    return [torch.rand([8, 16, 32])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("swish", "out = x * tl.sigmoid(x)"),),
        forward="return swish(x)",
    ),
    ModuleSource(
        name="HardSigmoid",
        tier="low",
        kind="elementwise",
        summary="It computes relu6(x + 3) / 6.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class HardSigmoid(nn.Module):

    def __init__(self, inplace=False):
        super(HardSigmoid, self).__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu6(x + 3.0, inplace=self.inplace) / 6.0


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("hard_sigmoid", "out = tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0"),),
        forward="return hard_sigmoid(x)",
    ),
    ModuleSource(
        name="TanhActivation",
        tier="low",
        kind="elementwise",
        summary="It applies tanh elementwise.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn


class TanhActivation(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, input):
        return torch.tanh(input)


def get_inputs():
    return [torch.randn([2, 64, 64])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("tanh", "out = 2.0 * tl.sigmoid(2.0 * x) - 1.0"),),
        forward="return tanh(input)",
    ),
    ModuleSource(
        name="LeakyReLU",
        tier="low",
        kind="elementwise",
        summary="It applies a leaky ReLU with a set slope.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class LeakyReLU(nn.Module):

    def __init__(self, negative_slope=0.2):
        super(LeakyReLU, self).__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


def get_inputs():
    return [torch.randn([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {'negative_slope': 0.2}]
""",
        kernels=(unary("leaky_relu", "out = tl.where(x > 0, x, x * slope)", ("slope",)),),
        forward="return leaky_relu(x, self.negative_slope)",
    ),
    ModuleSource(
        name="HSwish",
        tier="low",
        kind="elementwise",
        summary="It computes x * relu6(x + 3) / 6.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class HSwish(nn.Module):
    # MobileNetV3's cheap swish approximation

    def __init__(self):
        super(HSwish, self).__init__()

    def forward(self, x):
        out = x * F.relu6(x + 3, inplace=True) / 6
        return out


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(unary("hswish", "out = x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0"),),
        forward="return hswish(x)",
    ),
    ModuleSource(
        name="ClampModule",
        tier="low",
        kind="elementwise",
        summary="It clamps values into [min_val, max_val].",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class ClampModule(nn.Module):

    def __init__(self, min_val=-0.5, max_val=0.5):
        super(ClampModule, self).__init__()
        self.min_val = min_val
        self.max_val = max_val

    def forward(self, x):
        return torch.clamp(x, self.min_val, self.max_val)


def get_inputs():
    return [torch.randn([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {'min_val': -0.5, 'max_val': 0.5}]
""",
        kernels=(unary("clamp", "out = tl.minimum(tl.maximum(x, lo), hi)", ("lo", "hi")),),
        forward="return clamp(x, self.min_val, self.max_val)",
    ),
    ModuleSource(
        name="Mish",
        tier="low",
        kind="elementwise",
        summary="It computes x * tanh(softplus(x)).",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class Mish(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x * torch.tanh(F.softplus(x))


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(
            unary(
                "mish",
                "sp = tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))\n"
                "out = x * (2.0 * tl.sigmoid(2.0 * sp) - 1.0)",
            ),
        ),
        forward="return mish(x)",
    ),
    ModuleSource(
        name="Softplus",
        tier="low",
        kind="elementwise",
        summary="It applies softplus with beta and a threshold.",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn


class Softplus(nn.Module):

    def __init__(self, beta=1.0, threshold=20.0):
        super(Softplus, self).__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, x):
        # above the threshold softplus is linear; skip the exp to avoid overflow
        scaled = x * self.beta
        return torch.where(scaled > self.threshold, x, torch.log1p(torch.exp(scaled)) / self.beta)


def get_inputs():
    return [torch.randn([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {'beta': 1.0, 'threshold': 20.0}]
""",
        kernels=(
            unary(
                "softplus",
                "bx = x * beta\nout = tl.where(bx > threshold, x, tl.log(1.0 + tl.exp(bx)) / beta)",
                ("beta", "threshold"),
            ),
        ),
        forward="return softplus(x, self.beta, self.threshold)",
    ),
    ModuleSource(
        name="ElementwiseMul",
        tier="low",
        kind="elementwise",
        summary="It multiplies two tensors elementwise.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class ElementwiseMul(nn.Module):

    def __init__(self):
        super(ElementwiseMul, self).__init__()

    def forward(self, a, b):
        return torch.mul(a, b)


def get_inputs():
    return [torch.rand([4, 4, 4, 4]), torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(binary("mul", "out = x * y"),),
        forward="return mul(a, b)",
    ),
    ModuleSource(
        name="SquaredDifference",
        tier="low",
        kind="elementwise",
        summary="It computes (x - y) ** 2.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class SquaredDifference(nn.Module):

    def __init__(self):
        super(SquaredDifference, self).__init__()

    def forward(self, x, y):
        return (x - y) ** 2


def get_inputs():
    return [torch.rand([4, 4, 4, 4]), torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(binary("sq_diff", "d = x - y\nout = d * d"),),
        forward="return sq_diff(x, y)",
    ),
    ModuleSource(
        name="AddReLU",
        tier="low",
        kind="elementwise",
        summary="It adds two tensors and applies ReLU.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class AddReLU(nn.Module):

    def __init__(self):
        super(AddReLU, self).__init__()
        self.relu = nn.ReLU()

    def forward(self, x, residual):
        return self.relu(x + residual)


def get_inputs():
    return [torch.rand([4, 4, 4, 4]), torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(binary("add_relu", "out = tl.maximum(x + y, 0.0)"),),
        forward="return add_relu(x, residual)",
    ),
    ModuleSource(
        name="GaussianActivation",
        tier="low",
        kind="elementwise",
        summary="It computes exp(-x^2 / (2 sigma^2)).",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn


class GaussianActivation(nn.Module):

    def __init__(self, sigma=1.0):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return torch.exp(-x.pow(2) / (2 * self.sigma ** 2))


def get_inputs():
    return [torch.randn([16, 64])]


def get_init_inputs():
    return [[], {'sigma': 1.0}]
""",
        kernels=(unary("gaussian", "out = tl.exp(-(x * x) / (2.0 * sigma * sigma))", ("sigma",)),),
        forward="return gaussian(x, self.sigma)",
    ),
    ModuleSource(
        name="GLU",
        tier="low",
        kind="elementwise",
        summary="It splits the last dim in two and gates a by sigmoid(b).",
        repo_name=_ACT,
        python_code="""import torch
import torch.nn as nn


class GLU(nn.Module):

    def __init__(self, dim=-1):
        super(GLU, self).__init__()
        self.dim = dim

    def forward(self, x):
        a, b = x.chunk(2, dim=self.dim)
        return a * torch.sigmoid(b)


def get_inputs():
    return [torch.rand([4, 4, 4, 8])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(binary("glu_gate", "out = x * tl.sigmoid(y)"),),
        forward="a, b = x.chunk(2, dim=self.dim)\nreturn glu_gate(a, b)",
    ),
    # ---------------------------------------------------------------- medium: reductions, GEMMs
    ModuleSource(
        name="SumAggregator",
        tier="medium",
        kind="reduction",
        summary="It sums neighbour features over dim 1.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class SumAggregator(nn.Module):

    def __init__(self):
        super(SumAggregator, self).__init__()

    def forward(self, neighbor):
        return torch.sum(neighbor, dim=1)


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(row_reduce("sum_dim", *SUM_ROWS),),
        forward="return sum_dim(neighbor, dim=1)",
    ),
    ModuleSource(
        name="MeanPool",
        tier="medium",
        kind="reduction",
        summary="It averages over the last dimension.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class MeanPool(nn.Module):

    def __init__(self, keepdim=False):
        super(MeanPool, self).__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.mean(dim=-1, keepdim=self.keepdim)


def get_inputs():
    return [torch.rand([8, 32, 128])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(row_reduce("mean_lastdim", *MEAN_ROWS),),
        forward="return mean_lastdim(x, dim=-1, keepdim=self.keepdim)",
    ),
    ModuleSource(
        name="ChannelMax",
        tier="medium",
        kind="reduction",
        summary="It takes the max over the channel dim.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn


class ChannelMax(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, x):
        # values only; the indices are not needed downstream
        return torch.max(x, dim=1)[0]


def get_inputs():
    return [torch.rand([4, 16, 8, 8])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(
            row_reduce(
                "max_dim",
                "tl.maximum(acc, x)",
                "tl.max(acc, axis=0)",
                init="-float('inf')",
                other="-float('inf')",
            ),
        ),
        forward="return max_dim(x, dim=1)",
    ),
    ModuleSource(
        name="Softmax",
        tier="medium",
        kind="normalization",
        summary="It applies softmax over the last dim.",
        repo_name=_NORM,
        python_code="""import torch
import torch.nn as nn


class Softmax(nn.Module):

    def __init__(self, dim=-1):
        super(Softmax, self).__init__()
        self.dim = dim

    def forward(self, x):
        return torch.softmax(x, dim=self.dim)


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(row_map("softmax", SOFTMAX, other="-float('inf')"),),
        forward="return softmax(x.movedim(self.dim, -1)).movedim(-1, self.dim)",
    ),
    ModuleSource(
        name="LogSoftmax",
        tier="medium",
        kind="normalization",
        summary="It applies log-softmax over the last dim.",
        repo_name=_NORM,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class LogSoftmax(nn.Module):

    def __init__(self):
        super(LogSoftmax, self).__init__()

    def forward(self, logits):
        return F.log_softmax(logits, dim=-1)


def get_inputs():
    return [torch.randn([32, 100])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(
            row_map(
                "log_softmax",
                "row_max = tl.max(x, axis=0)\n"
                "shifted = x - row_max\n"
                "out = shifted - tl.log(tl.sum(tl.exp(shifted), axis=0))",
                other="-float('inf')",
            ),
        ),
        forward="return log_softmax(logits)",
    ),
    ModuleSource(
        name="LayerNorm",
        tier="medium",
        kind="normalization",
        summary="It normalizes the last dim with the unbiased std and eps added outside the sqrt.",
        repo_name=_NORM,
        python_code="""import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    # the Annotated Transformer variant: unbiased std, eps added after the sqrt

    def __init__(self, features, eps=1e-06):
        super(LayerNorm, self).__init__()
        self.gamma = nn.Parameter(torch.ones(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.gamma * (x - mean) / (std + self.eps) + self.beta


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {'features': 4}]
""",
        kernels=(
            row_map(
                "layer_norm",
                "mean = tl.sum(x, axis=0) / n_cols\n"
                "diff = tl.where(mask, x - mean, 0.0)\n"
                "std = tl.sqrt(tl.sum(diff * diff, axis=0) / (n_cols - 1))\n"
                "w = tl.load(weight_ptr + cols, mask=mask, other=1.0)\n"
                "b = tl.load(bias_ptr + cols, mask=mask, other=0.0)\n"
                "out = w * diff / (std + eps) + b",
                ptrs=("weight", "bias"),
            ),
        ),
        forward="return layer_norm(x, self.gamma, self.beta, eps=self.eps)",
    ),
    ModuleSource(
        name="RMSNorm",
        tier="medium",
        kind="normalization",
        summary="It scales rows by their reciprocal RMS.",
        repo_name=_NORM,
        python_code="""import torch
import torch.nn as nn


class RMSNorm(nn.Module):

    def __init__(self, dim, eps=1e-06):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        norm = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * norm * self.weight


def get_inputs():
    return [torch.rand([2, 16, 64])]


def get_init_inputs():
    return [[], {'dim': 64}]
""",
        kernels=(
            row_map(
                "rms_norm",
                "rrms = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)\n"
                "w = tl.load(weight_ptr + cols, mask=mask, other=1.0)\n"
                "out = x * rrms * w",
                ptrs=("weight",),
            ),
        ),
        forward="return rms_norm(x, self.weight, eps=self.eps)",
    ),
    ModuleSource(
        name="L2Norm",
        tier="medium",
        kind="normalization",
        summary="It L2-normalizes each row of the last dim.",
        repo_name=_NORM,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class L2Norm(nn.Module):

    def __init__(self, eps=1e-12):
        super(L2Norm, self).__init__()
        self.eps = eps

    def forward(self, x):
        return F.normalize(x, p=2, dim=-1, eps=self.eps)


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(
            row_map(
                "l2_normalize",
                "norm = tl.sqrt(tl.sum(x * x, axis=0))\nout = x / tl.maximum(norm, eps)",
            ),
        ),
        forward="return l2_normalize(x, eps=self.eps)",
    ),
    ModuleSource(
        name="LogSumExp",
        tier="medium",
        kind="reduction",
        summary="It computes logsumexp over the last dim.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class LogSumExp(nn.Module):

    def __init__(self):
        super(LogSumExp, self).__init__()

    def forward(self, x):
        return torch.logsumexp(x, dim=-1)


def get_inputs():
    return [torch.randn([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(raw("logsumexp"),),
        forward="return logsumexp(x)",
    ),
    ModuleSource(
        name="GlobalAvgPool2d",
        tier="medium",
        kind="reduction",
        summary="It averages each channel over H and W.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn


class GlobalAvgPool2d(nn.Module):

    def __init__(self):
        super(GlobalAvgPool2d, self).__init__()

    def forward(self, inputs):
        return inputs.mean(dim=(2, 3))


def get_inputs():
    return [torch.rand([4, 16, 8, 8])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(row_reduce("mean_hw", *MEAN_ROWS),),
        forward="return mean_hw(inputs.flatten(2), dim=-1)",
    ),
    ModuleSource(
        name="LinearLayer",
        tier="medium",
        kind="matmul",
        summary="It is a single nn.Linear layer.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class LinearLayer(nn.Module):

    def __init__(self, in_features, out_features):
        super(LinearLayer, self).__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.fc(x)


def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {'in_features': 4, 'out_features': 4}]
""",
        kernels=(linear("linear"),),
        forward="return linear(x, self.fc.weight, self.fc.bias)",
    ),
    ModuleSource(
        name="BatchMatMul",
        tier="medium",
        kind="matmul",
        summary="It multiplies two batches of matrices.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class BatchMatMul(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.bmm(a, b)


def get_inputs():
    return [torch.rand([4, 16, 32]), torch.rand([4, 32, 8])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(bmm(),),
        forward="return bmm(a, b)",
    ),
    ModuleSource(
        name="AttentionScores",
        tier="medium",
        kind="matmul",
        summary="It computes q @ k^T / sqrt(d_k).",
        repo_name=_ATTN,
        python_code="""import math

import torch
import torch.nn as nn


class AttentionScores(nn.Module):

    def __init__(self, d_k):
        super(AttentionScores, self).__init__()
        self.d_k = d_k

    def forward(self, query, key):
        return torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.d_k)


def get_inputs():
    return [torch.rand([2, 4, 16, 8]), torch.rand([2, 4, 16, 8])]


def get_init_inputs():
    return [[], {'d_k': 8}]
""",
        kernels=(bmm(),),
        forward="return bmm(query, key.transpose(-2, -1), scale=1.0 / math.sqrt(self.d_k))",
    ),
    ModuleSource(
        name="CosineSimilarity",
        tier="medium",
        kind="reduction",
        summary="It computes the cosine similarity of two tensors along the last dim.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class CosineSimilarity(nn.Module):

    def __init__(self, eps=1e-08):
        super(CosineSimilarity, self).__init__()
        self.eps = eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, dim=-1, eps=self.eps)


def get_inputs():
    return [torch.rand([4, 4, 4, 4]), torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(raw("cosine_rows"),),
        forward="return cosine_rows(x1, x2, eps=self.eps)",
    ),
    ModuleSource(
        name="MSELoss",
        tier="medium",
        kind="reduction",
        summary="It is the mean squared error between two tensors.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class MSELoss(nn.Module):

    def __init__(self):
        super(MSELoss, self).__init__()

    def forward(self, pred, target):
        return F.mse_loss(pred, target)


def get_inputs():
    return [torch.rand([4, 4, 4, 4]), torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(binary("sq_diff", "d = x - y\nout = d * d"), row_reduce("mean_all", *MEAN_ROWS)),
        forward="return mean_all(sq_diff(pred, target).reshape(1, -1)).reshape(())",
    ),
    # ------------------------------------------------ KernelBench problems, rewritten
    # Four modules that are KernelBench problems under other names (renamed
    # class and variables, imports reordered, a comment or docstring added), as
    # KernelBook holds many: `kbpipe decontaminate` must find them (the demo
    # shows it) and name the problem each one copies.
    ModuleSource(
        name="ScaledLeakyDense",
        tier="medium",
        kind="matmul",
        summary="It is a Linear layer, a fixed gain, then LeakyReLU.",
        repo_name=_PORTS,
        python_code="""import torch.nn as nn
import torch


class ScaledLeakyDense(nn.Module):
    \"\"\"Dense projection, scaled, then a leaky rectifier.\"\"\"

    def __init__(self, n_in, n_out, gain, slope):
        super(ScaledLeakyDense, self).__init__()
        self.proj = nn.Linear(n_in, n_out)
        self.gain = gain
        self.act = nn.LeakyReLU(slope)

    def forward(self, h):
        h = self.proj(h)
        h = h * self.gain
        h = self.act(h)
        return h


def get_inputs():
    return [torch.rand([16, 64])]


def get_init_inputs():
    return [[], {'n_in': 64, 'n_out': 32, 'gain': 2.0, 'slope': 0.1}]
""",
        kernels=(
            linear("linear"),
            unary(
                "gain_leaky_relu",
                "y = x * gain\nout = tl.where(y > 0, y, y * slope)",
                ("gain", "slope"),
            ),
        ),
        forward="return gain_leaky_relu(linear(h, self.proj.weight, self.proj.bias), "
        "self.gain, self.act.negative_slope)",
    ),
    ModuleSource(
        name="RowwiseSoftmax",
        tier="medium",
        kind="normalization",
        summary="It applies softmax over dim 1.",
        repo_name=_PORTS,
        python_code="""import torch.nn as nn
import torch


class RowwiseSoftmax(nn.Module):

    def __init__(self):
        super().__init__()

    def forward(self, logits):
        # each row becomes a distribution over its features
        return torch.softmax(logits, dim=1)


def get_inputs():
    return [torch.rand([16, 256])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(row_map("softmax", SOFTMAX, other="-float('inf')"),),
        forward="return softmax(logits.movedim(1, -1)).movedim(-1, 1)",
    ),
    ModuleSource(
        name="HingeMarginLoss",
        tier="medium",
        kind="reduction",
        summary="It is the mean hinge loss max(0, 1 - score * label) for labels in {-1, 1}.",
        repo_name=_PORTS,
        python_code="""import torch.nn as nn
import torch


class HingeMarginLoss(nn.Module):

    def __init__(self):
        super(HingeMarginLoss, self).__init__()

    def forward(self, scores, labels):
        # labels are -1 / +1
        return torch.mean(torch.clamp(1 - scores * labels, min=0))


def get_inputs():
    return [torch.rand([16, 32]), torch.rand([16, 32])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(
            binary("hinge", "out = tl.maximum(1.0 - x * y, 0.0)"),
            row_reduce("mean_all", *MEAN_ROWS),
        ),
        forward="return mean_all(hinge(scores, labels).reshape(1, -1)).reshape(())",
    ),
    ModuleSource(
        name="ReluDividedProjection",
        tier="medium",
        kind="matmul",
        summary="It is a Linear layer, ReLU, then division by a constant.",
        repo_name=_PORTS,
        python_code="""import torch.nn as nn
import torch


class ReluDividedProjection(nn.Module):

    def __init__(self, d_in, d_out, denom):
        super(ReluDividedProjection, self).__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.denom = denom

    def forward(self, z):
        z = self.fc(z)
        z = torch.relu(z)
        z = z / self.denom
        return z


def get_inputs():
    return [torch.rand([16, 64])]


def get_init_inputs():
    return [[], {'d_in': 64, 'd_out': 32, 'denom': 2.0}]
""",
        kernels=(linear("linear_relu", RELU), unary("div_scalar", "out = x / denom", ("denom",))),
        forward="return div_scalar(linear_relu(z, self.fc.weight, self.fc.bias), self.denom)",
    ),
    ModuleSource(
        name="GramMatrix",
        tier="medium",
        kind="matmul",
        summary="It computes the normalized Gram matrix of features.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn


class GramMatrix(nn.Module):
    # style-transfer Gram matrix, normalized by the number of elements per image

    def __init__(self):
        super(GramMatrix, self).__init__()

    def forward(self, input):
        b, c, h, w = input.size()
        features = input.view(b, c, h * w)
        gram = torch.bmm(features, features.transpose(1, 2))
        return gram.div(c * h * w)


def get_inputs():
    return [torch.rand([4, 8, 16, 16])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(bmm(),),
        forward="""b, c, h, w = input.shape
features = input.reshape(b, c, h * w)
return bmm(features, features.transpose(1, 2), scale=1.0 / (c * h * w))""",
    ),
    ModuleSource(
        name="CumulativeSum",
        tier="medium",
        kind="reduction",
        summary="It computes a running sum over the last dim.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class CumulativeSum(nn.Module):

    def __init__(self):
        super(CumulativeSum, self).__init__()

    def forward(self, x):
        return torch.cumsum(x, dim=-1)


def get_inputs():
    return [torch.rand([16, 128])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(row_map("cumsum", "out = tl.cumsum(x, axis=0)"),),
        forward="return cumsum(x)",
    ),
    # ---------------------------------------------------------------- high: fused blocks, models
    ModuleSource(
        name="LinearReLU",
        tier="high",
        kind="fused",
        summary="It is nn.Linear followed by ReLU.",
        repo_name=_OPS,
        python_code="""import torch
import torch.nn as nn


class LinearReLU(nn.Module):

    def __init__(self, in_features, out_features, bias=True):
        super(LinearReLU, self).__init__()
        self.fc = nn.Linear(in_features, out_features, bias=bias)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.fc(x))


def get_inputs():
    return [torch.rand([8, 64])]


def get_init_inputs():
    return [[], {'in_features': 64, 'out_features': 32}]
""",
        kernels=(linear("linear_relu", RELU),),
        forward="return linear_relu(x, self.fc.weight, self.fc.bias)",
    ),
    ModuleSource(
        name="ConvBNReLU",
        tier="high",
        kind="conv",
        summary="It is Conv2d, BatchNorm2d and ReLU in sequence.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn


class ConvBNReLU(nn.Module):

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super(ConvBNReLU, self).__init__()
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
            bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def get_inputs():
    return [torch.rand([4, 4, 16, 16])]


def get_init_inputs():
    return [[], {'in_channels': 4, 'out_channels': 8}]
""",
        kernels=(raw("fold_bn"), channel_affine("bn_relu", RELU)),
        forward="""y = F.conv2d(x, self.conv.weight, None, self.conv.stride, self.conv.padding)
scale, shift = fold_bn(self.bn)
return bn_relu(y, scale, shift)""",
    ),
    ModuleSource(
        name="MLP",
        tier="high",
        kind="fused",
        summary="It is Linear, GELU, Linear: a transformer feed-forward.",
        repo_name=_ATTN,
        python_code="""import torch
import torch.nn as nn


class MLP(nn.Module):

    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.fc2(x)
        return x


def get_inputs():
    return [torch.rand([2, 16, 32])]


def get_init_inputs():
    return [[], {'in_features': 32, 'hidden_features': 128, 'out_features': 32}]
""",
        kernels=(linear("linear_gelu", GELU), linear("linear")),
        forward="""h = linear_gelu(x, self.fc1.weight, self.fc1.bias)
return linear(h, self.fc2.weight, self.fc2.bias)""",
    ),
    ModuleSource(
        name="SwiGLUFeedForward",
        tier="high",
        kind="fused",
        summary="It is the LLaMA SwiGLU feed-forward block.",
        repo_name=_ATTN,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class SwiGLUFeedForward(nn.Module):

    def __init__(self, dim, hidden_dim):
        super(SwiGLUFeedForward, self).__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def get_inputs():
    return [torch.rand([2, 8, 64])]


def get_init_inputs():
    return [[], {'dim': 64, 'hidden_dim': 172}]
""",
        kernels=(linear("linear"), binary("silu_mul", "out = x * tl.sigmoid(x) * y")),
        forward="""gate = linear(x, self.w1.weight)
up = linear(x, self.w3.weight)
return linear(silu_mul(gate, up), self.w2.weight)""",
    ),
    ModuleSource(
        name="ResidualBlock",
        tier="high",
        kind="conv",
        summary="It is a ResNet basic block with an identity skip.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):

    def __init__(self, channels):
        super(ResidualBlock, self).__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


def get_inputs():
    return [torch.rand([2, 8, 16, 16])]


def get_init_inputs():
    return [[], {'channels': 8}]
""",
        kernels=(
            raw("fold_bn"),
            channel_affine("bn_relu", RELU),
            channel_affine("bn"),
            binary("add_relu", "out = tl.maximum(x + y, 0.0)"),
        ),
        forward="""out = F.conv2d(x, self.conv1.weight, None, 1, 1)
out = bn_relu(out, *fold_bn(self.bn1))
out = bn(F.conv2d(out, self.conv2.weight, None, 1, 1), *fold_bn(self.bn2))
return add_relu(out, x)""",
    ),
    ModuleSource(
        name="ScaledDotProductAttention",
        tier="high",
        kind="attention",
        summary="It computes softmax(q k^T / temperature) v.",
        repo_name=_ATTN,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class ScaledDotProductAttention(nn.Module):

    def __init__(self, temperature, attn_dropout=0.1):
        super().__init__()
        self.temperature = temperature
        self.dropout = nn.Dropout(attn_dropout)

    def forward(self, q, k, v):
        attn = torch.matmul(q / self.temperature, k.transpose(2, 3))
        attn = self.dropout(F.softmax(attn, dim=-1))
        output = torch.matmul(attn, v)
        return output


def get_inputs():
    return [torch.rand([2, 4, 16, 8]), torch.rand([2, 4, 16, 8]), torch.rand([2, 4, 16, 8])]


def get_init_inputs():
    return [[], {'temperature': 4}]
""",
        kernels=(bmm(), row_map("softmax", SOFTMAX, other="-float('inf')")),
        forward="""# dropout is the identity in eval mode, which is how the outputs are compared
scores = bmm(q, k.transpose(2, 3), scale=1.0 / self.temperature)
return bmm(softmax(scores), v)""",
    ),
    ModuleSource(
        name="MultiHeadAttention",
        tier="high",
        kind="attention",
        summary="It is multi-head self-attention with q/k/v and output projections.",
        repo_name=_ATTN,
        python_code="""import math

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):

    def __init__(self, d_model, n_heads):
        super(MultiHeadAttention, self).__init__()
        assert d_model % n_heads == 0
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, D = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        ctx = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(ctx.transpose(1, 2).reshape(B, T, D))


def get_inputs():
    return [torch.rand([2, 16, 32])]


def get_init_inputs():
    return [[], {'d_model': 32, 'n_heads': 4}]
""",
        kernels=(linear("linear"), bmm(), row_map("softmax", SOFTMAX, other="-float('inf')")),
        forward="""B, T, D = x.shape
shape = (B, T, self.n_heads, self.d_head)
q = linear(x, self.q_proj.weight, self.q_proj.bias).view(shape).transpose(1, 2)
k = linear(x, self.k_proj.weight, self.k_proj.bias).view(shape).transpose(1, 2)
v = linear(x, self.v_proj.weight, self.v_proj.bias).view(shape).transpose(1, 2)
scores = bmm(q, k.transpose(-2, -1), scale=1.0 / math.sqrt(self.d_head))
ctx = bmm(softmax(scores), v).transpose(1, 2).reshape(B, T, D)
return linear(ctx, self.out_proj.weight, self.out_proj.bias)""",
    ),
    ModuleSource(
        name="TransformerBlock",
        tier="high",
        kind="architecture",
        summary="It is a pre-LN transformer block: attention and a GELU MLP, each with a residual.",
        repo_name=_ATTN,
        python_code="""import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class TransformerBlock(nn.Module):

    def __init__(self, d_model, n_heads, d_ff):
        super(TransformerBlock, self).__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.n_heads
        qkv = self.qkv(self.ln1(x)).reshape(B, T, 3, self.n_heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def get_inputs():
    return [torch.rand([2, 16, 32])]


def get_init_inputs():
    return [[], {'d_model': 32, 'n_heads': 4, 'd_ff': 128}]
""",
        kernels=(
            row_map("layer_norm", LAYER_NORM, ptrs=("weight", "bias")),
            linear("linear"),
            linear("linear_gelu", GELU),
            bmm(),
            row_map("softmax", SOFTMAX, other="-float('inf')"),
            binary("add", "out = x + y"),
        ),
        forward="""B, T, D = x.shape
hd = D // self.n_heads
h = layer_norm(x, self.ln1.weight, self.ln1.bias, eps=self.ln1.eps)
qkv = linear(h, self.qkv.weight, self.qkv.bias).reshape(B, T, 3, self.n_heads, hd)
q, k, v = qkv.permute(2, 0, 3, 1, 4)
att = softmax(bmm(q, k.transpose(-2, -1), scale=1.0 / math.sqrt(hd)))
y = bmm(att, v).transpose(1, 2).reshape(B, T, D)
x = add(x, linear(y, self.proj.weight, self.proj.bias))
h = layer_norm(x, self.ln2.weight, self.ln2.bias, eps=self.ln2.eps)
h = linear_gelu(h, self.fc1.weight, self.fc1.bias)
return add(x, linear(h, self.fc2.weight, self.fc2.bias))""",
    ),
    ModuleSource(
        name="TinyCNN",
        tier="high",
        kind="architecture",
        summary="It is a small classifier: two conv-relu-pool stages, a mean, a linear head.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyCNN(nn.Module):

    def __init__(self, in_channels=3, num_classes=10):
        super(TinyCNN, self).__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def get_inputs():
    return [torch.rand([2, 3, 32, 32])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(
            channel_affine("bias_relu", RELU),
            row_reduce("mean_hw", *MEAN_ROWS),
            linear("linear"),
        ),
        forward="""# convolutions stay on cuDNN; the bias, ReLU, pooling mean and head are Triton
x = bias_relu(F.conv2d(x, self.conv1.weight, None, 1, 1), None, self.conv1.bias)
x = F.max_pool2d(x, 2)
x = bias_relu(F.conv2d(x, self.conv2.weight, None, 1, 1), None, self.conv2.bias)
x = mean_hw(F.max_pool2d(x, 2).flatten(2), dim=-1)
return linear(x, self.fc.weight, self.fc.bias)""",
    ),
    ModuleSource(
        name="GRUCell",
        tier="high",
        kind="recurrent",
        summary="It is one step of a GRU cell.",
        repo_name=_RNN,
        python_code="""import torch
import torch.nn as nn


class GRUCell(nn.Module):

    def __init__(self, input_size, hidden_size, bias=True):
        super(GRUCell, self).__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, 3 * hidden_size, bias=bias)
        self.h2h = nn.Linear(hidden_size, 3 * hidden_size, bias=bias)

    def forward(self, x, hidden):
        gate_x = self.x2h(x)
        gate_h = self.h2h(hidden)
        i_r, i_i, i_n = gate_x.chunk(3, 1)
        h_r, h_i, h_n = gate_h.chunk(3, 1)
        resetgate = torch.sigmoid(i_r + h_r)
        inputgate = torch.sigmoid(i_i + h_i)
        newgate = torch.tanh(i_n + resetgate * h_n)
        return newgate + inputgate * (hidden - newgate)


def get_inputs():
    return [torch.rand([8, 16]), torch.rand([8, 32])]


def get_init_inputs():
    return [[], {'input_size': 16, 'hidden_size': 32}]
""",
        kernels=(linear("linear"), raw("gru_gates")),
        forward="""gi = linear(x, self.x2h.weight, self.x2h.bias)
gh = linear(hidden, self.h2h.weight, self.h2h.bias)
return gru_gates(gi, gh, hidden)""",
    ),
    ModuleSource(
        name="LSTMCell",
        tier="high",
        kind="recurrent",
        summary="It is one step of an LSTM cell returning (h, c).",
        repo_name=_RNN,
        python_code="""import torch
import torch.nn as nn


class LSTMCell(nn.Module):

    def __init__(self, input_size, hidden_size):
        super(LSTMCell, self).__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, 4 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 4 * hidden_size)

    def forward(self, x, h, c):
        gates = self.x2h(x) + self.h2h(h)
        ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)
        c_new = torch.sigmoid(forgetgate) * c + torch.sigmoid(ingate) * torch.tanh(cellgate)
        h_new = torch.sigmoid(outgate) * torch.tanh(c_new)
        return h_new, c_new


def get_inputs():
    return [torch.rand([4, 8]), torch.rand([4, 16]), torch.rand([4, 16])]


def get_init_inputs():
    return [[], {'input_size': 8, 'hidden_size': 16}]
""",
        kernels=(linear("linear"), binary("add", "out = x + y"), raw("lstm_gates")),
        forward="""gates = add(linear(x, self.x2h.weight, self.x2h.bias),
            linear(h, self.h2h.weight, self.h2h.bias))
return lstm_gates(gates, c)""",
    ),
    ModuleSource(
        name="SqueezeExcitation",
        tier="high",
        kind="architecture",
        summary="It is a squeeze-and-excitation block gating channels by a pooled MLP.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn


class SqueezeExcitation(nn.Module):

    def __init__(self, channels, reduction=4):
        super(SqueezeExcitation, self).__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        s = x.mean(dim=(2, 3))
        s = torch.relu(self.fc1(s))
        s = torch.sigmoid(self.fc2(s))
        return x * s[:, :, None, None]


def get_inputs():
    return [torch.rand([4, 16, 8, 8])]


def get_init_inputs():
    return [[], {'channels': 16}]
""",
        kernels=(
            row_reduce("mean_hw", *MEAN_ROWS),
            linear("linear_relu", RELU),
            linear("linear_sigmoid", SIGMOID),
            raw("scale_channels"),
        ),
        forward="""s = mean_hw(x.flatten(2), dim=-1)
s = linear_relu(s, self.fc1.weight, self.fc1.bias)
s = linear_sigmoid(s, self.fc2.weight, self.fc2.bias)
return scale_channels(x, s)""",
    ),
    ModuleSource(
        name="PatchEmbedding",
        tier="high",
        kind="architecture",
        summary="It splits an image into patches, projects them and adds a position embedding.",
        repo_name=_VISION,
        python_code="""import torch
import torch.nn as nn


class PatchEmbedding(nn.Module):

    def __init__(self, img_size=16, patch_size=4, in_chans=3, embed_dim=32):
        super().__init__()
        self.patch_size = patch_size
        n_patches = (img_size // patch_size) ** 2
        self.proj = nn.Linear(in_chans * patch_size * patch_size, embed_dim)
        self.pos = nn.Parameter(torch.zeros(1, n_patches, embed_dim))

    def forward(self, x):
        B, C, H, W = x.shape
        p = self.patch_size
        x = x.unfold(2, p, p).unfold(3, p, p)
        x = x.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * p * p)
        return self.proj(x) + self.pos


def get_inputs():
    return [torch.rand([2, 3, 16, 16])]


def get_init_inputs():
    return [[], {}]
""",
        kernels=(linear("linear"), binary("add", "out = x + y")),
        forward="""B, C, H, W = x.shape
p = self.patch_size
patches = x.unfold(2, p, p).unfold(3, p, p)
patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * p * p)
return add(linear(patches, self.proj.weight, self.proj.bias), self.pos)""",
    ),
)

# --------------------------------------------------------------------------- text for rollouts
# Reasoning is stitched from these with str.format_map; the placeholders are the
# keys of the per-row context built in kbpipe.sample.generator (name, new, shape, block, ...).

OPENINGS: tuple[str, ...] = (
    "Let me look at the {name} module first. {summary}",
    "Okay, so I need to convert {name} into a Triton implementation called {new}. {summary}",
    "The task: write {new}, a Triton version of {name}. {summary}",
    "Alright, {name}. {summary} I need to produce {new} with the same constructor signature.",
    "I'm asked to rewrite {name} with Triton kernels. {summary} The new class is {new}.",
)

TOPICS: dict[str, tuple[str, ...]] = {
    "plan": (
        "Plan: the launcher {launcher}() flattens what it can, allocates the output, computes the "
        "grid and launches {kernel}; {new}.forward only calls launchers.",
        "So {new} keeps the parameters of {name} and swaps the math in forward for {n_kernels} "
        "Triton kernel(s).",
        "Let me restate {name}: {summary} That is the whole contract {new} has to meet.",
        "The first kernel is {kernel}; anything that is only a view change stays in PyTorch.",
        "Order of work: get {kernel} correct at {shape}, then check odd sizes, then look at "
        "BLOCK_SIZE.",
    ),
    "shape": (
        "get_inputs() gives a tensor of shape {shape}, so {numel} elements in total; tiny, but "
        "the kernel has to be correct for any size.",
        "With {shape} as the test shape the whole problem fits in very few blocks, so launch "
        "overhead will dominate, not bandwidth.",
        "I shouldn't hard-code {shape}; the evaluator might call it with other shapes, so every "
        "size goes through the launcher arguments.",
        "Let me think about what the shapes look like: the input is {shape}. I'll flatten leading "
        "dims where that's legal.",
        "The reference returns a fresh tensor, so {new} should allocate its output with "
        "torch.empty_like rather than writing in place.",
        "Does {name} keep any state between calls? No, forward is a pure function of its inputs "
        "and parameters, which makes this straightforward.",
        "get_init_inputs() tells me how the module is constructed, and {new} must accept exactly "
        "the same arguments.",
    ),
    "grid": (
        "{programs} program(s) is far below the number of SMs, so this launch can't saturate the "
        "GPU; there's no point tuning beyond a sane BLOCK_SIZE.",
        "num_warps={warps} and BLOCK_SIZE={block}: each warp handles {block} / {warps} elements "
        "per program.",
        "Grid: one program per BLOCK_SIZE={block} chunk, so triton.cdiv(n, {block}) programs; for "
        "{numel} elements that's {programs} program(s).",
        "BLOCK_SIZE must be a power of two for tl.arange, so {block} is fine.",
        "I'll use num_warps={warps}; with {block} elements per program that's {per_thread} "
        "elements per thread, which vectorizes nicely.",
        "Offsets are pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE), and I pass n_elements so the "
        "last program knows where to stop.",
        "Maybe I should autotune over BLOCK_SIZE in (256, 512, 1024, 2048), but for a kernel this "
        "simple a fixed {block} is usually within noise.",
        "The launch grid is a tuple; with a lambda on meta['BLOCK_SIZE'] it could follow "
        "autotuning, but I'll keep it explicit here.",
        "I'll name the kernel {kernel} and keep the launcher {launcher}() as a plain Python "
        "function so forward stays readable.",
    ),
    "mask": (
        "Masked lanes cost nothing on the store side; the mask just predicates the write.",
        "The tail block is the only one that needs the mask, but computing it everywhere is "
        "cheaper than branching on pid.",
        "Masking: offsets < n_elements, and every tl.load and tl.store takes that mask, otherwise "
        "the tail program reads past the end.",
        "For loads under a mask I need a neutral `other`: 0.0 for sums, -inf for max and softmax, "
        "1.0 for products.",
        "The store mask matters as much as the load mask; writing past the end corrupts whatever "
        "PyTorch allocated next.",
        "Hmm, does tl.where still evaluate both sides on masked lanes? Yes, both branches are "
        "computed, so masked values must not produce NaN that leaks into a reduction.",
    ),
    "stride": (
        "If the caller passes a non-contiguous tensor, contiguous() makes a copy; that's a hidden "
        "read and write, but correctness comes first.",
        "For a row-major 2D view, stride(1) is 1, so cols can be added directly without a "
        "multiply.",
        "Strides: calling .contiguous() in the launcher lets the kernel assume dense rows, but "
        "passing x.stride(0) explicitly costs nothing and keeps padded views working.",
        "The pointer arithmetic is base + row * stride_row + cols; int32 offsets are fine up to "
        "2^31 elements, beyond that I'd need int64.",
        "I need to be careful: after movedim the tensor is a view with unusual strides, and "
        "reshape may or may not copy. contiguous() before taking the pointer is the safe choice.",
        "Triton takes the data pointer of the tensor, so any view offset is already included; "
        "only the strides need to be passed.",
    ),
    "stability": (
        "Numerical stability: accumulate in fp32 even when the inputs are fp16 or bf16; the "
        "reference does that internally too.",
        "Subtracting the max before exp keeps every exponent <= 0, so exp can't overflow; the "
        "result is mathematically identical.",
        "eps has to go exactly where the reference puts it, inside or outside the sqrt, or the "
        "values differ by more than the tolerance for small variances.",
        "The test tolerance is probably around 1e-5 in fp32, so I should match the reference's "
        "order of operations where it matters.",
        "For large positive inputs exp(x) overflows to inf in fp32 around x=88; a threshold "
        "branch keeps that out of the result.",
        "For a variance the two-pass form (subtract the mean, then square) is more stable than "
        "E[x^2] - E[x]^2, and with the row in registers it costs nothing extra.",
        "tl.dot may use TF32 on Ampere for fp32 inputs, which can miss a tight tolerance; if the "
        "check fails I'd switch the input precision to ieee.",
    ),
    "perf": (
        "This is memory bound: one read and one write per element, so the best we can do is "
        "match bandwidth; the win comes from fusing ops PyTorch would launch separately.",
        "Fusing means intermediates never round-trip through HBM, which for {name} saves a full "
        "read and write of the tensor per fused op.",
        "{n_kernels} kernel launch(es) per forward; at these sizes the launch count is most of "
        "the cost.",
        "With small test shapes the speedup is mostly about launch count: the reference may "
        "launch several kernels where {new} launches {n_kernels}.",
        "I estimate about {us} microseconds for the test shape, mostly launch overhead.",
        "Caching the compiled kernel is automatic: Triton keys on the constexprs and argument "
        "dtypes, so only the first call pays for compilation.",
    ),
    "verify": (
        "I'll compare with torch.allclose on the get_inputs() tensors, and also try an odd size "
        "like 1000 to exercise the mask.",
        "The class must be named {new}, inherit nn.Module, and keep the same __init__ arguments "
        "so the state dict loads.",
        "The answer must import everything it uses: torch, torch.nn, triton, triton.language.",
        "Edge case: an empty tensor gives a grid of zero programs; Triton handles that, but the "
        "launcher could return early to be safe.",
        "Parameters have to be registered with the same attribute names as in {name}, otherwise "
        "load_state_dict fails when the harness copies the weights over.",
        "Let me re-read the forward of {name} once more to be sure I haven't dropped an operation.",
        "Output dtype and shape must match exactly, including any dims the reference squeezes "
        "away.",
    ),
    "copy": (
        "It's literally a copy. The harness compares values, so a copy kernel is the safest "
        "choice and still exercises the Triton path.",
        "For a copy the only knobs are BLOCK_SIZE and num_warps; 128-bit vector loads come for "
        "free when the pointer is 16-byte aligned.",
    ),
    "elementwise": (
        "The op is purely elementwise: every element is independent, no shared memory, no "
        "reductions.",
        "For transcendental functions I can upcast to fp32 with .to(tl.float32) and let the "
        "store cast back to the output dtype.",
        "tl.sigmoid exists; tanh I can write as 2 * sigmoid(2x) - 1, exact up to rounding, "
        "without depending on tl.math.tanh.",
        "Scalars such as a slope or bounds go in as plain kernel arguments; no pointer loads.",
        "If the two inputs differ in shape, broadcast_tensors on the host gives matching views "
        "and contiguous() materializes them.",
    ),
    "reduction": (
        "Wait, if the row length isn't a power of two, the padded lanes need -inf before a max, "
        "otherwise they'd win the max when all real values are negative.",
        "One program per output row; the reduced dim is walked in chunks of BLOCK_SIZE into a "
        "fp32 vector accumulator, then tl.sum or tl.max at the end.",
        "Reducing over a non-last dim: movedim it to the end first, so the reduction reads "
        "contiguous memory and the loads coalesce.",
        "The accumulator starts at the identity of the combine: 0 for sum, -inf for max.",
        "For a mean, divide once at the end by n_cols, not per chunk.",
        "If rows were huge and few, one program per row would leave SMs idle; a split reduction "
        "would help there, but not at these sizes.",
    ),
    "normalization": (
        "The whole row fits in one block (BLOCK_SIZE = next_power_of_2(n_cols)), so the "
        "statistics and the normalization happen in one pass over registers.",
        "For rows wider than ~64K elements this would spill; a two-pass or Welford version would "
        "be needed, but the test dims are small.",
        "The weight and bias are per-column vectors, loaded once per program with the same "
        "column mask.",
        "Padded lanes must not count in the statistics: zero them with tl.where(mask, ...) "
        "before squaring.",
    ),
    "matmul": (
        "For 2D tiles the mask is the outer AND of the row and column masks: "
        "(offs_m[:, None] < M) & (offs_n[None, :] < N).",
        "Tiled GEMM: each program computes a BLOCK_M x BLOCK_N tile, looping over K in steps of "
        "BLOCK_K and accumulating with tl.dot.",
        "Tiles of BLOCK_M={bm}, BLOCK_N={bn}, BLOCK_K={bk} are a reasonable default; bigger "
        "tiles raise arithmetic intensity but hurt occupancy on small matrices.",
        "K not a multiple of BLOCK_K is handled by masking both loads with other=0, which adds "
        "zeros to the dot.",
        "tl.dot needs every tile dimension to be at least 16, which {bm}x{bn}x{bk} satisfies.",
        "The bias add goes into the epilogue, before the store, so it's free.",
        "nn.Linear stores its weight as (out_features, in_features); reading it as W^T is just "
        "swapping the two stride arguments, no transpose copy.",
        "Leading dims of x get flattened into M, turning (B, T, K) into (B*T, K) without a copy "
        "when x is contiguous.",
    ),
    "conv": (
        "A direct convolution in Triton is possible but cuDNN is hard to beat; the win is fusing "
        "BatchNorm and ReLU into one pass after it.",
        "In eval mode BatchNorm is (x - mean) / sqrt(var + eps) * gamma + beta, a per-channel "
        "affine map I can precompute as scale and shift.",
        "For NCHW contiguous tensors the channel of a flat offset is (offset // (H*W)) % C.",
        "But wait: in training mode BatchNorm uses batch statistics. The harness compares in "
        "eval mode, so the running stats it is.",
    ),
    "attention": (
        "A transposed view like k.transpose(-2, -1) isn't contiguous; passing its strides into "
        "the kernel avoids materializing it.",
        "Scores are q @ k^T scaled, softmax over the last dim, then @ v. A flash-attention "
        "kernel would fuse all three, but at these sizes batched GEMM + softmax is simpler.",
        "The scale can be folded into the GEMM epilogue instead of a separate multiply.",
        "Heads become part of the batch: (B, H, T, d) flattens to (B*H, T, d).",
        "Dropout on the attention weights is the identity in eval mode, so it disappears.",
    ),
    "recurrent": (
        "Two GEMMs for the input and hidden projections, then all the gate math in one "
        "elementwise kernel, where PyTorch would launch six or seven tiny ones.",
        "The gate chunks are contiguous slices of the projection, so inside the kernel gate k "
        "lives at base + k * H.",
        "sigmoid and tanh in fp32; tanh via 2 * sigmoid(2x) - 1.",
    ),
    "fused": (
        "This is a composition, so I'll reuse a small set of kernels: GEMM with a fused "
        "epilogue, row-wise normalization and elementwise ops.",
        "The glue (reshape, permute, transpose) stays in PyTorch since those are views; only "
        "the math moves to Triton.",
        "Residual adds could later be fused into the preceding GEMM's epilogue; correctness first.",
    ),
}

# Which topic banks a module's reasoning draws on, besides the general ones.
KIND_TOPICS: dict[str, tuple[str, ...]] = {
    "copy": ("copy", "elementwise"),
    "elementwise": ("elementwise",),
    "reduction": ("reduction",),
    "normalization": ("normalization", "reduction"),
    "matmul": ("matmul",),
    "fused": ("fused", "matmul"),
    "conv": ("conv", "fused"),
    "attention": ("attention", "matmul", "normalization"),
    "architecture": ("fused", "matmul", "normalization"),
    "recurrent": ("recurrent", "matmul"),
}

GENERAL_TOPICS: tuple[str, ...] = (
    "plan",
    "shape",
    "grid",
    "mask",
    "stride",
    "stability",
    "perf",
    "verify",
)

DOUBTS: tuple[str, ...] = (
    "Wait, let me reconsider.",
    "Hmm, actually, that's not quite right.",
    "Let me double check that.",
    "Okay, I think that works.",
    "Actually, no.",
    "Hold on.",
    "Right.",
    "Let me think again about this part.",
)

SKETCH_LEADS: tuple[str, ...] = (
    "Something like:",
    "Draft:",
    "Let me sketch that part:",
    "So roughly:",
)

# Only rows picked to carry unicode use these, so most rows stay ASCII like real logs.
UNICODE_SENTENCES: tuple[str, ...] = (
    "So each program maps its slice x[i] → out[i], nothing more.",
    "Launch overhead is roughly 3–5 µs per kernel, which dominates at {shape}.",
    "A naïve port would launch one kernel per op; fusing them is the whole point.",
    "This is déjà vu from the softmax kernel: max, subtract, exp, sum.",
    "Memory traffic ≈ 2 × {numel} × 4 bytes; at ~2 TB/s that's well under 1 µs.",
    "Check: ‖out − ref‖∞ ≤ 1e-5 should hold.",
    "Résumé of the plan: load → compute in fp32 → masked store.",
)

CLOSERS: tuple[str, ...] = (
    "Good.",
    "Done.",
    "That should do it.",
    "Let me write it out.",
    "Okay, writing the final answer.",
    "I'm fairly confident in this now.",
    "Final check done; the class is {new}.",
    "Now let me put together the final code for {new}.",
    "Everything lines up with the reference, so time to write it.",
    "All loads and stores are masked and the math is in fp32, so this is ready.",
    "I've gone through shapes, masks, strides and numerics; writing the answer for {name} now.",
    "The launcher handles arbitrary sizes, the kernel masks the tail, the constructor matches "
    "{name}; that's everything the harness checks.",
)

PROMPT = """You are an expert in writing optimized GPU kernels with Triton.

Convert the following PyTorch code to an optimized Triton implementation.

```python
{python_code}
```

Write a class named `{new}` that inherits from `torch.nn.Module`, takes the same constructor \
arguments as `{name}`, and implements `forward` with Triton kernels (`@triton.jit`). The code \
is executed with nothing pre-imported, so import every module you use. Put the complete code \
inside <answer>...</answer> tags."""

INTROS: tuple[str, ...] = (
    "Here is a Triton implementation of `{name}` as `{new}`.",
    "`{new}` reproduces `{name}` with {n_kernels} Triton kernel(s).",
    "`{new}` moves the math of `{name}` into Triton; views and reshapes stay in PyTorch.",
    "Below is `{new}`, a drop-in Triton replacement for `{name}`.",
)

OUTROS: tuple[str, ...] = (
    "Every load and store is masked, so arbitrary sizes work.",
    "Accumulation is in fp32, matching the reference within tolerance.",
    "The constructor matches the original, so its state dict loads unchanged.",
)

FEEDBACK: tuple[str, ...] = (
    "The code failed to compile:\n```\ntriton.compiler.errors.CompilationError: at 9:8:\n"
    "    x = tl.load(x_ptr + offsets, mask=mask)\n        ^\nValueError: Mask argument cannot "
    "be block type if pointer argument is not a block\n```\nPlease fix it and answer again "
    "inside <answer> tags.",
    "Output mismatch: max abs difference 0.0312 exceeds tolerance 1e-05. Please fix the kernel "
    "and answer again inside <answer> tags.",
    "RuntimeError: Triton Error [CUDA]: an illegal memory access was encountered. Please fix "
    "it and answer again inside <answer> tags.",
)
