"""Coverage: what happened to every minute of every stream, from the two places that know.

- The delivery ledger (include/ledger.py) says what reached each stream's topic: when, in how many records, by
  which try and transaction. A `LedgerView` reads it in the background (read_committed, from the beginning, then
  tailing it) into a small in-memory SQLite table, so that a page asks SQL, not Kafka.
- Airflow's runs (dag_run, task_instance, deadline) say what was tried, and how it ended; they are read in SQL
  through Airflow's session.

`stream_minutes` gives the state of each minute of one stream's period (the Coverage tab), and says where the two
disagree; `stream_summaries` gives each stream's figures (the all-streams page), aggregated in SQL on both sides.
`is_unreachable` is the one place that decides which minutes can no longer be delivered.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from include import ledger
from include.streams import Stream, Streams
from twitter_provider.timetables import CATCH_UP_AFTER

log = logging.getLogger(__name__)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
RATE_LIMIT_WINDOW = timedelta(minutes=15)  # X counts requests per 15 minutes
POSTS_PER_REQUEST = 100  # a window of n posts takes max(1, ceil(n / 100)) requests
KEPT = WEEK + DAY  # the view keeps the ledger's entries of the last 8 days (the pages show at most 7)


class State(StrEnum):
    """What happened to a minute of a stream, as its cell's colour says."""

    DELIVERED = "delivered"
    LATE = "late"  # delivered, but more than the stream's late_after_minutes after it became searchable
    REDELIVERED = "re-delivered"  # delivered again (by a cleared run, or another run of the minute)
    RUNNING = "running"  # its run is queued or running, nothing delivered yet
    FAILED = "failed"  # its run failed, nothing delivered
    MISSING = "missing"  # searchable, but no run yet
    UNREACHABLE = "unreachable"  # beyond the search's reach when its run came (or before one came)
    NOT_DUE = "not due"  # not searchable yet
    BEFORE = "before"  # before the stream's first window


@dataclass(frozen=True)
class Entry:
    """A window's entry, as the ledger holds it (its latest, and how many deliveries the view has seen): its delivery,
    or, with the outcome `unreachable`, the healing's record that X could no longer serve it."""

    topic: str
    query: str
    outcome: str
    records: int
    searchable_at: datetime
    committed_at: datetime
    run_id: str
    run_type: str
    try_number: int
    clear_number: int
    transactional_id: str | None
    deliveries: int

    @property
    def freshness(self) -> timedelta:
        """Searchable to committed: how long after its tweets could be searched they were in Kafka."""
        return self.committed_at - self.searchable_at


@dataclass(frozen=True)
class Run:
    """One Airflow run of a minute of a stream, with its tasks' latest tries: task id to (state, try number)."""

    id: int
    run_id: str
    run_type: str
    state: str
    window: datetime
    topic: str
    query: str
    run_after: datetime
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    clear_number: int
    note: str | None
    tries: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    alerted: bool = False  # its late alert fired

    @property
    def catch_up(self) -> timedelta | None:
        """How late a scheduled run was created after its window became searchable, if it was a catch-up run."""
        if self.run_type != "scheduled" or self.queued_at is None:
            return None
        lag = self.queued_at - self.run_after
        return lag if lag > CATCH_UP_AFTER else None

    @property
    def skipped(self) -> bool:
        """Whether its search was skipped: the window was beyond the search's reach when it ran."""
        return self.tries.get("fetch_tweets", (None, 0))[0] == "skipped"


@dataclass
class Minute:
    """A minute of a stream: its state, its ledger entry, its runs with the stream's topic and query, the others
    (manual runs with another topic or query), and what the ledger and Airflow disagree about, if anything."""

    start: datetime
    searchable_at: datetime
    state: State
    entry: Entry | None = None
    runs: list[Run] = field(default_factory=list)
    other_runs: list[Run] = field(default_factory=list)
    disagreement: str | None = None

    @property
    def run(self) -> Run | None:
        """The run that delivered the minute, or else its latest run."""
        for run in self.runs:
            if self.entry and run.run_id == self.entry.run_id:
                return run
        return self.runs[-1] if self.runs else None

    @property
    def catch_up(self) -> timedelta | None:
        return self.run.catch_up if self.run else None


