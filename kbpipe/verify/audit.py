"""Static reward-hack audit of one solution, with `ast` only (no torch, nothing executed).

What is reachable from `{module}New.forward`: the methods it calls on `self`
(searched in the class and its bases defined in the file), module-level
functions it calls or passes along, module-level classes it uses (their
methods, so `Fn.apply(...)` of an autograd Function and `self.block(x)` of a
submodule defined in the file are followed), `super()` calls into bases in the
file, all transitively. Triton kernels are not walked (their `tl.*` calls are
not torch compute); launching one is what the walk looks for.

Limits, by design of a static check: a value's type is not known, so a layer
called through a local variable (`for layer in self.layers: x = layer(x)`) is
not seen; a launched trivial kernel next to torch compute is only the
informational `partial_torch_compute`; the GPU re-execution (`verify`) is what
checks numbers. The name lists live in `kbpipe.verify.rules`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kbpipe.verify import rules
from kbpipe.verify.astnames import (
    aliases_of,
    assignments,
    is_self,
    mentions,
    name_of,
    resolve,
    statements,
)
from kbpipe.verify.extract import Solution, extract_solution

Node = tuple[str, str]  # (class name or "", function name)
_FUNCTION_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class AuditResult:
    flags: tuple[str, ...]
    ok: bool  # no flag other than informational ones
    kernels: tuple[str, ...] = ()  # Triton kernels defined
    launched: tuple[str, ...] = ()  # kernels launched from the forward path
    torch_ops: tuple[str, ...] = ()  # torch compute calls on the forward path, as written


def make_result(flags: Iterable[str], **details: tuple[str, ...]) -> AuditResult:
    found = set(flags)
    ordered = tuple(f for f in rules.FLAGS if f in found)
    ok = not any(not rules.is_informational(f) for f in ordered)
    return AuditResult(flags=ordered, ok=ok, **details)


def audit_completion(
    completion: Sequence[Mapping[str, Any]] | None, module_name: str, fmt: str = "auto"
) -> tuple[AuditResult, Solution | None]:
    """Extract the row's solution and audit it; `no_answer` when there is none."""
    solution = extract_solution(completion, fmt)
    if solution is None:
        return make_result(["no_answer"]), None
    return audit_code(solution.code, module_name), solution


def audit_code(code: str | None, module_name: str) -> AuditResult:
    """The audit flags of one solution for the task `module_name`."""
    if code is None or not code.strip():
        return make_result(["no_answer"])
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return make_result(["syntax_error"])
    program = _Program(tree, module_name, mentions_reference=mentions(code, module_name))
    return program.audit()


@dataclass
class _Facts:
    """What one function body does, before following its calls."""

    launches: set[str] = field(default_factory=set)
    ops: set[str] = field(default_factory=set)
    edges: set[Node] = field(default_factory=set)
    tries: list[tuple[str, ast.Try]] = field(default_factory=list)  # (owner class, node)
    # kernels named without being launched, and launches through some other name:
    # together they are a launch through a variable (`fn = _k if c else _k2; fn[grid](...)`)
    kernel_refs: set[str] = field(default_factory=set)
    indirect_launch: bool = False

    def add(self, other: _Facts) -> None:
        self.launches |= other.launches
        self.ops |= other.ops
        self.kernel_refs |= other.kernel_refs
        self.indirect_launch |= other.indirect_launch

    def all_launches(self) -> set[str]:
        return self.launches | (self.kernel_refs if self.indirect_launch else set())


