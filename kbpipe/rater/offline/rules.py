"""The offline backend: difficulty and task specs from the PyTorch code, no network.

It answers in the same format as the LLM (`<difficulty>` / `<specification>`
tags), so both backends go through one parser and one output path. It is
deterministic and free: the demo and the tests use it, and it is a baseline to
compare a paid judge with.

Difficulty rules, first match wins (counts are ops in `forward` plus layer
instances built in `__init__`, custom blocks in the same file included):

    high    a recurrent or attention layer/primitive (LSTM, GRU, MultiheadAttention, sdpa)
    high    two or more matrix products (MLP, attention, conv stacks)
    high    a matrix product plus a reduction (conv + batch norm, linear + softmax)
    high    a matrix product plus elementwise work on tensors: an epilogue to fuse
            (linear + relu, projection + position embedding)
    high    two or more custom nn.Module blocks defined in the file (an architecture)
    medium  one matrix product with at most scalar scaling (q @ k^T / sqrt(d))
    medium  reductions, normalizations, pooling, losses, cumulative ops
    low     elementwise work and copies/views only

`evaluation_raw` lists the features found and names the rule that decided.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from kbpipe.rater.offline.codefeatures import Features, analyze
from kbpipe.rater.offline.torchops import WEIGHTED

OFFLINE_VERSION = "offline-v1"


def rate(features: Features) -> tuple[str, str]:
    """(difficulty, the rule that decided it)."""
    f = features
    n_matmul, n_reduce, n_seq = f.count("matmul"), f.count("reduction"), f.count("sequence")
    n_elem = f.count("elementwise")
    if n_seq:
        return "high", f"a recurrent/attention primitive ({', '.join(f.names('sequence'))})"
    if n_matmul >= 2:
        return "high", f"{n_matmul} matrix products to chain ({', '.join(f.names('matmul'))})"
    if n_matmul and n_reduce:
        return "high", (
            f"a matrix product ({', '.join(f.names('matmul'))}) fused with a reduction "
            f"({', '.join(f.names('reduction'))})"
        )
    if n_matmul and n_elem:
        return "high", (
            f"a matrix product ({', '.join(f.names('matmul'))}) with an elementwise epilogue "
            f"on tensors to fuse ({', '.join(f.names('elementwise'))})"
        )
    if len(f.custom_blocks) >= 2:
        return "high", f"an architecture of custom blocks ({', '.join(sorted(f.custom_blocks))})"
    if n_matmul:
        return "medium", f"a single matrix product ({', '.join(f.names('matmul'))})"
    if n_reduce:
        return "medium", f"reductions/normalizations ({', '.join(f.names('reduction'))})"
    if n_elem or f.count("scalar"):
        names = f.names("elementwise") + f.names("scalar")
        return "low", f"elementwise work only ({', '.join(sorted(set(names)))})"
    return "low", "no arithmetic: a copy/view of the input"


def judge_answer(payload: dict[str, Any]) -> str:
    """The offline rater's answer text for one row, ending in a `<difficulty>` tag."""
    return _judge_text(payload["python_code"] or "", payload["module_name"] or "")


# A run holds many rollouts of each module (8,000 kept rows of 48 modules in the
# benchmark), and parsing the code is nearly all of the judge's cost, so each
# module's answer is computed once. Bounded, so a run of distinct modules keeps
# flat memory; the key is the code and the name because the answer reads only those.
@lru_cache(maxsize=4096)
def _judge_text(python_code: str, module_name: str) -> str:
    features = analyze(python_code, module_name)
    level, rule = rate(features)
    return f"{describe(features)}\nDecided by: {rule} -> {level}.\n<difficulty>{level}</difficulty>"


def describe(f: Features) -> str:
    def listed(kind: str) -> str:
        names = f.names(kind)
        return f"{f.count(kind)} ({', '.join(names)})" if names else "0"

    notes = []
    if not f.parsed:
        notes.append("the code does not parse as Python; features come from a token scan")
    elif not f.class_found:
        notes.append(f"no nn.Module class named {f.module_name}; features come from a token scan")
    if f.unknown_calls:
        notes.append("unrecognised calls: " + ", ".join(sorted(f.unknown_calls)))
    lines = [
        f"Offline rating ({OFFLINE_VERSION}) from the PyTorch code of {f.module_name}, no LLM.",
        f"Features: matrix products {listed('matmul')}; reductions {listed('reduction')}; "
        f"recurrent/attention {listed('sequence')}; elementwise on tensors "
        f"{listed('elementwise')}; scalar arithmetic {listed('scalar')}; "
        f"custom blocks {len(f.custom_blocks)}; loops in forward {f.loops}; "
        f"learnable parameters {len(f.parameters) + _n_weighted(f)}.",
    ]
    if notes:
        lines.append("Notes: " + "; ".join(notes) + ".")
    return "\n".join(lines)


