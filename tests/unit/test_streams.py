"""The stream file: each valid stream becomes a DAG with its settings, and each X connection a compliance DAG
for its streams; each bad entry is left out and named, with its file, stream and field, in the import error a
user sees; the rate budget warns when it is short; the late alert goes where the file says."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

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
    assert sorted(bag.dags) == ["apple", "french", "x_compliance_twitter_default", "x_compliance_x_fr"]
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
        (
            {**FRENCH, "name": "x_compliance_fr"},
            "stream 'x_compliance_fr': name: must be a DAG id: 1-200 of a-z A-Z 0-9 . _ -, not starting with "
            "x_compliance_",
        ),
        (
            {**FRENCH, "topic": "tweets-to-kafka.compliance"},
            "stream 'french': topic: 'tweets-to-kafka.compliance' is the file's compliance_topic",
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
        "a compliance DAG's id",
        "the compliance topic",
    ],
)
def test_a_bad_entry_is_named_in_the_import_error_and_the_other_streams_stay(
    monkeypatch, tmp_path, bad_entry, message
):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, bad_entry)

    bag = parse(monkeypatch, path)

    assert f"{path}: {message}" in import_error(bag)
    assert sorted(bag.dags) == ["apple", "x_compliance_twitter_default"]


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
    assert len(bag.dags) == 6, "5 streams and the compliance DAG of their X connection"


def test_streams_within_the_budget_or_on_other_apps_get_no_warning(monkeypatch, tmp_path, caplog):
    four = streams_on_one_app(4)
    fifth_on_its_own_app = {**streams_on_one_app(5)[4], "twitter_conn_id": "second_app"}
    path = write_stream_file(
        tmp_path / "streams.yaml", *four, fifth_on_its_own_app, rate_limit_per_15_minutes=60
    )

    with caplog.at_level(logging.WARNING):
        bag = parse(monkeypatch, path)

    assert not [line for line in caplog.messages if "X API requests per 15 minutes" in line]
    assert len(bag.dags) == 7 and bag.import_errors == {}, "5 streams, one compliance DAG per X connection"


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

    path.write_text("streams: [\n")  # broken: the last good streams run, with their late alert as it was
    (alert,) = parse(monkeypatch, path).dags["apple"].deadline
    assert (alert.callback.path, alert.callback.kwargs) == (slack, kwargs)


def test_a_display_name_renames_a_stream_in_the_ui_and_keeps_its_dag(monkeypatch, tmp_path):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, FRENCH)
    parse(monkeypatch, path)

    write_stream_file(path, APPLE, {**FRENCH, "display_name": "iPhone en français"})
    bag = parse(monkeypatch, path)

    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["apple", "french", "x_compliance_twitter_default"]
    assert bag.dags["french"].dag_display_name == "iPhone en français"
    assert bag.dags["apple"].dag_display_name == "apple"


def test_a_new_name_on_a_streams_topic_is_refused_and_the_stream_keeps_running(monkeypatch, tmp_path):
    """Changing a stream's name would start a new DAG and stop the old one's minutes: the old stream keeps
    running as it was, and the import error says how to rename it."""
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, FRENCH)
    parse(monkeypatch, path)

    write_stream_file(path, APPLE, {**FRENCH, "name": "iphone_fr"})
    bag = parse(monkeypatch, path)

    assert sorted(bag.dags) == ["apple", "french", "x_compliance_twitter_default"]
    assert (
        f"{path}: stream 'iphone_fr': topic: 'tweets-fr' is the topic of stream 'french', which left the file. "
        "A stream's name is its DAG id: a new name starts a new DAG, and 'french''s minutes would stop. To "
        "rename the stream, keep name: french and set display_name: iphone_fr"
    ) in import_error(bag)


def test_a_stream_removed_from_the_file_is_removed(monkeypatch, tmp_path):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, FRENCH)
    parse(monkeypatch, path)

    write_stream_file(path, APPLE)
    bag = parse(monkeypatch, path)

    assert sorted(bag.dags) == ["apple", "x_compliance_twitter_default"] and bag.import_errors == {}


def test_a_bad_edit_of_a_stream_keeps_its_last_good_version_running(monkeypatch, tmp_path):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, FRENCH)
    parse(monkeypatch, path)

    write_stream_file(path, APPLE, {**FRENCH, "query": "iPhone lang:fr", "topic": "tweets fr"})
    bag = parse(monkeypatch, path)

    assert sorted(bag.dags) == ["apple", "french", "x_compliance_twitter_default"]
    assert bag.dags["french"].params["topic"] == "tweets-fr", "as it last was"
    error = import_error(bag)
    assert f"{path}: stream 'french': topic: is not a legal Kafka topic name" in error
    assert f"{path}: stream 'french': its last good version keeps running until the entry is fixed" in error


@pytest.mark.parametrize(
    "text",
    ["streams: [\n", "stream:\n  - {name: a, query: b, topic: c}\n"],
    ids=["invalid YAML", "unknown key"],
)
def test_a_file_that_cannot_be_read_keeps_the_last_good_streams_running(monkeypatch, tmp_path, text):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, {**FRENCH, "display_name": "French"})
    parse(monkeypatch, path)

    path.write_text(text)
    bag = parse(monkeypatch, path)

    assert sorted(bag.dags) == ["apple", "french", "x_compliance_twitter_default"]
    assert bag.dags["french"].dag_display_name == "French" and bag.dags["french"].timetable.look_back == 5
    error = import_error(bag)
    assert f"Stream file {path}: " in error
    assert "its last good streams keep running until it is fixed: apple, french" in error

    write_stream_file(path, APPLE)  # fixed, with french removed
    bag = parse(monkeypatch, path)
    assert sorted(bag.dags) == ["apple", "x_compliance_twitter_default"] and bag.import_errors == {}


def test_a_window_that_alone_outruns_its_apps_rate_limit_is_reported_with_its_figures():
    from include.streams import Stream, window_over_budget

    stream = Stream(**APPLE)
    window = "[2026-12-01T20:20:00Z, 2026-12-01T20:21:00Z)"

    assert window_over_budget(stream, 450, window, 45_000, 450) is None
    assert window_over_budget(stream, 450, window, 150_000, 1500) == (
        f"Window {window} of stream 'apple' took 1500 X API requests for 150000 tweets, more than the 450 that "
        "the X app of connection 'twitter_default' may make in 15 minutes (rate_limit_per_15_minutes): it waited "
        "for at least 3 resets of the limit, 15 minutes each, and the other streams on that app fell behind "
        "meanwhile"
    )


def test_each_x_connection_gets_a_compliance_dag_with_a_task_per_kafka_connection(monkeypatch, tmp_path):
    """Its streams on one X connection, two of them on a second Kafka cluster: two jobs, one after the other
    (X runs one at a time), each on the topics of its own Kafka connection; the schedule and topic from the file."""
    from airflow.timetables.trigger import CronTriggerTimetable

    second_cluster = {
        "name": "de",
        "query": "iPhone lang:de",
        "topic": "tweets-de",
        "kafka_conn_id": "kafka_eu",
    }
    french = {**FRENCH, "kafka_conn_id": "kafka_eu"}
    path = write_stream_file(
        tmp_path / "streams.yaml",
        APPLE,
        french,
        second_cluster,
        compliance_every_hours=4,
        compliance_topic="x-compliance",
    )

    dag = parse(monkeypatch, path).dags["x_compliance_twitter_default"]

    assert isinstance(dag.timetable, CronTriggerTimetable) and dag.timetable.summary == "0 */4 * * *"
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    first, second = dag.get_task("compliance_kafka_default"), dag.get_task("compliance_kafka_eu")
    assert first.streams == {"apple": "tweets-apple"}
    assert second.streams == {"french": "tweets-fr", "de": "tweets-de"}
    assert second.upstream_task_ids == {"compliance_kafka_default"}
    assert (second.kafka_config_id, second.twitter_conn_id) == ("kafka_eu", "twitter_default")
    assert second.compliance_topic == "x-compliance" == dag.params["compliance_topic"]
    assert dag.params["streams"] == {"apple": "tweets-apple", "french": "tweets-fr", "de": "tweets-de"}
    assert second.retries >= 2 and second.retry_exponential_backoff


@pytest.mark.parametrize("hours", [5, 24])
def test_a_compliance_schedule_that_does_not_divide_the_day_within_12_hours_is_refused(
    monkeypatch, tmp_path, hours
):
    path = write_stream_file(tmp_path / "streams.yaml", APPLE, compliance_every_hours=hours)

    bag = parse(monkeypatch, path)

    assert "compliance_every_hours: Input should be 1, 2, 3, 4, 6, 8 or 12" in import_error(bag)
    assert list(bag.dags) == []
