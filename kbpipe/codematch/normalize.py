"""Canonical token streams of PyTorch module code, so renamed or reformatted copies match.

`normalize_code` parses the code with `ast` and rewrites it before tokenising:

- Only the model is kept: classes and functions. Imports, module-level
  constants, `if __name__ == ...` blocks and the KernelBook/KernelBench harness
  (`get_inputs`, `get_init_inputs`) go, because they carry problem sizes and
  house style, not the computation.
- Docstrings, bare string statements, comments and type annotations go;
  `super(Cls, self)` becomes `super()`.
- Classes become `C$0, C$1, ...` and module-level functions `f$0, ...` in
  order of definition; each function's arguments and locals become `v$0, v$1,
  ...` in order of first appearance (nested functions share their enclosing
  function's numbering); attributes a class sets on `self` (and its own method
  names) become `a$0, ...`; module-level constants `g$0, ...` by first use.
  `$` cannot occur in Python names, so a placeholder never meets a real one.
  Keyword arguments of calls to the module's own functions, classes and
  methods become the parameter's position (`p$0, ...`), so renaming a
  parameter leaves its callers' keywords in step. A keyword passed to a
  submodule held in an attribute (`self.block(x, mask=m)`) keeps its name:
  which class the attribute holds is not known without running `__init__`.
- Import aliases of top-level imports are spelled out (`F.relu` ->
  `torch.nn.functional.relu`, `nn.Module` -> `torch.nn.Module`), so
  `import ... as` choices and import order do not matter; every other
  attribute name (`torch.matmul`, `x.view`, `self.conv.weight`) and every
  literal is kept: they are the computation.

The rewritten tree is printed with `ast.unparse` (one canonical layout) and
split by a small lexer; indentation changes and line ends become the tokens
`<in>`, `<de>`, `<nl>`. Code that does not parse (Python 2 prints, truncated
files) falls back to a whitespace-normalised stream of the raw text, with
`parsed=False` so callers can count it.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass
from itertools import count

HARNESS_FUNCTIONS = frozenset({"get_inputs", "get_init_inputs"})
# Method names that nn.Module or Python call by name: renaming them changes behaviour.
_API_METHODS = frozenset({"forward"})
_TOKEN = re.compile(
    r"""[A-Za-z]\$\d+
      | [rbuRBUfF]{0,2}'(?:[^'\\\n]|\\.)*'
      | [rbuRBUfF]{0,2}"(?:[^"\\\n]|\\.)*"
      | [^\W\d]\w*
      | \d[\w.]*(?:(?<=[eE])[+-]\d+)?
      | \*\*=? | //=? | >>=? | <<=? | -> | := | \.\.\. | [-+*/%&|^@<>=!]=
      | \S""",
    re.VERBOSE,
)
_INDENT_WIDTH = 4  # ast.unparse always indents by four spaces


@dataclass(frozen=True)
class NormalizedCode:
    tokens: list[str]
    parsed: bool  # False: the code did not parse and `tokens` is its raw text, lexed

    def shape(self) -> list[str]:
        """The tokens with placeholders reduced to their kind (`v$3` -> `v$`).

        Positional placeholders make a renamed copy identical, but one inserted
        local or attribute renumbers everything after it; n-gram comparisons
        use this view, which an insertion disturbs only locally.
        """
        return [t[:2] if t[1:2] == "$" else t for t in self.tokens]


def normalize_code(code: str) -> NormalizedCode:
    """The canonical token stream of one module's source (see the module docstring)."""
    try:
        with warnings.catch_warnings():
            # invalid escape sequences in scraped code warn on every parse
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
        text = ast.unparse(_canonical_tree(tree))
    except (SyntaxError, ValueError, RecursionError):
        # ValueError: NUL bytes; RecursionError: pathologically nested expressions
        return NormalizedCode(_raw_tokens(code), parsed=False)
    return NormalizedCode(_layout_tokens(text), parsed=True)


def _raw_tokens(code: str) -> list[str]:
    lines = (line for line in code.splitlines() if not line.lstrip().startswith("#"))
    return _TOKEN.findall("\n".join(lines))


def _layout_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    depth = 0
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        level = (len(line) - len(stripped)) // _INDENT_WIDTH
        tokens += ["<in>"] * (level - depth) + ["<de>"] * (depth - level)
        depth = level
        tokens += _TOKEN.findall(stripped)
        tokens.append("<nl>")
    return tokens


# --------------------------------------------------------------------------- the rewrite
# One pre-order pass per definition: parents come before their children, so a
# node's original names are still there when its parent is rewritten.

Def = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class _Module:
    aliases: dict[str, str]  # import alias -> dotted path
    names: dict[str, str]  # module-level classes, functions, constants -> placeholders
    signatures: dict[str, list[str]]  # the module's functions and constructors -> parameters


