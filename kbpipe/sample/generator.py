"""Deterministic generator for the bundled sample and for benchmark-scale data.

It writes (a) a vf-eval JSONL of KernelBook rollouts and (b) a KernelBook-style
table, built from the hand-written modules in `kbpipe.sample.modules`.

Choices worth knowing when reading the output:

- Row `i` is a rollout of module `order[i % n_modules]`, `order` being a seeded
  shuffle, so every module gets about `n_rows / n_modules` rollouts.
- Each row draws from its own `random.Random` seeded by `(seed, i)`; only the
  reward-tie bookkeeping carries state from row to row, so a run is a pure
  function of its parameters and the output is byte-identical across runs.
- `answer` is exactly the text between `<answer>` and `</answer>` (including the
  newlines next to the tags); rows whose completion lacks the tags (~3 %) have
  `answer == ""` and reward 0.0.
- `reasoning_bytes` is the UTF-8 size of the reasoning that matters downstream
  (the last turn's); the text stops at the last sentence that fits, then takes
  the closing sentence that best fills the gap, so it lands a few bytes under
  (targets below ~300 bytes may be exceeded by the opening sentence).
- The KernelBook table holds one row per module, in a seeded order.
- Rewards: ~10 % exactly 0.0 (plus every untagged row), ~6 % exactly 0.85 (the
  filter threshold, which it must drop), ~11 % exactly 1.0, ~44 % above 0.85 in
  all; now and then a module's best reward is planted again to make a tie.
- About 8 % of rows have two turns (a failed attempt, the harness's feedback,
  then the final answer); about 5 % carry non-ASCII text.
- The model's answer is the module's Triton code rendered with that rollout's
  block sizes, so it usually differs from `info.triton_code` (the reference).
- `uuid` is a uuid5 string of the module name; the real KernelBook uses int64
  ids, so consumers should treat it as an opaque key.
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any, NamedTuple

import pyarrow as pa

from kbpipe.config import DIFFICULTY_LEVELS
from kbpipe.io.tables import atomic_output, write_table
from kbpipe.sample import modules as data
from kbpipe.sample.reasoning import Phrases, reasoning_text

TIERS = DIFFICULTY_LEVELS
LAYOUTS = ("trajectory", "verifiers")
MODEL = "moonshotai/Kimi-K2-Thinking"
KERNELBOOK_COLUMNS = (
    "module_name",
    "python_code",
    "triton_code",
    "uuid",
    "entry_point",
    "repo_name",
)

_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/kbpipe/sample")
_SHAPE = re.compile(r"torch\.randn?\(\[([0-9, ]+)\]\)")
# Rates of the row variants; rows pick them with their own rng.
_P_NO_ANSWER = 0.03
_P_TWO_TURNS = 0.08
_P_UNICODE = 0.05
_P_TIE = 0.05


@dataclass(frozen=True)
class ModuleSpec:
    """One KernelBook task: the PyTorch module, its reference Triton answer and metadata."""

    name: str
    python_code: str
    triton_code: str
    tier: str  # "low" | "medium" | "high": the difficulty the module was written to have
    entry_point: str
    repo_name: str
    uuid: str
    kind: str  # family (elementwise, reduction, matmul, ...) that steers the reasoning text
    summary: str


class _Tiles(NamedTuple):
    block: int = 1024
    bm: int = 64
    bn: int = 64
    bk: int = 32

    @property
    def warps(self) -> int:
        return 4 if self.block <= 1024 else 8


_BLOCKS = (256, 512, 1024, 2048)
_GEMM_TILES = ((32, 32, 32), (64, 64, 32), (128, 64, 32), (64, 128, 32), (32, 64, 32))


def _random_tiles(rng: random.Random) -> _Tiles:
    return _Tiles(rng.choice(_BLOCKS), *rng.choice(_GEMM_TILES))


# --------------------------------------------------------------------------- Triton code


def _render_kernel(kernel: data.Kernel, tiles: _Tiles) -> str:
    params = dict(kernel.params)
    body = params.pop("body", "")
    values: dict[str, object] = {"fn": kernel.fn, "body": body.replace("\n", "\n    ")}
    # extra kernel arguments: scalars pass as values, ptrs as tensors named `{name}_ptr`
    for key, prefix, suffix in (("scalars", "scalar", ""), ("ptrs", "ptr", "_ptr")):
        names = [n for n in params.pop(key, "").split(",") if n]
        values[f"{prefix}_params"] = "".join(f"{n}{suffix}, " for n in names)
        values[f"{prefix}_args"] = "".join(f", {n}" for n in names)
        values[f"{prefix}_pass"] = "".join(f"{n}, " for n in names)
    values |= params | tiles._asdict() | {"warps": tiles.warps}
    text = Template(data.TEMPLATES[kernel.template]).substitute(values)
    # an empty placeholder (no epilogue) leaves a whitespace-only line; drop it
    return "\n".join(line for line in text.split("\n") if line == "" or line.strip())


def _new_class(src: data.ModuleSource) -> str:
    """`{name}New`: the original constructor verbatim, forward calling the launchers."""
    lines = src.python_code.split("\n")
    cls = next(
        node
        for node in ast.parse(src.python_code).body
        if isinstance(node, ast.ClassDef) and node.name == src.name
    )
    methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
    init, forward = methods["__init__"], methods["forward"]
    init_src = "\n".join(lines[init.lineno - 1 : init.end_lineno])
    init_src = init_src.replace(f"super({src.name}, self)", f"super({src.name}New, self)")
    signature = lines[forward.lineno - 1]
    body = textwrap.indent(src.forward.strip(), " " * 8)
    return f"class {src.name}New(nn.Module):\n\n{init_src}\n\n{signature}\n{body}\n"


@lru_cache(maxsize=1024)  # room for every (module, block, GEMM tile) combination
def _triton_code(index: int, tiles: _Tiles) -> str:
    src = data.MODULES[index]
    parts = [_render_kernel(k, tiles).rstrip("\n") for k in src.kernels]
    parts.append(_new_class(src).rstrip("\n"))
    code = "\n\n\n".join(parts)
    header = ["import torch", "import torch.nn as nn"]
    if "F." in code:
        header.append("import torch.nn.functional as F")
    header += ["import triton", "import triton.language as tl"]
    if "math." in code:
        header = ["import math", ""] + header
    return "\n".join(header) + "\n\n\n" + code + "\n"


MODULES: list[ModuleSpec] = [
    ModuleSpec(
        name=src.name,
        python_code=src.python_code,
        triton_code=_triton_code(i, _Tiles()),
        tier=src.tier,
        entry_point=src.name,
        repo_name=src.repo_name,
        uuid=str(uuid.uuid5(_UUID_NAMESPACE, src.name)),
        kind=src.kind,
        summary=src.summary,
    )
    for i, src in enumerate(data.MODULES)
]


def _answer_code(index: int, tiles: _Tiles) -> str:
    return _triton_code(index, tiles).rstrip("\n")


def _completion(
    rng: random.Random, ctx: dict[str, Any], index: int, tiles: _Tiles, tagged: bool
) -> str:
    bullets = []
    for k in data.MODULES[index].kernels:
        label = k.fn if k.template == "raw_fold_bn" else f"_{k.fn}_kernel"
        note = data.KERNEL_NOTES[k.template].format(**tiles._asdict())
        bullets.append(f"- `{label}`: {note}")
    intro = rng.choice(data.INTROS).format_map(ctx)
    text = f"{intro}\n\n" + "\n".join(bullets) + f"\n\n{rng.choice(data.OUTROS)}\n\n"
    code = _answer_code(index, tiles)
    if tagged:
        return text + f"<answer>\n{code}\n</answer>"
    # the model forgot the tags and fenced the code instead
    return text + f"```python\n{code}\n```"


# --------------------------------------------------------------------------- rows


def _context(index: int, tiles: _Tiles, rng: random.Random) -> dict[str, Any]:
    src = data.MODULES[index]
    match = _SHAPE.search(src.python_code)
    dims = [int(d) for d in match.group(1).split(",")] if match else [4, 4, 4, 4]
    numel = math.prod(dims)
    kernels = [k for k in src.kernels if k.template != "raw_fold_bn"]
    return {
        "name": src.name,
        "new": f"{src.name}New",
        "summary": src.summary,
        "shape": str(dims),
        "numel": numel,
        "programs": -(-numel // tiles.block),
        "per_thread": tiles.block // (tiles.warps * 32),
        "kernel": f"_{kernels[0].fn}_kernel",
        "launcher": kernels[0].fn,
        "n_kernels": len(kernels),
        "us": round(rng.uniform(3.0, 40.0), 1),
        **tiles._asdict(),
        "warps": tiles.warps,
    }


def _reward(rng: random.Random, tagged: bool, best: float | None) -> float:
    if not tagged:
        return 0.0
    if best is not None and best > 0.85 and rng.random() < _P_TIE:
        return best  # the same top reward twice: dedupe must break the tie by input order
    u = rng.random()
    if u < 0.10:
        return 0.0
    if u < 0.16:
        return 0.85  # exactly the threshold, which the filter must drop (strictly greater)
    if u < 0.27:
        return 1.0
    if u < 0.58:
        return round(rng.uniform(0.8501, 0.9999), 4)
    return round(rng.uniform(0.01, 0.8499), 4)


def _turn(
    rng: random.Random, prompt: list[dict[str, str]], content: str, reasoning: str
) -> dict[str, Any]:
    prompt_tokens = sum(len(m["content"]) for m in prompt) // 4
    completion_tokens = (len(reasoning) + len(content)) // 4
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": content}],
        "response": {
            "id": f"chatcmpl-{rng.getrandbits(128):032x}",
            "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    }


def _turns(
    rng: random.Random,
    index: int,
    prompt: list[dict[str, str]],
    ctx: dict[str, Any],
    tiles: _Tiles,
    tagged: bool,
    reasoning_bytes: int,
) -> list[dict[str, Any]]:
    """One turn; sometimes first a failed attempt and the harness's feedback on it."""
    phrases = Phrases(rng, ctx, data.MODULES[index].kind)
    sketch_lines = _answer_code(index, tiles).split("\n")
    with_unicode = rng.random() < _P_UNICODE
    turns = []
    if rng.random() < _P_TWO_TURNS:
        # the failed attempt used other block sizes, so its code differs from the final one
        first = _completion(rng, ctx, index, _random_tiles(rng), tagged=True)
        reasoning = reasoning_text(
            rng, phrases, ctx, sketch_lines, reasoning_bytes // 3, with_unicode
        )
        turns.append(_turn(rng, prompt, first, reasoning))
        feedback = {"role": "user", "content": rng.choice(data.FEEDBACK)}
        prompt = [*prompt, {"role": "assistant", "content": first}, feedback]
    content = _completion(rng, ctx, index, tiles, tagged)
    reasoning = reasoning_text(rng, phrases, ctx, sketch_lines, reasoning_bytes, with_unicode)
    turns.append(_turn(rng, prompt, content, reasoning))
    return turns


