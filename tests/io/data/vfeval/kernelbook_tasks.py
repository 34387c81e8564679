"""The same tiny KernelBook-style tasks for the real `vf-eval` of verifiers 0.4.x.

0.4 replaced environments with tasksets: a package exporting its Taskset via
`__all__`, taken by id (`vf-eval kernelbook-tasks`). Task data carries the
fields KernelBook rows have (`answer`, `info`); `correct` is the weighted
reward and `speedup_reward` a zero-weight one, as in siro/kernelbook-env.
Loaded by make_vfeval_fixtures.sh; never imported by kbpipe or its tests.
"""

import verifiers.v1 as vf
from kernelbook_modules import MODULES

__all__ = ["KernelbookTaskset"]


class KernelbookData(vf.TaskData):
    answer: str = ""
    info: dict


def _answer(text: str) -> str | None:
    start, end = text.find("<answer>"), text.find("</answer>")
    return text[start + 8 : end] if 0 <= start < end else None


class KernelbookTask(vf.Task[KernelbookData]):
    @vf.reward(weight=1.0)
    async def correct(self, trace: vf.Trace) -> float:
        return 1.0 if _answer(trace.last_reply) else 0.0

    @vf.reward(weight=0.0)
    async def speedup_reward(self, trace: vf.Trace) -> float:
        return 0.5 if _answer(trace.last_reply) else 0.0

    @vf.metric
    async def answer_chars(self, trace: vf.Trace) -> float:
        return float(len(_answer(trace.last_reply) or ""))


class KernelbookConfig(vf.TasksetConfig):
    pass


class KernelbookTaskset(vf.Taskset[KernelbookTask, KernelbookConfig]):
    def load(self) -> list[KernelbookTask]:
        return [
            KernelbookTask(
                KernelbookData(
                    prompt=f"Rewrite the PyTorch module `{name}` with Triton kernels.\n\n{code}",
                    info={"module_name": name, "python_code": code, "triton_code": "# ref"},
                ),
                self.config.task,
            )
            for name, code in MODULES.items()
        ]
