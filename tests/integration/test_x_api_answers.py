"""The DAG meets the X API's answers through the simulator (dag.test, the real broker): edits, empty
pages with a next_token, the access tier, and a usage cap."""

from __future__ import annotations

import json

import pytest

from include.records import to_record
from tests.helpers import DAG_QUERY, past_window, read_topic, run_dag

pytestmark = pytest.mark.usefixtures("connections")


def test_edited_posts_empty_pages_and_the_basic_tier_deliver_every_latest_version(simulator, topic, capfd):
    """Expected: every page is read, an empty one with a next_token too, each with sort_order=recency;
    an edited post arrives as its latest version with the id of its first; the log names the tier."""
    start, end = past_window(45)
    simulator.set_rate(start, 250)
    simulator.edit_rate, simulator.empty_page_rate, simulator.tier = 0.3, 1.0, "basic"

    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}

    expected = {
        t["id"].encode(): to_record(t, t["author"]) for t in simulator.tweets_between(start, end, DAG_QUERY)
    }
    records = {key: json.loads(value) for key, value in read_topic(topic)}
    assert records == expected
    edited = [r for r in records.values() if r["original_tweet_id"] != r["tweet_id"]]
    assert edited, "edits of earlier posts were created in this window"
    assert all(int(r["original_tweet_id"]) < int(r["tweet_id"]) for r in edited)
    searches = simulator.requests
    assert [r["status"] for r in searches] == [200] * len(searches)
    assert len(searches) == -(-len(expected) // 100) + 1, "one empty page, then the rest"
    assert {r["params"]["sort_order"] for r in searches} == {"recency"}
    assert f"rate limit remaining {60 - len(searches)} of 60 (Basic tier)" in capfd.readouterr().out


def test_a_usage_cap_fails_the_run_at_once_naming_period_and_scope(simulator, topic, capfd):
    """Expected: a 429 UsageCapExceeded is not waited out nor retried although the DAG has 3 retries:
    one request, fetch_tweets failed, the log says which cap and what to do, nothing is written."""
    start, _ = past_window(46)
    simulator.usage_cap = 0

    states = run_dag(start, topic=topic)

    assert states == {"fetch_tweets": "failed", "produce_tweets": "upstream_failed"}
    assert [r["status"] for r in simulator.requests] == [429]
    out = capfd.readouterr().out
    assert (
        "HTTP 429 UsageCapExceeded for connection 'twitter_default': the Monthly usage cap of the Product"
        in out
    )
    assert read_topic(topic) == []
