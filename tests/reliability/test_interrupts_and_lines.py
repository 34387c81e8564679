"""Ctrl-C in any step is exit 130 and one line; JSONL errors name the exact line."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from kbpipe.cli import main
from tests.reliability.helpers import kbpipe_cmd, kbpipe_env, leftovers


@pytest.fixture(scope="module")
def big(evals: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample 400 times over (96,000 rows, each its own module): each DuckDB step
    runs for seconds on it."""
    table = tmp_path_factory.mktemp("big") / "big.parquet"
    info = (
        "struct_pack(module_name := info.module_name || '-' || r.range, "
        "python_code := info.python_code, triton_code := info.triton_code)"
    )
    duckdb.connect().execute(
        f"copy (select * replace (example_id * 1000 + r.range as example_id, {info} as info) "
        "from read_parquet($src), range(400) r) to $dest (format parquet)",
        {"src": str(evals), "dest": str(table)},
    )
    return table


STEPS = {
    "filter": ["filter", "--rater", "none", "--threshold", "0"],
    "dedupe": ["dedupe"],
    "merge": ["merge", "source", "--synthetic", "{big}"],
    "strip-reasoning": ["strip-reasoning", "source"],
}


@pytest.mark.parametrize("step", STEPS)
def test_ctrl_c_exits_130_with_one_line_and_cleans_up(step: str, big: Path, tmp_path: Path) -> None:
    argv = [a.format(big=big) for a in STEPS[step]]
    argv += ["-i", str(big), "-o", str(tmp_path / "out.parquet"), "--no-upload"]
    proc = subprocess.Popen(
        kbpipe_cmd(*argv),
        cwd=tmp_path,
        env=kbpipe_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt once the step is under way: it has made its scratch folder.
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(".") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == f"kbpipe {step}: interrupted; nothing more was written"
    assert not (tmp_path / "out.parquet").exists()
    assert leftovers(tmp_path) == []


@pytest.fixture
def lines(sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    return (sample_dir / "kernelbook-env.jsonl").read_text().splitlines()[:60]


@pytest.mark.parametrize("step", [["filter", "--rater", "none"], ["dedupe"]])
def test_a_broken_jsonl_line_is_named_by_its_own_number(
    step: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    lines[50] = lines[50][:300]  # cut inside a string: DuckDB notices on the next line
    Path("in.jsonl").write_text("\n".join(lines) + "\n")
    assert main([*step, "-i", "in.jsonl", "-o", "o.parquet", "--no-upload"]) == 1
    err = capsys.readouterr().err
    assert "in.jsonl line 51 (example_id 50): not valid JSON" in err


@pytest.mark.parametrize("step", [["filter", "--rater", "none"], ["dedupe"]])
def test_a_string_reward_is_named_by_line_and_example_id(
    step: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [json.loads(line) for line in lines]
    rows[50]["reward"] = "0.9"
    Path("in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([*step, "-i", "in.jsonl", "-o", "o.parquet", "--no-upload"]) == 1
    err = capsys.readouterr().err
    assert 'in.jsonl line 51 (example_id 50): reward is "0.9", not a number' in err
