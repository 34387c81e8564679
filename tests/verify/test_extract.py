from __future__ import annotations

import pytest

from kbpipe.verify.extract import ANSWER_FORMATS, Solution, extract_solution

CODE = "import torch\n\n\nclass ReLUNew(torch.nn.Module):\n    pass\n"


def assistant(text: str | None) -> dict:
    return {"role": "assistant", "content": text}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_formats_are_tried_in_the_documented_order() -> None:
    assert ANSWER_FORMATS == ("answer-tags", "begin-python", "fenced")


def test_answer_tags_keep_the_text_between_the_tags_exactly() -> None:
    found = extract_solution([assistant(f"Here it is.\n<answer>\n{CODE}</answer>\nDone.")])
    assert found == Solution(code=f"\n{CODE}", format="answer-tags", message_index=0)


def test_begin_python_takes_the_lines_between_the_markers() -> None:
    text = f"Spec answer:\nBEGIN_PYTHON\n{CODE}END_PYTHON\ntrailing words"
    found = extract_solution([assistant(text)])
    assert found == Solution(code=CODE, format="begin-python", message_index=0)


def test_begin_python_markers_must_be_whole_lines() -> None:
    text = f"write BEGIN_PYTHON then code\n{CODE}then END_PYTHON"
    assert extract_solution([assistant(text)], "begin-python") is None


def test_begin_python_takes_the_last_complete_block() -> None:
    text = (
        "BEGIN_PYTHON\nfirst = 1\nEND_PYTHON\nrevised:\n  BEGIN_PYTHON  \nsecond = 2\nEND_PYTHON\n"
    )
    assert extract_solution([assistant(text)]).code == "second = 2\n"


def test_fenced_takes_the_last_python_block() -> None:
    text = f"Sketch:\n```python\nx = 1\n```\nFinal:\n```python\n{CODE}```\n```bash\nls\n```"
    found = extract_solution([assistant(text)])
    assert found == Solution(code=CODE, format="fenced", message_index=0)


def test_auto_prefers_answer_tags_over_a_fenced_block_in_the_same_message() -> None:
    text = f"```python\nsketch = 1\n```\n<answer>{CODE}</answer>"
    assert extract_solution([assistant(text)]).format == "answer-tags"


def test_a_multi_turn_rollout_ending_with_feedback_uses_the_last_assistant_solution() -> None:
    completion = [
        assistant("<answer>first attempt</answer>"),
        user("Compilation failed: NameError"),
        assistant(f"<answer>{CODE}</answer>"),
        user("Compilation succeeded"),
    ]
    found = extract_solution(completion)
    assert (found.code, found.message_index) == (CODE, 2)


def test_a_final_assistant_message_without_a_solution_falls_back_to_an_earlier_one() -> None:
    completion = [
        assistant(f"<answer>{CODE}</answer>"),
        user("Looks good, anything else?"),
        assistant("No, that is all."),
    ]
    assert extract_solution(completion).message_index == 0


def test_user_and_tool_messages_are_never_the_solution() -> None:
    completion = [
        user(f"<answer>{CODE}</answer>"),
        {"role": "tool", "content": f"<answer>{CODE}</answer>"},
    ]
    assert extract_solution(completion) is None


def test_nested_tags_end_at_the_first_closing_tag_as_the_seed_did() -> None:
    text = "<answer>outer <answer>inner</answer> tail</answer>"
    assert extract_solution([assistant(text)]).code == "outer <answer>inner"


def test_an_unclosed_answer_tag_is_no_answer_tags_match() -> None:
    text = f"<answer>\n{CODE}"
    assert extract_solution([assistant(text)], "answer-tags") is None
    assert extract_solution([assistant(text)]) is None


def test_an_unclosed_answer_tag_around_a_fenced_block_yields_the_block_under_auto() -> None:
    text = f"<answer>\n```python\n{CODE}```\n"
    found = extract_solution([assistant(text)])
    assert (found.code, found.format) == (CODE, "fenced")


def test_an_unclosed_fence_is_no_match() -> None:
    assert extract_solution([assistant(f"```python\n{CODE}")]) is None


def test_a_single_format_ignores_the_others() -> None:
    text = f"```python\n{CODE}```"
    assert extract_solution([assistant(text)], "answer-tags") is None
    assert extract_solution([assistant(text)], "fenced").code == CODE


def test_content_parts_and_null_content_are_read() -> None:
    parts = {"role": "assistant", "content": [{"type": "text", "text": f"<answer>{CODE}"},
                                               {"type": "text", "text": "</answer>"}]}  # fmt: skip
    assert extract_solution([parts]).code == CODE
    assert extract_solution([assistant(None)]) is None
    assert extract_solution(None) is None
    assert extract_solution([]) is None


def test_an_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown answer format 'xml'"):
        extract_solution([assistant("x")], "xml")
