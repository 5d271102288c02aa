"""Minutes that heal themselves, under the real scheduler with its schedule on: three streams, each meeting at the
same time an outage that fails or skips some of its minutes for longer than its runs' retries. Nobody clears a
run or triggers one: the healing DAG runs every minute, and in the end every minute of every stream is in its
topic exactly once for a read_committed consumer."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from include import ledger
from local_system import AirflowStack, KafkaBroker, XApiSimulator
from tests.helpers import KAFKA_CONFIG, ROOT, read_topic, write_stream_file
from tests.system.harness import TEST_X_BEARER_TOKEN

pytestmark = pytest.mark.wall_clock  # waits for scheduled minutes

PORT = int(os.environ.get("TEST_HEALING_AIRFLOW_PORT", "19480"))
OUTAGE_KAFKA_PORT = int(os.environ.get("TEST_HEALING_KAFKA_PORT", "19492"))
MINUTE = timedelta(minutes=1)
QUERY = "Apple OR iphone OR iPhone"
SHORT_TRIES = {"retries": 1, "retry_delay_seconds": 5, "look_back_minutes": 1}
KAFKA_DOWN = {
    "name": "heal_kafka_down",
    "query": QUERY,
    "topic": "heal-kafka-down",
    "kafka_conn_id": "kafka_outage",
}
RATE_LIMITED = {
    "name": "heal_rate_limited",
    "query": QUERY,
    "topic": "heal-rate-limited",
    "twitter_conn_id": "x_limited",
}
BACKFILLED = {"name": "heal_backfilled", "query": QUERY, "topic": "heal-backfilled"}
STREAMS = (KAFKA_DOWN, RATE_LIMITED, BACKFILLED)


@pytest.fixture(scope="module")
def outage_broker():
    """A broker of its own for the stream whose Kafka goes down."""
    broker = KafkaBroker(OUTAGE_KAFKA_PORT, ROOT / ".kafka" / f"healing-broker-{OUTAGE_KAFKA_PORT}")
    broker.remove_state()
    with broker:
        yield broker


@pytest.fixture(scope="module")
def limited_x_api():
    """An X API of its own for the stream that meets a long rate limit."""
    with XApiSimulator(bearer_token=TEST_X_BEARER_TOKEN) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def stack(kafka, simulator, outage_broker, limited_x_api):
    home = ROOT / ".artifacts" / f"airflow-healing-{PORT}"
    streams = write_stream_file(
        home.with_name(f"{home.name}-streams.yaml"),
        *({**stream, **SHORT_TRIES} for stream in STREAMS),
        healing_interval_minutes=1,
    )
    twitter = {"conn_type": "twitter", "password": TEST_X_BEARER_TOKEN}
    outage = {**KAFKA_CONFIG, "bootstrap.servers": outage_broker.bootstrap, "message.timeout.ms": 5000}
    airflow = AirflowStack(
        home=home,
        port=PORT,
        connections={
            "twitter_default": {**twitter, "host": simulator.url},
            "x_limited": {**twitter, "host": limited_x_api.url},
            "kafka_default": {"conn_type": "kafka", "extra": KAFKA_CONFIG},
            "kafka_outage": {"conn_type": "kafka", "extra": outage},
        },
        schedule_runs=True,
        settings={"TWEETS_TO_KAFKA_STREAMS": str(streams)},
        dag_id=KAFKA_DOWN["name"],
    )
    with airflow:
        for dag_id in (RATE_LIMITED["name"], BACKFILLED["name"], "tweets_to_kafka_healing"):
            airflow.wait_until(
                lambda dag_id=dag_id: airflow.dag_is_parsed(dag_id), 180, f"{dag_id} to be parsed"
            )
            airflow.pause(False, dag_id)
        yield airflow


def runs_of(stack: AirflowStack, stream: dict) -> list[dict]:
    return stack.dag_runs(stream["name"])


def start_of(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"])


def failed_minutes(stack: AirflowStack, stream: dict) -> set[datetime]:
    return {start_of(run) for run in runs_of(stack, stream) if run["state"] == "failed"}


def delivered(stream: dict, minutes: list[datetime], bootstrap: str) -> bool:
    """Whether the ledger holds a delivery of each minute to the stream's topic."""
    done = {
        entry.window_start
        for key, value in read_topic(ledger.LEDGER_TOPIC, bootstrap)
        if (entry := ledger.decode(value)).stream == stream["name"] and entry.outcome == "delivered"
    }
    return set(minutes) <= done