def is_unreachable(minute: Minute, earliest_reachable: datetime) -> bool:
    """Whether a minute of a stream can no longer be delivered: the healing recorded it so in the ledger (X could
    no longer serve it), its run skipped the search for that reason, or no run came before it passed beyond the
    search's reach. The one place that decides it."""
    if minute.entry is not None:
        return minute.entry.outcome == "unreachable"
    if any(run.skipped for run in minute.runs):
        return True
    return not minute.runs and minute.start < earliest_reachable


def classify(
    minute: Minute, stream: Stream, now: datetime, first: datetime | None, reachable: datetime
) -> None:
    """Set the minute's state, and what the ledger and Airflow disagree about, from its entry and runs."""
    entry, run = minute.entry, minute.run
    if entry is not None and entry.outcome == "delivered":
        if entry.deliveries > 1:
            minute.state = State.REDELIVERED
        elif entry.freshness > stream.late_after:
            minute.state = State.LATE
        else:
            minute.state = State.DELIVERED
        if run is None:
            minute.disagreement = (
                f"the ledger has a delivery by run {entry.run_id!r}, which Airflow does not have"
            )
        elif run.run_id == entry.run_id and run.state == "failed":
            minute.disagreement = (
                f"Airflow says run {run.run_id!r} failed, but the ledger has its delivery, committed by try "
                f"{entry.try_number}: the window is in Kafka"
            )
        return
    before = run is None and entry is None and (first is None or minute.start < first)
    if any(run.state in ("queued", "running") for run in minute.runs):
        minute.state = State.RUNNING
    elif not before and is_unreachable(minute, reachable):
        minute.state = State.UNREACHABLE
    elif run is not None and run.state == "failed":
        minute.state = State.FAILED
    elif run is not None and run.state == "success":
        minute.state = State.DELIVERED
        minute.disagreement = (
            f"Airflow says run {run.run_id!r} succeeded, but the ledger has no delivery of this window to topic "
            f"{stream.topic!r} (yet)"
        )
    elif minute.searchable_at > now:
        minute.state = State.NOT_DUE
    elif before:
        minute.state = State.BEFORE
    else:
        minute.state = State.MISSING


# The ledger view's tables: each stream's, topic's and minute's latest entry, and, kept by triggers as entries come,
# change and go, each hour's deliveries, records and unreachable minutes, and the count of each freshness bin of its
# deliveries (searchable -> committed, to 0.1 s under a minute, 1 s under an hour, 1 minute beyond), by stream, topic
# and query; so that a stream's figures sum a few hundred rows.
_BIN = "CASE WHEN {f} < 60000 THEN {f} / 100 * 100 WHEN {f} < 3600000 THEN {f} / 1000 * 1000 ELSE {f} / 60000 * 60000 END"
_ADD = """
    INSERT INTO hourly VALUES ({r}.stream, {r}.topic, {r}.query, {r}.minute / 60, {r}.outcome = 'delivered',
        {r}.outcome = 'unreachable', CASE WHEN {r}.outcome = 'delivered' THEN {r}.records ELSE 0 END)
        ON CONFLICT DO UPDATE SET deliveries = deliveries + excluded.deliveries,
        unreachable = unreachable + excluded.unreachable, records = records + excluded.records;
    INSERT INTO freshness SELECT {r}.stream, {r}.topic, {r}.query, {r}.minute / 60, {bin}, 1
        WHERE {r}.outcome = 'delivered' ON CONFLICT DO UPDATE SET n = n + 1;"""
_SUBTRACT = """
    UPDATE hourly SET deliveries = deliveries - ({r}.outcome = 'delivered'),
        unreachable = unreachable - ({r}.outcome = 'unreachable'),
        records = records - CASE WHEN {r}.outcome = 'delivered' THEN {r}.records ELSE 0 END
        WHERE stream = {r}.stream AND topic = {r}.topic AND query = {r}.query AND hour = {r}.minute / 60;
    UPDATE freshness SET n = n - 1 WHERE {r}.outcome = 'delivered' AND stream = {r}.stream AND topic = {r}.topic
        AND query = {r}.query AND hour = {r}.minute / 60 AND bin = {bin};"""
