"""What produce_tweets runs: the provider's ProduceToTopicOperator, writing a run's window and its entry in the
delivery ledger (include/ledger.py) in one Kafka transaction, once per delivery even when a try dies after its
commit, or failing so that Airflow retries it.

The provider's default delivery callback only logs a failed delivery and the task succeeds; here each try's
DeliveryReport raises on a failed delivery, confluent-kafka re-raises it from poll()/flush(), and the task fails.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.sdk import Asset, AssetAlias, BaseHook, Connection
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.module_loading import import_string

from include import ledger
from include.records import serialise
from include.windows import run_window

TOPIC_ALIAS = AssetAlias("tweets-kafka-topic")  # resolves to kafka://<bootstrap servers>/<topic>
log = logging.getLogger(__name__)
# A producer lives for one window, so its start-up counts. Once it learns the brokers, librdkafka drops its bootstrap
# connection and waits reconnect.backoff.ms / 2 (50 ms by default) before it connects to one: 10 ms with this.
# A connection's extra may set it otherwise.
FAST_START = {"reconnect.backoff.ms": 20}
# librdkafka's producer-only properties, left out of the ledger reader's config (a consumer warns about each).
PRODUCER_ONLY = frozenset(
    [
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.ms",
        "linger.ms",
        "message.send.max.retries",
        "retries",
        "queue.buffering.backpressure.threshold",
        "compression.codec",
        "compression.type",
        "compression.level",
        "batch.num.messages",
        "batch.size",
        "delivery.report.only.error",
        "dr_cb",
        "dr_msg_cb",
        "sticky.partitioning.linger.ms",
        "request.required.acks",
        "acks",
        "request.timeout.ms",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "queuing.strategy",
        "produce.offset.report",
        "partitioner",
        "partitioner_cb",
        "msg_order_cmp",
    ]
)
# How long a try waits to read the ledger to its end: past librdkafka's transaction.timeout.ms (60 s by default),
# after which the broker aborts the open transaction of a producer that died.
LEDGER_READ_TIMEOUT = 90.0


def produce_records(records: Iterable[dict[str, Any]], record_format: str) -> Iterator[tuple[bytes, bytes]]:
    """Producer function: `(tweet id, serialised record)` for each record, keyed for deduplication."""
    for record in records:
        yield record["tweet_id"].encode(), serialise(record, record_format)


class DeliveryReport:
    """The delivery callback of one try: counts the records each topic acknowledged, and raises on the first one
    the broker did not take, so that the try fails. Records purged after a failure (by librdkafka on a refused
    record, or by the try's abort) are not failures of their own, and once the try aborts nothing raises:
    abort_transaction() serves these reports, and raising there would interrupt the abort."""

    def __init__(self, kafka_conn_id: str):
        self.kafka_conn_id = kafka_conn_id
        self.acknowledged: Counter[str] = Counter()
        self.aborting = False

    def __call__(self, err, msg) -> None:
        if err is None:
            self.acknowledged[msg.topic()] += 1
            return
        from confluent_kafka import KafkaError  # only on failure: keeps the DAG file's imports light

        if self.aborting or err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise missing_grant(
                self.kafka_conn_id,
                f"writes to topic {msg.topic()!r}",
                err.str(),
                "Write",
                "topic",
                msg.topic(),
            )
        hint = ""
        if err.code() == KafkaError._MSG_TIMED_OUT:  # librdkafka says no more when the topic is missing
            hint = (
                " (no broker acknowledged it within the connection's message.timeout.ms: check that the "
                "brokers are reachable and that the topic exists, as auto-creation may be off)"
            )
        raise AirflowException(
            f"Kafka did not deliver record {msg.key().decode()!r} to topic {msg.topic()!r}: {err.str()}{hint}"
        )


def missing_grant(
    kafka_conn_id: str, refused: str, reason: str, operations: str, resource: str, name: str
) -> AirflowFailException:
    """The error of an operation a broker's ACLs refused: it names the connection, what was refused and the grant
    to add (docs/deployment.md lists every grant the package needs)."""
    flags = " ".join(f"--operation {operation}" for operation in operations.split())
    prefixed = " --resource-pattern-type prefixed" if resource == "transactional-id" else ""
    kind = {"topic": "topic", "transactional-id": "the transactional ids prefixed"}[resource]
    return AirflowFailException(
        f"Kafka refused {refused} to connection {kafka_conn_id!r}: {reason.rstrip('.')}. Grant its principal "
        f"{operations.upper().replace(' ', ' and ')} on {kind} {name!r} (kafka-acls.sh --add --allow-principal "
        f"User:<name> {flags} --{resource} {name}{prefixed})"
    )


class ProduceWindowOperator(ProduceToTopicOperator):
    """
    The provider's ProduceToTopicOperator, writing a run's window with its entry in the delivery ledger, once
    per delivery (a run, until it is cleared).

    With `transactional.id` in the connection's extra (the prefix of its transactional ids), a try fences every
    earlier try of the stream (`<prefix>:<dag id>`, one id per stream), reads the ledger, and succeeds without
    writing when this delivery already committed; otherwise it writes the window's records and its ledger entry
    in one transaction. Without it, delivery is at least once: the ledger entry follows the acknowledged records.
    Either way it emits an asset event for the topic (through TOPIC_ALIAS) and returns the delivery.

    :param ledger_topic: the delivery ledger's topic, made on first use (see include/ledger.py)
    """

    def __init__(self, *, ledger_topic: str = ledger.LEDGER_TOPIC, **kwargs: Any):
        super().__init__(**kwargs)
        self.ledger_topic = ledger_topic

    def execute(self, context: Any) -> dict[str, Any]:
        connection = self._connection()
        config = connection.extra_dejson
        prefix = config.get("transactional.id")
        transactional_id = f"{prefix}:{self.dag_id}" if prefix else None
        if transactional_id is None:
            log.warning(
                "Connection %r has no 'transactional.id' in its extra: this window is delivered at least once "
                "(a try that fails half-way leaves what it wrote, and its retry writes the window again). Add "
                "one for exactly-once windows (docs/guarantees.md)",
                self.kafka_config_id,
            )
        timeout = float(config.get("message.timeout.ms", 60000)) / 1000  # a secrets backend may give a string
        if transactional_id:
            self._check_timeouts(config)
        producer = _ProducerHook(
            _with(connection, **{**FAST_START, **config, "transactional.id": transactional_id})
        )
        producer = producer.get_producer()
        reader = _LedgerReaderHook(connection).get_conn
        try:
            partition, created = self._ledger_partition(reader, connection, timeout)
            if transactional_id:
                self._init_transactions(producer, transactional_id, prefix, timeout)
            earlier = None if created else self._earlier_delivery(reader, partition, context)
        finally:
            reader.close()
        uri = f"kafka://{config['bootstrap.servers']}/{self.topic}"
        if earlier is None:
            delivery = self._deliver(producer, partition, transactional_id, context)
            log.info("Delivered %d records to %s", delivery.records, uri)
        else:
            delivery = earlier
            log.info(
                "Window [%s, %s) was already delivered by try %d of this run (%s, clear %d): %d records to %s, "
                "committed at %s; not writing it again",
                _iso(earlier.window_start),
                _iso(earlier.window_end),
                earlier.try_number,
                earlier.run_id,
                earlier.clear_number,
                earlier.records,
                uri,
                earlier.committed_at.isoformat(timespec="milliseconds"),
            )
        context["outlet_events"][TOPIC_ALIAS].add(Asset(uri))
        return msgspec.to_builtins(delivery)

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

    def _ledger_partition(self, reader, connection: Connection, timeout: float) -> tuple[int, bool]:
        """The ledger partition of this stream, and whether this try made the ledger (the cluster had none:
        then it holds no entry yet)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        try:
            topic = reader.list_topics(self.ledger_topic, timeout).topics[self.ledger_topic]
        except KafkaException as exc:
            raise AirflowException(
                f"Kafka did not answer connection {self.kafka_config_id!r} within {timeout:.0f} s: "
                f"{exc.args[0].str().rstrip('.')} (check that the brokers of its bootstrap.servers are reachable)"
            ) from None
        if topic.error is not None and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise missing_grant(
                self.kafka_config_id,
                self._ledger("finding"),
                topic.error.str(),
                "Describe",
                "topic",
                self.ledger_topic,
            )
        if topic.error is None:
            return ledger.partition_of(self.dag_id, len(topic.partitions)), False
        admin = _AdminHook(connection).get_conn
        new = NewTopic(self.ledger_topic, num_partitions=1, replication_factor=-1, config=ledger.TOPIC_CONFIG)
        try:
            admin.create_topics([new])[self.ledger_topic].result(timeout)
            log.info("Created the delivery ledger %r (%s)", self.ledger_topic, ledger.TOPIC_CONFIG)
            return 0, True
        except Exception as exc:  # confluent_kafka.KafkaException, with a KafkaError
            error = exc.args[0] if exc.args and hasattr(exc.args[0], "code") else None
            if error is None or error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a stream that came first
                reason = error.str() if error is not None else str(exc)
                if error is not None and error.code() in (
                    KafkaError.TOPIC_AUTHORIZATION_FAILED,
                    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                ):
                    raise missing_grant(
                        self.kafka_config_id,
                        self._ledger("creating"),
                        reason,
                        "Create",
                        "topic",
                        self.ledger_topic,
                    ) from None
                raise AirflowException(
                    f"Could not create the delivery ledger {self.ledger_topic!r} through connection "
                    f"{self.kafka_config_id!r}: {reason}"
                ) from None
        return 0, False

    def _ledger(self, doing: str) -> str:
        return f"{doing} the delivery ledger {self.ledger_topic!r}"

    def _earlier_delivery(self, reader, partition: int, context: Any) -> ledger.Delivery | None:
        """This delivery's ledger entry, if an earlier try of it committed."""
        from confluent_kafka import KafkaError, KafkaException

        dag_run = context["dag_run"]
        start, _ = run_window(context)
        since = (dag_run.start_date or dag_run.run_after) - ledger.CLOCK_MARGIN
        key = ledger.ledger_key(self.dag_id, self.topic, start)
        try:
            return ledger.find_delivery(
                reader,
                self.ledger_topic,
                partition,
                key,
                since,
                dag_run.run_id,
                dag_run.clear_number or 0,
                LEDGER_READ_TIMEOUT,
            )
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise missing_grant(
                    self.kafka_config_id,
                    self._ledger("reading"),
                    error.str(),
                    "Read",
                    "topic",
                    self.ledger_topic,
                ) from None
            raise AirflowException(
                f"Could not read the delivery ledger {self.ledger_topic!r} through connection "
                f"{self.kafka_config_id!r}: {error.str()}"
            ) from None
        except ledger.LedgerTimeout as exc:
            raise AirflowException(f"Connection {self.kafka_config_id!r}: {exc}") from None

    def _deliver(
        self, producer, partition: int, transactional_id: str | None, context: Any
    ) -> ledger.Delivery:
        """Write the window's records and its ledger entry: in one transaction, or (without a transactional id)
        the entry once the broker acknowledged every record."""
        from confluent_kafka import KafkaException

        report = DeliveryReport(self.kafka_config_id)
        self.delivery_callback = report
        if isinstance(self.producer_function, str):
            self.producer_function = import_string(self.producer_function)
        if transactional_id:
            producer.begin_transaction()
        try:
            for key, value in self.producer_function(
                *self.producer_function_args, **self.producer_function_kwargs
            ):
                try:
                    _produce(producer, self.topic, key, value, report)
                except KafkaException:  # a refused record left the transaction unusable ("Erroneous state"):
                    producer.flush(5)  # its delivery report, which the callback raises, says which and why
                    raise
                producer.poll(self.poll_timeout)
                if self.synchronous:
                    producer.flush()
            producer.flush()  # the delivery callback raises here, outside commit, if a record failed
            delivery = self._delivery(report.acknowledged[self.topic], transactional_id, context)
            _produce(producer, self.ledger_topic, delivery.key, ledger.encode(delivery), report, partition)
            if transactional_id:
                producer.commit_transaction()
            else:
                producer.flush()
        except BaseException:
            if transactional_id:
                _abort(producer, transactional_id, report)
            raise
        if transactional_id:
            log.info(
                "Committed transaction %r: %d records and the window's ledger entry",
                transactional_id,
                delivery.records,
            )
        return delivery

    def _delivery(self, records: int, transactional_id: str | None, context: Any) -> ledger.Delivery:
        """The ledger entry of this try's delivery."""
        dag_run = context["dag_run"]
        start, end = run_window(context)
        return ledger.Delivery(
            stream=self.dag_id,
            window_start=start,
            window_end=end,
            topic=self.topic,
            query=context["params"]["query"],
            record_format=self.producer_function_kwargs.get("record_format", "json"),
            records=records,
            run_id=dag_run.run_id,
            run_type=str(dag_run.run_type.value if hasattr(dag_run.run_type, "value") else dag_run.run_type),
            clear_number=dag_run.clear_number or 0,
            try_number=context["ti"].try_number,
            transactional_id=transactional_id,
            searchable_at=context["dag"].timetable.searchable_at(end),
            committed_at=datetime.now(UTC),
        )

    def _check_timeouts(self, config: dict[str, Any]) -> None:
        """Fail naming the connection when librdkafka would refuse to make a transactional producer from it."""
        if "message.timeout.ms" not in config:  # librdkafka then takes transaction.timeout.ms
            return
        message_timeout = float(config["message.timeout.ms"])
        transaction_timeout = float(config.get("transaction.timeout.ms", 60000))
        if message_timeout > transaction_timeout:
            raise AirflowFailException(
                f"Connection {self.kafka_config_id!r}: message.timeout.ms ({message_timeout:.0f}) exceeds "
                f"transaction.timeout.ms ({transaction_timeout:.0f}), "
                "which librdkafka refuses with a transactional.id: lower message.timeout.ms, or raise "
                "transaction.timeout.ms with it (at most the brokers' transaction.max.timeout.ms, 15 minutes by default)"
            )

    def _init_transactions(self, producer, transactional_id: str, prefix: str, timeout: float) -> None:
        """Fence every earlier try of the stream and abort its open transaction, or fail naming the connection
        and what its principal needs."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            # librdkafka drops its bootstrap connection once it learns the brokers; a producer id requested in
            # that instant finds no broker and waits 500 ms. Two metadata requests make sure a broker is up.
            producer.list_topics(self.topic, timeout)
            producer.list_topics(self.topic, timeout)
            producer.init_transactions(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            reason = error.str()
            conn = f"connection {self.kafka_config_id!r}"
            if error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                refused = missing_grant(
                    self.kafka_config_id,
                    f"transactional id {transactional_id!r}",
                    reason,
                    "Write Describe",
                    "transactional-id",
                    prefix,
                )
                raise AirflowFailException(
                    f"{refused}, or remove 'transactional.id' from its extra to produce without transactions"
                ) from exc
            if error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
                raise AirflowFailException(
                    f"Kafka refused idempotent writes to {conn}: {reason.rstrip('.')}. Grant its principal "
                    "IDEMPOTENT_WRITE on the cluster (kafka-acls.sh --add --allow-principal User:<name> "
                    "--operation IdempotentWrite --cluster)"
                ) from exc
            raise AirflowException(
                f"Kafka did not start transaction {transactional_id!r} for {conn} within {timeout:.0f} s: "
                f"{reason.rstrip('.')} (check that the brokers are reachable and can host the transaction state "
                "log: transaction.state.log.replication.factor at most the number of brokers)"
            ) from exc


def _with(connection: Connection, **config: Any) -> Connection:
    """The connection with this producer or consumer config as its extra (None values left out)."""
    extra = {key: value for key, value in config.items() if value is not None}
    return Connection(conn_id=connection.conn_id, conn_type=connection.conn_type, extra=json.dumps(extra))


class _OnConnection:
    """A provider hook on a connection already read: the task reads its connection once."""

    def __init__(self, connection: Connection, **kwargs: Any):
        super().__init__(kafka_config_id=connection.conn_id, **kwargs)
        self.connection = connection

    def get_connection(self, conn_id: str) -> Connection:
        return self.connection


class _ProducerHook(_OnConnection, KafkaProducerHook):
    pass


class _AdminHook(_OnConnection, KafkaAdminClientHook):
    pass


class _LedgerReaderHook(_OnConnection, KafkaConsumerHook):
    """The provider's consumer, reading the ledger read_committed, assigned to partitions (no group: it
    commits no offsets)."""

    def __init__(self, connection: Connection):
        config = {key: value for key, value in connection.extra_dejson.items() if key not in PRODUCER_ONLY}
        reader = {**config, **ledger.READER_CONFIG, "group.id": "tweets-to-kafka-ledger-reader"}
        super().__init__(_with(connection, **reader), topics=[])


def _produce(
    producer, topic: str, key: bytes, value: bytes, report: DeliveryReport, partition: int = -1
) -> None:
    """Produce one record; when librdkafka's queue is full (queue.buffering.max.messages), serve delivery
    reports until it has room."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition, on_delivery=report)
            return
        except BufferError:
            producer.poll(0.1)


def _abort(producer, transactional_id: str, report: DeliveryReport) -> None:
    """Abort the open transaction, so that read_committed consumers go on at once; when the producer cannot
    (fenced, the broker gone), the broker aborts it after transaction.timeout.ms or at the next try."""
    from confluent_kafka import KafkaException

    report.aborting = True
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
            "Could not abort transaction %r (%s): the next try of the stream aborts it",
            transactional_id,
            exc.args[0].str(),
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
