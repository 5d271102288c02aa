"""A consumer that reads a topic throughout a fault case, as a downstream read_committed consumer would."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass


class TopicWatcher:
    """Reads every partition of an existing topic from the beginning, in a thread, until stopped; keeps each
    record it read (`Read`: when, partition, offset, key), where it last reached the end of each partition,
    and what librdkafka logged at warning level or above (a leader change, an offset reset)."""

    def __init__(self, topic: str, bootstrap: str, isolation: str = "read_committed"):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.topic, self.bootstrap = topic, bootstrap
        self.seen: list[Read] = []
        self.ends: dict[int, int] = {}  # partition: the offset at which it last reached the end
        self.said: list[str] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"watcher-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,  # the end of a partition, past transaction markers too
                "isolation.level": isolation,
                # Never skip records silently (the default resets to the end): an offset it cannot read on
                # from is an error here, which it keeps.
                "auto.offset.reset": "error",
                "logger": _Said(self.said),
                "error_cb": lambda error: self.said.append(f"error: {error}"),
            }
        )
        self.partitions = list(self._consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        assert self.partitions, (
            f"{topic} has no partitions yet: a watched topic is created first (create_topic)"
        )
        self._consumer.assign(
            [TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in self.partitions]
        )
        self._thread = threading.Thread(target=self._read, name=f"watch-{topic}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from confluent_kafka import KafkaError

        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            if message.error() is None:
                self.seen.append(Read(time.monotonic(), message.partition(), message.offset(), message.key()))
            elif message.error().code() == KafkaError._PARTITION_EOF:
                self.ends[message.partition()] = message.offset()
            else:
                self.said.append(f"error: {message.error()}")
        self._consumer.close()

    def keys_before(self, moment: float) -> list[bytes]:
        """The keys read before `moment` (a time.monotonic() value)."""
        return [read.key for read in self.seen if read.at < moment]

    def stop(self, timeout: float = 120) -> list[Read]:
        """Wait until it has read each partition to its end as the log is now (the high watermark: every
        transaction must have ended), stop, and return every record read, in order; fail, saying where it
        stood and what librdkafka logged, when it did not get there within `timeout` seconds."""
        log_ends = high_watermarks(self.topic, self.bootstrap)
        deadline = time.monotonic() + timeout
        try:
            while any(self.ends.get(partition, -1) < end for partition, end in log_ends.items()):
                assert time.monotonic() < deadline, (
                    f"the watcher did not read {self.topic} to its end {log_ends} within {timeout:.0f} s: it "
                    f"reached {self.ends}; librdkafka said: {self.said[-20:]}"
                )
                time.sleep(0.05)
        finally:
            self._stop.set()
            self._thread.join(timeout=10)
        return list(self.seen)


@dataclass(frozen=True)
class Read:
    """A record a watcher read: when (time.monotonic()), from where, and its key."""

    at: float
    partition: int
    offset: int
    key: bytes


class _Said(logging.Logger):
    """A logger for librdkafka's own log lines (a client's `logger`): keeps the warnings and errors."""

    def __init__(self, lines: list[str]):
        super().__init__("librdkafka", logging.WARNING)
        self.lines = lines

    def handle(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def high_watermarks(topic: str, bootstrap: str) -> dict[int, int]:
    """The end of each partition of the topic's log (records committed or not, and transaction markers)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watermarks-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
    finally:
        consumer.close()


def when_written(topic: str, bootstrap: str, action, total: int, timeout: float = 600, writer=None) -> int:
    """As soon as some but not all of `total` records are in the topic's log (the sum of its partitions'
    high watermarks: records committed or not, and transaction markers), call `action`; return how many
    offsets the log held then. Fail when `writer` (the process of the try that writes them, if given) ended
    first, or after `timeout` seconds (a bound for a try that hangs: a busy machine takes minutes to search
    and write a large window)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(  # read_committed would give the last stable offset: 0 until the commit
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"watermarks-{uuid.uuid4()}",
            "isolation.level": "read_uncommitted",
        }
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    partitions = [TopicPartition(topic, partition) for partition in metadata.partitions]
    deadline = time.monotonic() + timeout
    written = 0
    try:
        while not 0 < written < total:
            assert time.monotonic() < deadline, f"no record of the window reached {topic} within {timeout} s"
            assert writer is None or writer.poll() is None, f"the try ended before it wrote to {topic}"
            time.sleep(0.01)
            try:
                written = sum(consumer.get_watermark_offsets(p, timeout=5)[1] for p in partitions)
            except KafkaException:  # a new topic's leaders are not known yet
                continue
        action()
        return written
    finally:
        consumer.close()


def check_committed_once(case, simulator, topic: str, windows, bootstrap: str, watcher, visible_from: float):
    """The check of a transactional case: the topic holds each tweet of each window exactly once for a
    read_committed consumer; the watcher, reading throughout, read nothing before `visible_from` (the start
    of the try that committed) and then exactly those records; a read_uncommitted reader shows what the
    aborted tries wrote, which the transactions hid."""
    from tests.helpers import read_topic

    duplicates_before = case.duplicates
    case.check_delivered(simulator, topic, windows, bootstrap)
    assert case.duplicates == duplicates_before, "a read_committed consumer sees each tweet once"
    expected = sorted(key for key, _ in read_topic(topic, bootstrap))
    read = watcher.stop()
    assert watcher.keys_before(visible_from) == [], "nothing was visible before the try that committed"
    keys = sorted(record.key for record in read)
    if keys != expected:
        reread = [place for place, n in Counter((r.partition, r.offset) for r in read).items() if n > 1]
        raise AssertionError(
            "the watcher read each committed record once, and nothing else: it read "
            f"{len(read)} records for {len(expected)} committed; {len(set(expected) - set(keys))} never read, "
            f"{len(set(keys) - set(expected))} not committed, {len(reread)} offsets read twice "
            f"{sorted(reread)[:10]}; librdkafka said: {watcher.said[-20:]}"
        )
    uncommitted = read_topic(topic, bootstrap, isolation="read_uncommitted")
    case.measured["records_hidden_by_transactions"] = len(uncommitted) - len(expected)
    return len(uncommitted) - len(expected)
