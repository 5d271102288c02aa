"""Two streams of one stream file under the real scheduler: each topic holds exactly its query's tweets of
every window, a fault in one stream's windows leaves the other's runs untouched (the Stream coverage page lists
both, the failing stream's tab shows its minutes failed, and each failed window's late alert fires once), and
manual runs beside the schedule neither stop it nor lose a minute. The stack has no `x_api` pool, as an Airflow
that the package is copied into: the runs must work without it."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from include.records import to_record
from tests.helpers import KAFKA_CONFIG, ROOT, late_alerts, read_topic, window_text, write_stream_file
from tests.system.harness import TEST_X_BEARER_TOKEN, AirflowStack
from tests.ui.browser import SCREENSHOTS, coverage_tab, logged_in, minute_states

pytestmark = pytest.mark.wall_clock  # waits for scheduled minutes

PORT = int(os.environ.get("TEST_STREAMS_AIRFLOW_PORT", "19280"))
MINUTE = timedelta(minutes=1)
# Disjoint sets of the simulator's posts: English ones naming a product, and the other languages' iPhone posts. Their
# names and topics once gave both streams the same transactional ids (`<prefix>.<dag id>.<topic>.<window>`:
# `tweets-to-kafka.tweets_to_kafka.fr.streams.<window>`), so that each fenced the other's try of a minute.
ENGLISH = {"name": "tweets_to_kafka", "query": "(Apple OR iPhone) lang:en", "topic": "fr.streams"}
OTHERS = {
    "name": "tweets_to_kafka.fr",
    "query": "iPhone -lang:en",
    "topic": "streams",
    "twitter_conn_id": "x_other",
    "late_after_minutes": 1,  # its failed windows' late alerts fire a minute after they became searchable
}
LOOK_BACK = 2  # each stream's first windows are due at once


@pytest.fixture(scope="module")
def stack(kafka, simulator):
    """Both streams scheduled every minute, no pool created; the second's connection has a revoked token
    (answered 401)."""
    home = ROOT / ".artifacts" / f"airflow-streams-{PORT}"
    streams = write_stream_file(
        home.with_name(f"{home.name}-streams.yaml"),
        *({**stream, "look_back_minutes": LOOK_BACK} for stream in (ENGLISH, OTHERS)),
    )
    twitter = {"conn_type": "twitter", "host": simulator.url}
    airflow = AirflowStack(
        home=home,
        port=PORT,
        connections={
            "twitter_default": {**twitter, "password": TEST_X_BEARER_TOKEN},
            "x_other": {**twitter, "password": "a-revoked-token"},
            "kafka_default": {"conn_type": "kafka", "extra": KAFKA_CONFIG},
        },
        schedule_runs=True,
        settings={"TWEETS_TO_KAFKA_STREAMS": str(streams)},
    )
    with airflow:  # it unpauses tweets_to_kafka
        airflow.wait_until(
            lambda: airflow.dag_is_parsed(OTHERS["name"]), 120, f"{OTHERS['name']} to be parsed"
        )
        airflow.pause(False, OTHERS["name"])
        yield airflow


def scheduled(stack: AirflowStack, stream: dict) -> list[dict]:
    return [run for run in stack.dag_runs(stream["name"]) if run["run_type"] == "scheduled"]


def wait_until_ended(stack: AirflowStack, stream: dict, windows: int, state: str) -> list[dict]:
    """Wait until the stream's first `windows` scheduled runs ended in `state`; return those runs."""

    def first() -> list[dict]:
        return sorted(scheduled(stack, stream), key=lambda run: run["data_interval_start"])[:windows]

    stack.wait_until(
        lambda: len(first()) == windows and {run["state"] for run in first()} == {state},
        420,
        f"the first {windows} runs of {stream['name']} to end in {state}",
        lambda: {run["dag_run_id"]: run["state"] for run in scheduled(stack, stream)},
    )
    return first()


