"""Bad input that the unit and pipeline tests do not cover yet, in real DAG runs.

Already covered elsewhere: invalid params (tests/integration/test_pipeline.py), a connection without
credentials, half OAuth keys, malformed extra JSON, a host that is not a URL, the same tweet on two pages
and an author missing from `includes` (tests/unit/test_twitter_hook.py), missing optional fields and
awkward characters in records (tests/unit/test_records.py).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from include.records import to_record
from tests.faults.conftest import TOKEN
from tests.faults.reliability import search_requests
from tests.helpers import KAFKA_CONFIG, past_window, read_topic, set_connection

pytestmark = pytest.mark.usefixtures("connections")

# One code point from each of the 17 Unicode planes (4-13 are unassigned but valid scalar values), the
# characters JSON and line-based tools trip on, and a grapheme built from several code points.
EVERY_PLANE = "".join(chr(plane * 0x10000 + 0x4E2D) for plane in range(17))
AWKWARD = '\x00\t\r\n\u2028\u2029"\\;/\ufeff\U0001f468\u200d\U0001f469\u200d\U0001f467 é e\u0301 𝕏 🍎 中文'
LONG_TEXT = ("🍎𝕏中é; " * 5000)[:25_000]  # the longest post X allows: 25,000 characters, ~75 KB of UTF-8


def test_every_unicode_plane_very_long_text_and_null_metrics_round_trip_exactly(case, simulator, topic):
    """Expected: the records read back from Kafka equal those built from the API's page, character for
    character; null or absent metrics, lang, location and author become JSON null."""
    start, end = past_window(50)
    at = start + timedelta(seconds=30)
    tweets = [
        _tweet(1, at, EVERY_PLANE + AWKWARD, public_metrics={"like_count": None, "retweet_count": None}),
        _tweet(2, at, LONG_TEXT, public_metrics=None, lang=None),
        _tweet(3, at, "no metrics, author missing from includes"),
    ]
    del tweets[2]["public_metrics"]
    author = {"id": "7", "name": "Ada", "username": "ada", "public_metrics": None, "location": None}
    page = {"data": tweets, "includes": {"users": [author]}, "meta": {"result_count": 3}}
    simulator.add_fault(body=json.dumps(page))

    run = case.run(start, topic=topic)

    assert run.states == {"fetch_tweets": "success", "produce_tweets": "success"}
    expected = {t["id"].encode(): to_record(t, author if t["author_id"] == "7" else None) for t in tweets}
    case.check_records(topic, [expected])
    records = {key: json.loads(value) for key, value in read_topic(topic)}
    assert records[b"1"]["text"] == EVERY_PLANE + AWKWARD
    assert records[b"2"]["text"] == LONG_TEXT and len(records[b"2"]["text"]) == 25_000
    assert records[b"2"]["favorite_count"] is None and records[b"2"]["lang"] is None
    assert records[b"3"]["user_id"] == "8" and records[b"3"]["followers_count"] is None


def test_a_missing_twitter_connection_fails_naming_it_before_any_request(
    case, simulator, topic, monkeypatch, capfd
):
    """Expected: fetch_tweets fails saying which connection is not defined; nothing is requested."""
    monkeypatch.delenv("AIRFLOW_CONN_TWITTER_DEFAULT")
    start, _ = past_window(51)

    run = case.run(start, retries=0, topic=topic)

    assert run.states == {"fetch_tweets": "failed", "produce_tweets": "upstream_failed"}
    assert "The conn_id `twitter_default` isn't defined" in capfd.readouterr().out
    assert search_requests(simulator) == []


def test_a_kafka_connection_without_bootstrap_servers_fails_at_once_naming_the_connection(
    case, simulator, topic, monkeypatch, capfd
):
    """Expected: produce_tweets fails at its first try, without retries, naming the connection and the
    missing setting, and prints none of the connection's secrets; once the connection is fixed, a rerun
    delivers the window."""
    start, end = past_window(52)
    secret = "sasl-password-0123456789"
    broken = {k: v for k, v in KAFKA_CONFIG.items() if k != "bootstrap.servers"} | {"sasl.password": secret}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=broken)

    run = case.run(start, topic=topic)

    assert run.states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    assert run.tries["produce_tweets"] == 1, "no retry: the connection must be fixed first"
    out = capfd.readouterr().out
    assert "Connection 'kafka_default' has no 'bootstrap.servers' in its extra" in out
    assert secret not in out and TOKEN not in out

    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=KAFKA_CONFIG)
    assert case.run(start, topic=topic).states == {"fetch_tweets": "success", "produce_tweets": "success"}
    case.check_delivered(simulator, topic, [(start, end)])


def _tweet(number: int, at, text: str, **fields) -> dict:
    """A v2 tweet with id `number` posted at `at`: by user 7 (in `includes`) for tweets 1 and 2, else by
    user 8 (missing from `includes`); `fields` override or add fields."""
    tweet = {
        "id": str(number),
        "text": text,
        "author_id": "7" if number < 3 else "8",
        "created_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "lang": "und",
        "public_metrics": {"like_count": 1, "retweet_count": 0},
        "edit_history_tweet_ids": [str(number)],
    }
    return tweet | fields
