"""Damaged inputs and unwritable outputs give one line naming the file, never a traceback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from kbpipe.cli import main
from kbpipe.testing.openai_server import ServerThread
from tests.rater.rater_helpers import api_workdir
from tests.reliability.helpers import leftovers
from tests.test_chat import write_tiny_tokenizer


def zero(evals: Path, dest: Path) -> None:
    dest.write_bytes(b"")


def truncated(evals: Path, dest: Path) -> None:
    dest.write_bytes(evals.read_bytes()[: evals.stat().st_size // 2])


def _overwrite(evals: Path, dest: Path, offset: int) -> None:
    data = bytearray(evals.read_bytes())
    data[offset : offset + 2000] = b"\x07" * 2000
    dest.write_bytes(bytes(data))


def page_corrupted(evals: Path, dest: Path) -> None:
    _overwrite(evals, dest, 5000)


def footer_corrupted(evals: Path, dest: Path) -> None:
    _overwrite(evals, dest, evals.stat().st_size - 2100)


def jsonl_named_parquet(evals: Path, dest: Path) -> None:
    pl.read_parquet(evals).head(5).write_ndjson(dest)


DAMAGE: dict[str, Callable[[Path, Path], None]] = {
    "zero-bytes": zero,
    "truncated": truncated,
    "page-corrupted": page_corrupted,
    "footer-corrupted": footer_corrupted,
    "jsonl-named-parquet": jsonl_named_parquet,
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tiny")


def one_line(err: str, command: str, *names: str) -> None:
    err = err.strip()
    assert "\n" not in err, err
    assert err.startswith(f"kbpipe {command}: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", ["seqlen", "upload", "filter"])
def test_a_damaged_table_is_one_line_naming_it(
    command: str,
    damage: str,
    evals: Path,
    tokenizer: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    DAMAGE[damage](evals, tmp_path / "bad.parquet")
    argv = {
        "seqlen": ["seqlen", "-i", "bad.parquet", "--tokenizer", str(tokenizer)],
        "upload": ["upload", "source", "-i", "bad.parquet", "--dry-run", "hub"],
        "filter": ["filter", "--rater", "none", "-i", "bad.parquet", "-o", "f.parquet"],
    }[command]
    assert main([*argv, "--no-upload"] if command == "filter" else argv) == 1
    one_line(capsys.readouterr().err, command, "bad.parquet")
    assert leftovers(tmp_path) == []


def test_a_broken_jsonl_line_is_named_by_upload(
    evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    lines = pl.read_parquet(evals).head(9).write_ndjson().splitlines()
    lines[6] = lines[6][:100]
    Path("t.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["upload", "source", "-i", "t.jsonl", "--dry-run", "hub"]) == 1
    one_line(capsys.readouterr().err, "upload", "t.jsonl line 7", "not valid JSON")


def test_an_integer_module_name_is_refused_before_dedupe_writes(
    evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    table = pl.read_parquet(evals)
    table.with_columns(
        pl.col("info").struct.with_fields(pl.lit(7).alias("module_name"))
    ).write_parquet("int.parquet")
    assert main(["dedupe", "-i", "int.parquet", "-o", "u.parquet", "--no-upload"]) == 1
    one_line(capsys.readouterr().err, "dedupe", "int.parquet", "module_name", "expected a string")
    assert not Path("u.parquet").exists()


def test_an_output_that_is_a_folder_fails_before_any_request(
    evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    api_workdir(tmp_path, monkeypatch)
    Path("f.parquet").mkdir()
    with ServerThread() as server:
        argv = ["filter", "-i", str(evals), "-o", "f.parquet", "--rater", "api", "--no-upload"]
        assert main([*argv, "--base-url", server.url, "--no-progress"]) == 1
        assert server.stats.requests == 0
    one_line(capsys.readouterr().err, "filter", "f.parquet: is a folder")


def test_a_read_only_output_folder_is_one_line(
    tmpfs, evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmpfs("1m", ro=True) / "f.parquet"
    assert main(["filter", "--rater", "none", "-i", str(evals), "-o", str(out), "--no-upload"]) == 1
    one_line(capsys.readouterr().err, "filter", str(out.parent), "not writable")


def test_a_full_disk_names_the_output_not_the_input(
    tmpfs, evals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    disk = tmpfs("24k")
    source = tmp_path / "evals.parquet"
    shutil.copy(evals, source)
    for command in (["filter", "--rater", "none"], ["dedupe"], ["strip-reasoning", "source"]):
        out = disk / "out.parquet"
        assert main([*command, "-i", str(source), "-o", str(out), "--no-upload"]) == 1
        err = capsys.readouterr().err
        one_line(err, command[0], str(out), "no space left on device")
        assert str(source) not in err
        assert not out.exists() and leftovers(disk) == []
