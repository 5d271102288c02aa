"""X API faults during real DAG runs (dag.test, with task retries) against the simulator and the real broker.

Each case states the behaviour a user sees and ends with the same check: the topic holds every tweet of
the window, by key and content. The hook retries a request 4 times (1, 2, 4 s apart) before a task try
fails; Airflow then retries the task (here after 1 s instead of the DAG's 20 s, to keep the suite quick).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.faults.conftest import TOKEN
from tests.faults.consumers import TopicWatcher, check_committed_once
from tests.faults.reliability import search_requests, when_task_is
from tests.helpers import BOOTSTRAP, create_topic, past_window, read_topic

pytestmark = pytest.mark.usefixtures("connections")
SUCCESS = {"fetch_tweets": "success", "produce_tweets": "success"}


def test_429_with_a_near_reset_is_waited_out_inside_the_task(case, simulator, topic):
    """Expected: the hook sleeps until the reset (within X's 15-minute window) and asks again; one task try."""
    start, end = past_window(30)
    simulator.set_rate(start, 250)
    reset = int(time.time()) + 3
    simulator.add_fault(status=429, page=2, headers={"x-rate-limit-reset": str(reset)})

    run = case.run(start, topic=topic)

    assert run.states == SUCCESS and run.tries["fetch_tweets"] == 1
    assert time.time() >= reset
    assert search_requests(simulator) == [(1, 200), (2, 429), (2, 200), (3, 200)]
    case.check_delivered(simulator, topic, [(start, end)])


def test_429_with_a_reset_beyond_the_x_api_s_window_fails_the_try_and_airflow_retries(
    case, simulator, topic, capfd
):
    """Expected: a reset further than X's 15-minute window (a wrong header, a skewed clock) is not waited
    for in a worker; the try fails naming the reset time, the retry delivers."""
    start, end = past_window(31)
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": str(int(reset.timestamp()))})

    began = time.monotonic()
    run = case.run(start, retry_delay=1, topic=topic)

    assert run.states == SUCCESS and run.tries["fetch_tweets"] == 2
    assert time.monotonic() - began < 60
    assert search_requests(simulator) == [(1, 429), (1, 200)]
    assert f"the rate limit resets at {reset:%Y-%m-%dT%H:%M:%SZ}" in capfd.readouterr().out
    case.check_delivered(simulator, topic, [(start, end)])


def test_429_without_a_reset_header_is_retried_with_backoff(case, simulator, topic):
    """Expected: treated as transient; the hook's next attempt (1 s later) succeeds; no retry storm."""
    start, end = past_window(32)
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": None})

    run = case.run(start, topic=topic)

    assert run.states == SUCCESS and run.tries["fetch_tweets"] == 1
    assert search_requests(simulator) == [(1, 429), (1, 200)]
    case.check_delivered(simulator, topic, [(start, end)])


def test_a_burst_of_server_errors_outlasting_the_hooks_attempts_is_survived_by_a_task_retry(
    case, simulator, topic, capfd
):
    """Expected: 6 x 503 on page 2: the hook's 4 attempts fail, the try fails, the retry reads every
    page again (2 more 503s, then 200s) and the run succeeds."""
    start, end = past_window(33)
    simulator.set_rate(start, 250)
    simulator.add_fault(status=503, page=2, times=6)

    run = case.run(start, retry_delay=1, topic=topic)

    assert run.states == SUCCESS and run.tries == {"fetch_tweets": 2, "produce_tweets": 1}
    first_try = [(1, 200)] + [(2, 503)] * 4
    second_try = [(1, 200)] + [(2, 503)] * 2 + [(2, 200), (3, 200)]
    assert search_requests(simulator) == first_try + second_try
    assert "Attempt 3 of 4 failed, retrying: X API returned HTTP 503" in capfd.readouterr().out
    case.check_delivered(simulator, topic, [(start, end)])


def test_a_hung_connection_times_out_and_is_retried(case, simulator, topic, capfd):
    """Expected: the DAG's 30 s read timeout ends the silent request; the next attempt succeeds."""
    start, end = past_window(34)
    simulator.set_rate(start, 150)
    simulator.add_fault(page=2, delay=40)

    began = time.monotonic()
    run = case.run(start, topic=topic)

    assert run.states == SUCCESS and run.tries["fetch_tweets"] == 1
    assert 30 <= time.monotonic() - began < 40
    assert [page for page, _ in search_requests(simulator)] == [1, 2, 2]
    assert "Read timed out. (read timeout=30.0)" in capfd.readouterr().out
    case.check_delivered(simulator, topic, [(start, end)])


def test_connection_refused_fails_the_try_and_the_retry_delivers_once_the_api_is_back(
    case, simulator, topic, capfd
):
    """Expected: with the API down, 4 attempts fail with a message naming the URL and the connection;
    the API comes back while the task waits for its retry, which delivers everything."""
    start, end = past_window(35)
    simulator.stop()
    when_task_is(start, "fetch_tweets", "up_for_retry", simulator.start)

    run = case.run(start, retry_delay=2, topic=topic)

    assert run.states == SUCCESS and run.tries == {"fetch_tweets": 2, "produce_tweets": 1}
    assert search_requests(simulator) == [(1, 200)], "the simulator saw only the retry"
    out = capfd.readouterr().out
    assert f"X API request to {simulator.url} failed for connection 'twitter_default': ConnectionError" in out
    case.check_delivered(simulator, topic, [(start, end)])


def test_a_malformed_body_is_retried(case, simulator, topic, capfd):
    """Expected: a 200 whose body is not JSON is transient; the next attempt succeeds."""
    start, end = past_window(36)
    simulator.set_rate(start, 150)
    simulator.add_fault(page=2, body='{"data": [{"id": ')

    run = case.run(start, topic=topic)

    assert run.states == SUCCESS and run.tries["fetch_tweets"] == 1
    assert search_requests(simulator) == [(1, 200), (2, 200), (2, 200)], "the bad page is asked for again"
    assert "with a body that is not JSON for connection 'twitter_default'" in capfd.readouterr().out
    case.check_delivered(simulator, topic, [(start, end)])


def test_a_failure_on_page_3_of_4_rereads_the_window_and_writes_each_tweet_once(case, simulator, topic):
    """Expected: page 3 fails 4 times, so the try fails before anything is written; the retry reads all
    4 pages; the topic holds each tweet exactly once (fetching ends before producing starts)."""
    start, end = past_window(37)
    simulator.set_rate(start, 380)  # about 330 match the DAG's query: 4 pages
    simulator.add_fault(status=500, page=3, times=4)
    create_topic(BOOTSTRAP, topic)
    watcher = TopicWatcher(topic, BOOTSTRAP)
    began = time.monotonic()

    run = case.run(start, retry_delay=1, topic=topic)

    assert run.states == SUCCESS and run.tries == {"fetch_tweets": 2, "produce_tweets": 1}
    first_try = [(1, 200), (2, 200)] + [(3, 500)] * 4
    assert search_requests(simulator) == first_try + [(1, 200), (2, 200), (3, 200), (4, 200)]
    hidden = check_committed_once(case, simulator, topic, [(start, end)], BOOTSTRAP, watcher, began)
    assert hidden == 0, "the failed fetch wrote nothing, not even uncommitted"


@pytest.mark.parametrize(
    ("status", "what_to_fix"),
    [
        (
            400,
            "One or more parameters to your request was invalid. (the X API refused the request's parameters)",
        ),
        (401, "Unauthorized (check the connection's bearer token or OAuth 1.0a keys)"),
        (
            402,
            "Your enrolled account does not have any credits to fulfill this request. "
            "(the X developer account has no credits left)",
        ),
        (
            403,
            "This request must be made using an approved developer account that is enrolled in the "
            "requested endpoint. (the app or its access level may not use this endpoint)",
        ),
    ],
    ids=["400", "401", "402", "403"],
)
def test_a_client_error_fails_fast_and_a_rerun_after_the_fix_delivers(
    case, simulator, topic, capfd, status, what_to_fix
):
    """Expected: one request, no retry although the DAG has 3, the run fails visibly with a message that
    says what to fix and no secret, nothing is written; once fixed, a rerun delivers the window."""
    start, end = past_window(38)
    simulator.add_fault(status=status, times=-1)

    run = case.run(start, topic=topic)

    assert run.states == {"fetch_tweets": "failed", "produce_tweets": "upstream_failed"}
    assert run.tries["fetch_tweets"] == 1
    assert search_requests(simulator) == [(1, status)]
    out = capfd.readouterr().out
    assert f"X API returned HTTP {status} for connection 'twitter_default': {what_to_fix}" in out
    assert TOKEN not in out
    assert read_topic(topic) == []

    simulator.clear_faults()
    assert case.run(start, topic=topic).states == SUCCESS
    case.check_delivered(simulator, topic, [(start, end)])