def _row(
    example_id: int,
    index: int,
    rng: random.Random,
    reasoning_bytes: int,
    layout: str,
    best: float | None,
) -> dict[str, Any]:
    spec = MODULES[index]
    tiles = _random_tiles(rng)
    ctx = _context(index, tiles, rng)
    tagged = rng.random() >= _P_NO_ANSWER
    text = data.PROMPT.format(python_code=spec.python_code.rstrip("\n"), **ctx)
    prompt = [{"role": "user", "content": text}]
    turns = _turns(rng, index, prompt, ctx, tiles, tagged, reasoning_bytes)
    final = turns[-1]["response"]["choices"][0]["message"]
    completion = {"role": "assistant", "content": final["content"]}
    if layout == "verifiers":
        completion["reasoning_content"] = final["reasoning_content"]

    reward = _reward(rng, tagged, best)
    tokens = sum(t["response"]["usage"]["completion_tokens"] for t in turns)
    generation_ms = round(tokens / rng.uniform(35.0, 90.0) * 1000.0, 3)
    scoring_ms = round(rng.uniform(800.0, 15000.0), 3)
    row: dict[str, Any] = {"example_id": example_id, "prompt": prompt, "completion": [completion]}
    if layout == "trajectory":
        row["task"] = "kernelbook"
    row |= {
        "info": {
            "module_name": spec.name,
            "python_code": spec.python_code,
            "triton_code": spec.triton_code,
            "entry_point": spec.entry_point,
            "uuid": spec.uuid,
        },
        "reward": reward,
        "generation_ms": generation_ms,
        "scoring_ms": scoring_ms,
        "total_ms": round(generation_ms + scoring_ms, 3),
        "answer": f"\n{_answer_code(index, tiles)}\n" if tagged else "",
        "speedup_reward": round(reward * rng.lognormvariate(0.0, 0.5), 4) if reward else 0.0,
        "num_turns": float(len(turns)),
    }
    if layout == "trajectory":
        row["trajectory"] = turns
    return row


