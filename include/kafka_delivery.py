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
from collections.abc import Iterator
from contextlib import contextmanager
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
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from include import ledger, window_store
from include.records import serialise
from include.windows import iso, run_window

# The asset of a topic that a run's conf names instead of its stream's (the stream's own is a static outlet).
TOPIC_ALIAS = AssetAlias("tweets-kafka-topic")
log = logging.getLogger(__name__)
# A producer (and a reader) lives for one window, so its start-up counts. Once it learns the brokers, librdkafka
# drops its bootstrap connection and waits reconnect.backoff.ms / 2 (50 ms by default) before it connects to one:
# 10 ms with this. A connection's extra may set it otherwise.
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
LEDGER_READ_ATTEMPTS = 3
LEDGER_GRANT = "Describe Read Write Create"  # Create only while the ledger does not exist yet


def topic_asset(kafka_conn_id: str, topic: str) -> Asset:
    """A topic's asset, `kafka://<connection id>/<topic>`: the connection stands for its cluster, so that a stream's
    asset is known when its DAG is parsed, without looking the connection up."""
    return Asset(f"kafka://{kafka_conn_id}/{topic}")


def produce_records(window: dict[str, str], record_format: str) -> Iterator[tuple[bytes, bytes]]:
    """Producer function: `(tweet id, serialised record)` for each record of `window` in the window store, keyed
    for deduplication."""
    for record in window_store.records(window):
        yield record["tweet_id"].encode(), serialise(record, record_format)


