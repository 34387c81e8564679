"""A tiny KernelBook-style environment for the real `vf-eval` (verifiers 0.3.x).

Three PyTorch modules; the model must answer with Triton code between
<answer> tags. The reward is 1.0 for an answer block, and `speedup_reward`
is a second, zero-weight metric, as in siro/kernelbook-env. Loaded by
make_vfeval_fixtures.sh; never imported by kbpipe or its tests.
"""

import verifiers as vf
from datasets import Dataset
from kernelbook_modules import MODULES


def _rows() -> list[dict]:
    return [
        {
            "question": f"Rewrite the PyTorch module `{name}` with Triton kernels.\n\n{code}",
            "answer": "",
            "info": {"module_name": name, "python_code": code, "triton_code": "# reference"},
        }
        for name, code in MODULES.items()
    ]


def _answer(completion) -> str | None:
    text = completion[-1]["content"] if completion else ""
    start, end = text.find("<answer>"), text.find("</answer>")
    return text[start + 8 : end] if 0 <= start < end else None


def correct(completion, **kwargs) -> float:
    return 1.0 if _answer(completion) else 0.0


def speedup_reward(completion, **kwargs) -> float:
    return 0.5 if _answer(completion) else 0.0


def load_environment(**kwargs) -> vf.Environment:
    rows = Dataset.from_list(_rows())
    rubric = vf.Rubric(funcs=[correct, speedup_reward], weights=[1.0, 0.0])
    return vf.SingleTurnEnv(dataset=rows, eval_dataset=rows, rubric=rubric, **kwargs)
