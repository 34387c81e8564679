"""What the judge and the spec writer are asked, and how their answers are read."""

from __future__ import annotations

from kbpipe.rater import judge, specs

BIG_CODE = "import torch\n" + "".join(
    f"x{i} = torch.relu(x{i - 1})  # {{{i}}}\n" for i in range(1, 6000)
)


def test_judge_prompt_carries_everything_untruncated() -> None:
    solution = "@triton.jit\ndef k(x_ptr):\n    pass\n" * 3000
    [system, user] = judge.messages(
        {"module_name": "BigNet", "python_code": BIG_CODE, "solution": solution}
    )
    assert system["role"] == "system"
    text = user["content"]
    assert "BigNet" in text
    assert BIG_CODE.rstrip() in text  # braces survive: no str.format on code
    assert solution.rstrip() in text
    for words in (
        "copy/identity",
        "elementwise",
        "reductions",
        "matrix operations",
        "fused operations",
        "full model architectures",
    ):
        assert words in text


def test_judge_answer_parsing() -> None:
    assert judge.parse("simple.\n<difficulty>low</difficulty>") == "low"
    assert judge.parse("<difficulty> High </difficulty>") == "high"
    # The last tag is the verdict (a model may quote the format first).
    assert (
        judge.parse("one of <difficulty>low</difficulty>... <difficulty>medium</difficulty>")
        == "medium"
    )
    assert judge.parse("<difficulty>extreme</difficulty>") is None
    assert judge.parse("medium") is None
    assert judge.parse("") is None


def test_solution_is_the_answer_block_of_the_final_message() -> None:
    from kbpipe.steps.filter.rating import judged_solution

    def final(content: str | None) -> str:
        return judged_solution([{"role": "assistant", "content": content}], "auto")[0]

    assert final("Here it is.\n<answer>\nimport triton\n</answer>\nDone.") == "import triton"
    assert final("just code") == "just code"
    assert final(None) == ""


def test_spec_prompt_names_the_new_class_and_forbids_leaks() -> None:
    [_, user] = specs.messages({"module_name": "LayerNorm", "python_code": BIG_CODE})
    text = user["content"]
    assert "`LayerNormNew`" in text
    assert BIG_CODE.rstrip() in text
    assert "Triton" in text and "learnable parameters only if" in text.lower()
    assert "do not include code from the reference" in text.lower()
    # The seed's rules: the spec stands alone, and get_inputs' sizes are not the contract.
    assert "never mention a reference implementation" in text
    assert "Do not give the sizes used in get_inputs" in text
    assert "example sizes from get_inputs as an illustration" not in text
    assert "<specification>" in text


def test_spec_parsing_and_training_prompt() -> None:
    answer = "Sure.\n<specification>\n  Build it.\n</specification>\n"
    spec = specs.parse(answer)
    assert spec == "Build it."
    assert specs.parse("<specification>  </specification>") is None
    assert specs.parse("no tags at all") is None
    prompt = specs.training_prompt(spec, "Foo", specs.DEFAULT_ANSWER_FORMAT)
    assert prompt.startswith("Build it.\n\n")
    assert "`FooNew`" in prompt
    assert prompt.rstrip().endswith("END_PYTHON.")
    assert specs.training_prompt("Spec.", "Foo", "") == "Spec."
