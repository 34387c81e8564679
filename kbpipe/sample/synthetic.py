"""The bundled sample as a synthetic-prompt run, for `make demo`.

A synthetic-prompt run (USE_SYNTHETIC_PROMPTS=true) is the pipeline run on
rollouts whose prompts are step 2's task specifications, which ask for the
code between a BEGIN_PYTHON and an END_PYTHON line (kbpipe.rater.specs). With
no model at hand, `write_synthetic_rollouts` makes those rollouts from the
sample's: each prompt becomes its module's specification, and each
`<answer>` block becomes a BEGIN_PYTHON/END_PYTHON block, in the completion
and in the trajectory, as a model following the spec would write it. Rows the
model answered without tags keep their fenced block. A row whose module has
no specification is left out, and the count says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from kbpipe.errors import InputError
from kbpipe.io.tables import atomic_output

_ANSWER = re.compile(r"<answer>\n?(.*?)\n?</answer>", re.DOTALL)


def write_synthetic_rollouts(rollouts: Path, specs: Path, dest: Path) -> tuple[int, int]:
    """Rewrite the sample's rollouts at `rollouts` for the specs at `specs`; (written, left out)."""
    table = pq.read_table(specs, columns=["module_name", "prompt"]).to_pylist()
    prompts = {r["module_name"]: r["prompt"] for r in table if r["prompt"]}
    if not prompts:
        raise InputError(f"{specs}: no task specifications to use as prompts")
    written = left_out = 0
    with (
        atomic_output(dest) as tmp,
        open(tmp, "w", encoding="utf-8") as out,
        open(rollouts, encoding="utf-8") as lines,
    ):
        for line in lines:
            row = json.loads(line)
            spec = prompts.get((row.get("info") or {}).get("module_name"))
            if spec is None:
                left_out += 1
                continue
            out.write(json.dumps(_synthetic(row, spec), ensure_ascii=False) + "\n")
            written += 1
    return written, left_out


def _synthetic(row: dict[str, Any], spec: str) -> dict[str, Any]:
    prompt = [{"role": "user", "content": spec}]
    row["prompt"] = prompt
    for message in row["completion"]:
        _to_begin_python(message)
    for step in row.get("trajectory") or []:
        step["prompt"] = prompt
        for message in step.get("completion") or []:
            _to_begin_python(message)
        for choice in (step.get("response") or {}).get("choices") or []:
            _to_begin_python(choice.get("message") or {})
    return row


def _to_begin_python(message: dict[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = _ANSWER.sub(r"BEGIN_PYTHON\n\1\nEND_PYTHON", content)
