"""Every stream of the stream file (include/streams.yaml) as a DAG: the tweets of its X query, minute by
minute, to its Kafka topic. A bad entry is left out, or runs as it last was; dags/stream_file.py reports it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, DeadlineAlert, DeadlineReference, Param, SyncCallback, conf, get_parsing_context

from include.fetch_window import FetchWindowOperator
from include.kafka_delivery import TOPIC_ALIAS, ProduceWindowOperator, topic_asset
from include.records import RECORD_FORMATS
from include.streams import (
    KAFKA_TOPIC,
    LOG_LATE_WINDOW,
    MAX_QUERY_LENGTH,
    Stream,
    StreamFileError,
    Streams,
    running_streams,
)
from twitter_provider.timetables import WINDOW, SearchableMinuteTimetable, search_horizon

log = logging.getLogger(__name__)
# The pool that bounds concurrent X API searches of all streams, where the deployment created one (make run,
# docker-compose: `x_api`). Without it, each stream makes at most SEARCHES_PER_STREAM searches at once.
X_API_POOL = conf.get("tweets_to_kafka", "x_api_pool", fallback="") or None
SEARCHES_PER_STREAM = 2
# Each window's late alert, a deadline of its run. `[tweets_to_kafka] late_alerts = False` leaves it out where no
# scheduler runs (`airflow dags test`, which Airflow 3.3.2 ends with an error for a DAG with a deadline after the run
# succeeded: apache/airflow#73428).
LATE_ALERTS = conf.getboolean("tweets_to_kafka", "late_alerts", fallback=True)
DOC = """### {name}

Every minute, fetch the tweets posted in the run's one-minute data interval `[start, end)` that match
`query` from the X API v2 recent search, and write them to the Kafka topic `topic`, keyed by tweet id.
This DAG is the stream `{name}` of the stream file `{path}`: its query, topic, record format, schedule
and connections come from there (each stream of the file is a DAG of this file).

Each minute gets one scheduled run, named by its window (`scheduled__2026-11-25T16:06--16:07Z` covers
[16:06, 16:07) UTC), which starts once the minute is searchable (`settle_seconds`, {settle_seconds:g} s,
after its end). Minutes missed while Airflow was down or the DAG paused run later, oldest first; minutes
beyond the search's 7-day reach are reported by the first run after them. When first enabled, it starts
`look_back_minutes` ({look_back_minutes}) before the current minute.

- **fetch_tweets** reads every page of the window through `TwitterHook` (connection `{twitter_conn_id}`); at a
  rate limit that lifts more than 90 s later it waits deferred, in the triggerer, and goes on from the same page.
- **produce_tweets** writes one record per tweet through `ProduceWindowOperator` (the Kafka provider's
  `ProduceToTopicOperator`; connection `{kafka_conn_id}`), the whole window in one transaction when the
  connection has a `transactional.id`, and fails if the broker does not acknowledge every record.

Records are JSON (`record_format=json`) or the Lambda Architecture seed's `;` line (`seed`).
A run either delivers every tweet of its window or fails, and a retry or rerun writes the same keys.
Manual runs may override `query`, `topic` and `record_format` in their conf.

