"""The async engine against a real local server: faults, fatal errors, concurrency, journal."""

from __future__ import annotations

import json
import time

import pytest

from kbpipe.config import Settings
from kbpipe.rater.client import Retries, Timeouts
from kbpipe.rater.errors import FatalApiError
from kbpipe.rater.judge import JUDGE
from kbpipe.rater.tasks import journal_path, report_lines, run_task
from kbpipe.testing.openai_server import ServerThread
from tests.rater.rater_helpers import judge_rows, options


def test_every_row_ends_rated_despite_transient_faults(
    server: ServerThread, api_settings: Settings
) -> None:
    server.set(
        latency_ms=2,
        retry_after_s=0.02,
        hang_s=3,
        faults={
            "429": 0.1,
            "500": 0.1,
            "hang": 0.04,
            "drop": 0.08,
            "malformed": 0.08,
            "notag": 0.1,
        },
        faults_per_message=2,
    )
    rows = judge_rows(300)
    run = run_task(JUDGE, rows, api_settings, options(timeouts=Timeouts(request_s=0.3)))

    assert [o.ok for o in run.outcomes] == [True] * 300
    assert [o.ref for o in run.outcomes] == list(range(300))
    assert {o.value for o in run.outcomes} <= {"low", "medium", "high"}
    seen = server.stats.outcomes
    # Every fault kind really happened, and each was retried (or re-asked) to success.
    for fault in ("429", "500", "hang", "drop", "malformed", "notag"):
        assert seen[fault] > 0, fault
    report = run.report
    assert report.retries["http_429"] == seen["429"]
    assert report.retries["http_500"] == seen["500"]
    assert report.retries["timeout"] == seen["hang"]
    assert report.retries["bad_response"] == seen["malformed"]
    assert report.retries["connection_lost"] >= seen["drop"]
    assert report.reasks == seen["notag"]
    # One journal line per answer received, tagged or not.
    lines = journal_path(api_settings, JUDGE).read_text().splitlines()
    assert len(lines) == report.answers == seen["200"] + seen["notag"]
    assert report.usage["completion_tokens"] > 0


def test_rerun_sends_only_unanswered_requests(server: ServerThread, api_settings: Settings) -> None:
    rows = judge_rows(40)
    first = run_task(JUDGE, rows[:25], api_settings, options())
    assert server.stats.requests == 25

    # More rows, another concurrency and output: only the 15 new rows are sent.
    again = run_task(JUDGE, rows, api_settings.replace(judge_concurrency=3), options())
    assert server.stats.requests == 25 + 15
    assert again.report.cached == 25
    assert [o.value for o in again.outcomes[:25]] == [o.value for o in first.outcomes]
    lines = report_lines("judge", again.metrics(), value_label="difficulty")
    assert "25 rows answered before, 15 new answers" in lines[1]


def test_changing_model_prompt_or_sampling_misses_the_cache(
    server: ServerThread, api_settings: Settings
) -> None:
    rows = judge_rows(5)
    run_task(JUDGE, rows, api_settings, options())
    run_task(JUDGE, rows, api_settings.replace(judge_model="other/model"), options())
    assert server.stats.requests == 10
    run_task(JUDGE, rows, api_settings, options(temperature=0.7))
    assert server.stats.requests == 15
    edited = [{**r, "python_code": r["python_code"] + "# edited\n"} for r in rows]
    run_task(JUDGE, edited, api_settings, options())
    assert server.stats.requests == 20
    run_task(JUDGE, rows, api_settings, options(fresh=True))
    assert server.stats.requests == 25
    run_task(JUDGE, rows, api_settings, options())
    assert server.stats.requests == 25


def test_unauthorized_stops_the_whole_run_at_once(
    server: ServerThread, api_settings: Settings
) -> None:
    server.set(latency_ms=20, force_status=401)
    start = time.perf_counter()
    with pytest.raises(FatalApiError) as exc:
        run_task(JUDGE, judge_rows(2000), api_settings, options(retries=Retries(max_attempts=8)))
    elapsed = time.perf_counter() - start

    assert elapsed < 2.0
    # Only the first wave went out: no row was retried or sent after the refusal.
    assert server.stats.requests <= api_settings.judge_concurrency * 2
    message = str(exc.value)
    assert "401" in message and "KBPIPE_API_KEY" in message and "forced status" in message


@pytest.mark.parametrize(("status", "words"), [(402, "out of funds"), (403, "PRIME_TEAM_ID")])
def test_payment_and_permission_errors_are_fatal_too(
    server: ServerThread, api_settings: Settings, status: int, words: str
) -> None:
    server.set(force_status=status)
    with pytest.raises(FatalApiError, match=words):
        run_task(JUDGE, judge_rows(50), api_settings, options())


