"""What a KernelBook module does, read from its PyTorch source with `ast`.

`analyze(python_code, module_name)` finds the module's class, the layers its
`__init__` creates (`self.fc = nn.Linear(...)`, `nn.Sequential(...)`, custom
blocks defined in the same file), its learnable parameters, and every torch op
its `forward` (and the helpers it calls) applies, sorted into kinds:

    view         reshape/permute/cat/...: data movement, no arithmetic
    elementwise  activations, arithmetic between tensors, where/clamp/...
    scalar       arithmetic with a constant or a size (x / math.sqrt(d))
    reduction    sum/mean/max/softmax/norms/pooling/losses/cumsum
    matmul       matmul/bmm/@/linear/conv/einsum
    sequence     recurrent layers and attention primitives

It also reads the example inputs from `get_inputs()` / `get_init_inputs()`.
No code is executed; unknown calls are recorded rather than guessed.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field

from kbpipe.rater.offline.torchops import (
    CONTAINERS,
    ELEMENTWISE,
    LAYER_KIND,
    MATMUL,
    REDUCTION,
    SEQUENCE,
    VIEW,
)

_BINOP_NAMES = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
    ast.Mod: "remainder",
    ast.FloorDiv: "floor_divide",
}


@dataclass
class Layer:
    attr: str
    kind: str  # matmul/reduction/elementwise/sequence/view/unknown
    type_name: str
    count: int = 1


@dataclass
class Features:
    module_name: str
    class_found: bool = True
    parsed: bool = True
    ops: Counter[str] = field(default_factory=Counter)  # "kind:name" -> occurrences
    layers: list[Layer] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    custom_blocks: set[str] = field(default_factory=set)
    loops: int = 0
    unknown_calls: Counter[str] = field(default_factory=Counter)
    init_params: list[tuple[str, str | None]] = field(default_factory=list)
    forward_params: list[str] = field(default_factory=list)
    example_inputs: list[str] = field(default_factory=list)
    example_init: str | None = None
    docstring: str | None = None

    def count(self, kind: str) -> int:
        """Occurrences of a kind in forward, counting each layer instance it uses."""
        ops = sum(n for k, n in self.ops.items() if k.split(":", 1)[0] == kind)
        return ops + sum(layer.count for layer in self.layers if layer.kind == kind)

    def names(self, kind: str) -> list[str]:
        found = [k.split(":", 1)[1] for k in self.ops if k.split(":", 1)[0] == kind]
        found += [f"nn.{layer.type_name}" for layer in self.layers if layer.kind == kind]
        return sorted(set(found))


def analyze(python_code: str, module_name: str) -> Features:
    feats = Features(module_name)
    try:
        tree = ast.parse(python_code)
    except SyntaxError:
        feats.parsed = False
        return _scan_tokens(python_code, feats)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    main = classes.get(module_name) or _last_module_class(classes)
    if main is None:
        feats.class_found = False
        return _scan_tokens(python_code, feats)
    feats.docstring = ast.get_docstring(main)
    _Collector(feats, classes, functions).visit_class(main, depth=0)
    _read_examples(functions, feats)
    return feats


def _last_module_class(classes: dict[str, ast.ClassDef]) -> ast.ClassDef | None:
    mods = [c for c in classes.values() if any("Module" in ast.unparse(b) for b in c.bases)]
    return mods[-1] if mods else None


class _Collector:
    """Walks a class's __init__ (layers) and forward (ops), following local helpers."""

    def __init__(
        self,
        feats: Features,
        classes: dict[str, ast.ClassDef],
        functions: dict[str, ast.FunctionDef],
    ) -> None:
        self.f = feats
        self.classes = classes
        self.functions = functions
        self.seen_functions: set[str] = set()
        self.buffers: set[str] = set()

    def visit_class(self, cls: ast.ClassDef, depth: int) -> None:
        methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
        init, forward = methods.get("__init__"), methods.get("forward")
        top = depth == 0
        if init is not None:
            if top:
                self.f.init_params = _params(init)
            for node in ast.walk(init):
                if isinstance(node, ast.Assign | ast.AnnAssign):
                    self._init_assign(node, depth)
                elif isinstance(node, ast.Call) and _call_name(node) == "register_parameter":
                    self.f.parameters.append("self." + _arg_text(node, 0).strip("'\""))
                elif isinstance(node, ast.Call) and _call_name(node) == "register_buffer":
                    self.buffers.add("self." + _arg_text(node, 0).strip("'\""))
        if forward is not None:
            if top:
                self.f.forward_params = [a for a, _ in _params(forward)]
            self._ops(forward, methods)

    def _init_assign(self, node: ast.Assign | ast.AnnAssign, depth: int) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        attr = next((ast.unparse(t) for t in targets if isinstance(t, ast.Attribute)), None)
        if attr is None or not isinstance(node.value, ast.Call):
            return
        name = _call_name(node.value)
        if name == "Parameter":
            self.f.parameters.append(attr)
        for type_name, count in _layer_calls(node.value):
            self._add_layer(attr, type_name, count, depth)

    def _add_layer(self, attr: str, type_name: str, count: int, depth: int) -> None:
        if type_name in self.classes:
            self.f.custom_blocks.add(type_name)
            if depth < 3:  # a block that nests itself would recurse forever
                self.visit_class(self.classes[type_name], depth + 1)
            return
        kind = LAYER_KIND.get(type_name, "unknown")
        self.f.layers.append(Layer(attr, kind, type_name, count))

    def _ops(self, fn: ast.FunctionDef, methods: dict[str, ast.FunctionDef]) -> None:
        scope = _Scope(set(), set(self.f.parameters) | self.buffers)
        _collect_scalars(fn, scope)
        for node in ast.walk(fn):
            if isinstance(node, ast.For | ast.While | ast.comprehension):
                self.f.loops += 1
            elif isinstance(node, ast.BinOp):
                self._binop(node.op, node.left, node.right, scope)
            elif isinstance(node, ast.AugAssign):
                self._binop(node.op, node.target, node.value, scope)
            elif isinstance(node, ast.Call):
                self._call(node, methods, scope)

    def _binop(self, op: ast.operator, left: ast.expr, right: ast.expr, scope: _Scope) -> None:
        if isinstance(op, ast.MatMult):
            self.f.ops["matmul:@"] += 1
            return
        name = _BINOP_NAMES.get(type(op), "arith")
        if _is_scalar(left, scope) and _is_scalar(right, scope):
            return  # arithmetic on sizes or constants, not tensor work
        scalar = _is_scalar(left, scope) or _is_scalar(right, scope)
        self.f.ops[f"{'scalar' if scalar else 'elementwise'}:{name}"] += 1

    def _call(self, node: ast.Call, methods: dict[str, ast.FunctionDef], scope: _Scope) -> None:
        name = _call_name(node)
        func = node.func
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if owner == "self" and name in methods:
            if name not in self.seen_functions:
                self.seen_functions.add(name)
                self._ops(methods[name], methods)
            return
        if owner.startswith("self.") or owner == "self" or owner == "math" or not name:
            return  # layer calls are counted from __init__; math.* is host arithmetic
        if not owner and name in self.functions:
            if name not in self.seen_functions:
                self.seen_functions.add(name)
                self._ops(self.functions[name], methods)
            return
        base = name.rstrip("_")
        kind = _op_kind(base, node, scope)
        if kind is None:
            if owner:  # a method or module function we have no entry for; bare names are Python
                self.f.unknown_calls[base] += 1
            return
        self.f.ops[f"{kind}:{base}"] += 1