def _rows(n_rows: int, reasoning_bytes: int, seed: int, layout: str) -> Iterator[dict[str, Any]]:
    order = list(range(len(MODULES)))
    random.Random(f"kbpipe-sample:{seed}:order").shuffle(order)
    best: dict[int, float] = {}  # top reward so far per module, to plant ties
    for i in range(n_rows):
        index = order[i % len(order)]
        rng = random.Random(f"kbpipe-sample:{seed}:{i}")
        row = _row(i, index, rng, reasoning_bytes, layout, best.get(index))
        best[index] = max(row["reward"], best.get(index, 0.0))
        yield row


# --------------------------------------------------------------------------- writers


def write_rollouts_jsonl(
    path: str | Path,
    n_rows: int = 240,
    reasoning_bytes: int = 4000,
    seed: int = 0,
    layout: str = "trajectory",
) -> int:
    """Write `n_rows` vf-eval rollouts as JSONL, streaming; return the rows written.

    `layout="trajectory"` is `vf-eval -C trajectory` output (reasoning under
    `trajectory[-1].response.choices[0].message.reasoning_content`);
    `layout="verifiers"` is the newer layout without `trajectory` and `task`,
    the reasoning on the completion message as `reasoning_content`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if n_rows < 0 or reasoning_bytes < 0:
        raise ValueError("n_rows and reasoning_bytes must be >= 0")
    with (
        atomic_output(Path(path)) as tmp,
        open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh,
    ):
        for row in _rows(n_rows, reasoning_bytes, seed, layout):
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
    return n_rows


def write_kernelbook(path: str | Path, seed: int = 0) -> int:
    """Write the KernelBook-style table (one row per module, rows in a seeded order)."""
    specs = list(MODULES)
    random.Random(f"kbpipe-sample:{seed}:kernelbook").shuffle(specs)
    attribute = {"module_name": "name"}  # every other column is the ModuleSpec field itself
    columns = {
        c: pa.array([getattr(s, attribute.get(c, c)) for s in specs], pa.string())
        for c in KERNELBOOK_COLUMNS
    }
    write_table(pa.table(columns), path)
    return len(specs)


def write_sample(
    out_dir: str | Path,
    n_rows: int = 240,
    reasoning_bytes: int = 4000,
    seed: int = 0,
    layout: str = "trajectory",
) -> dict[str, Path]:
    """Write `kernelbook-env.jsonl` and `kernelbook.parquet` into `out_dir`."""
    out = Path(out_dir)
    paths = {"rollouts": out / "kernelbook-env.jsonl", "kernelbook": out / "kernelbook.parquet"}
    write_rollouts_jsonl(paths["rollouts"], n_rows, reasoning_bytes, seed, layout)
    write_kernelbook(paths["kernelbook"], seed)
    return paths
