"""
### tweets_to_kafka

Every minute, fetch the tweets posted in the run's one-minute data interval `[start, end)` that match
`query` from the X API v2 recent search, and write them to the Kafka topic `topic`, keyed by tweet id.

Each minute gets one scheduled run, named by its window (`scheduled__2026-11-25T16:06--16:07Z` covers
[16:06, 16:07) UTC), which starts once the minute is searchable (30 s after its end). Minutes missed while
Airflow was down or the DAG paused run later, oldest first; minutes beyond the search's 7-day reach are
reported by the first run after them. Settings (`[tweets_to_kafka]` in airflow.cfg, or
`AIRFLOW__TWEETS_TO_KAFKA__<KEY>`): `look_back_minutes` (0), `settle_seconds` (30).

- **fetch_tweets** reads every page of the window through `TwitterHook` (connection `twitter_default`).
- **produce_tweets** writes one record per tweet with the Kafka provider's `ProduceToTopicOperator`
  (connection `kafka_default`) and fails if the broker does not acknowledge every record.

Records are JSON (`record_format=json`) or the Lambda Architecture seed's `;` line (`seed`).
A run either delivers every tweet of its window or fails, and a retry or rerun writes the same keys.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from include.kafka_delivery import TOPIC_ALIAS, ProduceWindowOperator, announce_topic, check_kafka_connection
from include.records import RECORD_FORMATS
from twitter_provider.timetables import SearchableMinuteTimetable

log = logging.getLogger(__name__)
X_API_POOL = "x_api"  # bounds concurrent X API searches, e.g. in a backfill; make run creates it
schedule = SearchableMinuteTimetable.from_settings("tweets_to_kafka")


@dag(
    dag_id="tweets_to_kafka",
    schedule=schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,  # the first run starts now (less look_back_minutes), not at start_date; missed ones still run
    max_active_runs=4,
    dagrun_timeout=timedelta(minutes=30),
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=10),
    },
    params={
        "query": Param(
            "Apple OR iphone OR iPhone",
            type="string",
            pattern=r"\S",  # not blank
            maxLength=512,  # the X API's limit for recent search
            description="X API recent-search query (at most 512 characters)",
        ),
        "topic": Param(
            "tweets-lambda1",
            type="string",
            pattern=r"^(?!\.\.?$)[a-zA-Z0-9._-]{1,249}$",  # Kafka's legal topic names
            description="Kafka topic to write to",
        ),
        "record_format": Param(
            "json",
            enum=list(RECORD_FORMATS),
            description="json: one JSON object per tweet; seed: the seed's ';' line",
        ),
    },
    tags=["x-api", "kafka", "ingestion"],
    doc_md=__doc__,
)
def tweets_to_kafka():
    # Its timeout leaves room to wait out a rate limit: X resets it within 15 minutes.
    @task(pool=X_API_POOL, execution_timeout=timedelta(minutes=20), show_return_value_in_logs=False)
    def fetch_tweets(**context) -> list[dict]:
        """Every tweet of the run's window, as records (JSON-serialisable dicts)."""
        from include import windows
        from include.records import to_record
        from twitter_provider.hooks import TwitterHook

        start, end = windows.run_window(context, schedule)
        windows.skip_if_unreachable(start, end, schedule)
        unreachable = windows.unreachable_before(context, start)
        windows.wait_until_searchable(end, schedule)
        tweets = TwitterHook().search_window(context["params"]["query"], start, end)
        log.info(
            "Run summary: %d tweets; %d unreachable minutes before this window", len(tweets), unreachable
        )
        return [to_record(tweet, tweet["author"]) for tweet in tweets]

    # One Kafka transaction per window when kafka_default has a transactional.id (see the README).
    ProduceWindowOperator(
        task_id="produce_tweets",
        kafka_config_id="kafka_default",
        topic="{{ params.topic }}",
        producer_function="include.kafka_delivery.produce_records",
        producer_function_kwargs={"records": fetch_tweets(), "record_format": "{{ params.record_format }}"},
        delivery_callback="include.kafka_delivery.fail_on_delivery_error",
        synchronous=False,
        outlets=[TOPIC_ALIAS],
        pre_execute=check_kafka_connection,
        post_execute=announce_topic,
        # Airflow 3.3.2's API server creates a topic's asset on the first event through the alias, without
        # a lock: two produce_tweets finishing together on a new topic collide on Postgres and one is set
        # to failed, without retry (seen in tests/distributed). One at a time, they cannot collide.
        max_active_tis_per_dag=1,
    )


tweets_to_kafka()
