import ast
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbpipe.codematch.normalize import normalize_code
from kbpipe.codematch.variants import fresh_name, identifiers, kernelbook_copy, rename_identifiers
from kbpipe.sample.modules import MODULES

SWISH = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    """Swish."""
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the activation
        return x * torch.sigmoid(x)

batch_size = 16

def get_inputs():
    return [torch.rand(batch_size, 8)]

def get_init_inputs():
    return []
'''


def _codes(problems) -> list[str]:
    return [p.code for p in problems] + [m.python_code for m in MODULES]


def test_class_and_variable_names_become_placeholders() -> None:
    tokens = normalize_code(SWISH).tokens
    text = " ".join(tokens)
    assert "class C$0 ( torch . nn . Module )" in text
    assert "return v$1 * torch . sigmoid ( v$1 )" in text
    assert "Model" not in tokens and "x" not in tokens


def test_harness_comments_docstrings_and_annotations_are_dropped() -> None:
    tokens = normalize_code(SWISH).tokens
    for gone in ("get_inputs", "batch_size", "Swish.", "Tensor", "->", "import"):
        assert not any(gone in t for t in tokens), gone


def test_aliases_and_import_order_do_not_matter() -> None:
    other = (
        SWISH.replace("import torch.nn as nn\n", "")
        .replace("import torch\n", "from torch import nn\nimport torch\n")
        .replace("torch.sigmoid(x)", "torch.sigmoid(x)  # same")
    )
    assert normalize_code(other).tokens == normalize_code(SWISH).tokens
    functional = "import torch.nn.functional as F\nimport torch\n"
    a = normalize_code(functional + "def f(x):\n    return F.relu(x)\n")
    b = normalize_code("import torch\ndef g(y):\n    return torch.nn.functional.relu(y)\n")
    assert a.tokens == b.tokens


def test_literals_and_library_attributes_are_kept() -> None:
    a = normalize_code(SWISH.replace("torch.sigmoid(x)", "torch.tanh(x)"))
    b = normalize_code(SWISH.replace("x * torch", "2.0 * x * torch"))
    base = normalize_code(SWISH)
    assert a.tokens != base.tokens and b.tokens != base.tokens


def test_code_that_does_not_parse_falls_back_to_raw_tokens() -> None:
    result = normalize_code("print 'python 2'\n# comment\nx  =   1")
    assert not result.parsed
    assert result.tokens == ["print", "'python 2'", "x", "=", "1"]


def test_shape_reduces_placeholders_to_their_kind() -> None:
    shape = normalize_code(SWISH).shape()
    assert "v$" in shape and "v$1" not in shape and "C$" in shape


@pytest.mark.parametrize("seed", range(3))
def test_kernelbook_copies_of_every_problem_normalise_identically(problems, seed) -> None:
    rng = random.Random(seed)
    for problem in problems:
        copy = kernelbook_copy(problem.code, rng)
        assert normalize_code(copy).tokens == normalize_code(problem.code).tokens, problem.key


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_renaming_identifiers_never_changes_the_stream(problems, data) -> None:
    code = data.draw(st.sampled_from(_codes(problems)))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    taken = identifiers(ast.parse(code))
    renamed = rename_identifiers(code, lambda n: fresh_name(rng, taken, capital=n[:1].isupper()))
    assert normalize_code(renamed).tokens == normalize_code(code).tokens
