"""Step 1's difficulty judge: the prompt, and how its answer is read.

The judge sees the module name, the full PyTorch reference and the full Triton
solution from the rollout (never truncated: a judge that sees half a kernel
rates half a kernel), and answers with one `<difficulty>` tag. Which code is
the solution is decided by the caller (kbpipe.steps.filter.rating, through the
one extractor in kbpipe.verify.extract), so the judge rates exactly the code
that strip-reasoning keeps and verify runs. Editing the
prompt changes the messages and so the journal keys; bump TEMPLATE_VERSION
when the reading of answers changes without the prompt changing.
"""

from __future__ import annotations

import re
from typing import Any

from kbpipe.config import DIFFICULTY_LEVELS
from kbpipe.rater.offline import rules as offline
from kbpipe.rater.tasks import Task

TEMPLATE_VERSION = "judge-v1"
LEVELS = DIFFICULTY_LEVELS

SYSTEM = (
    "You are a senior GPU kernel engineer. You rate how hard it is to implement a given "
    "PyTorch module as efficient Triton kernels. You are calibrated and terse."
)

CRITERIA = """\
- low: a trivial copy/identity kernel or elementwise operations (activations, arithmetic, \
clamping, scaling), where each output element depends only on the matching input elements.
- medium: basic reductions (sum, mean, max, softmax, norms, pooling, losses) or matrix \
operations (matmul, bmm, a single linear or convolution), alone or with trivial scaling.
- high: fused operations (a matmul or convolution with a bias/activation/normalization \
epilogue, attention, several reductions combined with matmuls) or full model architectures \
(blocks of several layers, recurrent cells, networks)."""


def user_prompt(module_name: str, python_code: str, solution: str) -> str:
    # Code blocks are joined, not str.format-ted: module code is full of braces.
    return "\n".join(
        [
            f"Rate the difficulty of the KernelBook task `{module_name}`: rewriting the PyTorch "
            "module below with Triton kernels.",
            "",
            "PyTorch reference:",
            "```python",
            python_code.rstrip(),
            "```",
            "",
            "Triton solution that passed the tests:",
            "```python",
            solution.rstrip() or "# (the rollout gave no solution code)",
            "```",
            "",
            "Criteria:",
            CRITERIA,
            "",
            "Judge by the work the Triton implementation must do, not by the length of the code. "
            "Give at most two sentences of reasoning, then exactly one of "
            "<difficulty>low</difficulty>, <difficulty>medium</difficulty> or "
            "<difficulty>high</difficulty>.",
        ]
    )


def messages(payload: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": user_prompt(
                payload["module_name"] or "",
                payload["python_code"] or "",
                payload["solution"] or "",
            ),
        },
    ]


_TAG = re.compile(r"<difficulty>\s*(low|medium|high)\s*</difficulty>", re.IGNORECASE)


def parse(text: str) -> str | None:
    """The last `<difficulty>` tag's level, lower-cased; None when there is none."""
    found = _TAG.findall(text or "")
    return found[-1].lower() if found else None


JUDGE = Task(
    name="judge",
    template_version=TEMPLATE_VERSION,
    tag="difficulty",
    messages=messages,
    parse=parse,
    offline=offline.judge_answer,
    max_tokens=256,
    temperature=0.1,
    timeout_s=120.0,
    model_field="judge_model",
    concurrency_field="judge_concurrency",
)
