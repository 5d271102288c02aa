"""The delivery ledger on the real broker: what a window's transaction writes to it, and how a later try reads it
back, past aborted entries, entries of other runs and another producer's open transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, Producer

from include import ledger
from tests.helpers import BOOTSTRAP, DAG_QUERY, create_topic, past_window, read_topic, run_dag

RUN = "manual__2026-12-01T10:00:00+00:00"


def entry(run_id: str = RUN, clear_number: int = 0, start: datetime | None = None) -> ledger.Delivery:
    start = start or datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    return ledger.Delivery(
        stream="tweets_to_kafka",
        window_start=start,
        window_end=start + timedelta(minutes=1),
        topic="tweets-lambda1",
        query=DAG_QUERY,
        record_format="json",
        records=40,
        run_id=run_id,
        run_type="manual",
        clear_number=clear_number,
        try_number=1,
        transactional_id="tweets-to-kafka:tweets_to_kafka",
        searchable_at=start + timedelta(minutes=1, seconds=30),
        committed_at=datetime.now(UTC),
    )


@pytest.fixture
def ledger_topic(kafka) -> str:
    name = f"test-ledger-{uuid.uuid4().hex[:12]}"
    create_topic(kafka, name, partitions=1, config=ledger.TOPIC_CONFIG)
    return name


def write(topic: str, *entries: ledger.Delivery, commit: bool = True) -> Producer:
    """Write entries in one transaction of a producer of their own; commit or abort it, or (commit None) leave
    it open. Returns the producer."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": f"test-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for delivery in entries:
        producer.produce(topic, key=delivery.key, value=ledger.encode(delivery))
    producer.flush(30)
    if commit is True:
        producer.commit_transaction(30)
    elif commit is False:
        producer.abort_transaction(30)
    return producer


def find(topic: str, key: bytes, run_id: str = RUN, clear_number: int = 0, timeout: float = 30):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "unused", **ledger.READER_CONFIG})
    try:
        since = datetime.now(UTC) - timedelta(minutes=5)
        return ledger.find_delivery(consumer, topic, 0, key, since, run_id, clear_number, timeout)
    finally:
        consumer.close()


def test_a_try_finds_the_entry_its_run_committed_and_no_other(ledger_topic):
    mine = entry()
    write(ledger_topic, entry(run_id="scheduled__2026-12-01T10:00--10:01Z"), entry(clear_number=1))
    assert find(ledger_topic, mine.key) is None, (
        "another run's entry, or one from after a clear, is not this one"
    )
    write(ledger_topic, mine, commit=False)
    assert find(ledger_topic, mine.key) is None, "an aborted entry was never delivered"

    write(ledger_topic, mine)

    assert find(ledger_topic, mine.key) == mine
    assert find(ledger_topic, mine.key, clear_number=1) == entry(clear_number=1).__replace__(
        committed_at=find(ledger_topic, mine.key, clear_number=1).committed_at
    )


def test_an_entry_committed_behind_another_producers_open_transaction_is_found_once_that_one_ends(
    ledger_topic,
):
    """Expected: another stream's transaction opened first and stays open (its task died between its ledger
    record and its commit); a read_committed consumer stops at its first offset (the last stable offset), before
    the entry this run committed after it. The try does not take that for "not delivered": it waits, and fails
    saying why if the transaction outlives its wait; once the transaction is aborted, it finds the entry."""
    mine = entry()
    other = write(ledger_topic, entry(run_id="scheduled__other"), commit=None)
    write(ledger_topic, mine)

    with pytest.raises(ledger.LedgerTimeout, match="a transaction of another producer is open in it"):
        find(ledger_topic, mine.key, timeout=3)
    other.abort_transaction(30)

    assert find(ledger_topic, mine.key).run_id == RUN


@pytest.mark.usefixtures("connections")
def test_a_window_writes_its_entry_in_its_own_transaction(simulator, topic):
    """Expected: beside the window's records, its transaction wrote one ledger entry saying what was delivered:
    the run, its try, the topic and query, how many records, when the window was searchable and committed."""
    start, end = past_window(33)
    began = datetime.now(UTC)

    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}

    key = ledger.ledger_key("tweets_to_kafka", topic, start)
    entries = [ledger.decode(value) for k, value in read_topic(ledger.LEDGER_TOPIC) if k == key]
    assert len(entries) == 1
    delivered = entries[0]
    assert (delivered.window_start, delivered.window_end) == (start, end)
    assert (delivered.topic, delivered.query, delivered.record_format) == (topic, DAG_QUERY, "json")
    assert delivered.records == len(read_topic(topic)) > 20
    assert (delivered.run_type, delivered.clear_number, delivered.try_number) == ("manual", 0, 1)
    assert delivered.transactional_id == "tweets-to-kafka:tweets_to_kafka"
    assert delivered.searchable_at == end + timedelta(seconds=30)
    assert began < delivered.committed_at < datetime.now(UTC)


def test_the_coverage_view_reads_the_committed_entries_and_follows_new_ones(ledger_topic):
    """The Coverage pages' reader: from the beginning, committed entries only (an aborted one never shows), then
    each new entry as it commits; a second delivery of a window replaces the first and is counted."""
    from include.coverage import LedgerView

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first, second = now - timedelta(minutes=3), now - timedelta(minutes=2)
    write(ledger_topic, entry(start=first))
    write(ledger_topic, entry(start=second), commit=False)
    view = LedgerView("kafka_default", ledger_topic, config={"bootstrap.servers": BOOTSTRAP}).start()
    try:
        assert view.caught_up.wait(60), view.error
        assert list(view.entries("tweets_to_kafka", first, now)) == [first]

        write(ledger_topic, entry(start=second), entry(start=first, clear_number=1))
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while len(view.entries("tweets_to_kafka", first, now)) < 2 and datetime.now(UTC) < deadline:
            view.caught_up.wait(0.2)
        entries = view.entries("tweets_to_kafka", first, now)
        assert sorted(entries) == [first, second]
        (again,) = entries[first]
        assert (again.deliveries, again.clear_number, again.records) == (2, 1, 40)
    finally:
        view.stop()
