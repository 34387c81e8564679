"""The request journal under a full disk, bad bytes, CRLF line ends and ill-typed lines.

Each of these used to cost money: a full disk let the run keep buying answers it
could not keep, and one bad byte made every rerun die with UnicodeDecodeError.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbpipe.config import Settings
from kbpipe.rater.errors import JournalWriteFailed
from kbpipe.rater.journal import Answer, Journal
from kbpipe.rater.judge import JUDGE
from kbpipe.rater.tasks import journal_path, run_task
from kbpipe.testing.openai_server import ServerThread
from tests.rater.rater_helpers import judge_rows, options
from tests.reliability.helpers import remount

CONCURRENCY = 8


def entry(key: str, text: str = "<difficulty>low</difficulty>") -> bytes:
    return json.dumps({"key": key, "text": text, "usage": {"prompt_tokens": 3}}).encode()


def test_a_full_disk_under_the_journal_stops_the_run_before_it_buys_more(
    tmpfs, settings: Settings
) -> None:
    disk = tmpfs("40k")  # room for ~80 answers of the 300 asked for
    rows = judge_rows(300)
    with ServerThread() as server:
        server.set(latency_ms=5)
        api = settings.replace(
            output_dir=disk, base_url=server.url, api_key="sk-test", judge_concurrency=CONCURRENCY
        )
        journal = journal_path(api, JUDGE)
        with pytest.raises(JournalWriteFailed, match="no space left on device") as failed:
            run_task(JUDGE, rows, api, options())
        assert str(journal) in str(failed.value)
        kept = journal.read_bytes()
        assert kept.endswith(b"\n")  # cut back to the last whole line, nothing torn
        n_kept = len([json.loads(line) for line in kept.splitlines()])
        # Lost: the batch that failed to write and what was in flight, never the rest.
        assert server.stats.requests - n_kept <= 2 * CONCURRENCY
        remount(disk, "4m")
        run = run_task(JUDGE, rows, api, options())
    assert run.report.ok == 300 and run.report.cached == n_kept
    paid_twice = sum(n - 1 for n in server.stats.answered.values())
    assert paid_twice <= 2 * CONCURRENCY


def test_bad_bytes_and_ill_typed_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "judge.jsonl"
    path.write_bytes(
        entry("k1")
        + b"\n"
        + b'{"key": "k2", "text": "caf\xff\xfe"}\n'  # not UTF-8
        + b'{"key": 7, "text": ["x"], "usage": "many"}\n'  # JSON, wrong types
        + b'{"key": "k3", "text": "ok", "usage": {"prompt_tokens": "3"}}\n'  # a string count
        + entry("k4", "caf\u00e9")
        + b"\n"
        + entry("k5", "caf\u00e9")[:-6]  # torn inside the two bytes of the e-acute
    )
    with Journal(path) as journal:
        assert journal.loaded == 2 and journal.skipped_lines == 3 and journal.torn_lines == 1
        assert journal.get("k4") == Answer("caf\u00e9", {"prompt_tokens": 3})
        journal.append("k6", Answer("six", {}), model="m")
    with Journal(path) as journal:  # the rerun after that one opens cleanly too
        assert journal.loaded == 3 and journal.torn_lines == 0
        assert journal.get("k6") == Answer("six", {})


def test_crlf_journal_keeps_every_whole_line_when_the_tail_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "judge.jsonl"
    good = [entry(f"k{i}") + b"\r\n" for i in range(5)]
    path.write_bytes(b"".join(good) + entry("torn")[:20])
    with Journal(path) as journal:
        assert journal.loaded == 5 and journal.torn_lines == 1
    assert path.read_bytes() == b"".join(good)  # cut exactly where the fragment began
    with Journal(path) as journal:
        assert journal.loaded == 5
