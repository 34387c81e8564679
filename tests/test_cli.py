"""The CLI front: help with examples, config output, error exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbpipe.cli import COMMANDS, main


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out, f"`kbpipe {command} --help` shows no example"
        assert f"kbpipe {command}" in out


def test_config_prints_paths_and_repos_with_secrets_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_TOKEN", "hf_supersecretvalue9876")
    monkeypatch.setenv("DATA_MODEL", "qwen3_30b")
    assert main(["config", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["paths"]["filtered"] == "outputs/qwen3_30b/filtered_dataset.parquet"
    assert info["hub_repos"]["unique"] == "siro1/kernelbook-qwen3_30b-evals-unique"
    assert info["settings"]["hf_token"] == "****9876"

    assert main(["config", "--data-model", "from_flag"]) == 0
    out = capsys.readouterr().out
    assert "supersecret" not in out
    assert "outputs/from_flag/filtered_dataset.parquet" in out


def test_bad_setting_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REWARD_THRESHOLD", "abc")
    assert main(["config"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "kbpipe config: error: REWARD_THRESHOLD='abc' (environment) is not a number"
    )


def test_upload_without_token_fails_before_any_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["dedupe", "-i", str(tmp_path / "nothing.parquet")]) == 1
    err = capsys.readouterr().err
    assert "HF_TOKEN" in err and "--no-upload" in err
    assert not (tmp_path / "outputs").exists()


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kbpipe", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("kbpipe ")


def test_a_closed_stdout_pipe_is_not_an_error(tmp_path: Path) -> None:
    # `kbpipe config | head -1`: the reader leaves early; kbpipe stops quietly (141, as
    # a process killed by SIGPIPE would) instead of printing an error line. The read
    # end is closed before kbpipe starts, so its first write fails every time.
    exe = Path(sys.executable).with_name("kbpipe")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [str(exe), "config", "--env-file", "none"],
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_an_interrupt_after_the_exit_status_is_decided_does_not_change_it() -> None:
    # After a Ctrl-C is reported, another arriving during shutdown must leave the exit
    # status 130, not turn it into death by SIGINT (-2, which it is without the settling).
    code = (
        "import os, signal, sys, time\n"
        "from kbpipe.cli import _settle_interrupts\n"
        "_settle_interrupts()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(0.1)\n"
        "sys.exit(130)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (130, "")
