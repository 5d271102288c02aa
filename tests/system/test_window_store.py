"""A window's records wait in the window store under the real scheduler: a 150,000-post minute goes through one produce
try, and once a window is delivered Airflow's metadata database and task logs hold none of its posts."""

from __future__ import annotations

import json
import sqlite3
import uuid

from tests.helpers import DAG_QUERY, read_topic, x_api_time
from tests.system.harness import unused_windows

BIG_MINUTE = 150_000
# The DAG's query and the words of the simulator's posts that name no product: it matches every post.
EVERY_POST = "Apple OR iphone OR iPhone OR walk OR lol"


def test_a_150000_post_minute_goes_through_one_produce_try(airflow_stack, x_api):
    """Expected: the 1,500 pages fetched once, by one fetch try, which reports that the minute took more requests
    than the app's 15 minutes allow; all 150,000 posts written by one produce try, though they overflow
    librdkafka's queue (1,000 records here, 100,000 by default: a broker that acknowledges slower than the task
    produces fills it) time and again."""
    [(start, end)] = unused_windows(airflow_stack, 30)
    topic = f"test-big-{uuid.uuid4().hex[:12]}"
    x_api.rate_limit = 10_000  # the minute takes 1,500 requests
    x_api.set_rate(start, BIG_MINUTE)
    # The simulator evaluates the query on the minute's posts once, here, for all of the search's pages.
    expected = {tweet["id"].encode() for tweet in x_api.tweets_between(start, end, EVERY_POST)}
    try:
        with airflow_stack.kafka_settings({"queue.buffering.max.messages": 1_000}):
            [run] = airflow_stack.backfill(
                [(start, end)], conf={"topic": topic, "query": EVERY_POST}, timeout=1200
            )
    finally:
        x_api.set_rate(start, x_api.rate_per_minute)

    assert run["state"] == "success"
    run_id = run["dag_run_id"]
    assert [t["state"] for t in airflow_stack.task_tries(run_id, "fetch_tweets")] == ["success"]
    assert [t["state"] for t in airflow_stack.task_tries(run_id, "produce_tweets")] == ["success"]
    keys = [key for key, _ in read_topic(topic)]
    assert len(keys) == len(expected) == BIG_MINUTE
    assert set(keys) == expected
    pages = [r for r in x_api.requests if r["params"].get("start_time") == x_api_time(start)]
    assert len(pages) == BIG_MINUTE // 100, "each page once"
    fetched = airflow_stack.task_log(run_id, "fetch_tweets", 1)
    assert f"took {BIG_MINUTE // 100} X API requests for {BIG_MINUTE} tweets, more than the 450" in fetched
    produced = airflow_stack.task_log(run_id, "produce_tweets", 1)
    assert "librdkafka's queue was full" in produced
    assert f"Delivered {len(expected)} records" in produced


def test_airflow_keeps_no_post_of_a_delivered_window(airflow_stack, x_api):
    """Expected: XCom holds only produce_tweets' delivery summary and the rendered fields the run's settings, under
    2 KB for the run; no post's text or location is in them or in the task logs; the window's file, named by the run
    in the store, is gone once delivered."""
    [(start, end)] = unused_windows(airflow_stack, 26)
    topic = f"test-metadata-{uuid.uuid4().hex[:12]}"

    [run] = airflow_stack.backfill([(start, end)], conf={"topic": topic}, timeout=300)

    assert run["state"] == "success"
    run_id = run["dag_run_id"]
    tweets = x_api.tweets_between(start, end, DAG_QUERY)
    posts = {tweet["text"] for tweet in tweets} | {
        tweet["author"]["location"] for tweet in tweets if tweet["author"].get("location")
    }
    with sqlite3.connect(airflow_stack.home / "airflow.db") as db:
        xcoms = [row[0] for row in db.execute("SELECT value FROM xcom WHERE run_id = ?", (run_id,))]
        rendered = [
            row[0]
            for row in db.execute(
                "SELECT rendered_fields FROM rendered_task_instance_fields WHERE run_id = ?", (run_id,)
            )
        ]
    stored = "\n".join(str(value) for value in xcoms + rendered)
    assert len(xcoms) == 1 and len(rendered) == 2, "produce_tweets' return value; both tasks' rendered fields"
    assert [post for post in posts if post in stored] == []
    assert len(stored.encode()) < 2048

    run_path = f"/api/v2/dags/tweets_to_kafka/dagRuns/{run_id}/taskInstances"
    delivery = airflow_stack.api("GET", f"{run_path}/produce_tweets/xcomEntries/return_value")["value"]
    delivery = json.loads(delivery) if isinstance(delivery, str) else delivery
    assert delivery["records"] == len(tweets) == len(read_topic(topic))
    produce = airflow_stack.api("GET", f"{run_path}/produce_tweets")
    assert produce["rendered_fields"]["producer_function_kwargs"] == {"record_format": "json"}
    fetched = airflow_stack.task_log(run_id, "fetch_tweets", 1)
    file = airflow_stack.home / "tweets_to_kafka" / "windows" / "tweets_to_kafka" / f"{run_id}.jsonl"
    assert (
        f"Run summary: {len(tweets)} tweets; 0 unreachable minutes before this window; saved in file://{file}"
        in fetched
    )
    assert not file.exists(), "removed once delivered"

    logged = fetched + airflow_stack.task_log(run_id, "produce_tweets", 1)
    assert [post for post in posts if post in logged] == []
