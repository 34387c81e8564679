"""Generated module variants for measuring the matchers (tests and `bench/bench_codematch.py`).

- `rename_identifiers` renames what an author chooses (classes, functions,
  arguments, locals, import aliases, attributes set on `self`, method names)
  consistently through the whole file. It is written independently of the
  normaliser's scoping: one global mapping, skipping any name that also appears
  where renaming it would change behaviour (an attribute of another object, a
  keyword of a library call).
- `kernelbook_copy` is how a benchmark problem looks after a trip through
  GitHub and KernelBook: renamed, imports reordered, comments and a docstring
  added, KernelBook's `get_inputs`/`get_init_inputs` in place of the original's.
- `edited_copy` adds one small edit on top (a changed literal, an extra
  statement), the near-copies the n-gram overlap is for.
- `random_module` writes an unrelated KernelBook-sized module from a
  vocabulary of layers and ops; `random_modules` many of them, a share being
  renamed copies of earlier ones (near-duplicates for the clustering bench).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import random
from collections.abc import Callable

from kbpipe.codematch.normalize import HARNESS_FUNCTIONS, _is_api_method, _parameters

_SYLLABLES = ("ka", "lo", "mi", "ra", "tex", "vo", "zen", "qu", "del", "pha", "nor", "sig")


def fresh_name(rng: random.Random, taken: set[str], *, capital: bool = False) -> str:
    """A new identifier not in `taken` (which it joins), nor a keyword or builtin."""
    while True:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        name = name.capitalize() if capital else name + rng.choice(("", "_x", "2", "_val"))
        if name not in taken and not keyword.iskeyword(name) and not hasattr(builtins, name):
            taken.add(name)
            return name


def identifiers(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        for attr in ("id", "arg", "name", "attr", "asname"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                found.add(value)
    return found


def renameable_names(tree: ast.Module) -> set[str]:
    """Names an author chose, minus those that are also somebody else's attribute or keyword."""
    selves = _self_names(tree)
    chosen, foreign = _user_names(tree, selves), set()
    callables = _callables(tree)
    # attributes made by register_buffer/setattr have no `self.x = ...` to rename with them
    own_attributes = _self_stored(tree, selves) | _method_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            not _on_self(node, selves) or node.attr not in own_attributes
        ):
            foreign.add(node.attr)
        elif isinstance(node, ast.Call) and not _user_callee(node.func, callables, selves):
            foreign.update(k.arg for k in node.keywords if k.arg)
    return (chosen - foreign) - HARNESS_FUNCTIONS


def _user_names(tree: ast.Module, selves: set[str]) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and not _is_api_method(node.name):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and _on_self(node, selves)
        ):
            names.add(node.attr)
    return names


def _callables(tree: ast.Module) -> set[str]:
    top = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
    return top | _method_names(tree)


def _self_stored(tree: ast.Module, selves: set[str]) -> set[str]:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and _on_self(node, selves)
    }


def _method_names(tree: ast.Module) -> set[str]:
    return {
        fn.name
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        for fn in cls.body
        if isinstance(fn, ast.FunctionDef) and not _is_api_method(fn.name)
    }


def _self_names(tree: ast.Module) -> set[str]:
    return {
        params[0]
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        for fn in cls.body
        if isinstance(fn, ast.FunctionDef) and (params := _parameters(fn))
    }


def _on_self(node: ast.Attribute, selves: set[str]) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in selves


def _user_callee(func: ast.expr, callables: set[str], selves: set[str]) -> bool:
    """Calls whose keywords are the file's own parameters, as far as the file alone shows.

    `self.block(x, mask=m)` calls whatever module `self.block` holds: which
    class that is cannot be known without running __init__, so its keywords
    count as somebody else's (and their names stay).
    """
    if isinstance(func, ast.Name):
        return func.id in callables
    return isinstance(func, ast.Attribute) and _on_self(func, selves) and func.attr in callables


def rename_identifiers(code: str, new_name: Callable[[str], str]) -> str:
    """`code` with every renameable name `n` replaced by `new_name(n)`, printed by ast.unparse."""
    tree = ast.parse(code)
    names = renameable_names(tree)
    mapping = {n: new_name(n) for n in sorted(names)}
    callables = _callables(tree)
    selves = _self_names(tree)
    for node in list(ast.walk(tree)):
        _rename_node(node, mapping, callables, selves)
    return ast.unparse(tree)


