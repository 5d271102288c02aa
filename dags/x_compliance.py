"""One compliance DAG per X connection of the stream file (include/streams.yaml): every few hours, one X batch
compliance job for the posts still stored in its streams' topics, and its result in Kafka. While the stream file
is broken, its last good streams are checked (include/streams.py); dags/stream_file.py reports the file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, conf, get_parsing_context
from airflow.timetables.trigger import CronTriggerTimetable

from include.compliance import ComplianceOperator
from include.streams import (
    KAFKA_TOPIC,
    Stream,
    StreamFileError,
    Streams,
    as_id,
    compliance_dag_id,
    running_streams,
)

# Seconds between two looks at a running job, in the triggerer (X allows 150 a 15-minute window).
POLL_SECONDS = conf.getfloat("tweets_to_kafka", "compliance_poll_seconds", fallback=60.0)
DOC = """### {dag_id}

X requires whoever stores posts to delete or change them within 24 hours once they are deleted, their
account protected, suspended or deactivated, withheld, edited or their geo scrubbed. Every
{every_hours} hours (UTC), this DAG checks every post still stored in the topics of the streams on the X
connection `{twitter_conn_id}` ({streams}) with one X batch compliance job, and writes its result:

- a tombstone (key = tweet id, value null) to the topic of each stream that holds a post to delete
  (deleted, protected, suspended, deactivated) or whose edit replaced it, so that a compacted topic
  and every upserting consumer drop it;
- one compliance event per result line (id, action, reason, times, streams) to `{compliance_topic}`,
  for consumers that keep their own stores;

in one Kafka transaction per job, with the job's entry in the delivery ledger: written whole, once.
The task waits for the job deferred, in the triggerer, holding no worker slot. Each run is a full
sweep, so a missed run costs nothing but time; a failed or expired job fails the try and the retry
makes a new one. Manual runs may give other topics for some streams (`streams`) and another
`compliance_topic` in their conf. See docs/operating.md, "X compliance"."""


def compliance_dag(twitter_conn_id: str, streams: list[Stream], settings: Streams) -> DAG:
    """The compliance DAG of one X connection: one task per Kafka connection of its streams, one after another
    (X runs one job of a type at a time)."""
    dag_id = compliance_dag_id(twitter_conn_id)
    topics = {stream.name: stream.topic for stream in streams}
    every = settings.compliance_every_hours
    with DAG(
        dag_id=dag_id,
        schedule=CronTriggerTimetable(f"0 */{every} * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,  # each run checks every stored post: only the latest missed one runs
        max_active_runs=1,
        default_args={
            "retries": 3,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
            "execution_timeout": timedelta(minutes=30),  # the worker's part; the job's wait is the trigger's
        },
        params={
            "streams": Param(
                topics,
                type="object",
                properties={name: {"type": "string", "pattern": KAFKA_TOPIC} for name in topics},
                additionalProperties=False,
                description="each stream's topic to check (another one for a manual run)",
            ),
            "compliance_topic": Param(
                settings.compliance_topic,
                type="string",
                pattern=KAFKA_TOPIC,
                description="the Kafka topic of the compliance events",
            ),
        },
        tags=["x-api", "kafka", "compliance", f"x-connection:{twitter_conn_id}"],
        doc_md=DOC.format(
            dag_id=dag_id,
            every_hours=every,
            twitter_conn_id=twitter_conn_id,
            streams=", ".join(topics),
            compliance_topic=settings.compliance_topic,
        ),
    ) as dag:
        previous = None
        for kafka_conn_id in dict.fromkeys(stream.kafka_conn_id for stream in streams):
            task = ComplianceOperator(
                task_id=f"compliance_{as_id(kafka_conn_id)}",
                streams={
                    stream.name: stream.topic for stream in streams if stream.kafka_conn_id == kafka_conn_id
                },
                twitter_conn_id=twitter_conn_id,
                kafka_config_id=kafka_conn_id,
                compliance_topic=settings.compliance_topic,
                ledger_topic=settings.delivery_ledger_topic,
                poll_interval=POLL_SECONDS,
            )
            if previous is not None:
                previous >> task
            previous = task
    return dag


try:
    STREAMS = running_streams()
except StreamFileError:
    STREAMS = None  # no DAGs, and no last good streams: dags/stream_file.py reports why as its import error
_running = get_parsing_context().dag_id
for _conn_id, _streams in (STREAMS.by_x_connection() if STREAMS else {}).items():
    if _running in (None, compliance_dag_id(_conn_id)):
        compliance_dag(_conn_id, _streams, STREAMS)
