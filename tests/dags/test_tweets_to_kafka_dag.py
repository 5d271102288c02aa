"""DAG integrity: the stream's DAG and the compliance DAG import cleanly and cheaply, and are scheduled, retried
and documented as intended."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from tests.helpers import DAG_QUERY, ROOT


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["tweets_to_kafka"]


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dags) == [
        "tweets_to_kafka",
        "tweets_to_kafka_healing",
        "x_compliance_twitter_default",
    ]


def test_the_scheduler_gets_the_searchable_minute_schedule_with_its_settings(dag):
    """As the scheduler sees the DAG (serialised): the plugin's registered timetable, one minute a run,
    every missed minute run; catchup=False only keeps the first run from reaching back to start_date."""
    from airflow.serialization.serialized_objects import DagSerialization

    from twitter_provider.timetables import SearchableMinuteTimetable

    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    assert isinstance(timetable, SearchableMinuteTimetable)
    assert (timetable.settle, timetable.look_back, timetable.horizon) == (
        timedelta(seconds=30),
        0,
        timedelta(days=7),
    )
    assert timetable.summary == "every minute, 30 s after it ends"
    assert dag.catchup is False and 1 <= dag.max_active_runs <= 16


def test_tasks_retry_with_exponential_backoff(dag):
    assert [task.task_id for task in dag.tasks] == ["fetch_tweets", "produce_tweets"]
    for task in dag.tasks:
        assert task.retries >= 2 and task.retry_exponential_backoff
        assert task.execution_timeout is not None


def test_dag_is_documented_tagged_and_parameterised(dag):
    assert dag.tags and dag.doc_md
    assert {name: dag.params[name] for name in dag.params} == {
        "query": DAG_QUERY,
        "topic": "tweets-lambda1",
        "record_format": "json",
    }


def test_produce_uses_the_providers_operator_asynchronously_one_at_a_time_with_the_ledger(dag):
    from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator

    from include.kafka_delivery import ProduceWindowOperator

    produce = dag.get_task("produce_tweets")
    assert isinstance(produce, ProduceWindowOperator) and isinstance(produce, ProduceToTopicOperator)
    assert produce.kafka_config_id == "kafka_default" and produce.synchronous is False
    assert produce.max_active_tis_per_dag == 1, "the stream's one transactional id: one produce at a time"
    assert produce.ledger_topic == "tweets-to-kafka.deliveries"
    assert [outlet.name for outlet in produce.outlets] == [
        "kafka://kafka_default/tweets-lambda1",  # the stream's topic, an asset from the parse on
        "tweets-kafka-topic",  # the alias: the topic a run's conf names instead
    ]


@pytest.mark.parametrize("dag_file", ["tweets_to_kafka.py", "x_compliance.py"])
def test_parsing_the_dag_file_does_not_import_tweepy(dag_file):
    """tweepy (and the hook) load only when fetch_tweets or the compliance task runs; confluent_kafka arrives
    through the provider's operator module, which the DAG file must import to declare the task."""
    code = (
        f"import runpy, sys; runpy.run_path('dags/{dag_file}');"
        "print(sorted(m for m in ('tweepy', 'twitter_provider.hooks', 'requests_oauthlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_each_window_has_a_late_alert_due_late_after_minutes_after_it_is_searchable(monkeypatch):
    """The deadline of each run: its window's start + one minute + settle_seconds + late_after_minutes (10 by
    default); missed, it calls the default callback, which logs (left out under dag.test: see tests/conftest.py)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DeadlineReference

    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__LATE_ALERTS", "True")
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["tweets_to_kafka"]

    (alert,) = dag.deadline
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.interval == timedelta(minutes=1, seconds=30) + timedelta(minutes=10)
    assert (alert.callback.path, alert.callback.kwargs) == (
        "include.alerts.log_late_window",
        {"late_after_minutes": 10},
    )


def test_the_default_late_alert_logs_the_stream_the_window_and_its_runs_state(caplog):
    """Called as Airflow calls a deadline's callback: with the run as the REST API shows it."""
    from include.alerts import log_late_window

    run = {
        "dag_id": "tweets_to_kafka",
        "dag_run_id": "scheduled__2026-12-01T20:20--20:21Z",
        "logical_date": "2026-12-01T20:20:00Z",
        "state": "running",
        "conf": {},
    }

    with caplog.at_level("WARNING"):
        message = log_late_window({"dag_run": run, "deadline": {}}, late_after_minutes=10)

    assert message == (
        "Late window: stream 'tweets_to_kafka', window [2026-12-01T20:20Z, 20:21Z) is not delivered 10 minutes after "
        "it became searchable; its run 'scheduled__2026-12-01T20:20--20:21Z' is running"
    )
    assert message in caplog.messages


def test_the_plugins_requirements_name_the_airflow_it_is_tested_on():
    """On 3.2 the schedule's DagRunInfo lacks 3.3's defaults and the DAG silently never schedules (#68315)."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "plugins" / "pyproject.toml").read_text())["project"]
    airflow = next(Requirement(r) for r in project["dependencies"] if r.startswith("apache-airflow"))
    assert version("apache-airflow") in airflow.specifier, (
        "the Airflow of constraints.txt, which the tests run"
    )
    assert not {"3.2.1", "3.3.0", "4.0.0"} & set(airflow.specifier.filter(["3.2.1", "3.3.0", "4.0.0"]))


def test_the_compliance_dag_sweeps_the_seed_stream_every_6_hours_deferrably_one_run_at_a_time(dagbag):
    from include.compliance import ComplianceOperator

    dag = dagbag.dags["x_compliance_twitter_default"]
    assert dag.timetable.summary == "0 */6 * * *" and dag.max_active_runs == 1 and dag.catchup is False
    assert dag.tags and dag.doc_md and "within 24 hours" in dag.doc_md
    (task,) = dag.tasks
    assert isinstance(task, ComplianceOperator) and task.task_id == "compliance_kafka_default"
    assert task.streams == {"tweets_to_kafka": "tweets-lambda1"}
    assert (task.compliance_topic, task.ledger_topic) == (
        "tweets-to-kafka.compliance",
        "tweets-to-kafka.deliveries",
    )
    assert task.retries >= 2 and task.retry_exponential_backoff and task.execution_timeout is not None