def _canonical_tree(tree: ast.Module) -> ast.Module:
    kept = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef | Def) and node.name not in HARNESS_FUNCTIONS
    ]
    if not kept:
        # a script without definitions: its statements are all there is to compare
        kept = [n for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom)]
    module = _Module(_import_aliases(tree), _global_names(tree, kept), _signatures(kept))
    for node in kept:
        if isinstance(node, ast.ClassDef):
            _rewrite_class(node, module)
        elif isinstance(node, Def):
            _rewrite_function(node, module, _preorder(node))
        else:
            _rewrite_nodes(_preorder(node), module, {})
    for node in kept:
        if isinstance(node, ast.ClassDef | Def):
            node.name = module.names.get(node.name, node.name)
    return ast.Module(body=kept, type_ignores=[])


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path it stands for, from the file's top-level imports.

    Imports inside functions are rare in module code and are left as written
    (on both sides of a comparison alike); skipping them saves a whole walk.
    """
    aliases: dict[str, str] = {}
    statements = list(tree.body)
    for node in statements:
        if isinstance(node, ast.If | ast.Try):
            # `try: import x as y` / `if TYPE_CHECKING:` blocks, one level down
            statements += [n for part in (node.body, node.orelse) for n in part]
        elif isinstance(node, ast.Import):
            aliases |= {a.asname: a.name for a in node.names if a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
    aliases.pop("*", None)
    return aliases


def _global_names(tree: ast.Module, kept: list[ast.stmt]) -> dict[str, str]:
    """Placeholders for the names the file itself binds at module level.

    Constants are numbered by first use in the kept code, so dropping the
    harness's own constants (`batch_size = 16`) renumbers nothing.
    """
    names: dict[str, str] = {}
    classes, functions, constants = count(), count(), count()
    for node in kept:
        if isinstance(node, ast.ClassDef):
            names[node.name] = f"C${next(classes)}"
        elif isinstance(node, Def):
            names[node.name] = f"f${next(functions)}"
    assigned = {
        name.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        for name in ast.walk(target)
        if isinstance(name, ast.Name)
    }
    for node in kept if assigned else []:
        for name in _preorder(node):
            if isinstance(name, ast.Name) and name.id in assigned and name.id not in names:
                names[name.id] = f"g${next(constants)}"
    return names


def _signatures(kept: list[ast.stmt]) -> dict[str, list[str]]:
    """Parameter names of the module's functions and class constructors, `self` left out."""
    signatures: dict[str, list[str]] = {}
    for node in kept:
        if isinstance(node, Def):
            signatures[node.name] = _parameters(node)
        elif isinstance(node, ast.ClassDef):
            init = _methods(node).get("__init__")
            if init is not None:
                signatures[node.name] = _parameters(init)[1:]
    return signatures


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, Def)}


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[str]:
    a = fn.args
    extra = [x for x in (a.vararg, a.kwarg) if x is not None]
    return [x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *extra]]


def _is_api_method(name: str) -> bool:
    return name in _API_METHODS or (name.startswith("__") and name.endswith("__"))