class _Program:
    def __init__(self, tree: ast.Module, module_name: str, mentions_reference: bool) -> None:
        self.tree = tree
        self.module_name = module_name
        self.new_name = f"{module_name}New"
        self.mentions_reference = mentions_reference
        # Imports are statements: walking only those, not every expression of the
        # kernels, is most of what keeps the audit fast.
        self.aliases = aliases_of(tree, list(statements(tree.body)))
        self.functions = {n.name: n for n in tree.body if isinstance(n, _FUNCTION_DEFS)}
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.kernels = self._find_kernels()
        self._facts: dict[Node, _Facts] = {}
        self._submodules: dict[str, dict[str, ast.expr]] = {}

    # ----------------------------------------------------------------- verdict

    def audit(self) -> AuditResult:
        flags: set[str] = set()
        if not self.kernels:
            flags.add("no_triton_kernel")
        if self.new_name not in self.classes:
            flags.add("missing_class")
            return make_result(flags, kernels=tuple(sorted(self.kernels)))
        reached = self._reach(self._method_nodes(self.new_name, "forward"))
        path = _Facts()
        for node in reached:
            path.add(self._facts_of(node))
        launches, ops = path.all_launches(), path.ops
        if self.kernels and not launches:
            flags.add("kernel_not_launched")
        if ops:
            flags.add("partial_torch_compute" if launches else "torch_compute_in_forward")
        tries = [t for n in reached for t in self._facts_of(n).tries]
        if self._uses_reference() or any(self._is_fallback(*t) for t in tries):
            flags.add("reference_fallback")
        return make_result(
            flags,
            kernels=tuple(sorted(self.kernels)),
            launched=tuple(sorted(launches)),
            torch_ops=tuple(sorted(ops)),
        )

    def _is_fallback(self, owner: str, node: ast.Try) -> bool:
        """A try whose body reaches a launch and whose handlers reach torch compute."""
        body = self._reach_facts(self._scan(node.body, owner))
        handlers = self._reach_facts(self._scan(node.handlers, owner))
        return bool(body.all_launches()) and bool(handlers.ops)

    def _find_kernels(self) -> set[str]:
        kernels = {n for n, f in self.functions.items() if any(map(self._is_jit, f.decorator_list))}
        for node in self.tree.body:  # `kernel = triton.jit(fn)`
            for target, value in assignments(node):
                if (
                    isinstance(target, ast.Name)
                    and isinstance(value, ast.Call)
                    and self._is_jit(value)
                ):
                    kernels.add(target.id)
        return kernels

    def _uses_reference(self) -> bool:
        name = self.module_name
        if not self.mentions_reference or self._library_name(name):
            return False
        new = self.classes.get(self.new_name)
        if new is not None and any(name_of(b) == name for b in new.bases):
            return True
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
                return True
            if isinstance(node, ast.Call) and name_of(node.func) == name:
                return True
        return False

    # ----------------------------------------------------------------- walking

    def _reach(self, start: Iterable[Node]) -> set[Node]:
        seen: set[Node] = set()
        todo = list(start)
        while todo:
            node = todo.pop()
            if node in seen or self._definition(node) is None:
                continue
            seen.add(node)
            todo.extend(self._facts_of(node).edges)
        return seen

    def _reach_facts(self, facts: _Facts) -> _Facts:
        total = _Facts()
        total.add(facts)
        for node in self._reach(facts.edges):
            total.add(self._facts_of(node))
        return total

    def _facts_of(self, node: Node) -> _Facts:
        if node not in self._facts:
            fn = self._definition(node)
            walked = [n for s in fn.body for n in ast.walk(s)] if fn is not None else []
            facts = self._scan_nodes(walked, node[0])
            facts.tries = [(node[0], t) for t in walked if isinstance(t, ast.Try)]
            self._facts[node] = facts
        return self._facts[node]

    def _definition(self, node: Node) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        owner, name = node
        if not owner:
            return self.functions.get(name)
        cls = self.classes.get(owner)
        for item in cls.body if cls else ():
            if isinstance(item, _FUNCTION_DEFS) and item.name == name:
                return item
        return None

    def _method_nodes(self, cls_name: str, method: str) -> list[Node]:
        """Where `cls_name.method` may be defined: the class, then its bases in the file."""
        found, todo, seen = [], [cls_name], set()
        while todo:
            name = todo.pop(0)
            if name in seen or name not in self.classes:
                continue
            seen.add(name)
            if self._definition((name, method)) is not None:
                found.append((name, method))
                break
            todo.extend(b for b in map(name_of, self.classes[name].bases) if b)
        return found

    def _class_nodes(self, cls_name: str) -> list[Node]:
        """Every method of a class defined in the file and of its bases there."""
        nodes: list[Node] = []
        for name in [cls_name, *self._bases(cls_name)]:
            body = self.classes[name].body
            nodes += [(name, i.name) for i in body if isinstance(i, _FUNCTION_DEFS)]
        return nodes

    def _scan(self, stmts: Sequence[ast.AST], owner: str) -> _Facts:
        return self._scan_nodes([n for s in stmts for n in ast.walk(s)], owner)

    def _scan_nodes(self, nodes: Sequence[ast.AST], owner: str) -> _Facts:
        """What these (already walked) nodes launch, compute and call."""
        facts = _Facts()
        for node in nodes:
            if isinstance(node, ast.Call):
                self._scan_call(node, owner, facts)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                facts.ops.add("@")
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                facts.edges |= self._name_edges(node.id)
                if node.id in self.kernels:
                    facts.kernel_refs.add(node.id)
            elif isinstance(node, ast.Attribute) and is_self(node.value) and owner:
                facts.edges |= set(self._method_nodes(owner, node.attr))
        return facts

    def _name_edges(self, name: str) -> set[Node]:
        if name in self.functions and name not in self.kernels:
            return {("", name)}
        if name in self.classes:
            return set(self._class_nodes(name))
        return set()

    def _scan_call(self, call: ast.Call, owner: str, facts: _Facts) -> None:
        func = call.func
        launched = self._launched_kernel(func)
        if launched:
            facts.launches.add(launched)
            return
        if isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name):
            facts.indirect_launch = True
        if isinstance(func, ast.Subscript):
            func = func.value  # self.layers[i](x) calls what self.layers holds
        if isinstance(func, ast.Attribute) and func.attr == "forward":
            func = func.value  # self.conv.forward(x) is self.conv(x)
        if isinstance(func, ast.Attribute) and is_self(func.value) and owner:
            facts.edges |= self._submodule_edges(owner, func.attr)
            if self._submodule_is_compute(owner, func.attr):
                facts.ops.add(ast.unparse(call.func))
            return
        if self._is_super_call(func) and owner:
            facts.edges |= {n for b in self._bases(owner) for n in self._method_nodes(b, func.attr)}
            return
        if self._call_is_compute(func):
            facts.ops.add(ast.unparse(call.func))

    def _launched_kernel(self, func: ast.expr) -> str | None:
        is_launch = isinstance(func, ast.Subscript) or (
            isinstance(func, ast.Attribute) and func.attr in rules.LAUNCH_METHODS
        )
        name = name_of(func.value) if is_launch else None
        return name if name in self.kernels else None

    # ------------------------------------------------------- classification

    def _call_is_compute(self, func: ast.expr) -> bool:
        path = self._resolve(func)
        if path is not None:
            return rules.is_compute_path(path)
        # a method on a local value: the receiver is unknown, so only tensor-compute names count
        return isinstance(func, ast.Attribute) and func.attr in rules.TENSOR_METHOD_COMPUTE

    def _constructor_is_compute(self, value: ast.expr) -> bool:
        if not isinstance(value, ast.Call):
            return False
        path = self._resolve(value.func) or ""
        if not path.startswith("torch.nn.") or path.startswith("torch.nn.functional."):
            return False
        cls = path.rsplit(".", 1)[1]
        if cls in rules.NN_CONTAINERS:
            inner = [n for a in value.args for n in ast.walk(a) if isinstance(n, ast.Call)]
            return any(self._constructor_is_compute(n) for n in inner)
        return rules.is_compute_layer(cls)

    def _submodule_is_compute(self, owner: str, attr: str) -> bool:
        value = self._submodules_of(owner).get(attr)
        return value is not None and self._constructor_is_compute(value)

    def _submodule_edges(self, owner: str, attr: str) -> set[Node]:
        edges = set(self._method_nodes(owner, attr))
        value = self._submodules_of(owner).get(attr)
        if isinstance(value, ast.Call) and name_of(value.func) in self.classes:
            edges |= set(self._class_nodes(name_of(value.func)))
        return edges

    def _submodules_of(self, owner: str) -> dict[str, ast.expr]:
        """`self.X = value` assignments anywhere in the class and its bases in the file."""
        if owner not in self._submodules:
            found: dict[str, ast.expr] = {}
            for cls_name in [owner, *self._bases(owner)]:
                for node in ast.walk(self.classes[cls_name]):
                    for target, value in assignments(node):
                        if isinstance(target, ast.Attribute) and is_self(target.value):
                            found.setdefault(target.attr, value)
            self._submodules[owner] = found
        return self._submodules[owner]

    def _bases(self, owner: str) -> list[str]:
        """The classes `owner` inherits from that the file defines, nearest first."""
        found: list[str] = []
        todo = [owner]
        while todo:
            cls = self.classes.get(todo.pop(0))
            for base in map(name_of, cls.bases if cls else ()):
                if base in self.classes and base != owner and base not in found:
                    found.append(base)
                    todo.append(base)
        return found

    @staticmethod
    def _is_super_call(func: ast.expr) -> bool:
        return (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and name_of(func.value.func) == "super"
        )

    def _is_jit(self, decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return self._resolve(target) in rules.JIT_DECORATORS

    def _resolve(self, expr: ast.expr) -> str | None:
        return resolve(expr, self.aliases)

    def _library_name(self, name: str) -> bool:
        path = self.aliases.get(name)
        return path is not None and path.split(".")[0] in rules.LIBRARY_ROOTS