_NEW = {"r": "NEW", "bin": _BIN.format(f="NEW.committed - NEW.searchable")}
_OLD = {"r": "OLD", "bin": _BIN.format(f="OLD.committed - OLD.searchable")}
SCHEMA = f"""
CREATE TABLE delivery (stream TEXT, topic TEXT, minute INTEGER, query TEXT, outcome TEXT, records INTEGER,
    searchable INTEGER, committed INTEGER, run_id TEXT, run_type TEXT, try_number INTEGER, clear_number INTEGER,
    transactional_id TEXT, deliveries INTEGER, PRIMARY KEY (stream, topic, minute)) WITHOUT ROWID;
CREATE TABLE hourly (stream TEXT, topic TEXT, query TEXT, hour INTEGER, deliveries INTEGER, unreachable INTEGER,
    records INTEGER, PRIMARY KEY (stream, topic, query, hour)) WITHOUT ROWID;
CREATE TABLE freshness (stream TEXT, topic TEXT, query TEXT, hour INTEGER, bin INTEGER, n INTEGER,
    PRIMARY KEY (stream, topic, query, hour, bin)) WITHOUT ROWID;
CREATE TRIGGER entered AFTER INSERT ON delivery BEGIN {_ADD.format(**_NEW)}
END;
CREATE TRIGGER entered_again AFTER UPDATE ON delivery BEGIN {_SUBTRACT.format(**_OLD)} {_ADD.format(**_NEW)}
END;
CREATE TRIGGER forgotten AFTER DELETE ON delivery BEGIN {_SUBTRACT.format(**_OLD)}
END;
"""


