"""Step 2's task-spec writer: the prompt, and how its answer becomes a training prompt.

The spec model sees the module name and the full PyTorch reference and writes a
specification an engineer could implement without seeing the reference: what
it computes, inputs/outputs, the `{module_name}New` interface, behaviour,
Triton as the language, parameters only where the reference has them; no
implementation hints and no reference code. As the seed required, the
specification stands on its own: it never mentions the reference
implementation or the test cases, and the sizes in `get_inputs` are not part
of the contract (shapes are described by named dimensions of any size).

The text inside `<specification>` becomes the prompt, followed by the
answer-format instruction (which is not sent to the model, so changing it
keeps the journal).
"""

from __future__ import annotations

import re
from typing import Any

from kbpipe.rater.offline import rules as offline
from kbpipe.rater.tasks import Task

TEMPLATE_VERSION = "spec-v2"

DEFAULT_ANSWER_FORMAT = (
    "Write the complete implementation as one self-contained Python file (imports, Triton "
    "kernels and the `{module_name}New` class). Put the code between a line containing only "
    "BEGIN_PYTHON and a line containing only END_PYTHON."
)

SYSTEM = (
    "You write precise task specifications for GPU programming exercises. A reader must be "
    "able to implement the task from your specification alone, without seeing any reference "
    "code, and be tested on inputs of sizes they do not know in advance."
)


def user_prompt(module_name: str, python_code: str) -> str:
    return "\n".join(
        [
            f"Write a task specification for reimplementing the PyTorch module `{module_name}` "
            "below with Triton kernels.",
            "",
            "PyTorch reference:",
            "```python",
            python_code.rstrip(),
            "```",
            "",
            "The specification is all the implementer will see. It must cover:",
            "1. What the module computes, precisely enough to reproduce it numerically: the math, "
            "the order of operations, constants such as eps, reductions and broadcasting.",
            "2. Inputs and outputs: shapes in terms of named dimensions that may take any size, "
            "dtypes, and what each tensor means. Do not give the sizes used in get_inputs or "
            "get_init_inputs: they are one test case, not the contract.",
            f"3. The interface: a class named `{module_name}New` deriving from torch.nn.Module, "
            "its `__init__` parameters (names, meaning, defaults) and its `forward` signature and "
            "return value.",
            "4. Behavioural requirements: edge cases, numerical accuracy (float32 tolerance), "
            "no in-place modification of inputs, training versus evaluation behaviour if any.",
            "5. That the computation must be written with Triton kernels (`@triton.jit`), not by "
            "calling the equivalent PyTorch operations.",
            "6. Learnable parameters only if the reference has them (nn.Parameter or layers with "
            "weights): their names, shapes and initialisation. If it has none, say so and do not "
            "invent any.",
            "",
            "Do not give Triton implementation details (no block sizes, tiling, grid layout or "
            "memory-access strategy) and do not include code from the reference or code of your "
            "own. Write prose and lists.",
            "",
            "The specification must stand on its own: never mention a reference implementation, "
            "the PyTorch code above, an original module, or test cases and their values; describe "
            "the computation itself.",
            "",
            "Put the whole specification between <specification> and </specification>.",
        ]
    )


def messages(payload: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": user_prompt(payload["module_name"] or "", payload["python_code"] or ""),
        },
    ]


_TAG = re.compile(r"<specification>(.*?)</specification>", re.DOTALL | re.IGNORECASE)


def parse(text: str) -> str | None:
    """The last non-empty `<specification>` block, stripped; None when there is none."""
    blocks = [b.strip() for b in _TAG.findall(text or "")]
    blocks = [b for b in blocks if b]
    return blocks[-1] if blocks else None


def training_prompt(spec: str, module_name: str, answer_format: str) -> str:
    """The prompt stored in the dataset: the spec, then how to format the answer."""
    instruction = answer_format.replace("{module_name}", module_name).strip()
    return f"{spec.strip()}\n\n{instruction}" if instruction else spec.strip()


SPECS = Task(
    name="specs",
    template_version=TEMPLATE_VERSION,
    tag="specification",
    messages=messages,
    parse=parse,
    offline=offline.spec_answer,
    max_tokens=32768,
    temperature=0.3,
    timeout_s=900.0,
    model_field="spec_model",
    concurrency_field="spec_concurrency",
)