def _rename_node(
    node: ast.AST, mapping: dict[str, str], callables: set[str], selves: set[str]
) -> None:
    if isinstance(node, ast.Name | ast.arg | ast.ClassDef | ast.FunctionDef):
        field = {"Name": "id", "arg": "arg"}.get(type(node).__name__, "name")
        value = getattr(node, field)
        setattr(node, field, mapping.get(value, value))
    elif isinstance(node, ast.alias) and node.asname:
        node.asname = mapping.get(node.asname, node.asname)
    elif isinstance(node, ast.Attribute) and _on_self(node, selves):
        node.attr = mapping.get(node.attr, node.attr)
    elif isinstance(node, ast.Call) and _user_callee(node.func, callables, selves):
        for k in node.keywords:
            if k.arg:
                k.arg = mapping.get(k.arg, k.arg)


# --------------------------------------------------------------------------- copies

KERNELBOOK_HARNESS = """

def get_inputs():
    return [torch.rand([4, 4, 4, 4])]


def get_init_inputs():
    return [[], {}]
"""


def kernelbook_copy(code: str, rng: random.Random) -> str:
    """A benchmark problem as KernelBook would hold it: renamed, reformatted, new harness."""
    tree = ast.parse(code)
    taken = identifiers(tree)
    renamed = rename_identifiers(
        code, lambda n: n if n == "self" else fresh_name(rng, taken, capital=n[:1].isupper())
    )
    return _reformat(_without_harness(ast.parse(renamed)), rng)


def edited_copy(code: str, rng: random.Random) -> str:
    """`kernelbook_copy` plus one small edit: a changed literal, a repeated or dropped statement."""
    tree = ast.parse(code)
    methods = [
        fn
        for cls in tree.body
        if isinstance(cls, ast.ClassDef)
        for fn in cls.body
        if isinstance(fn, ast.FunctionDef) and len(fn.body) >= 2
    ]
    numbers = [
        n
        for n in ast.walk(ast.Module(body=methods, type_ignores=[]))
        if isinstance(n, ast.Constant) and type(n.value) in (int, float) and n.value not in (0, 1)
    ]
    edit = rng.choice(("literal", "repeat", "drop")) if numbers else rng.choice(("repeat", "drop"))
    if edit == "literal":
        node = rng.choice(numbers)
        node.value = node.value * 2 if isinstance(node.value, int) else round(node.value * 1.5, 4)
    elif methods:
        fn = rng.choice(methods)
        i = rng.randrange(len(fn.body) - 1)  # never the final return
        fn.body[i:i] = [fn.body[i]] if edit == "repeat" else []
        if edit == "drop":
            del fn.body[i]
    return kernelbook_copy(ast.unparse(tree), rng)


def _without_harness(tree: ast.Module) -> str:
    """The module without its harness and the constants only the harness used."""
    harness = (ast.FunctionDef, ast.Assign, ast.AnnAssign)
    model = [n for n in tree.body if not isinstance(n, harness) or _is_model_def(n)]
    used = {n.id for d in model for n in ast.walk(d) if isinstance(n, ast.Name)}
    kept = [
        node
        for node in tree.body
        if node in model
        or (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and any(isinstance(t, ast.Name) and t.id in used for t in _targets(node))
        )
    ]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) + KERNELBOOK_HARNESS


def _is_model_def(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef) and node.name not in HARNESS_FUNCTIONS


def _targets(node: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return node.targets if isinstance(node, ast.Assign) else [node.target]


_COMMENTS = ("# TODO: check shapes", "# noqa", "# see paper, eq. 3", "# fused later", "# helper")


def _reformat(code: str, rng: random.Random) -> str:
    lines = code.splitlines()
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    body = [line for line in lines if not line.startswith(("import ", "from "))]
    rng.shuffle(imports)
    if rng.random() < 0.5:
        imports.append("import math")
    out = ['"""Ported from a research repo."""', *imports, ""]
    for line in body:
        if line.strip() and rng.random() < 0.15:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + rng.choice(_COMMENTS))
        out.append(line)
        if line.startswith(("class ", "def ")) or (line.strip() and rng.random() < 0.1):
            out.append("")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- unrelated modules

# (constructor, forward call): `$a` is the attribute, `$x` the tensor, `$n`/`$m` sizes
_LAYERS = (
    ("nn.Linear($n, $m)", "$x = self.$a($x)"),
    ("nn.Conv2d($n, $m, kernel_size=$k, padding=$p)", "$x = self.$a($x)"),
    ("nn.Conv1d($n, $m, $k, stride=$s)", "$x = self.$a($x)"),
    ("nn.BatchNorm2d($n)", "$x = self.$a($x)"),
    ("nn.LayerNorm($n, eps=$e)", "$x = self.$a($x)"),
    ("nn.Dropout($f)", "$x = self.$a($x)"),
    ("nn.GroupNorm($k, $n)", "$x = self.$a($x)"),
    ("nn.Embedding($n, $m)", "$x = self.$a($x.long())"),
    ("nn.Parameter(torch.ones($n) * $f)", "$x = $x * self.$a"),
    ("nn.Parameter(torch.zeros(1, $n, 1, 1))", "$x = $x + self.$a"),
    ("$f", "$x = $x * self.$a + $e"),
)
_OPS = (
    "$x = F.relu($x)",
    "$x = F.gelu($x)",
    "$x = F.silu($x)",
    "$x = F.leaky_relu($x, $f)",
    "$x = torch.tanh($x)",
    "$x = torch.sigmoid($x) * $x",
    "$x = torch.clamp($x, min=-$f, max=$f)",
    "$x = $x.view($x.size(0), -1)",
    "$x = $x.transpose($p, $s)",
    "$x = $x.mean(dim=$p, keepdim=True)",
    "$x = torch.cat([$x, $x * $f], dim=$p)",
    "$x = F.dropout($x, p=$f, training=self.training)",
    "$x = F.max_pool2d($x, $k)",
    "$x = F.softmax($x / $e, dim=-1)",
    "$x = $x.pow($k).sum(dim=$p, keepdim=True).sqrt()",
    "$x = F.normalize($x, p=$s, dim=$p)",
)


