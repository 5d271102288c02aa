"""Registers the schedule of tweets_to_kafka: Airflow's scheduler only runs a custom timetable that a plugin
names (without it, the DAG fails to load with TimetableNotRegistered). Its listener imports the third-party
libraries of the DAG file and its tasks into the Airflow components that fork them, so that no task imports them
again; the package's own modules (include/, the hook) are left for each task to import, so that a deploy of them
reaches the next task without a restart."""

import logging
from importlib import import_module

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from twitter_provider.timetables import SearchableMinuteTimetable

log = logging.getLogger(__name__)
# What the DAG file and its tasks import beyond this package and what Airflow imports by itself: the Kafka provider
# with confluent-kafka, tweepy, PyYAML, and the names of airflow.sdk that it loads on first use (about 80 ms of each
# task's start-up, and 45 ms more for fetch_tweets).
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


class TweetsToKafkaPlugin(AirflowPlugin):
    name = "tweets_to_kafka"
    timetables = [SearchableMinuteTimetable]
    listeners = [ThirdPartyPreloader()]