class LedgerView:
    """
    The delivery ledger of one Kafka connection, kept up to date in memory: a reader thread consumes the ledger
    topic read_committed from its beginning and then as records arrive, and keeps each stream's, topic's and
    minute's latest entry (of the last 8 days) in an in-memory SQLite table that the pages query.

    :param conn_id: the Kafka connection to read it through (the streams' `kafka_conn_id`)
    :param topic: the ledger's topic (the stream file's `delivery_ledger_topic`)
    :param config: the consumer's config; None: the connection's extra, as produce_tweets reads it
    """

    def __init__(self, conn_id: str, topic: str, config: dict[str, Any] | None = None):
        self.conn_id = conn_id
        self.topic = topic
        self._config = config
        self.records = 0  # ledger records read so far
        self.caught_up = threading.Event()  # set once every partition was read to its end
        self.error: str | None = None  # why it cannot read the ledger now (for the API server's log)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._thread = threading.Thread(target=self._read, name=f"ledger-view-{conn_id}", daemon=True)
        self._stop = threading.Event()

    def start(self) -> LedgerView:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # Reading

    def _consumer_config(self) -> dict[str, Any]:
        from include.kafka_delivery import PRODUCER_ONLY

        if self._config is None:
            from airflow.models.connection import Connection

            extra = Connection.get_connection_from_secrets(self.conn_id).extra_dejson
            self._config = {key: value for key, value in extra.items() if key not in PRODUCER_ONLY}
        return {**self._config, **ledger.READER_CONFIG, "group.id": "tweets-to-kafka-coverage"}

    def _read(self) -> None:
        """Read the ledger until stopped; on a failure, say why in the log and start over after a pause."""
        while not self._stop.is_set():
            try:
                self._read_from_beginning()
            except Exception as error:  # noqa: BLE001 - a reader that dies would leave the pages stale
                self.error = f"{type(error).__name__}: {error}"
                log.warning(
                    "Cannot read the delivery ledger %r through connection %r: %s; trying again in 10 s",
                    self.topic,
                    self.conn_id,
                    self.error,
                )
                self._stop.wait(10)

    def _read_from_beginning(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

        consumer = Consumer(self._consumer_config())
        try:
            metadata = consumer.list_topics(self.topic, timeout=30).topics[self.topic]
            if metadata.error is not None:
                if metadata.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise KafkaException(metadata.error)
                self.caught_up.set()  # no ledger yet: nothing was delivered
                self._stop.wait(10)
                return
            with self._lock, self._db:
                for table in ("delivery", "hourly", "freshness"):
                    self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - the tables' names
                self.records = 0
            partitions = set(metadata.partitions)
            consumer.assign(
                [TopicPartition(self.topic, partition, OFFSET_BEGINNING) for partition in partitions]
            )
            self.error = None
            pruned = time.monotonic()
            while not self._stop.is_set():
                batch = consumer.consume(1000, timeout=1.0)
                values = []
                for message in batch:
                    error = message.error()
                    if error is None:
                        values.append((message.key(), message.value()))
                    elif error.code() == KafkaError._PARTITION_EOF:
                        partitions.discard(message.partition())
                    else:
                        raise KafkaException(error)
                if values:
                    self._apply(values)
                if not partitions:
                    self.caught_up.set()
                if time.monotonic() - pruned > 3600:
                    self._prune()
                    pruned = time.monotonic()
        finally:
            consumer.close()

    def _apply(self, values: list[tuple[bytes | None, bytes | None]]) -> None:
        """Keep each entry: the latest of its stream, topic and minute, counting the deliveries seen."""
        oldest = int((datetime.now(UTC) - KEPT).timestamp()) // 60
        rows, gone = [], []
        for key, value in values:
            if ledger.kind_of(key) is not ledger.Delivery:  # a compliance job's result
                continue
            if value is None:  # a tombstone
                stream, topic, start = key.decode().rsplit("/", 2)
                gone.append((stream, topic, _minute(datetime.strptime(start, "%Y-%m-%dT%H:%MZ"))))
                continue
            delivery = ledger.decode(value)
            if (minute := _minute(delivery.window_start)) < oldest:
                continue
            rows.append(
                (
                    delivery.stream,
                    delivery.topic,
                    minute,
                    delivery.query,
                    delivery.outcome,
                    delivery.records,
                    _ms(delivery.searchable_at),
                    _ms(delivery.committed_at),
                    delivery.run_id,
                    delivery.run_type,
                    delivery.try_number,
                    delivery.clear_number,
                    delivery.transactional_id,
                )
            )
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO delivery VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (stream, topic, minute) DO UPDATE SET query = excluded.query, "
                "outcome = excluded.outcome, records = excluded.records, searchable = excluded.searchable, "
                "committed = excluded.committed, run_id = excluded.run_id, run_type = excluded.run_type, "
                "try_number = excluded.try_number, clear_number = excluded.clear_number, "
                "transactional_id = excluded.transactional_id, deliveries = deliveries + 1",
                rows,
            )
            self._db.executemany("DELETE FROM delivery WHERE stream = ? AND topic = ? AND minute = ?", gone)
            self.records += len(values)

    def _prune(self) -> None:
        oldest = int((datetime.now(UTC) - KEPT).timestamp()) // 60
        with self._lock, self._db:
            for table, column, value in (("delivery", "minute", oldest), ("hourly", "hour", oldest // 60)):
                self._db.execute(f"DELETE FROM {table} WHERE {column} < ?", (value,))  # noqa: S608 - names
            self._db.execute("DELETE FROM freshness WHERE hour < ? OR n = 0", (oldest // 60,))

    # Queries

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(parameters)).fetchall()

    def entries(self, stream: str, since: datetime, until: datetime) -> dict[datetime, list[Entry]]:
        """Every topic's entry of each minute of a stream in [since, until), by minute."""
        rows = self.query(
            "SELECT minute, topic, query, outcome, records, searchable, committed, run_id, run_type, try_number, "
            "clear_number, transactional_id, deliveries FROM delivery "
            "WHERE stream = ? AND minute >= ? AND minute < ?",
            (stream, _minute(since), _minute(until)),
        )
        found: dict[datetime, list[Entry]] = defaultdict(list)
        for minute, topic, query, outcome, records, searchable, committed, *rest in rows:
            entry = Entry(topic, query, outcome, records, _from_ms(searchable), _from_ms(committed), *rest)
            found[_from_minute(minute)].append(entry)
        return found

    def summaries(self, streams: list[Stream], now: datetime) -> dict[str, dict[str, Any]]:
        """For each stream, over its own topic: the minutes delivered (and late) in the last 24 and 168 clock hours up
        to the current one, the records and the median and 95th-percentile freshness (to its bin) of the 24 hours,
        and the X API requests that its deliveries of the last 15 minutes took. Sums of the hourly tables."""
        if not streams:
            return {}
        own = " UNION ALL ".join(["SELECT ? AS stream, ? AS topic, ? AS query, ? AS late"] * len(streams))
        parameters: list[Any] = []
        for stream in streams:
            parameters += [
                stream.name,
                stream.topic,
                stream.query,
                int(stream.late_after.total_seconds() * 1000),
            ]
        day, week = (_hour(now) - 23, _hour(now) - 24 * 7 + 1)
        figures: dict[str, dict[str, Any]] = {stream.name: {} for stream in streams}
        for stream, deliveries, in_day, day_records, unreachable in self.query(
            f"""WITH own AS ({own})
            SELECT h.stream, SUM(h.deliveries), SUM(CASE WHEN h.hour >= ? THEN h.deliveries END),
                   SUM(CASE WHEN h.hour >= ? THEN h.records END), SUM(CASE WHEN h.hour >= ? THEN h.unreachable END)
            FROM own JOIN hourly h
                ON h.stream = own.stream AND h.topic = own.topic AND h.query = own.query AND h.hour >= ?
            GROUP BY h.stream""",  # noqa: S608 - placeholders only
            [*parameters, day, day, day, week],
        ):
            figures[stream] |= {
                "week": deliveries,
                "day": in_day or 0,
                "day_records": day_records or 0,
                "day_unreachable": unreachable or 0,
            }
        for stream, late, median, p95 in self.query(
            f"""WITH own AS ({own}),
            bins AS (
                SELECT f.stream, f.bin, SUM(f.n) AS n, own.late FROM own
                JOIN freshness f
                    ON f.stream = own.stream AND f.topic = own.topic AND f.query = own.query AND f.hour >= ?
                GROUP BY f.stream, f.bin
            ),
            cumulative AS (
                SELECT stream, bin, n, late, SUM(n) OVER (PARTITION BY stream ORDER BY bin) AS below,
                       SUM(n) OVER (PARTITION BY stream) AS total
                FROM bins WHERE n > 0
            )
            SELECT stream, SUM(CASE WHEN bin >= late THEN n ELSE 0 END),
                   MIN(CASE WHEN below >= 0.5 * total THEN bin END), MIN(CASE WHEN below >= 0.95 * total THEN bin END)
            FROM cumulative GROUP BY stream""",  # noqa: S608 - placeholders only
            [*parameters, day],
        ):
            figures[stream] |= {"day_late": late, "median_ms": median, "p95_ms": p95}
        recent = _ms(now - RATE_LIMIT_WINDOW)
        for stream, requests in self.query(
            f"""WITH own AS ({own})
            SELECT d.stream, SUM(MAX(1, (d.records + {POSTS_PER_REQUEST - 1}) / {POSTS_PER_REQUEST}))
            FROM own JOIN delivery d ON d.stream = own.stream AND d.topic = own.topic AND d.minute >= ?
            WHERE d.committed >= ? AND d.outcome = 'delivered' GROUP BY d.stream""",  # noqa: S608 - placeholders
            [*parameters, _minute(now - DAY), recent],
        ):
            figures[stream]["requests"] = requests
        return figures


_views: dict[tuple[str, str], LedgerView] = {}
_views_lock = threading.Lock()


def ledger_view(conn_id: str, topic: str, wait: float = 0) -> LedgerView:
    """The process's LedgerView of this connection and ledger topic, started on first use; wait up to `wait`
    seconds for it to have read the ledger to its end."""
    with _views_lock:
        view = _views.get((conn_id, topic))
        if view is None:
            view = _views[(conn_id, topic)] = LedgerView(conn_id, topic).start()
    view.caught_up.wait(wait)
    return view


# Airflow's side


def stream_runs(session, stream: Stream, since: datetime, until: datetime) -> list[Run]:
    """The runs of a stream's minutes in [since, until), with their tasks' latest tries and whether their late
    alert fired: three queries, whatever the number of runs."""
    from airflow.models.dagrun import DagRun, DagRunNote
    from airflow.models.deadline import Deadline
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import and_, or_, select

    in_period = or_(
        and_(DagRun.logical_date >= since, DagRun.logical_date < until),
        and_(DagRun.logical_date.is_(None), DagRun.run_after >= since, DagRun.run_after < until + MINUTE),
    )
    rows = session.execute(
        select(
            DagRun.id,
            DagRun.run_id,
            DagRun.run_type,
            DagRun.state,
            DagRun.logical_date,
            DagRun.run_after,
            DagRun.queued_at,
            DagRun.start_date,
            DagRun.end_date,
            DagRun.clear_number,
            DagRun.conf,
            DagRunNote.content,
        )
        .outerjoin(DagRunNote, DagRunNote.dag_run_id == DagRun.id)
        .where(DagRun.dag_id == stream.name, in_period)
        .order_by(DagRun.run_after)
    ).all()
    tries: dict[str, dict[str, tuple[str | None, int]]] = defaultdict(dict)
    run_ids = select(DagRun.run_id).where(DagRun.dag_id == stream.name, in_period)
    for run_id, task_id, state, try_number in session.execute(
        select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number).where(
            TaskInstance.dag_id == stream.name, TaskInstance.run_id.in_(run_ids)
        )
    ):
        tries[run_id][task_id] = (state, try_number)
    alerted = set(
        session.scalars(
            select(Deadline.dagrun_id)
            .join(DagRun, DagRun.id == Deadline.dagrun_id)
            .where(DagRun.dag_id == stream.name, in_period, Deadline.missed)
        )
    )
    runs = []
    for row in rows:
        conf = row.conf or {}
        runs.append(
            Run(
                id=row.id,
                run_id=row.run_id,
                run_type=row.run_type,
                state=row.state,
                window=_floor(row.logical_date) if row.logical_date else _floor(row.run_after) - MINUTE,
                topic=conf.get("topic", stream.topic),
                query=conf.get("query", stream.query),
                run_after=row.run_after,
                queued_at=row.queued_at,
                start_date=row.start_date,
                end_date=row.end_date,
                clear_number=row.clear_number,
                note=row.content,
                tries=tries.get(row.run_id, {}),
                alerted=row.id in alerted,
            )
        )
    return runs


def first_windows(session, dag_ids: list[str]) -> dict[str, datetime]:
    """Each stream's first scheduled or backfilled window: its minutes are due from there on."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import func, select

    rows = session.execute(
        select(DagRun.dag_id, func.min(DagRun.logical_date))
        .where(DagRun.dag_id.in_(dag_ids), DagRun.run_type.in_(["scheduled", "backfill"]))
        .group_by(DagRun.dag_id)
    )
    return {dag_id: first for dag_id, first in rows if first is not None}


def owns(stream: Stream, item: Entry | Run) -> bool:
    """Whether a ledger entry or a run is the stream's: to its topic with its query (a manual run with another
    query or topic is not, as the healing sees it), or the healing's record that its minute is unreachable."""
    if getattr(item, "outcome", None) == "unreachable":
        return item.topic == stream.topic
    return item.topic == stream.topic and item.query == stream.query


def stream_minutes(
    session, view: LedgerView, stream: Stream, since: datetime, until: datetime, now: datetime
) -> list[Minute]:
    """Every minute of a stream in [since, until), oldest first, each with its state."""
    from twitter_provider.timetables import SearchableMinuteTimetable, search_horizon

    since, until = _floor(since), _floor(until)
    first = first_windows(session, [stream.name]).get(stream.name)
    timetable = SearchableMinuteTimetable(settle=stream.settle, horizon=search_horizon())
    reachable = timetable.earliest_reachable(now)
    entries = view.entries(stream.name, since, until)
    runs: dict[datetime, list[Run]] = defaultdict(list)
    for run in stream_runs(session, stream, since, until):
        runs[run.window].append(run)
    minutes = []
    start = since
    while start < until:
        own = [entry for entry in entries.get(start, ()) if owns(stream, entry)]
        minute = Minute(
            start=start,
            searchable_at=timetable.searchable_at(start + MINUTE),
            state=State.MISSING,
            entry=own[0] if own else None,
            runs=[run for run in runs.get(start, ()) if owns(stream, run)],
            other_runs=[run for run in runs.get(start, ()) if not owns(stream, run)],
        )
        classify(minute, stream, now, first, reachable)
        minutes.append(minute)
        start += MINUTE
    return minutes


class Failure(NamedTuple):
    """A stream's latest failed run."""

    run_id: str
    window: datetime | None
    ended: datetime | None


@dataclass
class Summary:
    """A stream's figures on the all-streams page."""

    stream: Stream
    due_day: int = 0
    delivered_day: int = 0
    late_day: int = 0
    due_week: int = 0
    delivered_week: int = 0
    runs_day: dict[str, int] = field(default_factory=dict)  # run state to count, the last 24 hours
    unreachable_day: int = 0  # minutes the healing recorded unreachable, the last 24 hours
    freshness_median: timedelta | None = None
    freshness_p95: timedelta | None = None
    tweets_per_minute: float | None = None
    requests: int = 0  # X API requests of its deliveries in the last 15 minutes
    app_requests: int = 0  # of every stream on its X app
    app_streams: int = 0
    rate_limit: int = 0
    last_failure: Failure | None = None


def stream_summaries(session, views: dict[str, LedgerView], streams: Streams, names: set[str], now: datetime):
    """The figures of each stream named in `names` (those the user may read), in the stream file's order.
    `views`: the LedgerView of each Kafka connection."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import func, select

    chosen = [stream for stream in streams.streams if stream.name in names]
    dag_ids = [stream.name for stream in chosen]
    # the 24 and 168 clock hours up to the current one, as the ledger view sums its hourly tables
    hour = now.replace(minute=0, second=0, microsecond=0)
    day, week = hour - DAY + timedelta(hours=1), hour - WEEK + timedelta(hours=1)
    firsts = first_windows(session, dag_ids)
    runs_day: dict[str, dict[str, int]] = defaultdict(dict)
    for dag_id, state, count in session.execute(
        select(DagRun.dag_id, DagRun.state, func.count())
        .where(DagRun.dag_id.in_(dag_ids), DagRun.logical_date >= day, DagRun.logical_date < now)
        .group_by(DagRun.dag_id, DagRun.state)
    ):
        runs_day[dag_id][state] = count
    ranked = (
        select(
            DagRun.dag_id,
            DagRun.run_id,
            DagRun.logical_date,
            DagRun.end_date,
            func.row_number().over(partition_by=DagRun.dag_id, order_by=DagRun.end_date.desc()).label("rank"),
        )
        .where(DagRun.dag_id.in_(dag_ids), DagRun.state == "failed")
        .subquery()
    )
    last_failures = {
        dag_id: Failure(run_id, _floor(logical_date) if logical_date else None, end_date)
        for dag_id, run_id, logical_date, end_date, _ in session.execute(
            select(ranked).where(ranked.c.rank == 1)
        )
    }

    by_view: dict[str, dict[str, Any]] = {}
    for conn_id, view in views.items():
        by_view |= view.summaries([stream for stream in chosen if stream.kafka_conn_id == conn_id], now)
    app_requests: dict[str, int] = defaultdict(int)
    app_streams: dict[str, int] = defaultdict(int)
    for stream in streams.streams:
        app_requests[stream.twitter_conn_id] += (by_view.get(stream.name) or {}).get("requests") or 0
        app_streams[stream.twitter_conn_id] += 1

    summaries = []
    for stream in chosen:
        ledger_figures = by_view.get(stream.name) or {}
        last_due = _floor(now - stream.settle) - MINUTE  # the start of the last searchable window
        first = firsts.get(stream.name)
        summary = Summary(stream)
        summary.due_day = _minutes_between(max(filter(None, [first, day])), last_due)
        summary.due_week = _minutes_between(max(filter(None, [first, week])), last_due)
        if first is None:
            summary.due_day = summary.due_week = 0
        summary.delivered_day = ledger_figures.get("day") or 0
        summary.late_day = ledger_figures.get("day_late") or 0
        summary.delivered_week = ledger_figures.get("week") or 0
        summary.runs_day = runs_day.get(stream.name, {})
        summary.unreachable_day = ledger_figures.get("day_unreachable") or 0
        if ledger_figures.get("median_ms") is not None:
            summary.freshness_median = timedelta(milliseconds=ledger_figures["median_ms"])
            summary.freshness_p95 = timedelta(milliseconds=ledger_figures["p95_ms"])
        if summary.delivered_day:
            summary.tweets_per_minute = (ledger_figures.get("day_records") or 0) / summary.delivered_day
        summary.requests = ledger_figures.get("requests") or 0
        summary.app_requests = app_requests[stream.twitter_conn_id]
        summary.app_streams = app_streams[stream.twitter_conn_id]
        summary.rate_limit = streams.rate_limit_per_15_minutes
        summary.last_failure = last_failures.get(stream.name)
        summaries.append(summary)
    return summaries


def _minutes_between(first: datetime, last: datetime) -> int:
    return max(0, (last - first) // MINUTE + 1)


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _hour(moment: datetime) -> int:
    return int(moment.timestamp()) // 3600


def _minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


def _from_minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
