"""What produce_tweets runs inside the provider's ProduceToTopicOperator.

The operator's default delivery callback only logs a failed delivery and the task succeeds; here a
failed delivery raises, confluent-kafka re-raises it from poll()/flush(), and the task fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.records import serialise

TOPIC_ALIAS = AssetAlias("tweets-kafka-topic")  # resolves to kafka://<bootstrap servers>/<topic>
log = logging.getLogger(__name__)
_delivered = 0  # records acknowledged by the broker in this task process


def produce_records(records: Iterable[dict[str, Any]], record_format: str) -> Iterator[tuple[bytes, bytes]]:
    """Producer function: `(tweet id, serialised record)` for each record, keyed for deduplication."""
    global _delivered
    _delivered = 0
    for record in records:
        yield record["tweet_id"].encode(), serialise(record, record_format)


def fail_on_delivery_error(err, msg) -> None:
    """Delivery callback: raise when the broker did not take a record, so that the task fails."""
    global _delivered
    if err is not None:
        from confluent_kafka import KafkaError  # only on failure: keeps the DAG file's imports light

        hint = ""
        if err.code() == KafkaError._MSG_TIMED_OUT:  # librdkafka says no more when the topic is missing
            hint = (
                " (no broker acknowledged it within the connection's message.timeout.ms: check that the "
                "brokers are reachable and that the topic exists, as auto-creation may be off)"
            )
        raise AirflowException(
            f"Kafka did not deliver record {msg.key().decode()!r} to topic {msg.topic()!r}: {err.str()}{hint}"
        )
    _delivered += 1


def check_kafka_connection(context: dict[str, Any]) -> None:
    """pre_execute: fail at once, without retries, naming the connection, when it names no broker (the
    provider's own error names neither the connection nor a fix, and Airflow would retry it)."""
    conn_id = context["task"].kafka_config_id
    if not BaseHook.get_connection(conn_id).extra_dejson.get("bootstrap.servers"):
        raise AirflowFailException(
            f"Connection {conn_id!r} has no 'bootstrap.servers' in its extra: set it to the brokers' "
            'host:port list, e.g. {"bootstrap.servers": "broker1:9092,broker2:9092"}'
        )


def announce_topic(context: dict[str, Any], result: Any = None) -> None:
    """post_execute: log what was delivered and emit an asset event for the topic written to."""
    task = context["task"]
    servers = BaseHook.get_connection(task.kafka_config_id).extra_dejson["bootstrap.servers"]
    uri = f"kafka://{servers}/{task.topic}"
    log.info("Delivered %d records to %s", _delivered, uri)
    context["outlet_events"][TOPIC_ALIAS].add(Asset(uri))
