"""A consumer that reads a topic throughout a fault case, as a downstream read_committed consumer would."""

from __future__ import annotations

import threading
import time
import uuid


class TopicWatcher:
    """Reads every partition of an existing topic from the beginning, in a thread, until stopped; keeps each
    record's key with the moment it was read (time.monotonic())."""

    def __init__(self, topic: str, bootstrap: str, isolation: str = "read_committed"):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.seen: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"watcher-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": isolation,
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign(
            [TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions]
        )
        self._thread = threading.Thread(target=self._read, name=f"watch-{topic}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is not None and message.error() is None:
                self.seen.append((time.monotonic(), message.key()))
        self._consumer.close()

    def keys_before(self, moment: float) -> list[bytes]:
        """The keys read before `moment` (a time.monotonic() value)."""
        return [key for at, key in self.seen if at < moment]

    def stop(self, records: int, timeout: float = 60) -> list[bytes]:
        """Wait until it has read `records` records (or `timeout` seconds), stop, and return every key read,
        in order."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < records and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=10)
        return [key for _, key in self.seen]


def when_written(topic: str, bootstrap: str, action, total: int, timeout: float = 300) -> int:
    """As soon as some but not all of `total` records are in the topic's log (the sum of its partitions'
    high watermarks: records committed or not, and transaction markers), call `action`; return how many
    offsets the log held then."""
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
    read = watcher.stop(len(expected))
    assert watcher.keys_before(visible_from) == [], "nothing was visible before the try that committed"
    assert sorted(read) == expected, "the watcher read each committed record once, and nothing else"
    uncommitted = read_topic(topic, bootstrap, isolation="read_uncommitted")
    case.measured["records_hidden_by_transactions"] = len(uncommitted) - len(expected)
    return len(uncommitted) - len(expected)
