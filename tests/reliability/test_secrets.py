"""Keys never reach stderr, the rejects or the stats, whatever a server echoes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbpipe.cli import main
from kbpipe.testing.openai_server import ServerThread

KEY = "sk-live-Zq8x3TfYk2Lw9Pm4"


def judge(evals: Path, url: str) -> list[str]:
    return [
        "filter",
        *("-i", str(evals), "-o", "f.parquet", "--no-upload", "--base-url", url),
        *("--rater", "api", "--no-progress", "--max-retries", "1", "--max-reject-rate", "1"),
    ]


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KBPIPE_API_KEY", KEY)
    monkeypatch.delenv("TEST_MODE", raising=False)
    return tmp_path


def test_a_server_echoing_the_key_leaks_it_nowhere(
    evals: Path, keyed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ServerThread() as server:
        server.set(echo_auth=True, force_status=401)
        assert main(judge(evals, server.url)) == 1
        err = capsys.readouterr().err
        assert "401" in err and "Bearer ****" in err and KEY not in err

        # A 400 whose body quotes the key, for a third of the rows: they go to the rejects.
        server.set(force_status=None, faults={"400": 0.3}, faults_per_message=100)
        assert main(judge(evals, server.url)) == 0
    rejects = (keyed / "f.rejects.jsonl").read_text()
    assert "HTTP 400" in rejects and "Bearer ****" in rejects
    written = [p.read_text(errors="replace") for p in keyed.rglob("*") if p.is_file()]
    assert not any(KEY in text for text in written)
    assert KEY not in "".join(capsys.readouterr())


def test_a_dotenv_line_without_equals_is_named_not_echoed(
    keyed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KBPIPE_API_KEY")
    (keyed / ".env").write_text(f"DATA_MODEL=m\nPRIME_API_KEY {KEY}\n")
    assert main(["config"]) == 1
    err = capsys.readouterr().err
    assert ".env:2: expected KEY=VALUE" in err
    assert KEY not in err and KEY[-6:] not in err


def test_redact_masks_every_shape_inside_long_rows_and_leaves_clean_text_alone() -> None:
    from kbpipe.errors import redact

    filler = "reasoning about tiles and masks. " * 2000
    for secret, shown in (
        ("BeArEr abcdefgh1234", "BeArEr ****"),
        ("sk-abcdefghijkl", "****"),
        ("hf_abcdefghijklmnop", "****"),
        ("https://user:pa55word@host/x", "https://****@host/x"),
    ):
        text = redact(f"{filler}{secret}{filler}")
        assert secret not in text and shown in text
    assert redact(filler) == filler