The **Coverage** tab shows every minute of the stream: delivered, late, failed or missing. A window not
delivered `late_after_minutes` ({late_after_minutes}) after it became searchable fires the late alert once."""


def stream_dag(stream: Stream, streams: Streams) -> DAG:
    """The DAG of one stream: its schedule from the stream's settings, its params from the stream."""
    schedule = SearchableMinuteTimetable(
        settle=stream.settle, look_back=stream.look_back_minutes, horizon=search_horizon()
    )
    late_alert = streams.late_alert
    defaults = (
        {"late_after_minutes": stream.late_after_minutes} if late_alert.callback == LOG_LATE_WINDOW else {}
    )
    with (
        DAG(
            dag_id=stream.name,
            dag_display_name=stream.display_name or stream.name,
            schedule=schedule,
            start_date=datetime(2026, 1, 1, tzinfo=UTC),
            catchup=False,  # the first run starts now (less look_back_minutes), not at start_date; missed ones still run
            max_active_runs=4,
            # No dagrun_timeout: it would cut a run off mid-try. Each try is bounded (execution_timeout, the
            # hook's timeouts, message.timeout.ms), and so is their number.
            default_args={
                "retries": stream.retries,
                "retry_delay": timedelta(seconds=stream.retry_delay_seconds),
                "retry_exponential_backoff": True,
                "max_retry_delay": timedelta(minutes=10),
                "execution_timeout": timedelta(minutes=10),
            },
            params={
                "query": Param(
                    stream.query,
                    type="string",
                    pattern=r"\S",  # not blank
                    maxLength=MAX_QUERY_LENGTH,
                    description=f"X API recent-search query (at most {MAX_QUERY_LENGTH} characters)",
                ),
                "topic": Param(
                    stream.topic, type="string", pattern=KAFKA_TOPIC, description="Kafka topic to write to"
                ),
                "record_format": Param(
                    stream.record_format,
                    enum=list(RECORD_FORMATS),
                    description="json: one JSON object per tweet; seed: the seed's ';' line",
                ),
            },
            tags=["x-api", "kafka", "ingestion", f"stream:{stream.name}"],
            doc_md=DOC.format(path=streams.path.name, **stream.model_dump()),
            # Its window's late alert: the deadline is met when the run succeeds, and missed (the callback runs,
            # once) when it has not `late_after` after the window became searchable; a failed run misses it.
            deadline=DeadlineAlert(
                reference=DeadlineReference.DAGRUN_LOGICAL_DATE,  # the window's start
                interval=WINDOW + stream.settle + stream.late_after,
                callback=SyncCallback(late_alert.callback, kwargs={**defaults, **late_alert.kwargs}),
                name="late window",
            )
            if LATE_ALERTS
            else None,
        ) as stream_dag
    ):
        tweets_to_kafka(stream, schedule, streams)
    return stream_dag


def tweets_to_kafka(stream: Stream, schedule: SearchableMinuteTimetable, streams: Streams) -> None:
    """The tasks of a stream's DAG."""
    budget_warning, rate_limit = streams.budget_warning(stream), streams.rate_limit_per_15_minutes
    if budget_warning:  # in the dag-processor's log; every run's fetch_tweets log has it too
        log.warning("%s", budget_warning)

    fetch_tweets = FetchWindowOperator(
        task_id="fetch_tweets",
        stream=stream,
        timetable=schedule,
        rate_limit_per_15_minutes=rate_limit,
        budget_warning=budget_warning,
        pool=X_API_POOL or "default_pool",
        max_active_tis_per_dag=None if X_API_POOL else SEARCHES_PER_STREAM,
    )

    # One Kafka transaction per window when kafka_default has a transactional.id (see the README). The window's
    # records wait in the window store under the run's name: nothing passes between the tasks through XCom.
    fetch_tweets >> ProduceWindowOperator(
        task_id="produce_tweets",
        kafka_config_id=stream.kafka_conn_id,
        topic="{{ params.topic }}",
        producer_function="include.kafka_delivery.produce_records",
        producer_function_kwargs={"record_format": "{{ params.record_format }}"},
        ledger_topic=streams.delivery_ledger_topic,
        synchronous=False,
        outlets=[topic_asset(stream.kafka_conn_id, stream.topic), TOPIC_ALIAS],  # the alias: a topic in conf
        max_active_tis_per_dag=1,  # one transactional id per stream fences every earlier try
    )


try:
    STREAMS = running_streams()
except StreamFileError:
    STREAMS = None  # no DAGs, and no last good streams: dags/stream_file.py reports why as its import error
# A task process parses this file for its own DAG only (Airflow names it in the parsing context): it builds that
# stream's DAG alone, so a task's start-up does not grow with the number of streams.
_running = get_parsing_context().dag_id
for _stream in STREAMS.streams if STREAMS else ():
    if _running in (None, _stream.name):
        stream_dag(_stream, STREAMS)
