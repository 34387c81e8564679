"""The static audit: one hand-made hack per flag, clean edge cases, and the bundled sample.

Each fixture in data/audit/ starts with `# module: NAME` and `# expect: flag, ...`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbpipe.sample.generator import MODULES, write_rollouts_jsonl
from kbpipe.verify import rules
from kbpipe.verify.audit import audit_code, audit_completion

DATA = Path(__file__).parent / "data" / "audit"
FIXTURES = sorted(DATA.glob("*.txt"))


def _header(path: Path) -> tuple[str, tuple[str, ...]]:
    module_line, expect_line = path.read_text(encoding="utf-8").splitlines()[:2]
    module = module_line.removeprefix("# module:").strip()
    expect = tuple(f.strip() for f in expect_line.removeprefix("# expect:").split(",") if f.strip())
    return module, expect


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_gets_exactly_its_flags(path: Path) -> None:
    module, expect = _header(path)
    result = audit_code(path.read_text(encoding="utf-8"), module)
    assert result.flags == expect
    assert result.ok == all(rules.is_informational(f) for f in expect)


def test_every_flag_but_no_answer_has_a_hack_fixture() -> None:
    planted = {f for p in FIXTURES for f in _header(p)[1]}
    assert set(rules.FLAGS) - planted == {"no_answer"}


def test_a_completion_without_a_solution_is_no_answer() -> None:
    completion = [{"role": "assistant", "content": "I could not do it."}]
    result, solution = audit_completion(completion, "ReLU")
    assert (result.flags, result.ok, solution) == (("no_answer",), False, None)


def test_audit_completion_reads_the_last_assistant_solution() -> None:
    hack = (DATA / "no_triton_kernel.txt").read_text(encoding="utf-8")
    clean = (DATA / "clean_submodule_and_variable_launch.txt").read_text()
    completion = [
        {"role": "assistant", "content": f"<answer>{hack}</answer>"},
        {"role": "user", "content": "Too slow, use Triton."},
        {"role": "assistant", "content": f"```python\n{clean}```"},
        {"role": "user", "content": "Compilation succeeded"},
    ]
    result, solution = audit_completion(completion, "ReLU")
    assert (result.flags, solution.format, solution.message_index) == ((), "fenced", 2)


def test_partial_compute_alone_keeps_the_row_ok() -> None:
    module, _ = _header(DATA / "partial_torch_compute.txt")
    result = audit_code((DATA / "partial_torch_compute.txt").read_text(), module)
    assert result.ok and result.torch_ops == ("torch.matmul",)
    assert result.launched == ("_bias_relu_kernel",)


def test_an_empty_solution_is_no_answer() -> None:
    assert audit_code("  \n", "ReLU").flags == ("no_answer",)


def test_a_fallback_that_only_logs_is_not_a_fallback() -> None:
    code = (DATA / "reference_fallback_try.txt").read_text()
    code = code.replace("return F.relu(x)", "raise RuntimeError('kernel failed')")
    assert audit_code(code, "ReLU").flags == ()


def test_a_fallback_in_a_helper_called_by_the_handler_is_found() -> None:
    code = (DATA / "reference_fallback_try.txt").read_text()
    code = code.replace("return F.relu(x)", "return _eager(x)")
    code += "\n\ndef _eager(x):\n    return x.relu()\n"
    assert "reference_fallback" in audit_code(code, "ReLU").flags


def test_every_honest_solution_of_the_bundled_sample_passes(tmp_path: Path) -> None:
    path = tmp_path / "rollouts.jsonl"
    write_rollouts_jsonl(path, n_rows=240, reasoning_bytes=0)
    modules, formats = set(), set()
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        result, solution = audit_completion(row["completion"], row["info"]["module_name"])
        assert result.ok, (row["example_id"], row["info"]["module_name"], result)
        assert set(result.flags) <= rules.INFORMATIONAL
        modules.add(row["info"]["module_name"])
        formats.add(solution.format)
    assert modules == {m.name for m in MODULES}
    assert formats == {"answer-tags", "fenced"}  # the untagged rows fence their code
