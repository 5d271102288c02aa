"""Registers the schedule of tweets_to_kafka: Airflow's scheduler only runs a custom timetable that a plugin
names (without it, the DAG fails to load with TimetableNotRegistered)."""

from airflow.plugins_manager import AirflowPlugin

from twitter_provider.timetables import SearchableMinuteTimetable


class TweetsToKafkaPlugin(AirflowPlugin):
    name = "tweets_to_kafka"
    timetables = [SearchableMinuteTimetable]