class KafkaClients:
    """The Kafka clients of one try, on its connection read once: the producer, a reader (of the ledger, of
    topics) and (to make a topic) an admin client, through the provider's hooks. It keeps the last error librdkafka reported on any
    of them (a refused password, a certificate it does not trust: a failed request only says "transport failure"),
    and words every failure with the connection's id."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.config = connection.extra_dejson
        self.errors: list = []  # what librdkafka reported, first first
        # a secrets backend may give numbers as strings
        self.timeout = float(self.config.get("message.timeout.ms", 60000)) / 1000

    @property
    def conn_id(self) -> str:
        return self.connection.conn_id

    def on_error(self, error) -> None:
        """librdkafka's error callback of every client of the try (served by their poll())."""
        self.errors.append(error)

    def producer(self, transactional_id: str | None):
        config = {**FAST_START, **self.config, "transactional.id": transactional_id}
        return _ProducerHook(self._with(config), self.on_error).get_producer()

    def reader(self):
        """A consumer of committed records to the end of a partition (ledger.READER_CONFIG), used with assign():
        no consumer group's offsets, so no group ACL."""
        config = {
            key: value for key, value in {**FAST_START, **self.config}.items() if key not in PRODUCER_ONLY
        }
        config |= {**ledger.READER_CONFIG, "group.id": "tweets-to-kafka-reader"}
        return _ConsumerHook(self._with(config), self.on_error, topics=[]).get_conn

    def admin(self):
        return _AdminHook(self.connection, self.on_error).get_conn

    def _with(self, config: dict[str, Any]) -> Connection:
        """The connection with this client config as its extra (None values left out)."""
        extra = {key: value for key, value in config.items() if value is not None}
        return Connection(conn_id=self.conn_id, conn_type=self.connection.conn_type, extra=json.dumps(extra))

    def refused(
        self, what: str, reason: str, operations: str, resource: str, name: str
    ) -> AirflowFailException:
        """The error of an operation the brokers' ACLs refused: it names the connection, what was refused and the
        grant to add (docs/deployment.md lists every grant the package needs)."""
        flags = " ".join(f"--operation {operation}" for operation in operations.split())
        prefixed = " --resource-pattern-type prefixed" if resource == "transactional-id" else ""
        kind = {"topic": "topic", "transactional-id": "the transactional ids prefixed"}[resource]
        principal = f"User:{self.config.get('sasl.username') or '<name>'}"
        return AirflowFailException(
            f"Kafka refused {what} to connection {self.conn_id!r}: {reason.rstrip('.')}. Grant its principal "
            f"{operations.upper().replace(' ', ', ')} on {kind} {name!r} (kafka-acls.sh --add --allow-principal "
            f"{principal} {flags} --{resource} {name}{prefixed})"
        )

    def failed(self, doing: str, error, client) -> AirflowException:
        """The error of a request of `client` that failed, with the reason librdkafka reported meanwhile: a refused
        password or certificate fails at once (retries cannot mend it), anything else is retried."""
        from confluent_kafka import KafkaError

        client.poll(0)  # serves the error callback
        denied = [
            last for last in self.errors if last.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)
        ]
        ssl = [last for last in self.errors if "SSL handshake failed" in last.str()]
        if denied or ssl:
            cause = (denied or ssl)[-1]
            check = (
                "sasl.username and sasl.password" if cause.code() == KafkaError._AUTHENTICATION else "ssl.*"
            )
            return AirflowFailException(
                f"Kafka refused connection {self.conn_id!r} while {doing}: {cause.str().rstrip('.')} (check its "
                f"{check} settings)"
            )
        reason = error.str().rstrip(".")
        if self.errors and self.errors[-1].code() != error.code():
            reason += f"; last error: {self.errors[-1].str().rstrip('.')}"
        return AirflowException(
            f"Kafka did not answer connection {self.conn_id!r} within {self.timeout:.0f} s while {doing}: {reason} "
            "(check that the brokers of its bootstrap.servers are reachable)"
        )

    def transactional_id(self, name: str, unit: str) -> str | None:
        """`<prefix>:<name>`, the one transactional id of a DAG's writes, from the connection's prefix; or None
        (with a warning that `unit`, e.g. "this window", is written at least once) when it has none."""
        prefix = self.config.get("transactional.id")
        if not prefix:
            log.warning(
                "Connection %r has no 'transactional.id' in its extra: %s is delivered at least once (a try that "
                "fails half-way leaves what it wrote, and its retry writes it again). Add one for exactly-once "
                "delivery (docs/guarantees.md)",
                self.conn_id,
                unit,
            )
            return None
        if "message.timeout.ms" in self.config:  # else librdkafka takes transaction.timeout.ms
            message_timeout = float(self.config["message.timeout.ms"])
            transaction_timeout = float(self.config.get("transaction.timeout.ms", 60000))
            if message_timeout > transaction_timeout:
                raise AirflowFailException(
                    f"Connection {self.conn_id!r}: message.timeout.ms ({message_timeout:.0f}) exceeds "
                    f"transaction.timeout.ms ({transaction_timeout:.0f}), which librdkafka refuses with a "
                    "transactional.id: lower message.timeout.ms, or raise transaction.timeout.ms with it (at most "
                    "the brokers' transaction.max.timeout.ms, 15 minutes by default)"
                )
        return f"{prefix}:{name}"

    def topic(
        self, reader, name: str, what: str, grant: str, config: dict[str, str], partitions: int = -1
    ) -> int:
        """How many partitions topic `name` (`what` it is, e.g. "the delivery ledger") has, or 0 when this try
        made it: with `config`, `partitions` (-1: the brokers' default) and the brokers' default replication; when
        another try made it meanwhile, the `partitions` it was made with. Refused requests name the grant to add
        (`grant`: its operations). It is looked up with `reader`: a producer's lookup of a missing topic would have
        the brokers create it with their defaults (librdkafka's allow.auto.create.topics is on for producers)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        try:
            topic = reader.list_topics(name, self.timeout).topics[name]
        except KafkaException as exc:
            raise self.failed(f"looking up {what}", exc.args[0], reader) from None
        if topic.error is None:
            return len(topic.partitions)
        if topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise self.refused(f"finding {what} {name!r}", topic.error.str(), grant, "topic", name)
        new = NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config)
        admin = self.admin()  # kept: a client that is collected ends its requests
        try:
            admin.create_topics([new])[name].result(self.timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if (
                error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):  # another try made it meanwhile, as this one would
                return partitions
            if error.code() in (
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED,
            ):
                raise self.refused(f"creating {what} {name!r}", error.str(), grant, "topic", name) from None
            raise self.failed(f"creating {what}", error, admin) from None
        log.info("Created %s %r (%s)", what, name, config)
        return 0

    def ledger_partition(self, reader, ledger_topic: str, dag_id: str) -> tuple[int, bool]:
        """The partition of the delivery ledger that holds `dag_id`'s entries, and whether this try made the
        ledger (then it holds no entry yet)."""
        partitions = self.topic(
            reader, ledger_topic, "the delivery ledger", LEDGER_GRANT, ledger.TOPIC_CONFIG, 1
        )
        return (ledger.partition_of(dag_id, partitions), False) if partitions else (0, True)

    def init_transactions(self, producer, transactional_id: str, topics: list[str]) -> None:
        """Fence every earlier try that used `transactional_id` and abort its open transaction, or fail naming
        the connection and what its principal needs (WRITE on each of `topics`)."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            # librdkafka drops its bootstrap connection once it learns the brokers; a producer id requested in
            # that instant finds no broker and waits 500 ms. Two metadata requests make sure a broker is up.
            producer.list_topics(topics[0], self.timeout)
            for name in topics:
                topic = producer.list_topics(name, self.timeout).topics[name]
                if topic.error is not None and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    raise self.refused(f"writes to topic {name!r}", topic.error.str(), "Write", "topic", name)
            producer.init_transactions(self.timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                prefix = self.config["transactional.id"]
                refused = self.refused(
                    f"transactional id {transactional_id!r}",
                    error.str(),
                    "Write Describe",
                    "transactional-id",
                    prefix,
                )
                raise AirflowFailException(
                    f"{refused}, or remove 'transactional.id' from its extra to produce without transactions"
                ) from exc
            if error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
                raise AirflowFailException(
                    f"Kafka refused idempotent writes to connection {self.conn_id!r}: "
                    f"{error.str().rstrip('.')}. Grant its principal IDEMPOTENT_WRITE on the cluster (kafka-acls.sh "
                    "--add --allow-principal User:<name> --operation IdempotentWrite --cluster)"
                ) from exc
            raise self.failed(
                f"starting transaction {transactional_id!r} (its brokers must host the transaction state log: "
                "transaction.state.log.replication.factor at most the number of brokers)",
                error,
                producer,
            ) from exc

    def commit(self, producer) -> None:
        """Commit the producer's transaction, waiting for the answer at most the connection's timeout (librdkafka
        waits as long as no broker answers); fail naming the connection, committed or not: a retry finds out in the
        delivery ledger."""
        from confluent_kafka import KafkaException

        try:
            producer.commit_transaction(self.timeout)
        except KafkaException as exc:
            raise self.failed("committing its transaction", exc.args[0], producer) from None

    @contextmanager
    def transaction(self, producer, transactional_id: str | None, report: DeliveryReport) -> Iterator[None]:
        """The records the block produces in one transaction when `transactional_id` is set: begun, committed at the
        block's end (`commit`), aborted when the block raises; without one, flushed at its end."""
        if transactional_id:
            producer.begin_transaction()
        try:
            yield
            if transactional_id:
                self.commit(producer)
            else:
                producer.flush()
        except BaseException:
            if transactional_id:
                abort_transaction(producer, transactional_id, report)
            raise

    def earlier_entry(
        self,
        reader,
        ledger_topic: str,
        partition: int,
        key: bytes,
        dag_run,
        kind: type[ledger.Entry] = ledger.Delivery,
    ) -> ledger.Entry | None:
        """The ledger entry under `key` that an earlier try of this run committed since it was last cleared."""
        from confluent_kafka import KafkaError, KafkaException

        since = (dag_run.start_date or dag_run.run_after) - ledger.CLOCK_MARGIN
        clear_number = dag_run.clear_number or 0
        # A read under way when a broker goes (its leader moving) fails with a local error; the next finds the new one.
        retrying = Retrying(
            retry=retry_if_exception(_passing),
            stop=stop_after_attempt(LEDGER_READ_ATTEMPTS),
            wait=wait_exponential(multiplier=1, max=4),
            before_sleep=lambda state: log.warning(
                "Reading the delivery ledger %r failed (%s); reading it again",
                ledger_topic,
                state.outcome.exception(),
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return ledger.find_delivery(
                        reader,
                        ledger_topic,
                        partition,
                        key,
                        since,
                        dag_run.run_id,
                        clear_number,
                        LEDGER_READ_TIMEOUT,
                        kind,
                    )
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                what = f"reading the delivery ledger {ledger_topic!r}"
                raise self.refused(what, error.str(), LEDGER_GRANT, "topic", ledger_topic) from None
            raise self.failed("reading its delivery ledger", error, reader) from None
        except ledger.LedgerTimeout as exc:
            raise AirflowException(f"Connection {self.conn_id!r}: {exc}") from None


class DeliveryReport:
    """The delivery callback of one try: counts the records each topic acknowledged, and raises on the first one
    the broker did not take, so that the try fails. Records purged after a failure (by librdkafka on a refused
    record, or by the try's abort) are not failures of their own, and once the try aborts nothing raises:
    abort_transaction() serves these reports, and raising there would interrupt the abort."""

    def __init__(self, clients: KafkaClients):
        self.clients = clients
        self.acknowledged: Counter[str] = Counter()
        self.aborting = False
        self.queue_full = 0  # how often a record waited for room in librdkafka's queue

    def __call__(self, err, msg) -> None:
        if err is None:
            self.acknowledged[msg.topic()] += 1
            return
        from confluent_kafka import KafkaError  # only on failure: keeps the DAG file's imports light

        if self.aborting or err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise self.clients.refused(
                f"writes to topic {msg.topic()!r}", err.str(), "Write", "topic", msg.topic()
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


class ProduceWindowOperator(ProduceToTopicOperator):
    """
    The provider's ProduceToTopicOperator, writing a run's window with its entry in the delivery ledger, once
    per delivery (a run, until it is cleared).

    With `transactional.id` in the connection's extra (the prefix of its transactional ids), a try fences every
    earlier try of the stream (`<prefix>:<dag id>`, one id per stream); a retry then reads the ledger, and
    succeeds without writing when this delivery already committed; otherwise it writes the window's records and
    its ledger entry in one transaction. Without it, delivery is at least once: the ledger entry follows the
    acknowledged records. Either way it emits an asset event for the topic: the stream's own topic is a static
    outlet (`topic_asset`), a topic that the run's conf names instead has its event through TOPIC_ALIAS. It then
    removes the window's records from the window store, and returns the delivery.

    `producer_function` is called with the run's window in the window store (include/window_store.py), then
    `producer_function_args` and `producer_function_kwargs`.

    :param ledger_topic: the delivery ledger's topic, made on first use (see include/ledger.py)
    """

    def __init__(self, *, ledger_topic: str = ledger.LEDGER_TOPIC, **kwargs: Any):
        super().__init__(**kwargs)
        self.ledger_topic = ledger_topic

    def execute(self, context: Any) -> dict[str, Any]:
        clients = KafkaClients(kafka_connection(self.kafka_config_id))
        transactional_id = clients.transactional_id(self.dag_id, "this window")
        producer = clients.producer(transactional_id)
        reader = clients.reader()
        try:
            partition, created = clients.ledger_partition(reader, self.ledger_topic, self.dag_id)
            if transactional_id:
                clients.init_transactions(producer, transactional_id, [self.topic])
            earlier = None
            # Only a retry can find its run's delivery: Airflow numbers a task's tries on across clears, so try 1
            # is the run's first, and no earlier try of it can have committed.
            if not created and context["ti"].try_number > 1:
                start, _ = run_window(context)
                key = ledger.ledger_key(self.dag_id, self.topic, start)
                earlier = clients.earlier_entry(reader, self.ledger_topic, partition, key, context["dag_run"])
        finally:
            reader.close()
        uri = f"kafka://{clients.config['bootstrap.servers']}/{self.topic}"
        window = window_store.window(self.dag_id, context["run_id"], *run_window(context))
        if earlier is None:
            try:
                delivery = self._deliver(clients, producer, partition, transactional_id, window, context)
            except window_store.WindowGone as gone:
                raise AirflowFailException(str(gone)) from None
            log.info("Delivered %d records to %s", delivery.records, uri)
        else:
            delivery = earlier
            log.info(
                "Window [%s, %s) was already delivered by try %d of this run (%s, clear %d): %d records to %s, "
                "committed at %s; not writing it again",
                iso(earlier.window_start),
                iso(earlier.window_end),
                earlier.try_number,
                earlier.run_id,
                earlier.clear_number,
                earlier.records,
                uri,
                earlier.committed_at.isoformat(timespec="milliseconds"),
            )
        self._emit_asset_event(context)
        window_store.remove(window, self.dag_id)
        return msgspec.to_builtins(delivery)

    def _emit_asset_event(self, context: Any) -> None:
        """Leave the event to the stream's static outlet when the run wrote its topic; otherwise give the topic's
        event through the alias, and none to the stream's topic, which this run did not write."""
        asset = topic_asset(self.kafka_config_id, self.topic)
        if asset in self.outlets:
            return
        self.outlets = [outlet for outlet in self.outlets if not isinstance(outlet, Asset)]
        context["outlet_events"][TOPIC_ALIAS].add(asset)

    def _deliver(
        self,
        clients: KafkaClients,
        producer,
        partition: int,
        transactional_id: str | None,
        window: dict[str, str],
        context: Any,
    ) -> ledger.Delivery:
        """Write the window's records and its ledger entry: in one transaction, or (without a transactional id)
        the entry once the broker acknowledged every record."""
        report = DeliveryReport(clients)
        self.delivery_callback = report
        if isinstance(self.producer_function, str):
            self.producer_function = import_string(self.producer_function)
        with clients.transaction(producer, transactional_id, report):
            produced = 0
            for key, value in self.producer_function(
                window, *self.producer_function_args, **self.producer_function_kwargs
            ):
                produce_record(producer, self.topic, key, value, report)
                produced += 1
                producer.poll(self.poll_timeout)
                if self.synchronous:
                    producer.flush()
            if not transactional_id:  # the entry follows the acknowledged records
                producer.flush()
            # In a transaction, the entry goes with the records: committed with every one of them, or not at all.
            delivery = self._delivery(produced, transactional_id, context)
            produce_record(
                producer, self.ledger_topic, delivery.key, ledger.encode(delivery), report, partition
            )
            producer.flush()  # the delivery callback raises here, outside commit, if a record failed
            if report.queue_full:
                log.info(
                    "librdkafka's queue was full %d times (queue.buffering.max.messages): the records waited "
                    "for the broker to acknowledge earlier ones",
                    report.queue_full,
                )
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
            run_type=dag_run.run_type.value,
            clear_number=dag_run.clear_number or 0,
            try_number=context["ti"].try_number,
            transactional_id=transactional_id,
            searchable_at=context["dag"].timetable.searchable_at(end),
            committed_at=datetime.now(UTC),
        )


class _OnConnection:
    """A provider hook on a connection the try read already, whose client reports its errors to `on_error`."""

    def __init__(self, connection: Connection, on_error, **kwargs: Any):
        super().__init__(kafka_config_id=connection.conn_id, **kwargs)
        self.connection = connection
        self.on_error = on_error

    def get_connection(self, conn_id: str) -> Connection:
        return self.connection

    def _get_client(self, config: dict[str, Any]):
        return super()._get_client({**config, "error_cb": self.on_error})


class _ProducerHook(_OnConnection, KafkaProducerHook):
    pass


class _AdminHook(_OnConnection, KafkaAdminClientHook):
    pass


class _ConsumerHook(_OnConnection, KafkaConsumerHook):
    pass


def kafka_connection(conn_id: str) -> Connection:
    """A Kafka connection; fail at once, without retries, naming it, when its extra names no broker (the
    provider's own error names neither the connection nor a fix, and Airflow would retry it)."""
    connection = BaseHook.get_connection(conn_id)
    if not connection.extra_dejson.get("bootstrap.servers"):
        raise AirflowFailException(
            f"Connection {conn_id!r} has no 'bootstrap.servers' in its extra: set it to the "
            'host:port list of its brokers, e.g. {"bootstrap.servers": "broker1:9092,broker2:9092"}'
        )
    return connection


def produce_record(
    producer, topic: str, key: bytes, value: bytes, report: DeliveryReport, partition: int = -1
) -> None:
    """Produce one record; when librdkafka's queue is full (queue.buffering.max.messages), serve delivery
    reports until it has room."""
    from confluent_kafka import KafkaException

    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition, on_delivery=report)
            return
        except BufferError:
            report.queue_full += 1
            producer.poll(0.1)
        except KafkaException:  # a refused record left the transaction unusable ("Erroneous state"):
            producer.flush(5)  # its delivery report, which the callback raises, says which and why
            raise


def abort_transaction(producer, transactional_id: str, report: DeliveryReport) -> None:
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


def _passing(exc: BaseException) -> bool:
    """Whether a failed ledger read may pass on a second read: a Kafka error other than a refused grant."""
    from confluent_kafka import KafkaError, KafkaException

    return isinstance(exc, KafkaException) and exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED
