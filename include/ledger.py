"""The delivery ledger: a compacted Kafka topic with one record per delivered window, written in the window's own
transaction. A later try of the window, once it has fenced the earlier ones, reads it to learn whether this same
delivery already committed, as Kafka Connect's exactly-once sources keep their offsets (KIP-618). It is also the
record of which minutes reached their topic, for whatever watches coverage.

A compliance job's result is written the same way, with an entry of its own kind (`ComplianceSweep`), whose key
starts with `compliance:`."""

from __future__ import annotations

import time
import zlib
from datetime import datetime, timedelta
from typing import Literal

import msgspec

LEDGER_TOPIC = "tweets-to-kafka.deliveries"  # the stream file's delivery_ledger_topic changes it
RETENTION = timedelta(days=14)  # longer than the search's 7-day reach: no window older than that runs again
TOPIC_CONFIG = {
    "cleanup.policy": "compact,delete",
    "retention.ms": str(int(RETENTION.total_seconds() * 1000)),
}
COMPLIANCE_PREFIX = (
    b"compliance:"  # of a compliance job's key; a window's starts with its stream, which has no colon
)
# A try looks for the entries written since its run started, less this much for workers' clocks that differ.
CLOCK_MARGIN = timedelta(minutes=5)


class Entry(msgspec.Struct, kw_only=True, frozen=True):
    """What every ledger entry says of the try that wrote it."""

    run_id: str
    run_type: str
    clear_number: int
    try_number: int
    transactional_id: str | None
    committed_at: datetime  # the moment the try asked Kafka to commit

    def same_delivery(self, run_id: str, clear_number: int) -> bool:
        """Whether this entry was written by a try of that run since it was last cleared."""
        return self.run_id == run_id and self.clear_number == clear_number


class Delivery(Entry, kw_only=True, frozen=True):
    """What one window's delivery wrote: a ledger record's value."""

    stream: str  # the DAG id
    window_start: datetime
    window_end: datetime
    topic: str
    query: str
    record_format: str
    records: int
    searchable_at: datetime
    # "unreachable": no delivery, X could no longer serve the window when the healing found it (records 0)
    outcome: Literal["delivered", "unreachable"] = "delivered"

    @property
    def key(self) -> bytes:
        return ledger_key(self.stream, self.topic, self.window_start)


class ComplianceSweep(Entry, kw_only=True, frozen=True):
    """What one compliance job's result wrote: a ledger record's value."""

    dag_id: str  # the compliance DAG of an X connection
    task_id: str  # its task of one Kafka connection
    job_id: str
    job_name: str
    ids_checked: int  # post ids the job was given
    results: int  # its result lines: one compliance event each
    compliance_topic: str
    tombstones: dict[str, int]  # per stream topic

    @property
    def key(self) -> bytes:
        return compliance_key(self.dag_id, self.task_id, self.run_id)


_encoder = msgspec.json.Encoder()
_decoders = {kind: msgspec.json.Decoder(kind) for kind in (Delivery, ComplianceSweep)}


def ledger_key(stream: str, topic: str, window_start: datetime) -> bytes:
    """The key of a window's entry, e.g. `tweets_to_kafka/tweets-lambda1/2026-12-01T20:20Z`: compaction keeps
    the latest delivery of each stream, topic and window."""
    return f"{stream}/{topic}/{window_start:%Y-%m-%dT%H:%MZ}".encode()


def compliance_key(dag_id: str, task_id: str, run_id: str) -> bytes:
    """The key of a compliance job's entry, e.g. `compliance:x_compliance_twitter_default/apply_compliance_kafka_
    default/scheduled__2026-12-01T06:00:00+00:00`: compaction keeps the latest result of each run."""
    return COMPLIANCE_PREFIX + f"{dag_id}/{task_id}/{run_id}".encode()


def kind_of(key: bytes) -> type[Entry]:
    """The kind of the entry under a ledger key."""
    return ComplianceSweep if key.startswith(COMPLIANCE_PREFIX) else Delivery


def encode(entry: Entry) -> bytes:
    return _encoder.encode(entry)


def decode(value: bytes, kind: type[Entry] = Delivery) -> Entry:
    return _decoders[kind].decode(value)


def partition_of(stream: str, partitions: int) -> int:
    """The ledger partition that holds a stream's entries (a created ledger has one)."""
    return zlib.crc32(stream.encode()) % partitions


# How a reader of the ledger (or of a topic) consumes: committed records only, told when it reached the end of what
# is stable, and answered at once when there is nothing (the broker holds an empty fetch for 500 ms otherwise). It
# joins no group and commits nothing, but a consumer needs a group.id and librdkafka looks its coordinator up
# anyway: without a grant on the group (none is needed), the refusal reaches the reader as an error, ignored.
READER_CONFIG = {
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 10,
    "enable.auto.commit": False,
}


class LedgerTimeout(TimeoutError):
    """The ledger could not be read to its end in time: a transaction of another producer holds it."""


def read_entries(
    consumer, topic: str, partitions: list[int], since: datetime, timeout: float, kind: type[Entry] = Delivery
) -> list[Entry]:
    """The committed entries of `kind` (windows' deliveries, or compliance jobs' results) of these ledger
    partitions written at or after `since`, in the order written.

    `consumer` has READER_CONFIG. It reads each partition from its first record written since until its end of
    stable records reaches the high watermark of its first fetch: every transaction that began before then has
    committed or aborted, so an entry committed behind another producer's open transaction (past the last stable
    offset, where a read_committed consumer stops) is waited for, not missed. Raise LedgerTimeout when an open
    transaction outlasts `timeout`."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    since_ms = int(since.timestamp() * 1000)
    starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout)
    assigned = []
    for start in starts:
        offset = start.offset
        if (
            offset < 0
        ):  # no committed record since (read_committed, the lookup stops at the last stable offset)
            offset = consumer.get_watermark_offsets(TopicPartition(topic, start.partition), timeout)[1]
        assigned.append(TopicPartition(topic, start.partition, offset))
    consumer.assign(assigned)
    entries, ends, done = [], {}, set()
    deadline = time.monotonic() + timeout
    while len(done) < len(partitions):
        if time.monotonic() > deadline:
            raise LedgerTimeout(
                f"the delivery ledger {topic!r} (partitions {sorted(set(partitions) - done)}) was not read to its "
                f"end within {timeout:.0f} s: a transaction of another producer is open in it"
            )
        message = consumer.poll(0.1)
        if message is None:
            continue
        error = message.error()
        if error is None:
            if kind_of(message.key()) is kind:
                entries.append(decode(message.value(), kind))
        elif error.code() == KafkaError._PARTITION_EOF:
            partition = message.partition()
            here = TopicPartition(topic, partition)
            end = ends.setdefault(partition, consumer.get_watermark_offsets(here, cached=True)[1])
            if message.offset() >= end:
                done.add(partition)
        elif (
            error.code() != KafkaError.GROUP_AUTHORIZATION_FAILED
        ):  # not an error of a reader: see READER_CONFIG
            raise KafkaException(error)
    return entries


def find_delivery(
    consumer,
    topic: str,
    partition: int,
    key: bytes,
    since: datetime,
    run_id: str,
    clear_number: int,
    timeout: float,
    kind: type[Entry] = Delivery,
) -> Entry | None:
    """The committed entry (of `kind`) under `key` that a try of `run_id` wrote since it was last cleared, or None
    (see read_entries)."""
    found = None
    for entry in read_entries(consumer, topic, [partition], since, timeout, kind):
        if entry.key == key and entry.same_delivery(run_id, clear_number):
            found = entry
    return found
