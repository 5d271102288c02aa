"""What produce_tweets runs: the provider's ProduceToTopicOperator, in one Kafka transaction per window.

The operator's default delivery callback only logs a failed delivery and the task succeeds; here a
failed delivery raises, confluent-kafka re-raises it from poll()/flush(), and the task fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any

from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.sdk import Asset, AssetAlias, BaseHook, Connection
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.module_loading import import_string

from include.records import serialise
from include.windows import run_window

TOPIC_ALIAS = AssetAlias("tweets-kafka-topic")  # resolves to kafka://<bootstrap servers>/<topic>
log = logging.getLogger(__name__)
_delivered = 0  # records acknowledged by the broker in this task process
_aborting = False  # this try failed and is aborting its transaction
# A producer lives for one window, so its start-up counts. Once it learns the brokers, librdkafka drops its bootstrap
# connection and waits reconnect.backoff.ms / 2 (50 ms by default) before it connects to one: 10 ms with this.
# A connection's extra may set it otherwise.
FAST_START = {"reconnect.backoff.ms": 20}


def produce_records(records: Iterable[dict[str, Any]], record_format: str) -> Iterator[tuple[bytes, bytes]]:
    """Producer function: `(tweet id, serialised record)` for each record, keyed for deduplication."""
    global _delivered, _aborting
    _delivered, _aborting = 0, False
    for record in records:
        yield record["tweet_id"].encode(), serialise(record, record_format)


def fail_on_delivery_error(err, msg) -> None:
    """Delivery callback: raise when the broker did not take a record, so that the task fails. Records purged
    after a failure (by librdkafka on a refused record, or by the try's abort) are not failures of their own,
    and once the try aborts nothing raises: abort_transaction() serves these reports, and raising there would
    interrupt the abort."""
    global _delivered
    if err is None:
        _delivered += 1
        return
    from confluent_kafka import KafkaError  # only on failure: keeps the DAG file's imports light

    if _aborting or err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        return
    hint = ""
    if err.code() == KafkaError._MSG_TIMED_OUT:  # librdkafka says no more when the topic is missing
        hint = (
            " (no broker acknowledged it within the connection's message.timeout.ms: check that the "
            "brokers are reachable and that the topic exists, as auto-creation may be off)"
        )
    raise AirflowException(
        f"Kafka did not deliver record {msg.key().decode()!r} to topic {msg.topic()!r}: {err.str()}{hint}"
    )


class ProduceWindowOperator(ProduceToTopicOperator):
    """The provider's ProduceToTopicOperator, writing a run's window in one Kafka transaction when the
    connection's extra has `transactional.id`: the prefix of this connection's transactional ids, to which
    the DAG id, the topic and the window's start are appended, so that every try of a window has the same
    id and fences the tries before it. Without it, the provider's own (idempotent) produce runs. Either way
    it logs what was delivered and emits an asset event for the topic (through TOPIC_ALIAS)."""

    def execute(self, context: Any) -> None:
        connection = self._connection()
        config = connection.extra_dejson
        if config.get("transactional.id"):
            self._produce_in_transaction(context, connection)
        else:
            super().execute(context)
        uri = f"kafka://{config['bootstrap.servers']}/{self.topic}"
        log.info("Delivered %d records to %s", _delivered, uri)
        context["outlet_events"][TOPIC_ALIAS].add(Asset(uri))

    def _connection(self) -> Connection:
        """The Kafka connection; fail at once, without retries, naming it, when its extra names no broker (the
        provider's own error names neither the connection nor a fix, and Airflow would retry it)."""
        connection = BaseHook.get_connection(self.kafka_config_id)
        if not connection.extra_dejson.get("bootstrap.servers"):
            raise AirflowFailException(
                f"Connection {self.kafka_config_id!r} has no 'bootstrap.servers' in its extra: set it to the "
                'host:port list of its brokers, e.g. {"bootstrap.servers": "broker1:9092,broker2:9092"}'
            )
        return connection

    def _produce_in_transaction(self, context: Any, connection: Connection) -> None:
        """The provider's produce loop, between init_transactions and commit_transaction."""
        from confluent_kafka import KafkaException

        config = connection.extra_dejson
        prefix = config["transactional.id"]
        start, _ = run_window(context, context["dag"].timetable)
        transactional_id = f"{prefix}.{self.dag_id}.{self.topic}.{start.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
        producer = _TransactionalProducerHook(connection, transactional_id).get_producer()
        self._init_transactions(producer, transactional_id, prefix, config)
        producer.begin_transaction()
        try:
            if isinstance(self.producer_function, str):
                self.producer_function = import_string(self.producer_function)
            for key, value in self.producer_function(
                *self.producer_function_args, **self.producer_function_kwargs
            ):
                try:
                    producer.produce(self.topic, key=key, value=value, on_delivery=self.delivery_callback)
                except KafkaException:  # a refused record left the transaction unusable ("Erroneous state"):
                    producer.flush(5)  # its delivery report, which the callback raises, says which and why
                    raise
                producer.poll(self.poll_timeout)
                if self.synchronous:
                    producer.flush()
            producer.flush()  # the delivery callback raises here, outside commit, if a record failed
            producer.commit_transaction()
        except BaseException:
            _abort(producer, transactional_id)
            raise
        log.info("Committed transaction %r: %d records", transactional_id, _delivered)

    def _init_transactions(self, producer, transactional_id: str, prefix: str, config: dict) -> None:
        """Fence every earlier try of the window and abort its open transaction, or fail naming the
        connection and what its principal needs."""
        from confluent_kafka import KafkaError, KafkaException

        timeout = config.get("message.timeout.ms", 60000) / 1000
        try:
            # librdkafka drops its bootstrap connection once it learns the brokers; a producer id requested in
            # that instant finds no broker and waits 500 ms. Two metadata requests make sure a broker is up.
            producer.list_topics(self.topic, timeout)
            producer.list_topics(self.topic, timeout)
            producer.init_transactions(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            reason = error.str().rstrip(".")
            conn = f"connection {self.kafka_config_id!r}"
            if error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                raise AirflowFailException(
                    f"Kafka refused transactional id {transactional_id!r} to {conn}: {reason}. Grant its "
                    f"principal WRITE and DESCRIBE on the transactional ids prefixed {prefix!r} (kafka-acls.sh "
                    f"--add --allow-principal User:<name> --operation Write --operation Describe "
                    f"--transactional-id {prefix} --resource-pattern-type prefixed), or remove "
                    "'transactional.id' from its extra to produce without transactions"
                ) from exc
            if error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
                raise AirflowFailException(
                    f"Kafka refused idempotent writes to {conn}: {reason}. Grant its principal "
                    "IDEMPOTENT_WRITE on the cluster (kafka-acls.sh --add --allow-principal User:<name> "
                    "--operation IdempotentWrite --cluster)"
                ) from exc
            raise AirflowException(
                f"Kafka did not start transaction {transactional_id!r} for {conn} within {timeout:.0f} s: "
                f"{reason} (check that the brokers are reachable and can host the transaction state "
                "log: transaction.state.log.replication.factor at most the number of brokers)"
            ) from exc


class _TransactionalProducerHook(KafkaProducerHook):
    """The provider's producer hook (the connection's config, callbacks and cloud auth), with the window's
    transactional id, on the connection the operator has read already."""

    def __init__(self, connection: Connection, transactional_id: str):
        super().__init__(kafka_config_id=connection.conn_id)
        self.connection = connection
        self.transactional_id = transactional_id

    def get_connection(self, conn_id: str) -> Connection:
        return self.connection

    def _get_client(self, config: dict[str, Any]):
        return super()._get_client({**FAST_START, **config, "transactional.id": self.transactional_id})


def _abort(producer, transactional_id: str) -> None:
    """Abort the open transaction, so that read_committed consumers go on at once; when the producer cannot
    (fenced, the broker gone), the broker aborts it after transaction.timeout.ms or at the next try."""
    from confluent_kafka import KafkaException

    global _aborting
    _aborting = True
    try:
        # Records still in flight are given up, so that none reaches the broker after the abort.
        producer.purge(in_queue=True, in_flight=True, blocking=False)
        producer.abort_transaction(10)
        log.warning(
            "Aborted transaction %r: no record of this try is visible to read_committed consumers",
            transactional_id,
        )
    except KafkaException as exc:
        log.warning(
            "Could not abort transaction %r (%s): the next try of the window aborts it",
            transactional_id,
            exc.args[0].str(),
        )