def test_answers_before_a_fatal_error_stay_in_the_journal(
    server: ServerThread, api_settings: Settings
) -> None:
    rows = judge_rows(30)
    run_task(JUDGE, rows[:10], api_settings, options())
    server.set(force_status=401)
    with pytest.raises(FatalApiError, match=r"10 answers \(0 from this run\) are kept"):
        run_task(JUDGE, rows, api_settings, options())
    # Requests the aborted run had already sent may still reach the server thread;
    # wait until it is quiet so they are not counted against the rerun.
    _wait_until_quiet(server)
    server.set(force_status=None)
    server.reset_stats()
    run = run_task(JUDGE, rows, api_settings, options())
    assert server.stats.requests == 20
    assert run.report.ok == 30


# Not 404: a first request answered 404 means a wrong URL, and stops the run
# (tests/reliability/test_dead_endpoint.py).
@pytest.mark.parametrize("status", [400, 422])
def test_client_errors_fail_the_row_without_retrying(
    server: ServerThread, api_settings: Settings, status: int
) -> None:
    server.set(force_status=status)
    run = run_task(JUDGE, judge_rows(12), api_settings, options())
    assert server.stats.requests == 12
    assert run.report.failed == {f"http_{status}": 12}
    assert all(not o.ok and "forced status" in (o.detail or "") for o in run.outcomes)


def test_in_flight_requests_never_exceed_concurrency(
    server: ServerThread, api_settings: Settings
) -> None:
    server.set(latency_ms=15)
    run_task(JUDGE, judge_rows(200), api_settings.replace(judge_concurrency=7), options())
    assert server.stats.requests == 200
    assert server.stats.max_inflight == 7


def test_retry_after_is_honoured(server: ServerThread, api_settings: Settings) -> None:
    server.set(faults={"429": 1.0}, faults_per_message=1, retry_after_s=0.4)
    start = time.perf_counter()
    run = run_task(JUDGE, judge_rows(4), api_settings, options())
    assert time.perf_counter() - start >= 0.4
    assert run.report.ok == 4
    assert run.report.retries == {"http_429": 4}


def test_exhausted_retries_fail_the_row_with_the_last_reason(
    server: ServerThread, api_settings: Settings
) -> None:
    server.set(faults={"500": 1.0}, faults_per_message=100)
    run = run_task(
        JUDGE,
        judge_rows(3),
        api_settings,
        options(retries=Retries(max_attempts=3, backoff_base_s=0.001)),
    )
    assert server.stats.requests == 9
    assert run.report.failed == {"http_500": 3}


def test_answers_without_the_tag_are_reasked_up_to_the_bound(
    server: ServerThread, api_settings: Settings
) -> None:
    server.set(faults={"notag": 1.0}, faults_per_message=100)
    run = run_task(JUDGE, judge_rows(4), api_settings, options(max_reasks=2))
    assert server.stats.requests == 12
    assert run.report.failed == {"no_tag": 4}
    assert all(o.text and "forgot the tags" in o.text for o in run.outcomes)

    # The re-asks were journaled too: a rerun pays for nothing and reaches the same verdict.
    server.reset_stats()
    again = run_task(JUDGE, judge_rows(4), api_settings, options(max_reasks=2))
    assert server.stats.requests == 0
    assert again.report.failed == {"no_tag": 4}
    # A larger bound asks once more per row, not three times more.
    run_task(JUDGE, judge_rows(4), api_settings, options(max_reasks=3))
    assert server.stats.requests == 4


def test_team_header_and_bearer_key_are_sent(server: ServerThread, settings: Settings) -> None:
    seen: list[dict[str, str]] = []
    original = server.server._answer

    async def recording(request):  # type: ignore[no-untyped-def]
        seen.append(dict(request.headers))
        return await original(request)

    server.server._answer = recording  # type: ignore[method-assign]
    s = settings.replace(base_url=server.url, api_key="sk-abc", prime_team_id="team-7")
    run_task(JUDGE, judge_rows(1), s, options())
    assert seen[0]["Authorization"] == "Bearer sk-abc"
    assert seen[0]["X-Prime-Team-ID"] == "team-7"
    body_keys = json.loads(journal_path(s, JUDGE).read_text())
    assert body_keys["model"] == s.judge_model


def test_missing_key_is_a_config_error_before_any_request(
    server: ServerThread, settings: Settings
) -> None:
    from kbpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="KBPIPE_API_KEY or PRIME_API_KEY"):
        run_task(JUDGE, judge_rows(3), settings.replace(base_url=server.url), options())
    assert server.stats.requests == 0


def test_retry_after_header_forms() -> None:
    from email.utils import formatdate

    from kbpipe.rater.client import parse_retry_after

    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    in_a_minute = parse_retry_after(formatdate(time.time() + 60, usegmt=True))
    assert in_a_minute is not None and 55 < in_a_minute <= 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def _wait_until_quiet(server: ServerThread, quiet_s: float = 0.3, limit_s: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + limit_s
    seen = -1
    while time.monotonic() < deadline:
        now = server.stats.requests
        if now == seen and server.stats.inflight == 0:
            return
        seen = now
        time.sleep(quiet_s)
