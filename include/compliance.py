"""X's batch compliance for the posts still stored in the streams' topics: `ComplianceOperator` gathers their ids,
runs one X compliance job for them, waiting in the triggerer (no worker slot), and writes its result to Kafka in
one transaction: a tombstone (key = tweet id, value null) for every post to drop, in each stream topic that holds
it, one compliance event per result line to the compliance topic, and the job's entry in the delivery ledger
(include/ledger.py), so that a retry after a commit writes nothing again.

What each result asks (X's `action`, and its `reason`):

- `delete` (deleted, protected, suspended, deactivated): a tombstone, and an event;
- `rehydrate` (tweet_edited): a tombstone of the listed (older) id, and an event: the edit is a post of its own,
  with its own id, which the run of its minute stores;
- `scrub_geo` (geo_scrubbed): an event only, as the records carry no post geo;
- a withheld post (reason `withheld`): an event only: it stays on X, hidden in some countries only, which the
  result does not name; a consumer that serves those countries drops it on the event.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from include import ledger
from include.kafka_delivery import (
    DeliveryReport,
    KafkaClients,
    kafka_connection,
    produce_record,
)
from include.streams import COMPLIANCE_TOPIC

RETENTION = timedelta(days=14)  # the events of more than two weeks of sweeps, for consumers that fall behind
TOPIC_CONFIG = {
    "cleanup.policy": "compact,delete",  # the latest event of each post
    "retention.ms": str(int(RETENTION.total_seconds() * 1000)),
}
COMPLIANCE_GRANT = "Describe Write Create"  # Create only while the compliance topic does not exist yet
# Read to gather the posts' ids (Describe comes with it), Write for the tombstones
STREAM_TOPIC_GRANT = "Read Write"
TOMBSTONE_ACTIONS = ("delete", "rehydrate")
EVENT_ONLY_REASONS = ("withheld",)
JOB_NAME_LENGTH = 64  # X's limit for a compliance job's name
UPLOAD_MARGIN = timedelta(minutes=2)  # a found job's upload URL must live this much longer to be used
READ_STALL_TIMEOUT = (
    90.0  # seconds without progress while reading a topic: past transaction.timeout.ms (60 s)
)
_POST_ID = re.compile(rb"[0-9]{1,19}")
log = logging.getLogger(__name__)


class ComplianceEvent(msgspec.Struct, kw_only=True, frozen=True):
    """One result line of a compliance job, as written to the compliance topic (key: the post's id)."""

    id: str
    action: str  # delete, rehydrate or scrub_geo
    reason: str | None  # deleted, protected, suspended, deactivated, withheld, tweet_edited, geo_scrubbed
    created_at: str | None  # when the post was created, as X wrote it
    redacted_at: str | None  # when X's event happened
    streams: list[str]  # the streams whose topics held the post
    tombstoned: list[str]  # the topics that got a tombstone of it
    job_id: str


_encoder = msgspec.json.Encoder()


def drops_post(result: dict[str, Any]) -> bool:
    """Whether a result line asks for the post's record to go: a tombstone."""
    return result.get("action") in TOMBSTONE_ACTIONS and result.get("reason") not in EVENT_ONLY_REASONS


def job_name(dag_id: str, task_id: str, run_id: str, clear_number: int) -> str:
    """The name of a run's job (until it is cleared), found again by a retry: a digest of the DAG, task, run and
    clear, then the run id, within X's 64 characters, e.g. `3f2a9c0d1e4b scheduled__2026-12-01T06:00:00+00:00`."""
    digest = hashlib.sha256(f"{dag_id}\n{task_id}\n{run_id}\n{clear_number}".encode()).hexdigest()[:12]
    return f"{digest} {run_id}"[:JOB_NAME_LENGTH]


def stored_ids(reader, topic: str, timeout: float, only: set[str] | None = None) -> dict[int, set[str]]:
    """The posts a topic still holds, by partition: each key whose latest committed record is not a tombstone
    (of `only`, if given). It reads every partition from its beginning (what retention has not deleted yet is
    still stored) with `reader` (KafkaClients.reader: read_committed, assign(), no consumer group), up to the
    high watermark of the start: an open transaction is waited for, at most `timeout` seconds without progress.
    A key that is not a post id is left out, with a warning."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    metadata = reader.list_topics(topic, timeout).topics[topic]
    if metadata.error is not None:
        raise KafkaException(metadata.error)
    ends = {}
    for partition in metadata.partitions:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout, cached=False)
        if high > low:
            ends[partition] = high
    stored: dict[int, set[str]] = {partition: set() for partition in metadata.partitions}
    reader.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in ends])
    foreign: Counter[bytes] = Counter()
    deadline = time.monotonic() + timeout
    while ends:
        messages = reader.consume(10_000, 0.1)
        if messages:
            deadline = time.monotonic() + timeout
        elif time.monotonic() > deadline:
            raise ledger.LedgerTimeout(
                f"topic {topic!r} was not read to its end within {timeout:.0f} s without progress (partitions "
                f"{sorted(ends)}): a transaction of another producer is open in it"
            )
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if message.offset() >= ends.get(message.partition(), 0):
                        ends.pop(message.partition(), None)
                elif error.code() != KafkaError.GROUP_AUTHORIZATION_FAILED:  # see ledger.READER_CONFIG
                    raise KafkaException(error)
                continue
            key = message.key()
            if key is None or not _POST_ID.fullmatch(key):
                foreign[key] += 1
                continue
            post_id = key.decode()
            if only is not None and post_id not in only:
                continue
            if message.value() is None:
                stored[message.partition()].discard(post_id)
            else:
                stored[message.partition()].add(post_id)
    reader.unassign()
    if foreign:
        example = next(iter(foreign))
        log.warning(
            "Topic %r holds %d records whose key is not a post id (e.g. %r): they are not checked",
            topic,
            foreign.total(),
            example[:40] if example else example,
        )
    return stored


class ComplianceOperator(BaseOperator):
    """
    One X batch compliance job for the posts still stored in the topics of some streams (those of one Kafka
    connection), and its result written to Kafka once, whole or not at all.

    A try looks for this run's entry in the delivery ledger (then it is done), gathers the post ids the
    topics hold, finds this run's job by its name or creates it (after waiting in the triggerer for another
    job that is active: X runs one at a time), uploads the ids and waits for the job in the triggerer
    (`ComplianceJobTrigger`), holding no worker slot. Once the job is complete, it reads the job again for
    fresh URLs, downloads the results, finds which stream topics still hold each post, and writes in one
    transaction (`<prefix>:<dag id>.<task id>`, which fences every earlier try): the tombstones, one event per
    result line to `compliance_topic`, and the job's ledger entry. A failed or expired job, or an expired
    URL, fails the try naming the job; the retry makes a new job.

    :param streams: stream name to its topic; a run's `streams` param may give other topics for some of them
    :param twitter_conn_id: the X connection (its app's bearer token)
    :param kafka_config_id: the Kafka connection of these streams
    :param compliance_topic: the compliance events' topic, made on first use; a run's `compliance_topic` param
        may give another
    :param ledger_topic: the delivery ledger's topic
    :param poll_interval: seconds between the trigger's looks at the job
    :param job_timeout: how long to wait for a job before the try fails
    """

    def __init__(
        self,
        *,
        streams: dict[str, str],
        twitter_conn_id: str,
        kafka_config_id: str,
        compliance_topic: str = COMPLIANCE_TOPIC,
        ledger_topic: str = ledger.LEDGER_TOPIC,
        poll_interval: float = 60.0,
        job_timeout: timedelta = timedelta(hours=12),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.streams = streams
        self.twitter_conn_id = twitter_conn_id
        self.kafka_config_id = kafka_config_id
        self.compliance_topic = compliance_topic
        self.ledger_topic = ledger_topic
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout

    # The steps of a try

    def execute(self, context: Any) -> dict[str, Any] | None:
        from twitter_provider.hooks import TwitterHook

        streams = self._streams(context)
        clients = KafkaClients(kafka_connection(self.kafka_config_id))
        reader = clients.reader()
        try:
            earlier = self._earlier_sweep(clients, reader, context)
            if earlier is not None:
                return self._already_written(earlier)
            ids: set[str] = set()
            started = time.monotonic()
            for topic in streams.values():
                for held in self._stored(clients, reader, topic).values():
                    ids |= held
        finally:
            reader.close()
        log.info(
            "Gathered %d post ids from %d topics (%s) in %.1f s",
            len(ids),
            len(streams),
            ", ".join(streams.values()),
            time.monotonic() - started,
        )
        if not ids:
            log.info("The topics hold no post: nothing to check")
            return None
        hook = TwitterHook(self.twitter_conn_id)
        job = self._job(hook, context, ids)
        if job["status"] == "complete":
            return self._write(context, hook, job, len(ids))
        context["ti"].xcom_push(key="ids_checked", value=len(ids))  # kept while the task waits
        self._wait_for(job, "execute_complete", {})
        return None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resumed once the job finished: write its result."""
        from twitter_provider.hooks import ComplianceJobFailed, TwitterHook

        if event["status"] == "error":
            raise AirflowException(
                f"Waiting for X compliance job {event['job_id']} failed: {event['message']}"
            )
        if event["status"] != "complete":
            raise ComplianceJobFailed(
                f"X compliance job {event['job_id']} ended {event['status']} on connection "
                f"{self.twitter_conn_id!r}: it has no results; the task's retry creates a new job"
            )
        hook = TwitterHook(self.twitter_conn_id)
        ids_checked = context["ti"].xcom_pull(task_ids=self.task_id, key="ids_checked")
        return self._write(context, hook, hook.get_compliance_job(event["job_id"]), ids_checked)

    def execute_after_conflict(self, context: Any, event: dict[str, Any]) -> dict[str, Any] | None:
        """Resumed once the job that held X's one active job ended: start again."""
        log.info("%s", event["message"])
        return self.execute(context)

    # Inside

    def _streams(self, context: Any) -> dict[str, str]:
        """This task's streams and their topics, with the topics a run's `streams` param gives instead."""
        given = context["params"].get("streams") or {}
        return {name: given.get(name, topic) for name, topic in self.streams.items()}

    def _stored(self, clients: KafkaClients, reader, topic: str, only: set[str] | None = None):
        """stored_ids(topic), its failures worded with the connection and the grant to add."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            return stored_ids(reader, topic, READ_STALL_TIMEOUT, only)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                log.warning("Topic %r does not exist (yet): no post of it to check", topic)
                return {}
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                what = f"reading topic {topic!r}"
                raise clients.refused(what, error.str(), STREAM_TOPIC_GRANT, "topic", topic) from None
            raise clients.failed(f"reading topic {topic!r}", error, reader) from None
        except ledger.LedgerTimeout as exc:
            raise AirflowException(f"Connection {self.kafka_config_id!r}: {exc}") from None

    def _earlier_sweep(self, clients: KafkaClients, reader, context: Any) -> ledger.ComplianceSweep | None:
        """This run's entry in the ledger, if an earlier try of it committed its job's result."""
        partition, created = clients.ledger_partition(reader, self.ledger_topic, self.dag_id)
        if created:
            return None
        key = ledger.compliance_key(self.dag_id, self.task_id, context["dag_run"].run_id)
        dag_run = context["dag_run"]
        return clients.earlier_entry(
            reader, self.ledger_topic, partition, key, dag_run, ledger.ComplianceSweep
        )

    def _already_written(self, earlier: ledger.ComplianceSweep) -> dict[str, Any]:
        log.info(
            "X compliance job %s (%s) of this run was already written by try %d (%s, clear %d): %d events, "
            "tombstones %s, committed at %s; not writing it again",
            earlier.job_id,
            earlier.job_name,
            earlier.try_number,
            earlier.run_id,
            earlier.clear_number,
            earlier.results,
            earlier.tombstones,
            earlier.committed_at.isoformat(timespec="milliseconds"),
        )
        return msgspec.to_builtins(earlier)

    def _job(self, hook, context: Any, ids: set[str]) -> dict[str, Any]:
        """This run's job with the ids uploaded: found by its name (a try that died made it), else created. While
        another job is active, the task waits for it, deferred, and then starts again."""
        from twitter_provider.hooks import ComplianceJobConflict

        dag_run = context["dag_run"]
        name = job_name(self.dag_id, self.task_id, dag_run.run_id, dag_run.clear_number or 0)
        now = datetime.now(UTC)
        job = next((job for job in hook.list_compliance_jobs() if reusable(job, name, now)), None)
        if job is not None:
            log.info(
                "Found compliance job %s (%s), %s, made by an earlier try", job["id"], name, job["status"]
            )
        else:
            try:
                job = hook.create_compliance_job(name)
            except ComplianceJobConflict as conflict:
                active = [
                    job for job in hook.list_compliance_jobs() if job["status"] in ("created", "in_progress")
                ]
                if not active:
                    raise  # it ended meanwhile: Airflow's retry creates ours
                log.warning(
                    "%s. Waiting in the triggerer for that job, %s (%s, %s), before creating this run's",
                    conflict,
                    active[0]["id"],
                    active[0].get("name", "no name"),
                    active[0]["status"],
                )
                self._wait_for(active[0], "execute_after_conflict", {})
            log.info("Created compliance job %s (%s)", job["id"], name)
        if job["status"] == "created":
            hook.upload_compliance_ids(job, ids)
        return job

    def _wait_for(self, job: dict[str, Any], method_name: str, kwargs: dict[str, Any]) -> None:
        """Defer until the job is complete, failed or expired: the triggerer waits, not a worker slot."""
        from twitter_provider.triggers import ComplianceJobTrigger

        trigger = ComplianceJobTrigger(job["id"], self.twitter_conn_id, self.poll_interval)
        self.defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=self.job_timeout)

    def _write(self, context: Any, hook, job: dict[str, Any], ids_checked: int) -> dict[str, Any]:
        """Write a complete job's result once: its tombstones, its events and its ledger entry in one transaction
        (or, without a transactional id, the entry once the broker acknowledged the rest)."""
        streams = self._streams(context)
        compliance_topic = context["params"].get("compliance_topic") or self.compliance_topic
        clients = KafkaClients(kafka_connection(self.kafka_config_id))
        transactional_id = clients.transactional_id(f"{self.dag_id}.{self.task_id}", "this job's result")
        producer = clients.producer(transactional_id)
        reader = clients.reader()
        try:
            ledger_partition, _ = clients.ledger_partition(reader, self.ledger_topic, self.dag_id)
            what = "the compliance topic"
            clients.topic(reader, compliance_topic, what, COMPLIANCE_GRANT, TOPIC_CONFIG)
            if transactional_id:
                clients.init_transactions(producer, transactional_id, [compliance_topic])
            earlier = self._earlier_sweep(clients, reader, context)
            if earlier is not None:
                return self._already_written(earlier)
            results = hook.download_compliance_results(job)
            wanted = {result["id"] for result in results}
            held = {topic: self._stored(clients, reader, topic, wanted) for topic in streams.values()}
        finally:
            reader.close()
        records = self._records(results, held, streams, compliance_topic, job["id"])
        report = DeliveryReport(clients)
        with clients.transaction(producer, transactional_id, report):
            for topic, key, value, partition in records:
                produce_record(producer, topic, key, value, report, partition)
                producer.poll(0)
            producer.flush()  # the delivery callback raises here, outside commit, if a record failed
            sweep = self._sweep(
                context, job, ids_checked, streams, compliance_topic, report, transactional_id
            )
            entry = ledger.encode(sweep)
            produce_record(producer, self.ledger_topic, sweep.key, entry, report, ledger_partition)
        log.info(
            "Wrote X compliance job %s's result: %d of %d posts had an event; tombstones %s, events to %r",
            job["id"],
            sweep.results,
            ids_checked,
            sweep.tombstones,
            compliance_topic,
        )
        return msgspec.to_builtins(sweep)

    def _records(
        self,
        results: list[dict[str, Any]],
        held: dict[str, dict[int, set[str]]],
        streams: dict[str, str],
        compliance_topic: str,
        job_id: str,
    ) -> Iterator[tuple[str, bytes, bytes | None, int]]:
        """(topic, key, value, partition) of what a job's result writes: for each result line, a tombstone in
        each partition that holds the post (`held`: topic to partition to post ids) when the line asks to drop
        it, then its event (partition -1: the partitioner's)."""
        stream_of = {topic: name for name, topic in streams.items()}
        for result in results:
            key = result["id"].encode()
            where = [
                (topic, partition)
                for topic, partitions in held.items()
                for partition, ids in partitions.items()
                if result["id"] in ids
            ]
            tombstoned = sorted({topic for topic, _ in where}) if drops_post(result) else []
            for topic, partition in where if tombstoned else ():
                yield topic, key, None, partition
            event = ComplianceEvent(
                id=result["id"],
                action=result.get("action", ""),
                reason=result.get("reason"),
                created_at=result.get("created_at"),
                redacted_at=result.get("redacted_at"),
                streams=sorted({stream_of[topic] for topic, _ in where}),
                tombstoned=tombstoned,
                job_id=job_id,
            )
            yield compliance_topic, key, _encoder.encode(event), -1

    def _sweep(
        self,
        context: Any,
        job: dict[str, Any],
        ids_checked: int,
        streams: dict[str, str],
        compliance_topic: str,
        report: DeliveryReport,
        transactional_id: str | None,
    ) -> ledger.ComplianceSweep:
        """The ledger entry of this try's write, from what the broker acknowledged."""
        dag_run = context["dag_run"]
        return ledger.ComplianceSweep(
            dag_id=self.dag_id,
            task_id=self.task_id,
            job_id=job["id"],
            job_name=job.get("name", ""),
            ids_checked=ids_checked,
            results=report.acknowledged[compliance_topic],
            compliance_topic=compliance_topic,
            tombstones={topic: report.acknowledged[topic] for topic in streams.values()},
            run_id=dag_run.run_id,
            run_type=dag_run.run_type.value,
            clear_number=dag_run.clear_number or 0,
            try_number=context["ti"].try_number,
            transactional_id=transactional_id,
            committed_at=datetime.now(UTC),
        )


def reusable(job: dict[str, Any], name: str, now: datetime) -> bool:
    """Whether a listed job is this run's and can still give results: created with time left to upload,
    in progress, or complete with its results still downloadable."""
    if job.get("name") != name:
        return False
    if job["status"] == "created":
        return _time(job["upload_expires_at"]) > now + UPLOAD_MARGIN
    if job["status"] == "complete":
        return _time(job["download_expires_at"]) > now + UPLOAD_MARGIN
    return job["status"] == "in_progress"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
