"""Small `ast` helpers of the audit: import aliases, name resolution, statement walks."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping, Sequence


def resolve(expr: ast.expr, aliases: Mapping[str, str]) -> str | None:
    """The dotted library name an expression refers to, through imports; None for locals."""
    if isinstance(expr, ast.Name):
        return aliases.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = resolve(expr.value, aliases)
        return f"{base}.{expr.attr}" if base else None
    return None


def aliases_of(tree: ast.Module, nodes: Sequence[ast.AST]) -> dict[str, str]:
    """Local name -> dotted library name, from every import and module-level alias."""
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                # `import torch.nn` binds `torch`; `import torch.nn as nn` binds the submodule
                root = a.name.split(".")[0]
                aliases[a.asname or root] = a.name if a.asname else root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in tree.body:  # `aten = torch.ops.aten`, as inductor output writes
        for target, value in assignments(node):
            path = resolve(value, aliases) if isinstance(target, ast.Name) else None
            if path:
                aliases[target.id] = path
    return aliases


def statements(body: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """Every statement (and except handler), however nested, without their expressions."""
    for stmt in body:
        yield stmt
        for name in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                yield from statements(inner)


def mentions(code: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


def assignments(node: ast.AST) -> list[tuple[ast.expr, ast.expr]]:
    if isinstance(node, ast.Assign):
        return [(t, node.value) for t in node.targets]
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [(node.target, node.value)]
    return []


def name_of(expr: ast.expr) -> str | None:
    return expr.id if isinstance(expr, ast.Name) else None


def is_self(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Name) and expr.id == "self"