def _op_kind(name: str, node: ast.Call, scope: _Scope) -> str | None:
    if name in ("max", "min"):
        # torch.max(a, b) is elementwise; torch.max(x), x.max(dim) reduce.
        args = node.args
        is_fn = isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "torch"
        if is_fn and len(args) >= 2 and not _is_scalar(args[1], scope):
            return "elementwise"
        return "reduction"
    for kind, names in (
        ("view", VIEW),
        ("sequence", SEQUENCE),
        ("matmul", MATMUL),
        ("reduction", REDUCTION),
        ("elementwise", ELEMENTWISE),
    ):
        if name in names:
            if kind == "elementwise" and name in _BINARY and _scalar_operand(node, scope):
                return "scalar"
            return kind
    return None


_BINARY = frozenset({"add", "sub", "mul", "div", "true_divide", "pow", "remainder"})


def _scalar_operand(node: ast.Call, scope: _Scope) -> bool:
    return any(_is_scalar(a, scope) for a in node.args)


def _layer_calls(call: ast.Call) -> list[tuple[str, int]]:
    """Layer types a constructor expression builds: nn.X(...), Block(...), containers."""
    name = _call_name(call)
    if name in CONTAINERS:
        found: list[tuple[str, int]] = []
        for sub in ast.walk(call):
            if sub is call or not isinstance(sub, ast.Call):
                continue
            sub_name = _call_name(sub)
            if sub_name and sub_name[0].isupper() and sub_name not in CONTAINERS:
                found.append((sub_name, 1))
        return found
    if name and name[0].isupper() and name != "Parameter":
        return [(name, 1)]
    return []


@dataclass
class _Scope:
    scalars: set[str]  # local names holding numbers
    tensors: set[str]  # self attributes holding tensors (parameters, buffers)


