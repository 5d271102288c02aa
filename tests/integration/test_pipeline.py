"""The DAG end to end: the X API simulator over HTTP, the real Kafka broker, records read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import ParamValidationError

from include.records import to_record
from tests.helpers import (
    BOOTSTRAP,
    DAG_QUERY,
    KAFKA_CONFIG,
    ROOT,
    create_topic,
    past_window,
    read_topic,
    run_dag,
    set_connection,
    x_api_time,
)

pytestmark = pytest.mark.usefixtures("connections")


def expected_records(simulator, start, end) -> dict[bytes, dict]:
    """The simulator's tweets of a window that the DAG's default query matches, as the records the topic
    must hold, by key."""
    return {
        t["id"].encode(): to_record(t, t["author"]) for t in simulator.tweets_between(start, end, DAG_QUERY)
    }


def search_requests(simulator) -> list[dict]:
    return [r for r in simulator.requests if r["path"] == "/2/tweets/search/recent"]


def test_a_window_of_three_pages_lands_in_the_topic_exactly(simulator, topic, capfd, caplog):
    start, end = past_window(90)
    simulator.set_rate(start, 250)

    states = run_dag(start, topic=topic)

    assert states == {"fetch_tweets": "success", "produce_tweets": "success"}
    records = read_topic(topic)
    expected = expected_records(simulator, start, end)
    assert 200 < len(expected) < 250, "most of the window's 250 posts match the DAG's query"
    assert {key: json.loads(value) for key, value in records} == expected
    assert len(records) == len(expected), "each tweet is written once"
    # Exactly the minimum number of requests, every one for this window.
    requests = search_requests(simulator)
    assert [r["page"] for r in requests] == [1, 2, 3]
    for request in requests:
        assert request["params"]["start_time"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert request["params"]["end_time"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert request["params"]["max_results"] == "100"
    # One summary line per task.
    logged = capfd.readouterr().out + caplog.text
    window = f"[{start:%Y-%m-%dT%H:%M:%SZ}, {end:%Y-%m-%dT%H:%M:%SZ})"
    assert f"Window {window}: {len(expected)} tweets, 3 pages, 3 requests, rate limit remaining 447" in logged
    assert f"Delivered {len(expected)} records to kafka://{BOOTSTRAP}/{topic}" in logged


def test_a_topic_in_conf_gets_the_asset_event_and_the_streams_topic_none(topic):
    """The stream's own topic is a static outlet; a run whose conf names another topic emits its event through the
    alias, for `kafka://<connection id>/<topic>`, and none for the stream's topic, which it did not write."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    start, _ = past_window(85)

    run_dag(start, topic=topic)

    def events(uri: str) -> int:
        with create_session() as session:
            return session.scalar(
                select(func.count(AssetEvent.id))
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == uri)
            )

    assert events(f"kafka://kafka_default/{topic}") == 1
    assert events("kafka://kafka_default/tweets-lambda1") == 0


def test_window_boundaries_first_second_in_end_second_out(simulator, topic):
    start, end = past_window(80)
    first_of_window = simulator.tweets_between(start, start + timedelta(seconds=1), DAG_QUERY)
    first_of_next = simulator.tweets_between(end, end + timedelta(seconds=1), DAG_QUERY)
    assert first_of_window and first_of_next, "the simulator posts a tweet on each minute's first second"

    assert run_dag(start, topic=topic)["produce_tweets"] == "success"

    keys = {key for key, _ in read_topic(topic)}
    assert {t["id"].encode() for t in first_of_window} <= keys
    assert not {t["id"].encode() for t in first_of_next} & keys


def test_an_empty_window_succeeds_with_one_request_and_no_records(simulator, topic):
    start, end = past_window(70)
    simulator.set_rate(start, 0)

    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}

    assert read_topic(topic) == []
    assert len(search_requests(simulator)) == 1


def test_seed_format_splits_into_the_seeds_six_fields(simulator, topic):
    start, end = past_window(60)

    assert run_dag(start, topic=topic, record_format="seed")["produce_tweets"] == "success"

    records = dict(read_topic(topic))
    expected = expected_records(simulator, start, end)
    assert records.keys() == expected.keys()
    for key, value in records.items():
        record = expected[key]
        fields = value.decode().split(";")
        assert len(fields) == 7 and fields[6] == "", value
        assert fields[0] == record["user_id"]
        assert fields[1] == record["created_at"].replace("T", " ").removesuffix("Z")
        assert fields[2] == str(record["followers_count"])
        assert fields[3] == (record["location"] or "").replace(";", " ").replace("\r", " ").replace("\n", " ")
        assert fields[4:6] == [str(record["favorite_count"]), str(record["retweet_count"])]


def test_a_rerun_writes_the_same_keys_and_values(simulator, topic):
    start, end = past_window(50)

    run_dag(start, topic=topic)
    run_dag(start, topic=topic)

    records = read_topic(topic)
    expected = expected_records(simulator, start, end)
    assert len(records) == 2 * len(expected)
    assert {key: json.loads(value) for key, value in records} == expected


def test_one_server_error_is_retried_and_everything_is_delivered(simulator, topic):
    start, end = past_window(40)
    simulator.set_rate(start, 150)
    simulator.add_fault(status=503, page=2)

    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}

    assert {key for key, _ in read_topic(topic)} == expected_records(simulator, start, end).keys()
    assert [(r["page"], r["status"]) for r in search_requests(simulator)] == [(1, 200), (2, 503), (2, 200)]


def test_a_wrong_token_fails_fetch_at_once_naming_the_connection(simulator, topic, monkeypatch, capfd):
    set_connection(
        monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password="wrong-token"
    )
    start, _ = past_window(30)

    states = run_dag(start, topic=topic)

    assert states == {"fetch_tweets": "failed", "produce_tweets": "upstream_failed"}, (
        "failed, not up_for_retry"
    )
    assert len(search_requests(simulator)) == 1, "no retry of a 401"
    assert "X API returned HTTP 401 for connection 'twitter_default': Unauthorized" in capfd.readouterr().out


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("query", ""),
        ("query", "   "),
        ("query", "Apple " * 86),
        ("topic", "not a topic!"),
        ("topic", ".."),
        ("record_format", "xml"),
    ],
)
def test_an_invalid_param_refuses_the_run_before_any_request(simulator, param, value):
    start, _ = past_window(30)

    with pytest.raises(ParamValidationError, match=f"Invalid input for param {param}"):
        run_dag(start, **{param: value})

    assert search_requests(simulator) == []


def test_with_the_broker_down_produce_fails_within_the_delivery_bound(simulator, topic, monkeypatch, capfd):
    down = {**KAFKA_CONFIG, "bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 5000}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=down)
    start, _ = past_window(20)

    began = time.monotonic()
    states = run_dag(start, retries=0, topic=topic)
    elapsed = time.monotonic() - began

    assert states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    assert elapsed < 40, f"the produce task must fail within message.timeout.ms, took {elapsed:.0f} s"
    assert "Kafka did not answer connection 'kafka_default' within 5 s while " in capfd.readouterr().out


def test_records_the_broker_refuses_fail_the_try_which_aborts_its_transaction_at_once(
    simulator, kafka, topic, capfd, caplog
):
    """Expected: the topic takes batches of at most 200 bytes, so the broker refuses the window's records,
    the first while most of its ~17,600 records are still queued; the try fails naming a refused record and
    aborts its transaction itself (the delivery reports of the records it purges do not interrupt the
    abort), and a read_committed consumer sees nothing."""
    create_topic(kafka, topic, config={"max.message.bytes": "200"})
    start, end = past_window(21)
    simulator.set_rate(start, 20_000)

    states = run_dag(start, retries=0, topic=topic)

    assert states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    logged = capfd.readouterr().out + caplog.text
    assert "Kafka did not deliver record" in logged and "Broker: Message size too large" in logged
    assert "Aborted transaction 'tweets-to-kafka:tweets_to_kafka'" in logged
    assert "Could not abort" not in logged and "Purged" not in logged
    assert read_topic(topic) == []


def test_numbers_given_as_strings_work_as_a_secrets_backend_gives_them(simulator, topic, monkeypatch):
    strings = {**KAFKA_CONFIG, "message.timeout.ms": "15000", "linger.ms": "20", "enable.idempotence": "true"}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=strings)
    start, end = past_window(14)

    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}
    assert {key for key, _ in read_topic(topic)} == expected_records(simulator, start, end).keys()


def test_a_delivery_timeout_beyond_the_transaction_timeout_fails_at_once_naming_both(
    simulator, topic, monkeypatch, capfd
):
    """librdkafka refuses such a transactional producer with a message that names neither the connection nor
    the fix; the task fails without retries, before any record, saying both."""
    too_long = {**KAFKA_CONFIG, "message.timeout.ms": 120000}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=too_long)
    start, _ = past_window(15)

    states = run_dag(start, topic=topic)

    assert states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    assert (
        "Connection 'kafka_default': message.timeout.ms (120000) exceeds transaction.timeout.ms (60000)"
        in capfd.readouterr().out
    )
    assert read_topic(topic, isolation="read_uncommitted") == []


def test_without_a_transactional_id_each_try_says_delivery_is_at_least_once(
    simulator, topic, monkeypatch, capfd, caplog
):
    idempotent = {key: value for key, value in KAFKA_CONFIG.items() if key != "transactional.id"}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=idempotent)
    start, end = past_window(16)

    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}

    logged = capfd.readouterr().out + caplog.text
    assert "has no 'transactional.id' in its extra: this window is delivered at least once" in logged
    assert {key for key, _ in read_topic(topic)} == expected_records(simulator, start, end).keys()


def test_airflow_dags_test_from_the_readme_never_logs_the_token_at_debug(simulator, kafka, topic):
    """The README's command, at DEBUG level: the run succeeds and no log line holds the bearer token."""
    start, end = past_window(10)
    env = {
        **os.environ,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "AIRFLOW_CONN_TWITTER_DEFAULT": json.dumps(
            {"conn_type": "twitter", "host": simulator.url, "password": simulator.bearer_token}
        ),
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({"conn_type": "kafka", "extra": KAFKA_CONFIG}),
    }
    command = [
        sys.executable,
        "-m",
        "airflow",
        "dags",
        "test",
        "tweets_to_kafka",
        start.isoformat(),
        "--conf",
        json.dumps({"topic": topic}),
    ]

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "[debug" in output, "the run logged at DEBUG level"
    assert "Making API request" not in output, "tweepy's request dump (with headers) is silenced"
    # Airflow 3.3.2's in-process test supervisor (dags test only) logs each secret it is asked to mask
    # at DEBUG, its own connection password included; the README warns of it. No other line holds it.
    leaks = [line for line in output.splitlines() if simulator.bearer_token in line]
    assert all("Sending request" in line and "MaskSecret(value=" in line for line in leaks), leaks
    assert {key for key, _ in read_topic(topic)} == expected_records(simulator, start, end).keys()


def test_a_run_with_another_query_logs_it_and_warns_when_it_writes_to_the_streams_own_topic(
    simulator, capfd, caplog
):
    """A manual run's conf may change the query; its fetch_tweets log names the query and the topic it used, and
    warns that a test query's posts land in the stream's production topic when the topic was left as it is."""
    start, _ = past_window(17)

    assert run_dag(start, query="iPhone lang:fr") == {"fetch_tweets": "success", "produce_tweets": "success"}

    logged = capfd.readouterr().out + caplog.text
    assert (
        f"Window [{x_api_time(start)}, " in logged
        and "query 'iPhone lang:fr', to topic 'tweets-lambda1'" in logged
    )
    assert (
        "This run searches 'iPhone lang:fr', not the stream's query 'Apple OR iphone OR iPhone', yet writes to the "
        "stream's own topic 'tweets-lambda1'"
    ) in logged
