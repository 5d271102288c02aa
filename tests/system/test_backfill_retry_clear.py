"""Backfill, retry and clear with a real scheduler, the real broker and the simulator over HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from include.records import to_record
from tests.helpers import DAG_QUERY, read_topic, x_api_time
from tests.system.harness import DAG_ID, unused_windows


def runs_of(runs: list[dict], topic: str) -> list[dict]:
    """The runs that write to `topic` (each test uses its own)."""
    return [run for run in runs if (run["conf"] or {}).get("topic") == topic]


def window_of(run: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(run["data_interval_start"]), datetime.fromisoformat(
        run["data_interval_end"]
    )


def expected_records(simulator, windows) -> dict[bytes, dict]:
    return {
        tweet["id"].encode(): to_record(tweet, tweet["author"])
        for start, end in windows
        for tweet in simulator.tweets_between(start, end, DAG_QUERY)
    }


def test_a_backfill_delivers_every_window_and_airflow_retries_the_one_that_fails_a_whole_try(
    airflow_stack, x_api
):
    windows = unused_windows(airflow_stack, 15, 6)  # six minutes, oldest first
    flaky_start = windows[0][0]
    topic = f"test-backfill-{uuid.uuid4().hex[:12]}"
    # One task try makes 4 requests (the hook's attempts): 5 failures outlast it, the retry succeeds.
    x_api.add_fault(status=503, start_time=flaky_start, times=5)
    # A rate limit that this backfill exceeds: 6 windows + 5 failures > 5 requests per minute.
    x_api.rate_limit, x_api.rate_limit_window = 5, 60

    runs = airflow_stack.backfill(windows, conf={"topic": topic}, timeout=480)

    assert sorted(window_of(run) for run in runs) == windows
    assert {run["run_type"] for run in runs} == {"backfill"}
    assert [run["state"] for run in runs] == ["success"] * 6
    records = read_topic(topic)
    expected = expected_records(x_api, windows)
    assert 6 * 30 < len(expected) < 6 * 40, "most of the 40 posts a minute match the DAG's query"
    assert {key: json.loads(value) for key, value in records} == expected
    assert len(records) == len(expected), "each tweet once: the failed try wrote nothing"

    # The flaky window: its first try failed after 4 requests, Airflow retried it, the retry delivered.
    flaky_run = next(run for run in runs if window_of(run)[0] == flaky_start)["dag_run_id"]
    tries = airflow_stack.task_tries(flaky_run, "fetch_tweets")
    assert [t["state"] for t in tries] == ["failed", "success"]
    first_try_log = airflow_stack.task_log(flaky_run, "fetch_tweets", 1)
    assert "Attempt 3 of 4 failed, retrying" in first_try_log
    assert "X API returned HTTP 503 for connection 'twitter_default'" in first_try_log
    flaky_statuses = [
        r["status"] for r in x_api.requests if r["params"]["start_time"] == x_api_time(flaky_start)
    ]
    assert [status for status in flaky_statuses if status != 429] == [503] * 5 + [200]

    # The rate limit was hit, and no run failed or needed a retry because of it.
    assert 429 in {r["status"] for r in x_api.requests}
    fetches = [ti for ti in airflow_stack.task_instances() if ti["task_id"] == "fetch_tweets"]
    fetches = [ti for ti in fetches if ti["dag_run_id"] in {run["dag_run_id"] for run in runs}]
    assert sorted(ti["try_number"] for ti in fetches) == [1, 1, 1, 1, 1, 2]

    # The x_api pool (one slot) let one search run at a time, though 4 runs of the backfill were active.
    assert {ti["pool"] for ti in fetches} == {"x_api"}
    spans = sorted(
        (t["start_date"], t["end_date"])
        for ti in fetches
        for t in airflow_stack.task_tries(ti["dag_run_id"], "fetch_tweets")
    )
    overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlaps == [], "two fetch_tweets tries ran at once"


def test_clearing_a_failed_run_reruns_it_and_delivers(airflow_stack, x_api):
    [window] = unused_windows(airflow_stack, 40)
    topic = f"test-clear-{uuid.uuid4().hex[:12]}"
    x_api.add_fault(status=403, start_time=window[0], times=1)  # fails for good: no retry

    [run] = airflow_stack.backfill([window], conf={"topic": topic}, timeout=300)

    assert run["state"] == "failed"
    states = {ti["task_id"]: ti["state"] for ti in airflow_stack.task_instances(run["dag_run_id"])}
    assert states == {"fetch_tweets": "failed", "produce_tweets": "upstream_failed"}
    assert read_topic(topic) == []

    airflow_stack.cli(
        "tasks",
        "clear",
        DAG_ID,
        "--start-date",
        x_api_time(window[0]),
        "--end-date",
        x_api_time(window[0]),
        "--yes",
    )
    [run] = runs_of(
        airflow_stack.wait_for_runs(
            lambda runs: runs_of(runs, topic)[0]["state"] == "success", 300, "the cleared run to succeed"
        ),
        topic,
    )

    states = {ti["task_id"]: ti["state"] for ti in airflow_stack.task_instances(run["dag_run_id"])}
    assert states == {"fetch_tweets": "success", "produce_tweets": "success"}
    assert {key: json.loads(value) for key, value in read_topic(topic)} == expected_records(x_api, [window])
    assert [r["status"] for r in x_api.requests] == [403, 200]
