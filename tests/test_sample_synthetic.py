"""The demo's synthetic-prompt run: spec prompts and BEGIN_PYTHON answers, merged with the base."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kbpipe.cli import main
from kbpipe.config import Settings
from kbpipe.rater.tasks import RaterOptions
from kbpipe.sample.synthetic import write_synthetic_rollouts
from kbpipe.steps.convert import convert
from kbpipe.steps.merge import merge
from kbpipe.steps.prompts import generate_prompts
from kbpipe.steps.strip_reasoning import strip_reasoning


def test_synthetic_run_merges_with_the_base_run_through_strip_reasoning(
    sample_dir: Path, tmp_path: Path, settings: Settings
) -> None:
    specs = tmp_path / "synthetic_prompts.parquet"
    offline = RaterOptions(backend="offline", progress=False)
    generate_prompts(sample_dir / "kernelbook.parquet", specs, settings, offline)
    rollouts = tmp_path / "synthetic.jsonl"
    base_rollouts = sample_dir / "kernelbook-env.jsonl"
    assert write_synthetic_rollouts(base_rollouts, specs, rollouts) == (240, 0)

    tables = {}
    for run, src in (("base", base_rollouts), ("synthetic", rollouts)):
        tables[run] = tmp_path / f"{run}.parquet"
        convert(src, tables[run], settings)
    synth = pq.read_table(tables["synthetic"]).to_pylist()
    assert all("BEGIN_PYTHON" in r["prompt"][0]["content"] for r in synth)  # the spec's format
    assert not any("<answer>" in r["completion"][0]["content"] for r in synth)

    merged = tmp_path / "merged.parquet"
    merge(tables["base"], tables["synthetic"], merged, settings)
    out = tmp_path / "merged_no_reasoning.parquet"
    result = strip_reasoning(merged, out, settings, on_missing="drop")
    formats = result.metrics["answer_format"]
    assert formats["answer-tags"] > 0 and formats["begin-python"] == formats["answer-tags"]
    contents = [r["completion"][0]["content"] for r in pq.read_table(out).to_pylist()]
    assert all(c.startswith("<answer>") and c.endswith("</answer>") for c in contents)


def test_cli_writes_the_synthetic_rollouts_beside_the_sample(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = pq.read_table(sample_dir / "kernelbook.parquet", columns=["module_name"])["module_name"]
    specs = tmp_path / "specs.parquet"
    pq.write_table(
        pa.table({"module_name": names, "prompt": [f"Spec of {n}" for n in names.to_pylist()]}),
        specs,
    )
    out = tmp_path / "sample"
    out.mkdir()
    (out / "kernelbook-env.jsonl").write_bytes((sample_dir / "kernelbook-env.jsonl").read_bytes())
    assert main(["sample", "-o", str(out), "--synthetic-prompts", str(specs)]) == 0
    assert "wrote 240 synthetic-prompt rollouts" in capsys.readouterr().out
    assert (out / "kernelbook-env-synthetic.jsonl").stat().st_size > 0
