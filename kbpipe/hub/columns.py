"""What each column of a published table holds, for the dataset cards.

One description per column name, with the few names whose meaning depends on
the table (`prompt` is chat messages in the rollout tables and one string in
the synthetic-tasks table; `completion` keeps or drops the reasoning) decided
from the table and the column's type. tests/test_cards.py checks that every
column of every table kbpipe writes has a description here.
"""

from __future__ import annotations

import pyarrow as pa

COLUMNS = {
    # the evaluation harness (vf-eval)
    "example_id": "index of the task in the evaluation environment",
    "task": "evaluation task name",
    "reward": "score from the evaluation harness, 0 to 1 (correctness, with a bonus for speed-up)",
    "generation_ms": "time to generate the completion, ms",
    "scoring_ms": "time to score it, ms",
    "total_ms": "generation plus scoring, ms",
    "info": "task metadata: module_name, python_code (the PyTorch module to rewrite) and the "
    "reference triton_code",
    "answer": "the code the harness extracted from the completion",
    "speedup_reward": "the speed-up part of the reward",
    "num_turns": "assistant turns in the rollout",
    "oai_tools": "tools offered to the model (none: always null)",
    # step 1, filter
    "difficulty": "the judge's rating of the task: low, medium or high (null: not rated)",
    "evaluation_raw": "the judge's full answer behind `difficulty`",
    # publishing and merge
    "split": "train or validation: the split the row was published in",
    "data_source": "base (the original prompts) or synthetic (a generated task specification)",
    # step 2, the synthetic-tasks table
    "module_name": "name of the PyTorch module",
    "python_code": "the PyTorch module",
    "triton_code": "KernelBook's reference Triton implementation",
    "uuid": "KernelBook row id",
    # audit
    "audit_flags": "reward-hack patterns the static audit found in the solution (empty: none)",
    "audit_ok": "true when the static audit found no reward-hack pattern",
    "answer_format": "where the solution sits in the completion: answer-tags, begin-python or "
    "fenced (null: no solution found)",
    # decontamination against KernelBench
    "contaminated": "true when the module's code matches a KernelBench problem",
    "benchmark_match": "the KernelBench problem it matches best (null: none)",
    "benchmark_overlap": "share of the module's normalised code shingles found in that problem",
    # GPU verification
    "verified": "true when the solution ran on a GPU and matched the PyTorch reference",
    "verify_error": "why verification failed (null when verified)",
    "max_abs_err": "largest absolute difference from the reference output",
    "max_rel_err": "largest relative difference from the reference output",
    "ref_ms": "run time of the PyTorch reference, ms",
    "new_ms": "run time of the solution, ms",
    "speedup_measured": "ref_ms / new_ms, as measured",
    "gpu_name": "GPU the verification ran on",
    "torch_version": "torch version of the verification",
    "triton_version": "triton version of the verification",
    "triton_launches": "Triton kernel launches during one forward pass",
    "state_dict_missing": "reference parameters the solution's module lacks",
    "state_dict_unexpected": "parameters the solution's module has and the reference lacks",
}


def describe(table: str, field: pa.Field, *, no_reasoning: bool = False) -> str:
    """The card's description of one column of `table` (a TABLES name)."""
    name, kind = field.name, field.type
    if name == "prompt":
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return (
                "the training prompt: a task specification of the module followed by the "
                "answer-format instruction"
            )
        return "chat messages given to the model (the task and its PyTorch module)"
    if name == "completion":
        if no_reasoning:
            return (
                "one assistant message whose content is only the `<answer>…</answer>` block; "
                "the model's reasoning is removed"
            )
        if _message_fields(kind) & {"reasoning", "reasoning_content"}:
            return "the model's answer as chat messages; `reasoning` holds its thinking"
        return "the model's answer as chat messages"
    return COLUMNS.get(name, "")


def _message_fields(kind: pa.DataType) -> set[str]:
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    return {f.name for f in kind} if pa.types.is_struct(kind) else set()
