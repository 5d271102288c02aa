"""Registers the schedule of tweets_to_kafka: Airflow's scheduler only runs a custom timetable that a plugin
names (without it, the DAG fails to load with TimetableNotRegistered). Its listener imports the modules of the
DAG file and its tasks into the Airflow components that fork them, so that no task imports them again."""

import logging
from importlib import import_module

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from twitter_provider.timetables import SearchableMinuteTimetable

log = logging.getLogger(__name__)
# What the DAG files and their tasks import beyond Airflow: include/ with the Kafka provider and confluent-kafka, and
# TwitterHook with tweepy (about 50 ms of each task's start-up, and 45 ms more for fetch_tweets); the compliance
# task's operator and the trigger the triggerer runs.
TASK_MODULES = (
    "include.kafka_delivery",
    "include.streams",
    "include.compliance",
    "twitter_provider.hooks",
    "twitter_provider.triggers",
)


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


class TweetsToKafkaPlugin(AirflowPlugin):
    name = "tweets_to_kafka"
    timetables = [SearchableMinuteTimetable]
    listeners = [TaskModulePreloader()]
