"""The offline backend: difficulty from the code's features, specs from the signature."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest

from kbpipe.rater import judge, specs
from kbpipe.rater.offline import rules as offline
from kbpipe.rater.offline.codefeatures import analyze
from kbpipe.sample.generator import MODULES


def rating(code: str, name: str = "M") -> str:
    return judge.parse(offline.judge_answer({"module_name": name, "python_code": code})) or ""


TEMPLATE = textwrap.dedent("""\
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    EXTRA

    class M(nn.Module):
        def __init__(self, d=4):
            super().__init__()
            INIT

        def forward(self, x, y):
            FORWARD

    def get_inputs():
        return [torch.rand([2, 3, 4]), torch.randint(0, 5, [2, 3], dtype=torch.int32)]

    def get_init_inputs():
        return [[], {'d': 4}]
    """)


def module(forward: str, init: str = "pass", extra: str = "") -> str:
    """A module file; continuation lines of `forward`/`init` carry their own 8-space indent."""
    return TEMPLATE.replace("EXTRA", extra).replace("INIT", init).replace("FORWARD", forward)


def test_agrees_with_the_hand_assigned_tiers_of_the_sample_modules() -> None:
    confusion: Counter[tuple[str, str]] = Counter()
    for spec in MODULES:
        confusion[(spec.tier, rating(spec.python_code, spec.name))] += 1
    agree = sum(n for (tier, got), n in confusion.items() if tier == got)
    assert agree / len(MODULES) >= 0.9, confusion


@pytest.mark.parametrize(
    ("forward", "init", "expected"),
    [
        ("return x", "pass", "low"),
        ("return torch.sigmoid(x) * y + 1.0", "pass", "low"),
        ("return x.sum(dim=-1)", "pass", "medium"),
        ("return torch.max(x, y)", "pass", "low"),  # elementwise max, not a reduction
        ("return torch.max(x, dim=1)[0]", "pass", "medium"),
        ("d = x.size(-1)\n        return x @ y.transpose(-2, -1) / math.sqrt(d)", "pass", "medium"),
        ("return self.fc(x)", "self.fc = nn.Linear(d, d)", "medium"),
        ("return F.relu(self.fc(x))", "self.fc = nn.Linear(d, d)", "high"),
        (
            "return self.fc(x) + self.bias",
            "self.fc = nn.Linear(d, d)\n        self.bias = nn.Parameter(torch.zeros(d))",
            "high",
        ),
        (
            "return self.bn(self.conv(x))",
            "self.conv = nn.Conv2d(d, d, 3)\n        self.bn = nn.BatchNorm2d(d)",
            "high",
        ),
        ("return self.rnn(x)[0]", "self.rnn = nn.LSTM(d, d)", "high"),
        (
            "return self.net(x)",
            "self.net = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))",
            "high",
        ),
    ],
)
def test_rules(forward: str, init: str, expected: str) -> None:
    assert rating(module(forward, init)) == expected


def test_custom_blocks_are_followed() -> None:
    blocks = textwrap.dedent("""\
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.fc = nn.Linear(d, d)

            def forward(self, x):
                return torch.relu(self.fc(x))
        """)
    code = module("return self.b(x)", "self.b = Block(d)", extra=blocks)
    features = analyze(code, "M")
    assert features.custom_blocks == {"Block"}
    assert rating(code) == "high"


def test_evaluation_raw_says_which_features_decided() -> None:
    raw = offline.judge_answer(
        {
            "module_name": "M",
            "python_code": module("return F.gelu(self.fc(x))", "self.fc = nn.Linear(d, d)"),
        }
    )
    assert "matrix products 1 (nn.Linear)" in raw
    assert "Decided by: a matrix product (nn.Linear) with an elementwise epilogue" in raw
    assert raw.endswith("<difficulty>high</difficulty>")


def test_code_that_does_not_parse_is_still_rated() -> None:
    raw = offline.judge_answer({"module_name": "M", "python_code": "def f(:\n torch.bmm(a, b)"})
    assert "does not parse" in raw
    assert judge.parse(raw) == "medium"


def test_spec_comes_from_signature_and_example_inputs() -> None:
    code = module("return F.relu(self.fc(x)) * y", "self.fc = nn.Linear(d, d)")
    spec = specs.parse(offline.spec_answer({"module_name": "M", "python_code": code})) or ""
    assert "`class MNew(torch.nn.Module)`" in spec
    assert "`__init__(self, d=4)`" in spec
    assert "`forward(self, x, y)`" in spec
    assert "`x`: a 3-dimensional float32 tensor; its sizes are not fixed" in spec
    assert "`y`: a 2-dimensional int32 tensor; its sizes are not fixed" in spec
    assert "`self.fc`: the weights of an `nn.Linear`" in spec
    assert "Triton" in spec
    assert "return F.relu" not in spec  # no reference code


@pytest.mark.parametrize(
    ("forward", "init"),
    [
        ("return F.relu(self.fc(x)) * y", "self.fc = nn.Linear(d, d)"),
        ("return x + y", "pass"),
        ("return torch.softmax(x, dim=-1)", "pass"),
    ],
)
def test_spec_follows_the_seeds_rules(forward: str, init: str) -> None:
    # No word of a reference implementation or the test cases, and none of get_inputs'
    # sizes (module() builds x as [2, 3, 4], y as [2, 3], d=4) as the contract.
    spec = specs.parse(
        offline.spec_answer({"module_name": "M", "python_code": module(forward, init)})
    )
    lowered = (spec or "").lower()
    for banned in ("reference", "example input", "get_inputs", "test case", "[2, 3"):
        assert banned not in lowered


def test_spec_says_when_there_are_no_parameters() -> None:
    spec = offline.spec_answer({"module_name": "M", "python_code": module("return x + y")})
    assert "no learnable parameters" in spec
    assert "same shape and dtype" in spec


def test_each_distinct_module_is_analysed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()

    def counted(code: str, name: str):
        calls[name] += 1
        return analyze(code, name)

    monkeypatch.setattr(offline, "analyze", counted)
    offline._judge_text.cache_clear()
    src = MODULES[0]
    rows = [{"module_name": src.name, "python_code": src.python_code} for _ in range(5)]
    rows.append({"module_name": "Other", "python_code": src.python_code + "\n"})

    answers = [offline.judge_answer(row) for row in rows]

    assert calls == {src.name: 1, "Other": 1}
    assert len(set(answers[:5])) == 1
    offline._judge_text.cache_clear()
