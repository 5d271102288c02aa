"""A rate limit that lasts minutes, under the real scheduler and triggerer: the fetch waits for it deferred."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import DAG_QUERY, read_topic, x_api_time
from tests.system.harness import unused_windows

RATE_WINDOW = 150  # seconds: beyond the 90 s a fetch waits in its worker slot


@pytest.mark.timeout(900)  # the reset, and the stack's start-up when this test is the first
def test_a_rate_limit_of_minutes_defers_the_fetch_which_goes_on_from_its_page_after_the_reset(
    airflow_stack, x_api
):
    """Expected: X allows 2 searches per 150 s and the minute needs 3 pages (over 200 of its 300 posts match). The fetch reads pages 1 and 2, meets a
    429 whose reset is over 90 s away and defers: the task is `deferred` and the x_api pool has no slot running
    meanwhile. After the reset the same try goes on from page 3 (pages 1 and 2 are not asked again), and the topic
    holds every post of the minute once."""
    [(start, end)] = unused_windows(airflow_stack, 25)
    topic = f"test-deferral-{uuid.uuid4().hex[:12]}"
    x_api.set_rate(start, 300)
    x_api.rate_limit, x_api.rate_limit_window = 2, RATE_WINDOW

    run_id = airflow_stack.trigger(start, {"topic": topic})["dag_run_id"]

    def fetch_deferred() -> dict | None:
        fetch = next(ti for ti in airflow_stack.task_instances(run_id) if ti["task_id"] == "fetch_tweets")
        return fetch if fetch["state"] == "deferred" else None

    airflow_stack.wait_until(fetch_deferred, 300, "fetch_tweets to be deferred")
    pool = airflow_stack.api("GET", "/api/v2/pools/x_api")
    assert (pool["deferred_slots"], pool["running_slots"]) == (1, 0), "waiting, it holds no slot of the pool"

    def ended() -> dict | None:
        run = airflow_stack.api("GET", f"/api/v2/dags/tweets_to_kafka/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    assert airflow_stack.wait_until(ended, 2 * RATE_WINDOW + 300, "the run to end")["state"] == "success"
    (fetch,) = [ti for ti in airflow_stack.task_instances(run_id) if ti["task_id"] == "fetch_tweets"]
    assert fetch["try_number"] == 1, "the wait cost no try"
    searches = [r for r in x_api.requests if r["params"]["start_time"] == x_api_time(start)]
    assert [(r["page"], r["status"]) for r in searches] == [(1, 200), (2, 200), (3, 429), (3, 200)]
    limited, resumed = searches[2:]
    assert resumed["time"] >= limited["time"] + RATE_WINDOW - 5, "asked again once the limit reset"
    log = airflow_stack.task_log(run_id, "fetch_tweets", 1)
    assert "deferred until then, holding no worker slot, with 200 tweets read so far" in log
    expected = {tweet["id"].encode() for tweet in x_api.tweets_between(start, end, DAG_QUERY)}
    keys = [key for key, _ in read_topic(topic)]
    assert sorted(keys) == sorted(expected) and len(expected) > 200
