"""The stream file: each valid stream becomes a DAG with its settings; each bad entry is left out and named,
with its file, stream and field, in the import error a user sees and on its own DAG's page, whose runs fail at
once saying why; the rate budget warns when it is short."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.streams import STREAM_FILE_SETTING
from tests.helpers import ROOT, write_stream_file

APPLE = {"name": "apple", "query": "Apple OR iphone", "topic": "tweets-apple"}
FRENCH = {"name": "french", "query": "iPhone lang:fr", "topic": "tweets-fr", "look_back_minutes": 5}


def parse(monkeypatch, path):
    """The DAG folder as the dag-processor parses it with this stream file, without the healing's DAG."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(STREAM_FILE_SETTING, str(path))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    bag.dags.pop("tweets_to_kafka_healing", None)
    return bag


def import_error(bag) -> str:
    errors = {path.rsplit("/", 1)[-1]: error for path, error in bag.import_errors.items()}
    assert list(errors) == ["stream_file.py"], errors
    return errors["stream_file.py"]


def test_each_stream_is_a_dag_with_its_query_topic_schedule_and_connections(monkeypatch, tmp_path):
    other_app = {**FRENCH, "settle_seconds": 45, "twitter_conn_id": "x_fr", "kafka_conn_id": "kafka_fr"}
    bag = parse(monkeypatch, write_stream_file(tmp_path / "streams.yaml", APPLE, other_app))

    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["apple", "french"]
    french = bag.dags["french"]
    assert {name: french.params[name] for name in french.params} == {
        "query": "iPhone lang:fr",
        "topic": "tweets-fr",
        "record_format": "json",
    }
    assert "stream:french" in french.tags
    assert (french.timetable.look_back, french.timetable.settle) == (5, timedelta(seconds=45))
    assert (bag.dags["apple"].timetable.look_back, bag.dags["apple"].timetable.settle) == (
        0,
        timedelta(seconds=30),
    )
    assert french.get_task("produce_tweets").kafka_config_id == "kafka_fr"


@pytest.mark.parametrize(
    ("bad_entry", "message"),
    [
        (
            {**FRENCH, "colour": "red"},
            "stream 'french': colour: unknown key (the keys are: name, query, topic",
        ),
        ({"name": "french", "topic": "tweets-fr"}, "stream 'french': query: missing, and required"),
        (
            {**FRENCH, "name": "apple"},
            "stream 'apple': name: 'apple' is already the name of an earlier stream",
        ),
        (
            {**FRENCH, "topic": "tweets-apple"},
            "stream 'french': topic: 'tweets-apple' is already the topic of an",
        ),
        ({**FRENCH, "topic": "tweets fr"}, "stream 'french': topic: is not a legal Kafka topic name"),
        (
            {**FRENCH, "query": "x" * 513},
            "stream 'french': query: is 513 characters, over the X API's limit of 512",
        ),
        (
            {**FRENCH, "look_back_minutes": -1},
            "stream 'french': look_back_minutes: Input should be greater than",
        ),
    ],
    ids=[
        "unknown key",
        "missing query",
        "same name",
        "same topic",
        "illegal topic",
        "long query",
        "negative",
    ],
)
def test_a_bad_entry_is_named_in_the_import_error_and_on_its_own_dag_and_the_other_streams_stay(
    monkeypatch, tmp_path, bad_entry, message
):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, bad_entry)

    bag = parse(monkeypatch, path)

    assert f"{path}: {message}" in import_error(bag)
    assert "broken" not in bag.dags["apple"].tags and bag.dags["apple"].get_task("produce_tweets").topic
    if bad_entry["name"] == "apple":  # the name is the earlier stream's: no DAG of its own
        assert list(bag.dags) == ["apple"]
        return
    broken = bag.dags["french"]
    assert "broken" in broken.tags and broken.schedule is None
    assert f"{path}: {message}" in broken.doc_md and message.split(": ", 2)[-1][:30] in broken.description
    for task_id in ("fetch_tweets", "produce_tweets"):
        with pytest.raises(
            AirflowFailException, match="Stream 'french' is not running, its entry is not valid: "
        ):
            broken.get_task(task_id).python_callable()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("streams: [\n", "expected the node content"),
        (
            "stream:\n  - {name: a, query: b, topic: c}\n",
            "streams: missing, and required; stream: unknown key",
        ),
        ("rate_limit_per_15_minutes: 450\nstreams: []\n", "streams: List should have at least 1 item"),
    ],
    ids=["invalid YAML", "unknown top-level key", "no stream"],
)
def test_a_file_that_cannot_be_read_is_the_import_error_and_makes_no_dag(
    monkeypatch, tmp_path, text, message
):
    path = tmp_path / "streams.yaml"
    path.write_text(text)

    bag = parse(monkeypatch, path)

    assert f"Stream file {path}: " in import_error(bag) and message in import_error(bag)
    assert list(bag.dags) == []