def random_module(rng: random.Random) -> str:
    """An unrelated KernelBook-style module: imports, maybe helpers, one model class, harness."""
    taken: set[str] = set()
    name = fresh_name(rng, taken, capital=True)
    parts = [_imports(rng)]
    parts += [_helper_class(rng, taken) for _ in range(rng.choice((0, 0, 0, 1, 2)))]
    parts.append(_model_class(rng, taken, name, n_layers=rng.randint(1, 10)))
    return "\n\n\n".join(parts) + "\n" + KERNELBOOK_HARNESS


def _imports(rng: random.Random) -> str:
    lines = ["import torch", "import torch.nn as nn", "import torch.nn.functional as F"]
    lines += rng.sample(["import math", "import numpy as np", "from typing import Optional"], 1)
    rng.shuffle(lines)
    return "\n".join(lines)


def _helper_class(rng: random.Random, taken: set[str]) -> str:
    return _model_class(rng, taken, fresh_name(rng, taken, capital=True), rng.randint(1, 3))


def _model_class(rng: random.Random, taken: set[str], name: str, n_layers: int) -> str:
    sizes = [fresh_name(rng, taken) for _ in range(rng.randint(1, 3))]
    x = rng.choice(("x", "inputs", "h", "feat"))
    init = [f"        super({name}, self).__init__()"]
    forward = []
    for _ in range(n_layers):
        ctor, call = rng.choice(_LAYERS)
        attr = fresh_name(rng, taken)
        init.append(f"        self.{attr} = {_fill(ctor, rng, sizes, x, attr)}")
        forward.append(_fill(call, rng, sizes, x, attr))
        forward += [_fill(rng.choice(_OPS), rng, sizes, x, attr) for _ in range(rng.randint(0, 2))]
    args = ", ".join(f"{s}={rng.choice((4, 8, 16, 64, 128))}" for s in sizes)
    lines = [f"class {name}(nn.Module):", ""]
    if rng.random() < 0.4:
        lines.append(f'    """{rng.choice(_DOCS)}"""')
    lines += [f"    def __init__(self, {args}):", *init, "", f"    def forward(self, {x}):"]
    lines += [f"        {line}" for line in forward] + [f"        return {x}"]
    return "\n".join(lines)


_DOCS = ("A small block.", "Projection head.", "Residual-free variant of the encoder block.")


def _fill(template: str, rng: random.Random, sizes: list[str], x: str, attr: str) -> str:
    values = {
        "$a": attr,
        "$x": x,
        "$n": rng.choice(sizes),
        "$m": rng.choice([*sizes, str(rng.choice((2, 10, 32, 256)))]),
        "$k": str(rng.choice((1, 2, 3, 5, 7))),
        "$p": str(rng.choice((0, 1, 2))),
        "$s": str(rng.choice((1, 2))),
        "$e": repr(rng.choice((1e-5, 1e-6, 0.5, 2.0, 0.1))),
        "$f": repr(round(rng.uniform(0.01, 3.0), rng.choice((1, 2, 3)))),
    }
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def random_modules(n: int, seed: int, *, copy_share: float = 0.1) -> tuple[list[str], list[int]]:
    """`n` modules and, for each, the index of the module it copies (itself for originals).

    A `copy_share` of them are renamed/reformatted copies of an earlier module
    (half exact after normalisation, half with one small edit).
    """
    rng = random.Random(seed)
    codes: list[str] = []
    origin: list[int] = []
    for i in range(n):
        if codes and rng.random() < copy_share:
            j = rng.randrange(len(codes))
            copy = kernelbook_copy if rng.random() < 0.5 else edited_copy
            codes.append(copy(codes[origin[j]], rng))
            origin.append(origin[j])
        else:
            codes.append(random_module(rng))
            origin.append(i)
    return codes, origin
