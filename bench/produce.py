"""Produce throughput: the project's produce path against raw confluent-kafka, the seed's kafka-python
loop and the provider operator's defaults, interleaved on one broker with the same topic settings; and the
produce path in one transaction per window against the idempotent one, in throughput and per window."""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from types import SimpleNamespace
from typing import Any

from bench.services import records_in
from include.records import serialise, to_record
from twitter_provider.timetables import SearchableMinuteTimetable

PARTITIONS = 3
TRANSACTIONAL_CONN_ID = "kafka_transactional"  # kafka_default with a transactional.id (bench/services.py)
WINDOW_RECORDS = 40  # a typical window
OPERATOR_DEFAULTS_RECORDS = 5_000  # one flush per record: 100,000 would take over a minute per repetition


def make_records(count: int) -> list[dict[str, Any]]:
    """`count` records of the simulator's realistic tweets (emoji, quotes, 280-character texts)."""
    from x_api_simulator import XApiSimulator

    simulator = XApiSimulator()  # its tweet generator only; no server
    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_minute = 1000
    minutes = -(-count // per_minute)
    for minute in range(minutes):
        simulator.set_rate(start + timedelta(minutes=minute), per_minute)
    tweets = simulator.tweets_between(start, start + timedelta(minutes=minutes))[:count]
    return [to_record(tweet, tweet["author"]) for tweet in tweets]


@contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (the producers' log lines) to `log_file`, as a task's log."""
    saved = os.dup(1), os.dup(2)
    with log_file.open("a") as log:
        sys.stdout.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class ProduceBenchmark:
    """Runs each way of producing on a fresh topic and checks that the broker holds every record."""

    def __init__(self, kafka_config: dict[str, Any], log_file: Path):
        from confluent_kafka.admin import AdminClient

        self.kafka_config = kafka_config
        self.log_file = log_file
        self.admin = AdminClient({"bootstrap.servers": kafka_config["bootstrap.servers"]})

    def new_topic(self) -> str:
        from confluent_kafka.admin import NewTopic

        topic = f"bench-produce-{uuid.uuid4().hex[:12]}"
        for future in self.admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            future.result()
        # Measure producing, not a new topic's propagation: wait until each partition has its leader.
        for _ in range(100):
            partitions = self.admin.list_topics(topic, timeout=10).topics[topic].partitions
            if len(partitions) == PARTITIONS and all(
                p.leader >= 0 and not p.error for p in partitions.values()
            ):
                return topic
            time.sleep(0.05)
        raise RuntimeError(f"topic {topic} has no leader for every partition after 5 s")

    def measure(self, produce: Callable[[list[dict], str], Callable[[], None]], records: list[dict]) -> float:
        """Records per second of one run of the way `produce` (which readies its run of `records` to a topic), from
        the first record to the last acknowledgement."""
        topic = self.new_topic()
        run = produce(records, topic)
        with output_to(self.log_file):
            began = time.perf_counter()
            run()
            elapsed = time.perf_counter() - began
        held = records_in(topic)
        if not len(records) <= held <= len(records) + PARTITIONS:  # a commit adds a marker per partition
            raise RuntimeError(f"{produce.__name__}: topic {topic} holds {held} records, not {len(records)}")
        return len(records) / elapsed

    # The four ways, each readying a run from records (ours: in the window store, as fetch_tweets leaves them) to
    # acknowledged bytes.

    def ours(self, records: list[dict], topic: str) -> Callable[[], None]:
        """The project's produce_tweets: its operator, producer function and settings, the ledger entry included."""
        from include.kafka_delivery import ProduceWindowOperator

        return self._operator(ProduceWindowOperator, records, topic, synchronous=False)

    def ours_transactional(self, records: list[dict], topic: str) -> Callable[[], None]:
        """The same, with a connection that has a transactional.id: the window in one transaction."""
        from include.kafka_delivery import ProduceWindowOperator

        return self._operator(
            ProduceWindowOperator, records, topic, kafka_config_id=TRANSACTIONAL_CONN_ID, synchronous=False
        )

    def operator_defaults(self, records: list[dict], topic: str) -> Callable[[], None]:
        """The provider operator as its docs show it: synchronous=True, the default (logging) callback."""
        from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator

        return self._operator(ProduceToTopicOperator, records, topic)

    def ledger_read_ms(self) -> float:
        """Milliseconds a try spends learning whether its run delivered its window already: its ledger reader
        made, the ledger's partition found, and the partition read from the run's start to its end."""
        from airflow.sdk import BaseHook

        from include import ledger
        from include.kafka_delivery import LEDGER_READ_TIMEOUT, KafkaClients

        began = time.perf_counter()
        clients = KafkaClients(BaseHook.get_connection(TRANSACTIONAL_CONN_ID))
        reader = clients.reader()
        partition, _ = clients.ledger_partition(reader, ledger.LEDGER_TOPIC, "adhoc_airflow")
        since = datetime.now(UTC) - ledger.CLOCK_MARGIN
        key = ledger.ledger_key("adhoc_airflow", "none", since)
        ledger.find_delivery(
            reader, ledger.LEDGER_TOPIC, partition, key, since, "none", 0, LEDGER_READ_TIMEOUT
        )
        elapsed = time.perf_counter() - began
        reader.close()
        return 1000 * elapsed

    def raw(self, records: list[dict], topic: str) -> Callable[[], None]:
        """confluent-kafka alone, same config: asynchronous produce, poll(0), one flush."""
        from confluent_kafka import Producer

        def run() -> None:
            producer = Producer(self.kafka_config)
            for record in records:
                producer.produce(topic, key=record["tweet_id"].encode(), value=serialise(record, "json"))
                producer.poll(0)
            if producer.flush(60):
                raise RuntimeError("raw confluent-kafka: records still queued after 60 s")

        return run

    def seed(self, records: list[dict], topic: str) -> Callable[[], None]:
        """The seed's way: kafka-python KafkaProducer (its defaults) send per record, then flush."""
        from kafka import KafkaProducer

        def run() -> None:
            producer = KafkaProducer(bootstrap_servers=self.kafka_config["bootstrap.servers"])
            try:
                for record in records:
                    producer.send(topic, key=record["tweet_id"].encode(), value=serialise(record, "json"))
                producer.flush()
            finally:
                producer.close()

        return run

    def _operator(
        self, operator: type, records: list[dict], topic: str, **options: Any
    ) -> Callable[[], None]:
        """Build the operator as the DAG does and save the records in the window store as fetch_tweets does; the
        run renders and executes the operator as the task runner does."""
        from include import window_store
        from include.kafka_delivery import ProduceWindowOperator
        from include.windows import run_window

        options = {"kafka_config_id": "kafka_default", **options}
        produce_tweets = operator(
            task_id="produce_tweets",
            topic="{{ params.topic }}",
            producer_function="include.kafka_delivery.produce_records",
            producer_function_kwargs={"record_format": "{{ params.record_format }}"},
            **options,
        )
        task = produce_tweets.prepare_for_execution()  # as the task runner: no dependency scan on setattr
        context = task_context(datetime.now(UTC))
        window = window_store.window(task.dag_id, context["run_id"], *run_window(context))
        window_store.save(records, window)
        task.topic = topic
        task.producer_function_kwargs = {"record_format": "json"}  # rendered
        if not isinstance(task, ProduceWindowOperator):  # the provider's operator: the window as an argument
            task.producer_function_args = [window]
        return lambda: task.execute(context=context)


def task_context(window_start: datetime, query: str = "bench", run_id: str | None = None) -> dict[str, Any]:
    """What the task runner gives a task of manual run `run_id` (by default a new one) of the window holding
    `window_start`."""
    now = datetime.now(UTC)
    run = SimpleNamespace(
        run_id=run_id or f"bench__{uuid.uuid4().hex}",  # a new delivery each time
        run_type=SimpleNamespace(value="manual"),
        logical_date=window_start.replace(second=0, microsecond=0),
        run_after=now,
        start_date=now,
        clear_number=0,
    )
    return {
        "dag": SimpleNamespace(timetable=SearchableMinuteTimetable()),
        "dag_run": run,
        "run_id": run.run_id,
        "ti": SimpleNamespace(try_number=1),
        "params": {"query": query, "topic": "bench"},  # the topic: what fetch_tweets logs
        "outlet_events": defaultdict(set),  # the topic's asset event
    }


def run(kafka_config: dict[str, Any], record_count: int, repetitions: int, log_file: Path) -> dict[str, Any]:
    """Interleave the four ways `repetitions` times, rotating their order; medians of records per second."""
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python's connection chatter
    bench = ProduceBenchmark(kafka_config, log_file)
    records = make_records(record_count)
    ways = {
        "ours": (bench.ours, records),
        "raw_confluent_kafka": (bench.raw, records),
        "seed_kafka_python": (bench.seed, records),
        "operator_defaults": (bench.operator_defaults, records[:OPERATOR_DEFAULTS_RECORDS]),
    }
    for (
        produce,
        batch,
    ) in ways.values():  # warm the broker and load each way's modules before any figure counts
        bench.measure(produce, batch[:1000])
    runs: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    for repetition in range(repetitions):
        for name in itertools.islice(itertools.cycle(names), repetition, repetition + len(names)):
            produce, batch = ways[name]
            runs[name].append(bench.measure(produce, batch))
            print(f"  produce {name:<20} {runs[name][-1]:>9,.0f} records/s")
    medians = {name: median(values) for name, values in runs.items()}
    sizes = [len(serialise(record, "json")) for record in records]
    return {
        "records": record_count,
        "operator_defaults_records": OPERATOR_DEFAULTS_RECORDS,
        "record_bytes_mean": sum(sizes) / len(sizes),
        "repetitions": repetitions,
        "records_per_second": {name: {"median": medians[name], "runs": runs[name]} for name in names},
        "produce_vs_raw": medians["ours"] / medians["raw_confluent_kafka"],
        "produce_vs_seed": medians["ours"] / medians["seed_kafka_python"],
        "produce_vs_operator_defaults": medians["ours"] / medians["operator_defaults"],
    }


def run_transactions(
    kafka_config: dict[str, Any], record_count: int, repetitions: int, log_file: Path
) -> dict[str, Any]:
    """Our produce path in one transaction per window against the idempotent one, interleaved: records per
    second for `record_count` records, and milliseconds per 40-record window (a new producer each, as each
    task try is a new process: the transaction adds init_transactions and the commit's round trips)."""
    bench = ProduceBenchmark(kafka_config, log_file)
    records = make_records(record_count)
    ways = {"transactional": bench.ours_transactional, "idempotent": bench.ours}
    for produce in ways.values():  # warm up: the transaction coordinator's log is created on first use
        bench.measure(produce, records[:1000])
    rates: dict[str, list[float]] = {name: [] for name in ways}
    window_ms: dict[str, list[float]] = {name: [] for name in ways}
    for repetition in range(repetitions):
        for name in itertools.islice(itertools.cycle(ways), repetition, repetition + len(ways)):
            rates[name].append(bench.measure(ways[name], records))
            print(f"  produce {name:<14} {rates[name][-1]:>9,.0f} records/s")
            for _ in range(5):
                window_ms[name].append(
                    1000 * WINDOW_RECORDS / bench.measure(ways[name], records[:WINDOW_RECORDS])
                )
    rate = {name: median(values) for name, values in rates.items()}
    per_window = {name: median(values) for name, values in window_ms.items()}
    ledger_reads = [bench.ledger_read_ms() for _ in range(5 * repetitions)]
    return {
        "ledger_read_ms": median(ledger_reads),
        "ledger_read_ms_runs": ledger_reads,
        "records": record_count,
        "repetitions": repetitions,
        "records_per_second": {name: {"median": rate[name], "runs": rates[name]} for name in ways},
        "window_records": WINDOW_RECORDS,
        "window_ms": {name: {"median": per_window[name], "runs": window_ms[name]} for name in ways},
        "transaction_ms_per_window": per_window["transactional"] - per_window["idempotent"],
        "transactional_vs_idempotent_produce": rate["transactional"] / rate["idempotent"],
    }
