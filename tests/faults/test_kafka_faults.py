"""Kafka faults during real DAG runs, on a broker of its own that the tests stop, kill and restart.

The broker has topic auto-creation off, so each case creates its topic as an operator would. The
connection is the README's recommended one (acks=all, idempotence): a record counts as delivered only
once the broker acknowledged it, and produce_tweets fails when one is not.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.consumers import TopicWatcher, check_committed_once, when_written
from tests.faults.reliability import when_task_is
from tests.helpers import KAFKA_CONFIG, create_topic, past_window, read_topic, set_connection

pytestmark = pytest.mark.usefixtures("connections")
SUCCESS = {"fetch_tweets": "success", "produce_tweets": "success"}


def test_broker_down_before_produce_fails_the_try_and_the_retry_delivers(case, simulator, own_broker, topic):
    """Expected: fetch succeeds; produce fails after message.timeout.ms (15 s) with the broker down; the
    broker is back while the task waits for its retry, which delivers everything."""
    broker = own_broker
    start, end = past_window(40)
    create_topic(broker.bootstrap, topic)
    broker.stop()
    when_task_is(start, "produce_tweets", "up_for_retry", broker.start)

    run = case.run(start, retry_delay=5, topic=topic)

    assert run.states == SUCCESS
    assert run.tries["fetch_tweets"] == 1 and run.tries["produce_tweets"] >= 2
    case.check_delivered(simulator, topic, [(start, end)], broker.bootstrap)


def test_broker_killed_while_producing_a_large_window_is_survived(
    case, simulator, own_broker, topic, monkeypatch
):
    """Expected: SIGKILL of the broker in the middle of a 20,000-record window's transaction, restart 2 s
    later: the run succeeds; a read_committed consumer reading throughout sees nothing of the window until
    it commits, then each tweet exactly once. Either the producer re-sends what was not acknowledged within
    the same transaction, or the try fails and its retry commits the window in a new one."""
    broker = own_broker
    start, end = past_window(41)
    tweets = 20_000
    simulator.set_rate(start, tweets)
    create_topic(broker.bootstrap, topic)
    patient = {**KAFKA_CONFIG, "bootstrap.servers": broker.bootstrap, "message.timeout.ms": 60000}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=patient)
    watcher = TopicWatcher(topic, broker.bootstrap)
    written_at_kill: list[int] = []

    def kill_mid_produce() -> None:
        written_at_kill.append(when_written(topic, broker.bootstrap, broker.kill, tweets, timeout=600))
        time.sleep(2)
        broker.start()

    when_task_is(start, "produce_tweets", "running", kill_mid_produce, timeout=600)
    began = time.monotonic()

    run = case.run(start, retry_delay=5, topic=topic)

    assert written_at_kill and 0 < written_at_kill[0] < tweets, "the broker died while records were written"
    case.measured |= {"records_at_kill": written_at_kill[0], "produce_tries": run.tries["produce_tweets"]}
    assert run.states == SUCCESS
    check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, began)


def test_broker_down_longer_than_every_retry_ends_the_run_failed_never_success(
    case, simulator, own_broker, topic, monkeypatch, capfd
):
    """Expected: every try of produce fails (here 3 tries, 5 s bound), the run ends failed and says which
    connection's brokers did not answer, within which bound; once the broker is back a rerun delivers."""
    broker = own_broker
    start, end = past_window(42)
    create_topic(broker.bootstrap, topic)
    set_connection(
        monkeypatch,
        "kafka_default",
        conn_type="kafka",
        extra={**KAFKA_CONFIG, "bootstrap.servers": broker.bootstrap, "message.timeout.ms": 5000},
    )
    broker.stop()

    run = case.run(start, retries=2, retry_delay=1, topic=topic)

    assert run.states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    assert run.tries["produce_tweets"] == 3
    out = capfd.readouterr().out
    assert "Kafka did not answer connection 'kafka_default' within 5 s while " in out
    assert "(check that the brokers of its bootstrap.servers are reachable)" in out

    broker.start()
    assert read_topic(topic, broker.bootstrap) == [], "a failed run wrote nothing"
    assert case.run(start, topic=topic).states == SUCCESS
    case.check_delivered(simulator, topic, [(start, end)], broker.bootstrap)


def test_a_missing_topic_with_auto_creation_off_fails_naming_it_until_it_exists(
    case, simulator, own_broker, topic, capfd
):
    """Expected: the try fails with an error naming the topic; once an operator creates the topic, the
    task's retry delivers everything."""
    broker = own_broker
    start, end = past_window(43)
    when_task_is(start, "produce_tweets", "up_for_retry", lambda: create_topic(broker.bootstrap, topic))

    run = case.run(start, retry_delay=1, topic=topic)

    assert run.states == SUCCESS and run.tries["produce_tweets"] == 2
    out = capfd.readouterr().out
    assert f"to topic '{topic}': Local: Message timed out (no broker acknowledged it" in out
    assert (
        "check that the brokers are reachable and that the topic exists, as auto-creation may be off" in out
    )
    case.check_delivered(simulator, topic, [(start, end)], broker.bootstrap)
