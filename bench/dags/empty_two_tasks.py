"""The baseline of the run-overhead benchmark: two tasks that do nothing, wired like tweets_to_kafka."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import CronDataIntervalTimetable, dag, task


@dag(
    dag_id="empty_two_tasks",
    schedule=CronDataIntervalTimetable("* * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
)
def empty_two_tasks():
    @task
    def first() -> None:
        """Do nothing."""

    @task
    def second() -> None:
        """Do nothing."""

    first() >> second()


empty_two_tasks()