@pytest.mark.timeout(1200)  # with the stack's start-up: five minutes on a busy machine
def test_minutes_failed_or_passed_by_in_outages_longer_than_the_retries_are_delivered_without_a_human(
    stack, simulator, limited_x_api, outage_broker, kafka
):
    """Expected, all at once: the Kafka of the first stream is down for three minutes, so its runs of those
    minutes fail after their retries; the X app of the second answers 429 with a reset 20 minutes away (beyond
    what a try waits), so its runs fail after their retries; the third is paused while later minutes are
    backfilled, so its schedule resumes after them and passes by the minutes between. Once Kafka and X are
    back, the healing reruns the failed minutes and makes runs for the passed-by ones: every minute of every
    stream, from its first run to the last due at the end, is in its topic exactly once."""
    stack.wait_until(lambda: all(runs_of(stack, s) for s in STREAMS), 300, "every stream's first run")
    first_runs = {s["name"]: min(map(start_of, runs_of(stack, s))) for s in STREAMS}

    outage_broker.stop()
    reset = int((datetime.now(UTC) + timedelta(minutes=20)).timestamp())
    limited_x_api.add_fault(status=429, headers={"x-rate-limit-reset": str(reset)}, times=-1)
    stack.pause(True, BACKFILLED["name"])
    resumes_at = max(map(start_of, runs_of(stack, BACKFILLED))) + MINUTE  # the paused schedule's next minute
    ahead = resumes_at + 2 * MINUTE  # to backfill: its schedule then resumes after it, past the two between

    stack.wait_until(
        lambda: (
            len(failed_minutes(stack, KAFKA_DOWN)) >= 2
            and len(failed_minutes(stack, RATE_LIMITED)) >= 2
            and datetime.now(UTC) >= ahead + MINUTE + timedelta(seconds=30)
        ),
        420,
        f"two failed minutes of each of the first two streams, and the minute {ahead:%H:%M} to be searchable",
    )
    # Queued while the DAG is paused (its runs start at the unpause); the dag-processor then computes the next
    # scheduled run from it, past the minutes between.
    stack.create_backfill(BACKFILLED["name"], ahead, ahead)

    def schedule_moved_past_it() -> bool:
        next_run = stack.api("GET", f"/api/v2/dags/{BACKFILLED['name']}")["next_dagrun_logical_date"]
        return next_run is not None and datetime.fromisoformat(next_run) > ahead

    stack.wait_until(
        schedule_moved_past_it, 300, f"the paused schedule to move past the backfill of {ahead:%H:%M}"
    )
    stack.pause(False, BACKFILLED["name"])
    outage_broker.start()
    limited_x_api.clear_faults()
    recovered = datetime.now(UTC)

    end = recovered.replace(second=0, microsecond=0) - MINUTE  # the last minute due at the recovery
    minutes = {
        s["name"]: [
            first_runs[s["name"]] + n * MINUTE for n in range((end - first_runs[s["name"]]) // MINUTE + 1)
        ]
        for s in STREAMS
    }
    brokers = {KAFKA_DOWN["name"]: outage_broker.bootstrap}
    stack.wait_until(
        lambda: all(delivered(s, minutes[s["name"]], brokers.get(s["name"], kafka)) for s in STREAMS),
        600,
        "every minute of every stream to be delivered",
    )

    for stream in STREAMS:
        x_api = limited_x_api if stream is RATE_LIMITED else simulator
        counts = Counter(key for key, _ in read_topic(stream["topic"], brokers.get(stream["name"], kafka)))
        for minute in minutes[stream["name"]]:
            keys = {tweet["id"].encode() for tweet in x_api.tweets_between(minute, minute + MINUTE, QUERY)}
            assert keys and {counts[key] for key in keys} == {1}, f"{stream['name']}, minute {minute:%H:%M}"
    passed_by = {
        start_of(run) for run in runs_of(stack, BACKFILLED) if run["dag_run_id"].startswith("healing__")
    }
    assert passed_by == {resumes_at, resumes_at + MINUTE}, (
        "the minutes the schedule passed by got healing runs"
    )
    for stream in (KAFKA_DOWN, RATE_LIMITED):
        assert failed_minutes(stack, stream) == set(), f"every failed run of {stream['name']} was run again"