def _collect_scalars(fn: ast.FunctionDef, scope: _Scope) -> None:
    """Local names that hold sizes or plain numbers (b, c, h, w = x.size(); d = q.shape[-1])."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and _is_scalar(node.value, scope):
            for target in node.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        scope.scalars.add(n.id)


def _is_scalar(node: ast.AST, scope: _Scope) -> bool:
    """True for numbers: constants, sizes, math.* results, non-tensor attributes of self."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in scope.scalars
    if isinstance(node, ast.Attribute):
        text = ast.unparse(node)
        # self.eps / self.scale hold numbers unless __init__ made them parameters or buffers.
        return (text.startswith("self.") and text not in scope.tensors) or text.endswith(
            (".shape", ".ndim")
        )
    if isinstance(node, ast.UnaryOp):
        return _is_scalar(node.operand, scope)
    if isinstance(node, ast.BinOp):
        return _is_scalar(node.left, scope) and _is_scalar(node.right, scope)
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value).endswith((".shape", "size()"))
    if isinstance(node, ast.Call):
        text = ast.unparse(node.func)
        return (
            text.startswith("math.")
            or text in ("len", "int", "float")
            or text.endswith((".size", ".dim", ".numel"))
        )
    return False


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _arg_text(call: ast.Call, i: int) -> str:
    return ast.unparse(call.args[i]) if len(call.args) > i else "?"


def _params(fn: ast.FunctionDef) -> list[tuple[str, str | None]]:
    args = fn.args.args[1:]  # drop self
    defaults: list[ast.expr | None] = [None] * (len(args) - len(fn.args.defaults))
    defaults += list(fn.args.defaults)
    out = [
        (a.arg, ast.unparse(d) if d is not None else None)
        for a, d in zip(args, defaults, strict=True)
    ]
    if fn.args.vararg:
        out.append(("*" + fn.args.vararg.arg, None))
    for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True):
        out.append((a.arg, ast.unparse(d) if d is not None else None))
    if fn.args.kwarg:
        out.append(("**" + fn.args.kwarg.arg, None))
    return out


def _read_examples(functions: dict[str, ast.FunctionDef], feats: Features) -> None:
    """The literal tensors get_inputs() returns and the init args get_init_inputs() gives."""
    get_inputs = functions.get("get_inputs")
    if get_inputs is not None:
        ret = next((n.value for n in ast.walk(get_inputs) if isinstance(n, ast.Return)), None)
        if isinstance(ret, ast.List | ast.Tuple):
            feats.example_inputs = [_describe_tensor(e) for e in ret.elts]
    init = functions.get("get_init_inputs")
    if init is not None:
        ret = next((n.value for n in ast.walk(init) if isinstance(n, ast.Return)), None)
        if ret is not None:
            feats.example_init = ast.unparse(ret)


_DTYPE_BY_FACTORY = {
    "randint": "int64",
    "randint_like": "int64",
    "ones": "float32",
    "zeros": "float32",
    "rand": "float32",
    "randn": "float32",
    "empty": "float32",
    "full": "float32",
    "tensor": "inferred",
    "arange": "int64",
}


def _describe_tensor(node: ast.expr) -> str:
    """`torch.rand([4, 4, 4, 4])` -> `float32 tensor of shape [4, 4, 4, 4]`."""
    if not isinstance(node, ast.Call):
        return f"the value {ast.unparse(node)}"
    name = _call_name(node)
    dtype = _DTYPE_BY_FACTORY.get(name, "float32")
    shape_args = node.args
    if name == "randint":
        shape_args = [a for a in node.args if isinstance(a, ast.List | ast.Tuple)]
        if not shape_args:
            shape_args = [kw.value for kw in node.keywords if kw.arg == "size"]
    for kw in node.keywords:
        if kw.arg == "dtype":
            dtype = ast.unparse(kw.value).removeprefix("torch.")
    if len(shape_args) == 1 and isinstance(shape_args[0], ast.List | ast.Tuple):
        dims = [ast.unparse(e) for e in shape_args[0].elts]
    else:
        dims = [ast.unparse(a) for a in shape_args]
    if name == "tensor":
        return f"a tensor built from the literal {ast.unparse(node.args[0]) if node.args else ''}"
    return f"{dtype} tensor of shape [{', '.join(dims)}]"


def _scan_tokens(code: str, feats: Features) -> Features:
    """Fallback for code that does not parse: count torch/F/nn names as they appear."""
    for owner, name in re.findall(r"\b(torch|F|nn)\.(\w+)", code):
        if owner == "nn" and name in LAYER_KIND:
            feats.layers.append(Layer(name, LAYER_KIND[name], name))
            continue
        base = name.rstrip("_")
        for kind, names in (
            ("matmul", MATMUL),
            ("reduction", REDUCTION),
            ("elementwise", ELEMENTWISE),
            ("sequence", SEQUENCE),
        ):
            if base in names:
                feats.ops[f"{kind}:{base}"] += 1
    feats.ops["matmul:@"] += len(re.findall(r"\s@\s", code))
    return feats