def check_topic_holds_exactly_its_query(simulator, stream: dict, runs: list[dict]) -> None:
    """The topic holds exactly the query's tweets of each run's window (and, of later windows, none else)."""
    windows = {datetime.fromisoformat(run["data_interval_start"]) for run in runs}
    records = {key: json.loads(value) for key, value in read_topic(stream["topic"])}
    minutes = windows | {
        datetime.strptime(record["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(second=0, tzinfo=UTC)
        for record in records.values()
    }
    expected = {
        tweet["id"].encode(): to_record(tweet, tweet["author"])
        for start in minutes
        for tweet in simulator.tweets_between(start, start + MINUTE, query=stream["query"])
    }
    in_windows = {key for key, record in expected.items() if minute_of(record) in windows}
    assert len(in_windows) >= len(windows), f"the query of {stream['name']} matched posts"
    assert in_windows <= records.keys(), f"{len(in_windows - records.keys())} tweets lost"
    assert {key: expected.get(key) for key in records} == records, "only the query's tweets, as posted"


def minute_of(record: dict) -> datetime:
    return datetime.strptime(record["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(second=0, tzinfo=UTC)


def test_a_fault_in_one_stream_leaves_the_other_untouched_and_each_topic_holds_its_query(stack, simulator):
    """Expected: the second stream's searches are answered 401 (its app's token was revoked), so its runs fail
    without retry, while the first stream's runs of the same minutes all deliver exactly its query's tweets;
    once the token is fixed and the failed runs are cleared, the second stream's topic holds exactly its
    query's tweets of every window, none of the first's."""
    windows = LOOK_BACK + 2
    failed = wait_until_ended(stack, OTHERS, windows, "failed")
    english = wait_until_ended(stack, ENGLISH, windows, "success")

    assert [run["data_interval_start"] for run in failed] == [run["data_interval_start"] for run in english]
    check_topic_holds_exactly_its_query(simulator, ENGLISH, english)
    assert read_topic(OTHERS["topic"]) == []
    refused = [r for r in simulator.requests if r["status"] == 401]
    assert len(refused) >= windows, "the second stream's searches were refused"
    assert {r["params"]["query"] for r in refused} == {OTHERS["query"]}
    check_coverage_pages(stack, [datetime.fromisoformat(run["data_interval_start"]) for run in failed])

    stack.set_connection("x_other", conn_type="twitter", host=simulator.url, password=TEST_X_BEARER_TOKEN)
    # A run already searching with the revoked token fails after the clear, and nothing would clear it again:
    # clear once none is in flight (a run that starts from now on has the new token).
    stack.wait_until(
        lambda: not {run["state"] for run in scheduled(stack, OTHERS)} & {"queued", "running"},
        120,
        f"no run of {OTHERS['name']} in flight",
    )
    stack.cli("tasks", "clear", OTHERS["name"], "--only-failed", "--yes")
    others = wait_until_ended(stack, OTHERS, windows, "success")

    check_topic_holds_exactly_its_query(simulator, OTHERS, others)
    english = wait_until_ended(stack, ENGLISH, windows + 2, "success")  # it kept running meanwhile
    check_topic_holds_exactly_its_query(simulator, ENGLISH, english)
    wait_until_ended(stack, OTHERS, windows + 2, "success")  # minutes both streams wrote in the same second
    for stream in (ENGLISH, OTHERS):
        tries = {
            ti["try_number"]
            for ti in stack.task_instances(dag_id=stream["name"])
            if ti["task_id"] == "produce_tweets"
        }
        assert tries == {1}, f"no produce try of {stream['name']} was fenced by the other stream's"


def test_manual_runs_beside_the_schedule_take_a_minute_or_deliver_it_again_and_the_schedule_goes_on(
    stack, simulator
):
    """Expected: a manual run whose logical date is the start of a minute the schedule has not reached takes that
    minute's place (Airflow allows one run per logical date): the scheduler makes no scheduled run of it and goes
    on with the next minutes (apache/airflow#41208 stopped it for good), and the minute is delivered once, by the
    manual run. A manual run with a logical date inside a minute already scheduled delivers that minute again, as
    asked. Every other minute is delivered once."""
    now = datetime.now(UTC)
    ahead = now.replace(second=0, microsecond=0) + MINUTE  # its scheduled run is made 150 s or more from now
    delivered = max(datetime.fromisoformat(run["data_interval_start"]) for run in scheduled(stack, ENGLISH))
    taking = stack.trigger(ahead, {}, dag_id=ENGLISH["name"])
    again = stack.trigger(delivered + timedelta(seconds=30), {}, dag_id=ENGLISH["name"])

    def settled() -> bool:
        runs = stack.dag_runs(ENGLISH["name"])
        later = [run for run in runs if datetime.fromisoformat(run["data_interval_start"]) > ahead]
        return len(later) >= 2 and all(run["state"] in ("success", "failed") for run in runs)

    stack.wait_until(settled, 420, f"two scheduled runs after {ahead:%H:%M} and every run to end")

    runs = stack.dag_runs(ENGLISH["name"])
    assert {run["state"] for run in runs} == {"success"}
    by_start = {}
    for run in runs:
        by_start.setdefault(datetime.fromisoformat(run["data_interval_start"]), []).append(run["dag_run_id"])
    assert by_start[ahead] == [taking["dag_run_id"]], "the manual run took the minute's place"
    assert sorted(by_start[delivered]) == sorted(
        [again["dag_run_id"], f"scheduled__{delivered:%Y-%m-%dT%H:%M}--{delivered + MINUTE:%H:%M}Z"]
    )
    first, last = min(by_start), max(by_start)
    minutes = [first + n * MINUTE for n in range((last - first) // MINUTE + 1)]
    assert sorted(by_start) == minutes, "every minute has its run: the schedule went on after the manual one"
    counts = Counter(key for key, _ in read_topic(ENGLISH["topic"]))
    for start in minutes:
        keys = {
            tweet["id"].encode()
            for tweet in simulator.tweets_between(start, start + MINUTE, ENGLISH["query"])
        }
        assert {counts[key] for key in keys} == {2 if start == delivered else 1}, f"the minute {start:%H:%M}"


def check_coverage_pages(stack: AirflowStack, failed: list[datetime]) -> None:
    """The Stream coverage page lists both streams, the second with its last failure; its tab shows the failed
    minutes as failed; each one's late alert fired once, and none of the first stream's."""
    from playwright.sync_api import expect

    with logged_in(stack) as page:
        page.goto(f"{stack.url}/plugin/stream-coverage")
        frame = page.frame_locator("iframe")
        expect(frame.locator("tr[data-stream]")).to_have_count(2)
        row = {
            stream["name"]: frame.locator(f'tr[data-stream="{stream["name"]}"]')
            for stream in (ENGLISH, OTHERS)
        }
        for stream in (ENGLISH, OTHERS):  # by the row's stream: one name begins the other
            expect(row[stream["name"]]).to_contain_text(stream["topic"])
        expect(row[OTHERS["name"]]).to_contain_text("failed")
        page.screenshot(path=SCREENSHOTS / "stream-coverage.png", full_page=True)

        states = minute_states(coverage_tab(page, stack, OTHERS["name"], "zoom=hour"))
        assert [states[f"{start:%Y-%m-%dT%H:%MZ}"] for start in failed] == ["failed"] * len(failed)
        page.screenshot(path=SCREENSHOTS / "coverage-failed.png", full_page=True)

    def alerted() -> bool:
        alerts = late_alerts(stack, OTHERS["name"])
        return all(any(window_text(start) in alert for alert in alerts) for start in failed)

    stack.wait_until(alerted, 300, f"the late alerts of the failed windows of {OTHERS['name']}")
    alerts = late_alerts(stack, OTHERS["name"])
    assert [sum(window_text(start) in alert for alert in alerts) for start in failed] == [1] * len(failed)
    assert late_alerts(stack, ENGLISH["name"]) == []