def streams_on_one_app(count: int) -> list[dict]:
    return [{"name": f"s{n}", "query": f"iPhone {n}", "topic": f"tweets-{n}"} for n in range(count)]


def test_streams_over_the_rate_budget_are_warned_about_in_the_parse_and_every_run(
    monkeypatch, tmp_path, caplog
):
    """Basic's 60 requests per 15 minutes fit 4 streams; a fifth is warned about."""
    path = write_stream_file(tmp_path / "streams.yaml", *streams_on_one_app(5), rate_limit_per_15_minutes=60)

    with caplog.at_level(logging.WARNING):
        bag = parse(monkeypatch, path)

    expected = (
        "The 5 streams on connection 'twitter_default' (s0, s1, s2, s3, s4) need at least 75 X API requests "
        f"per 15 minutes (15 each), more than the 60 that rate_limit_per_15_minutes in {path} allows"
    )
    assert sum(expected in line for line in caplog.messages) == 5
    assert len(bag.dags) == 5


def test_streams_within_the_budget_or_on_other_apps_get_no_warning(monkeypatch, tmp_path, caplog):
    four = streams_on_one_app(4)
    fifth_on_its_own_app = {**streams_on_one_app(5)[4], "twitter_conn_id": "second_app"}
    path = write_stream_file(
        tmp_path / "streams.yaml", *four, fifth_on_its_own_app, rate_limit_per_15_minutes=60
    )

    with caplog.at_level(logging.WARNING):
        bag = parse(monkeypatch, path)

    assert not [line for line in caplog.messages if "X API requests per 15 minutes" in line]
    assert len(bag.dags) == 5 and bag.import_errors == {}


def test_searches_use_the_x_api_pool_only_where_the_deployment_names_it(monkeypatch, tmp_path):
    """Without the setting (an Airflow that has no x_api pool) the runs take Airflow's default pool, two
    searches at a time per stream, rather than wait forever for a pool nobody created."""
    path = write_stream_file(tmp_path / "streams.yaml", APPLE)

    fetch = parse(monkeypatch, path).dags["apple"].get_task("fetch_tweets")
    assert (fetch.pool, fetch.max_active_tis_per_dag) == ("default_pool", 2)

    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__X_API_POOL", "x_api")
    fetch = parse(monkeypatch, path).dags["apple"].get_task("fetch_tweets")
    assert (fetch.pool, fetch.max_active_tis_per_dag) == ("x_api", None)


def test_a_task_process_builds_only_its_own_streams_dag(monkeypatch, tmp_path):
    """The task runner names the DAG it runs in the parsing context (as this environment variable)."""
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, FRENCH)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "french")

    assert list(parse(monkeypatch, path).dags) == ["french"]


def test_the_late_alert_goes_where_the_stream_file_says_with_its_arguments(monkeypatch, tmp_path):
    """E.g. the Slack provider's notifier; each stream's deadline falls late_after_minutes after searchable."""
    slack = "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier"
    kwargs = {"slack_webhook_conn_id": "slack_alerts", "text": "{{ dag_run.dag_id }} is late"}
    path = write_stream_file(
        tmp_path / "streams.yaml",
        {**APPLE, "late_after_minutes": 3},
        late_alert={"callback": slack, "kwargs": kwargs},
    )
    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__LATE_ALERTS", "True")

    (alert,) = parse(monkeypatch, path).dags["apple"].deadline

    assert (alert.callback.path, alert.callback.kwargs) == (slack, kwargs)
    assert alert.interval == timedelta(minutes=1, seconds=30) + timedelta(minutes=3)