def _n_weighted(f: Features) -> int:
    return sum(layer.count for layer in f.layers if layer.type_name in WEIGHTED)


def spec_answer(payload: dict[str, Any]) -> str:
    """A template task specification from the module's operations, signature and input kinds.

    It follows the seed's rules for specs: it stands on its own (no mention of
    a reference implementation or of test cases), and inputs are described by
    dtype and number of dimensions, never by the sizes `get_inputs` happens to use.
    """
    name = payload["module_name"] or "Module"
    f = analyze(payload["python_code"] or "", name)
    level, _ = rate(f)
    parts = [
        f"Implement `{name}New`, a `torch.nn.Module` whose forward pass performs the "
        "computation described below, written as Triton kernels.",
        "",
        "## What it computes",
        *_computation(f),
        "",
        "## Interface",
        *_interface(f, name),
        "",
        "## Inputs and outputs",
        *_inputs(f, level),
        "",
        "## Learnable parameters",
        *_parameters(f),
        "",
        "## Requirements",
        "- Use Triton as the language: the arithmetic runs in `@triton.jit` kernels; host code "
        "only allocates outputs, reshapes views and launches kernels.",
        "- Results must be correct to float32 tolerance for any input sizes the computation "
        "allows (with the numbers of dimensions above), not only for particular shapes.",
        "- Do not modify the inputs in place; return new tensors on the input's device, with "
        "the dtype the computation produces.",
        "- Honour every constructor argument, including the defaults given above.",
    ]
    return "<specification>\n" + "\n".join(parts) + "\n</specification>"


def _computation(f: Features) -> list[str]:
    lines = []
    if f.docstring:
        lines.append(f.docstring.strip().splitlines()[0])
    kinds = [
        ("matmul", "Matrix products"),
        ("reduction", "Reductions and normalizations"),
        ("sequence", "Recurrent or attention steps"),
        ("elementwise", "Elementwise operations on tensors"),
        ("scalar", "Scaling by constants or sizes"),
        ("view", "Reshapes and data movement"),
    ]
    for kind, label in kinds:
        names = f.names(kind)
        if names:
            lines.append(f"- {label}: {', '.join(names)}.")
    layers = [f"`{layer.attr}` ({layer.type_name})" for layer in f.layers]
    if layers:
        lines.append(f"- Layers built in `__init__`: {', '.join(layers)}.")
    if f.custom_blocks:
        lines.append(f"- Sub-blocks: {', '.join(sorted(f.custom_blocks))}.")
    if not lines:
        lines.append("- It returns its input unchanged (a copy).")
    return lines


def _interface(f: Features, name: str) -> list[str]:
    init = ", ".join(["self"] + [p if d is None else f"{p}={d}" for p, d in f.init_params])
    forward = ", ".join(["self", *f.forward_params])
    lines = [
        f"- `class {name}New(torch.nn.Module)`",
        f"- `__init__({init})`: these parameters, with these defaults.",
        f"- `forward({forward})`: returns the result of the computation above.",
    ]
    return lines


def _inputs(f: Features, level: str) -> list[str]:
    lines = []
    names = f.forward_params or [f"input {i}" for i in range(len(f.example_inputs))]
    for i, desc in enumerate(f.example_inputs):
        label = names[i] if i < len(names) else f"input {i}"
        lines.append(f"- `{label}`: {_input_kind(desc)}.")
    if not lines:
        lines.append("- The forward arguments above.")
    only_elementwise = level == "low" and len(f.example_inputs) >= 1
    if only_elementwise:
        lines.append("- Output: a tensor of the same shape and dtype as the (broadcast) input.")
    else:
        lines.append(
            "- Output: the tensor(s) the computation above produces; their shapes follow from "
            "it and from the inputs' shapes."
        )
    return lines


_SHAPED = re.compile(r"^(?P<dtype>\S+) tensor of shape \[(?P<dims>.*)\]$")


def _input_kind(desc: str) -> str:
    """An example input's dtype and number of dimensions, without its sizes (one test's)."""
    shaped = _SHAPED.match(desc)
    if shaped is None:
        return "a tensor or value, as the computation above uses it"
    dims = [d for d in shaped["dims"].split(",") if d.strip()]
    rank = f"{len(dims)}-dimensional" if dims else "0-dimensional (scalar)"
    return f"a {rank} {shaped['dtype']} tensor; its sizes are not fixed"


def _parameters(f: Features) -> list[str]:
    lines = [f"- `{p}`: an `nn.Parameter` with this name." for p in f.parameters]
    lines += [
        f"- `{layer.attr}`: the weights of an `nn.{layer.type_name}`, under this attribute "
        "name, so a state_dict with these names loads."
        for layer in f.layers
        if layer.type_name in WEIGHTED
    ]
    return lines or ["- None: the module has no learnable parameters; do not add any."]
