"""The floor of the streams benchmark: `BENCH_EMPTY_STREAMS` DAGs scheduled as the streams are (a run per minute,
30 s after it ends), each of two tasks that do nothing, wired like tweets_to_kafka and named as the benchmark's
streams; a task process builds only its own DAG, as dags/tweets_to_kafka.py does."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG, get_parsing_context, task

from twitter_provider.timetables import SearchableMinuteTimetable


def empty_stream(dag_id: str) -> None:
    with DAG(
        dag_id=dag_id,
        schedule=SearchableMinuteTimetable(),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=4,
    ):

        @task
        def fetch_tweets() -> None:
            """Do nothing."""

        @task
        def produce_tweets() -> None:
            """Do nothing."""

        fetch_tweets() >> produce_tweets()


_running = get_parsing_context().dag_id
for _n in range(int(os.environ.get("BENCH_EMPTY_STREAMS", "0"))):
    _dag_id = "tweets_to_kafka" if _n == 0 else f"stream_{_n:02d}"
    if _running in (None, _dag_id):
        empty_stream(_dag_id)
