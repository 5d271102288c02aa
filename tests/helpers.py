"""What tests share: the test broker's address, past windows, reading a topic back, running the DAG."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_KAFKA_PORT = int(os.environ.get("TEST_KAFKA_PORT", "19092"))
BOOTSTRAP = f"127.0.0.1:{TEST_KAFKA_PORT}"
# The README's recommended kafka_default, with a shorter delivery bound to keep failure tests quick.
KAFKA_CONFIG = {
    "bootstrap.servers": BOOTSTRAP,
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 20,
    "message.timeout.ms": 15000,
    "transactional.id": "tweets-to-kafka",
}


DAG_QUERY = "Apple OR iphone OR iPhone"  # the DAG's default query param; most posts of the simulator match


def write_stream_file(path: Path, *streams: dict, **settings) -> Path:
    """Write a stream file (see include/streams.yaml) with these streams and top-level settings."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**settings, "streams": list(streams)}, sort_keys=False))
    return path


def set_connection(monkeypatch, conn_id: str, **fields) -> None:
    """Define an Airflow connection as AIRFLOW_CONN_<ID> JSON for the rest of the test."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def x_api_time(moment: datetime) -> str:
    """A UTC time as the X API writes its start_time and end_time, e.g. 2026-11-24T10:00:00Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def past_window(minutes_ago: int) -> tuple[datetime, datetime]:
    """The one-minute window that started `minutes_ago` minutes before the current minute."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    return start, start + timedelta(minutes=1)


def create_topic(
    bootstrap: str,
    topic: str,
    replication: int = 1,
    partitions: int = 3,
    config: dict[str, str] | None = None,
    client_config: dict | None = None,
) -> None:
    """Create a topic (with topic-level `config`, if given) and wait until every broker of `bootstrap` knows
    it: the controller answers once it created the topic, and each broker learns of it from the metadata log
    a moment later; until then it answers that the topic is unknown, with no partitions (a consumer that asked
    it then would be assigned none). `client_config`: more settings of the admin client (a secured broker's
    `admin_config`)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **(client_config or {})})
    admin.create_topics([NewTopic(topic, partitions, replication, config=config or {})])[topic].result(
        timeout=30
    )
    deadline = time.monotonic() + 60
    for server in bootstrap.split(","):
        while len(partitions_known_to(server, topic, client_config)) < partitions:
            assert time.monotonic() < deadline, f"broker {server} did not learn of topic {topic} within 60 s"
            time.sleep(0.1)


def partitions_known_to(server: str, topic: str, client_config: dict | None = None) -> list[int]:
    """The partitions of a topic as one broker knows them (a new client asks its bootstrap server first)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": server, **(client_config or {})})
    return list(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def read_topic(
    topic: str,
    bootstrap: str = BOOTSTRAP,
    isolation: str = "read_committed",
    client_config: dict | None = None,
) -> list[tuple[bytes, bytes]]:
    """Every record of a topic, from the beginning to the end of each partition, as (key, value):
    read_committed (the default) stops at the last stable offset and skips aborted transactions;
    read_uncommitted reads to the high watermark, what aborted and open transactions wrote included.
    `client_config`: more settings of the consumer (a secured broker's `admin_config`)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # the end of a partition, past transaction markers too
            "isolation.level": isolation,
            **(client_config or {}),
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            return []
        partitions = set(metadata.partitions)
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        records = []
        while partitions:
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {topic}; partitions left: {partitions}"
            if message.error() is not None and message.error().code() == KafkaError._PARTITION_EOF:
                partitions.discard(message.partition())
                continue
            assert message.error() is None, message.error()
            records.append((message.key(), message.value()))
        return records
    finally:
        consumer.close()


def run_dag(window_start: datetime, retries: int | None = None, **conf) -> dict[str, str]:
    """Run tweets_to_kafka as `airflow dags test` does, for the window starting at `window_start` (its
    logical date), optionally with another number of task retries; return each task's final state."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["tweets_to_kafka"]
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    run = dag.test(logical_date=window_start, run_conf=conf or None)
    with create_session() as session:
        instances = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id))
        return {ti.task_id: ti.state for ti in instances}


def late_alerts(stack, dag_id: str) -> list[str]:
    """What the default late alert logged for a stack's DAG: one line per alert, in the logs of the callbacks its
    deadlines ran (AIRFLOW_HOME/logs/executor_callbacks/<dag>/<run>/<callback>)."""
    alerts = []
    for path in sorted((stack.home / "logs" / "executor_callbacks" / dag_id).glob("*/*")):
        for line in path.read_text().splitlines():
            event = json.loads(line).get("event", "")
            if event.startswith("Late window: "):
                alerts.append(event)
    return alerts


def window_text(start: datetime) -> str:
    """How the late alert names a window, e.g. `window [2026-12-01T20:20Z,`."""
    return f"window [{start:%Y-%m-%dT%H:%MZ},"


def run_compliance(retry_delay: float = 1, **conf) -> str:
    """Run x_compliance_twitter_default as `airflow dags test` does (its trigger in line, looking at the job every
    0.2 s), its retries `retry_delay` seconds apart; return its task's final state."""
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["x_compliance_twitter_default"]
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=retry_delay)
        task.poll_interval = 0.2
    run = dag.test(run_conf=conf or None)
    with create_session() as session:
        (instance,) = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id))
        return instance.state