# Fields that never hold a node worth visiting (names are read from their parents;
# `ctx` is a Load/Store marker): skipping them halves the walk.
_SCALAR_FIELDS = frozenset(
    {"ctx", "id", "arg", "attr", "name", "asname", "module", "level", "kind", "type_comment"}
)
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _preorder(root: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.append(node)
        fields = _CHILD_FIELDS.get(type(node))
        if fields is None:
            fields = tuple(f for f in node._fields if f not in _SCALAR_FIELDS)
            _CHILD_FIELDS[type(node)] = fields
        children = []
        for field in fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                children += [v for v in value if isinstance(v, ast.AST)]
            elif isinstance(value, ast.AST):
                children.append(value)
        stack += reversed(children)
    return out


def _local_names(fn: Def, nodes: list[ast.AST]) -> dict[str, str]:
    """Arguments and locals of a function (nested functions included) -> v$0, v$1, ..."""
    declared_global = {
        name for node in nodes if isinstance(node, ast.Global | ast.Nonlocal) for name in node.names
    }
    names: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            name = node.id
        elif (isinstance(node, ast.ClassDef | Def) and node is not fn) or (
            isinstance(node, ast.ExceptHandler) and node.name
        ):
            name = node.name
        else:
            continue
        if name not in names and name not in declared_global:
            names[name] = f"v${len(names)}"
    return names


def _class_attributes(cls: ast.ClassDef, bodies: dict[int, list[ast.AST]]) -> dict[str, str]:
    """Names the class defines for itself (self.x = ..., its methods, class variables) -> a$0."""
    events: list[tuple[str, bool]] = []  # (name, defined here) in a fixed order
    for stmt in cls.body:
        if isinstance(stmt, Def):
            if not _is_api_method(stmt.name):
                events.append((stmt.name, True))
            me = _first_parameter(stmt)
            events += [
                (node.attr, isinstance(node.ctx, ast.Store))
                for node in bodies[id(stmt)]
                if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == me
            ]
        else:
            events += [
                (node.id, not isinstance(node.ctx, ast.Load))
                for node in bodies[id(stmt)]
                if isinstance(node, ast.Name)
            ]
    defined = {name for name, is_definition in events if is_definition}
    attributes: dict[str, str] = {}
    for name, _ in events:
        if name in defined and name not in attributes:
            attributes[name] = f"a${len(attributes)}"
    return attributes


def _first_parameter(fn: Def) -> str | None:
    params = _parameters(fn)
    return params[0] if params else None


@dataclass
class _Scope:
    names: dict[str, str]  # function locals, or a class's attributes directly in its body
    attributes: dict[str, str]  # the enclosing class's attributes ({} outside a class)
    owners: tuple[str | None, ...] = ()  # receivers whose attributes those are: self, the class
    methods: dict[str, list[str]] | None = None  # the class's methods -> parameters without self


def _rewrite_class(cls: ast.ClassDef, module: _Module) -> None:
    bodies = {id(stmt): _preorder(stmt) for stmt in cls.body}
    attributes = _class_attributes(cls, bodies)
    methods = {name: _parameters(fn)[1:] for name, fn in _methods(cls).items()}
    head = [n for part in (cls.bases, cls.keywords, cls.decorator_list) for n in part]
    _rewrite_nodes([n for h in head for n in _preorder(h)], module, {})
    for stmt in cls.body:
        if isinstance(stmt, Def):
            scope = _Scope({}, attributes, (_first_parameter(stmt), cls.name), methods)
            _rewrite_function(stmt, module, bodies[id(stmt)], scope)
            stmt.name = attributes.get(stmt.name, stmt.name)
        else:
            _rewrite_nodes(bodies[id(stmt)], module, _Scope(attributes, attributes, (cls.name,)))
    _strip_body(cls)


def _rewrite_function(
    fn: Def, module: _Module, nodes: list[ast.AST], scope: _Scope | None = None
) -> None:
    scope = scope or _Scope({}, {})
    scope.names = _local_names(fn, nodes)
    _rewrite_nodes(nodes[1:], module, scope)
    fn.returns = None
    _strip_body(fn)


def _rewrite_nodes(nodes: list[ast.AST], module: _Module, scope: _Scope | dict) -> None:
    if isinstance(scope, dict):
        scope = _Scope(scope, {})
    for node in nodes:
        if isinstance(node, ast.Name):
            node.id = _name(node.id, scope, module, isinstance(node.ctx, ast.Load))
        elif isinstance(node, ast.arg):
            node.arg = scope.names.get(node.arg, node.arg)
            node.annotation = None
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in scope.owners:
                node.attr = scope.attributes.get(node.attr, node.attr)
        elif isinstance(node, ast.Call):
            _rewrite_call(node, module, scope)
        elif isinstance(node, Def | ast.ClassDef):
            node.name = scope.names.get(node.name, node.name)
            if isinstance(node, Def):
                node.returns = None
        if isinstance(getattr(node, "body", None), list):
            _strip_body(node)


def _name(name: str, scope: _Scope, module: _Module, load: bool) -> str:
    mapped = scope.names.get(name) or module.names.get(name)
    if mapped is not None:
        return mapped
    # the dotted path as one Name: ast.unparse prints it verbatim, the lexer splits it
    return module.aliases.get(name, name) if load else name


def _rewrite_call(node: ast.Call, module: _Module, scope: _Scope) -> None:
    func = node.func
    params = None
    if isinstance(func, ast.Name):
        if func.id == "super":
            node.args, node.keywords = [], []
        elif func.id not in scope.names:
            params = module.signatures.get(func.id)
    elif (
        scope.methods is not None
        and isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == scope.owners[0]
    ):
        params = scope.methods.get(func.attr)
    for keyword in node.keywords if params else []:
        if keyword.arg in params:
            keyword.arg = f"p${params.index(keyword.arg)}"


def _strip_body(node: ast.AST) -> None:
    """Docstrings and bare strings out, `x: T = v` becomes `x = v`; never an empty body."""
    body = []
    for stmt in node.body:
        if _is_bare_string(stmt):
            continue
        if isinstance(stmt, ast.AnnAssign):
            if stmt.value is None:
                continue
            stmt = ast.Assign(targets=[stmt.target], value=stmt.value, lineno=stmt.lineno)
        body.append(stmt)
    node.body = body or [ast.Pass()]


def _is_bare_string(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )
