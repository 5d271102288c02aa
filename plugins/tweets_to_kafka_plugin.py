"""The plugin of tweets_to_kafka:

- registers the schedule: Airflow's scheduler only runs a custom timetable that a plugin names (without it, the DAG
  fails to load with TimetableNotRegistered);
- its listeners import the third-party libraries of the DAG file and its tasks into the Airflow components that fork
  them, so that no task imports them again (the package's own modules, include/ and the hook, are left for each task
  to import, so that a deploy of them reaches the next task without a restart), and note on a stream's scheduled run
  when it was a catch-up run or delivered after its late alert's deadline;
- adds the Coverage pages to the UI: a Coverage tab on every DAG's page and a Coverage page of every stream in
  the navigation, served by include/coverage_app.py on the API server (imported on its first request, so that no
  other component imports it).
"""

import logging
from datetime import timedelta
from importlib import import_module

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from twitter_provider.timetables import CATCH_UP_AFTER, WINDOW, SearchableMinuteTimetable

log = logging.getLogger(__name__)
# What the DAG file and its tasks import beyond this package and what Airflow imports by itself: the Kafka provider
# with confluent-kafka, tweepy, PyYAML, the names of airflow.sdk that it loads on first use, and the providers' asset
# URI handlers (about 80 ms of each task's start-up, 45 ms more for fetch_tweets, and 5-10 ms for the handlers).
THIRD_PARTY_MODULES = (
    "airflow.providers.apache.kafka.operators.produce",
    "airflow.providers.apache.kafka.hooks.client",
    "airflow.providers.apache.kafka.hooks.consume",
    "confluent_kafka.admin",
    "tweepy",
    "yaml",
    "xml.etree.ElementTree",
)
AIRFLOW_SDK_NAMES = ("Asset", "AssetAlias", "BaseHook", "Connection", "ObjectStoragePath", "Param", "task")
# The component a task process names when it starts (Airflow 3.3's task runner): it imports what it needs itself.
TASK_PROCESS = "TaskRunnerMarker"


class ThirdPartyPreloader:
    """A listener: when the scheduler, the dag-processor or the triggerer starts, before it forks anything, import
    THIRD_PARTY_MODULES and AIRFLOW_SDK_NAMES. The scheduler's LocalExecutor workers are forked from it and fork each task process in
    turn, and the dag-processor forks a process for each parse: all of them start with these libraries imported.
    Never this package's own modules: a child would run them as they were when the component started."""

    @hookimpl
    def on_starting(self, component) -> None:
        if type(component).__name__ == TASK_PROCESS:
            return
        for module in THIRD_PARTY_MODULES:
            try:
                import_module(module)
            except ImportError as exc:  # the task that needs it fails with the same error, and is retried
                log.warning("Could not import %s for the tweets_to_kafka tasks: %s", module, exc)
        sdk = import_module("airflow.sdk")
        for name in AIRFLOW_SDK_NAMES:
            getattr(sdk, name)
        sdk.Asset(
            "kafka://preload/topic"
        )  # loads the providers' asset URI handlers, which a first Asset looks up


class LateRunNotes:
    """A listener in the scheduler: a scheduled run of a stream's minute gets a note, shown with the run in the UI,
    when it was a catch-up run (created more than CATCH_UP_AFTER after its window became searchable: Airflow was down,
    the DAG paused, or earlier runs held it back) and when it succeeded after its late alert's deadline. It reads
    the run and its schedule alone, so that the scheduler imports nothing of this package."""

    @hookimpl
    def on_dag_run_running(self, dag_run, msg: str) -> None:
        searchable = _searchable_at(dag_run)
        if searchable is None or dag_run.queued_at is None:
            return
        lag = dag_run.queued_at - searchable
        if lag > CATCH_UP_AFTER:
            _add_note(
                dag_run,
                f"Catch-up run: created {_minutes(lag)} after its window {_window(dag_run)} became searchable "
                "(Airflow was down, the DAG paused, or earlier runs held it back).",
            )

    @hookimpl
    def on_dag_run_success(self, dag_run, msg: str) -> None:
        searchable = _searchable_at(dag_run)
        if searchable is None or dag_run.end_date is None or not dag_run.deadlines:
            return
        due = min(deadline.deadline_time for deadline in dag_run.deadlines)  # its window's late alert's
        if dag_run.end_date > due:
            _add_note(
                dag_run,
                f"Delivered late: {_minutes(dag_run.end_date - searchable)} after its window {_window(dag_run)} "
                f"became searchable (late after {_minutes(due - searchable)}).",
            )


def _searchable_at(dag_run):
    """When the window of a scheduled run of a stream's DAG became searchable, else None."""
    timetable = getattr(getattr(dag_run, "dag", None), "timetable", None)
    if dag_run.run_type != "scheduled" or dag_run.data_interval_start is None:
        return None
    if not isinstance(timetable, SearchableMinuteTimetable):
        return None
    return timetable.searchable_at(dag_run.data_interval_start + WINDOW)


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
    listeners = [ThirdPartyPreloader(), LateRunNotes()]
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
