"""The plugin of tweets_to_kafka:

- registers the schedule: Airflow's scheduler only runs a custom timetable that a plugin names (without it, the DAG
  fails to load with TimetableNotRegistered);
- its listeners import the modules of the DAG file and its tasks into the Airflow components that fork them, so that
  no task imports them again, and note on a stream's scheduled run when it was a catch-up run or delivered late;
- adds the Coverage pages to the UI: a Coverage tab on every DAG's page and a Coverage page of every stream in
  the navigation, served by include/coverage_app.py on the API server (built on its first request, so that no other
  component imports it).
"""

import logging
from datetime import UTC, datetime, timedelta
from importlib import import_module

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from twitter_provider.timetables import WINDOW, SearchableMinuteTimetable

log = logging.getLogger(__name__)
# What the DAG file and its tasks import beyond Airflow: include/ with the Kafka provider and confluent-kafka, and
# TwitterHook with tweepy (about 50 ms of each task's start-up, and 45 ms more for fetch_tweets).
TASK_MODULES = ("include.kafka_delivery", "include.streams", "twitter_provider.hooks")


class TaskModulePreloader:
    """A listener: when the scheduler, the dag-processor or the triggerer starts, before it forks anything,
    import TASK_MODULES. The scheduler's LocalExecutor workers are forked from it and fork each task process in
    turn, and the dag-processor forks a process for each parse: all of them start with these modules imported."""

    @hookimpl
    def on_starting(self, component) -> None:
        from airflow.jobs.job import Job

        if not isinstance(component, Job):  # a task process, which imports what it needs itself
            return
        for module in TASK_MODULES:
            try:
                import_module(module)
            except ImportError as exc:  # the task that needs it fails with the same error, and is retried
                log.warning("Could not import %s for the tweets_to_kafka tasks: %s", module, exc)


class LateRunNotes:
    """A listener in the scheduler: a scheduled run of a stream's minute gets a note, shown with the run in the UI,
    when it was a catch-up run (created more than a minute after its window became searchable, after Airflow was
    down or the DAG paused) and when it was delivered later than the stream's late_after_minutes."""

    @hookimpl
    def on_dag_run_running(self, dag_run, msg: str) -> None:
        timetable = _stream_timetable(dag_run)
        if timetable is None or dag_run.queued_at is None:
            return
        from include.coverage import CATCH_UP_AFTER

        lag = dag_run.queued_at - timetable.searchable_at(dag_run.data_interval_start + WINDOW)
        if lag > CATCH_UP_AFTER:
            _add_note(
                dag_run,
                f"Catch-up run: created {_minutes(lag)} after its window {_window(dag_run)} became searchable "
                "(Airflow was down, the DAG paused, or earlier runs held it back).",
            )

    @hookimpl
    def on_dag_run_success(self, dag_run, msg: str) -> None:
        timetable = _stream_timetable(dag_run)
        if timetable is None:
            return
        from include.streams import StreamFileError, read_streams

        try:
            stream = next((s for s in read_streams().streams if s.name == dag_run.dag_id), None)
        except StreamFileError:  # the dag-processor reports it
            return
        searchable = timetable.searchable_at(dag_run.data_interval_start + WINDOW)
        took = (dag_run.end_date or datetime.now(UTC)) - searchable
        if stream is not None and took > stream.late_after:
            _add_note(
                dag_run,
                f"Delivered late: {_minutes(took)} after its window {_window(dag_run)} became searchable (late after "
                f"{stream.late_after_minutes} min).",
            )


def _stream_timetable(dag_run) -> SearchableMinuteTimetable | None:
    """The schedule of a scheduled run of a stream's DAG, else None."""
    dag = getattr(dag_run, "dag", None)
    timetable = getattr(dag, "timetable", None)
    if dag_run.run_type != "scheduled" or dag_run.data_interval_start is None:
        return None
    return timetable if isinstance(timetable, SearchableMinuteTimetable) else None


def _add_note(dag_run, text: str) -> None:
    """Add a line to the run's note (saved with the scheduler's session)."""
    dag_run.note = f"{dag_run.note}\n{text}" if dag_run.note else text


def _window(dag_run) -> str:
    start = dag_run.data_interval_start
    return f"[{start:%H:%M}, {start + WINDOW:%H:%M}) UTC"


def _minutes(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class CoverageApp:
    """The Coverage pages' ASGI app, built on its first request (include.coverage_app.create_app)."""

    def __init__(self):
        self.app = None

    async def __call__(self, scope, receive, send) -> None:
        if self.app is None:
            self.app = import_module("include.coverage_app").create_app()
        await self.app(scope, receive, send)


class TweetsToKafkaPlugin(AirflowPlugin):
    name = "tweets_to_kafka"
    timetables = [SearchableMinuteTimetable]
    listeners = [TaskModulePreloader(), LateRunNotes()]
    fastapi_apps = [{"app": CoverageApp(), "url_prefix": "/coverage", "name": "Stream coverage"}]
    external_views = [
        {
            "name": "Coverage",
            "href": "/coverage/dags/{DAG_ID}",
            "destination": "dag",
            "url_route": "coverage",
        },
        {
            "name": "Coverage",
            "href": "/coverage/streams",
            "destination": "nav",
            "url_route": "stream-coverage",
        },
    ]
