"""Continuous coverage, with the real scheduler making the runs: every minute since the DAG was enabled gets
its run, across a crash of every Airflow process, a pause, and an outage longer than the search horizon.

One stack lives through the phases in order, as a deployment would. Each phase ends with the same check: the
scheduled runs cover every minute since the first one, each minute delivered whole (every tweet in the topic,
by key and content) or, only past the horizon, reported and never requested; no request came before its
window was searchable. These tests mostly wait on the clock, so `make test` runs them beside the others.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.records import to_record
from local_system import AirflowStack, connections
from tests.helpers import DAG_QUERY, KAFKA_CONFIG, ROOT, read_topic, write_stream_file, x_api_time
from tests.system.harness import TEST_X_BEARER_TOKEN

pytestmark = pytest.mark.wall_clock

PORT = int(os.environ.get("TEST_COVERAGE_AIRFLOW_PORT", "19180"))
TOPIC = "tweets-lambda1"  # the scheduled runs' default
MINUTE = timedelta(minutes=1)
SETTLE = timedelta(seconds=30)
LOOK_BACK = 2
OUTAGE = 150  # seconds: at least two windows come due while Airflow is down or the DAG paused
HORIZON = 4  # minutes, in the last phase only; the DAG keeps a minute of margin, so 3 are reachable
SETTLED = "success", "failed"


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def start_of(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"])


def window_of(record: dict) -> datetime:
    """The start of the window that holds a record: the minute its post was created in."""
    return minute(datetime.strptime(record["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))


def due_by(moment: datetime) -> datetime:
    """The start of the last window whose run is due at `moment` (end + settle has passed)."""
    return minute(moment - SETTLE) - MINUTE


@pytest.fixture(scope="module")
def stack(kafka, simulator):
    """Airflow that schedules every minute, first enabled with a look-back of two minutes."""
    home = ROOT / ".artifacts" / f"airflow-coverage-{PORT}"
    streams = write_stream_file(
        home.with_name(f"{home.name}-streams.yaml"),
        {"name": "tweets_to_kafka", "query": DAG_QUERY, "topic": TOPIC, "look_back_minutes": LOOK_BACK},
    )
    airflow = AirflowStack(
        home=home,
        port=PORT,
        connections=connections(simulator.url, TEST_X_BEARER_TOKEN, KAFKA_CONFIG),
        pools={"x_api": 2},
        schedule_runs=True,
        settings={
            "TWEETS_TO_KAFKA_STREAMS": str(streams),
            # A task killed with its worker is failed (then retried) a minute after its last heartbeat, not 5.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        },
    )
    with airflow:
        airflow.enabled_at = datetime.now(UTC)
        yield airflow


def scheduled_runs(stack: AirflowStack) -> list[dict]:
    return sorted((run for run in stack.dag_runs() if run["run_type"] == "scheduled"), key=start_of)


def wait_until_settled(stack: AirflowStack, last: datetime, timeout: float = 420) -> list[dict]:
    """Wait until the scheduled runs reach the window starting at `last` and every one up to it ended."""

    def settled(runs: list[dict]) -> bool:
        mine = [run for run in runs if run["run_type"] == "scheduled" and start_of(run) <= last]
        return (
            bool(mine) and max(map(start_of, mine)) == last and all(run["state"] in SETTLED for run in mine)
        )

    stack.wait_for_runs(settled, timeout, f"every scheduled run up to the window at {last:%H:%M} to end")
    return [run for run in scheduled_runs(stack) if start_of(run) <= last]


def fetch_logs(stack: AirflowStack, run: dict) -> str:
    """The logs of every recorded try of the run's fetch_tweets. A try that failed before its task started
    (the executor reports it failed while it is queued, e.g. when the api-server just started is too slow to
    answer) ran none of the task's code and, in Airflow 3.3.2, leaves no record: the API has no log of it."""
    tries = stack.task_tries(run["dag_run_id"], "fetch_tweets")
    return "\n".join(stack.task_log(run["dag_run_id"], "fetch_tweets", t["try_number"]) for t in tries)


def check_coverage(stack, simulator, runs: list[dict], unreachable: set[datetime] = frozenset()) -> None:
    """Every minute from the first run's on has exactly one scheduled run or, past the horizon, none; each
    run delivered its whole window, or skipped an unreachable one; the topic holds exactly those tweets;
    no request came before its window was searchable, and none for an unreachable window."""
    starts = [start_of(run) for run in runs]
    minutes = [starts[0] + n * MINUTE for n in range((starts[-1] - starts[0]) // MINUTE + 1)]
    assert len(starts) == len(set(starts)), "one scheduled run per window"
    assert set(minutes) - set(starts) <= unreachable, "a reachable minute got no run"
    states = {start_of(run): run["state"] for run in runs}
    assert all(state == "success" for state in states.values()), states
    delivered = [start for start in starts if start not in unreachable]

    expected = {
        tweet["id"].encode(): to_record(tweet, tweet["author"])
        for start in delivered
        for tweet in simulator.tweets_between(start, start + MINUTE, query=DAG_QUERY)
    }
    records = {key: json.loads(value) for key, value in read_topic(TOPIC)}
    # The schedule goes on while this checks: the topic may also hold the windows of runs after the last one
    # checked, each of them whole.
    later = {key: record for key, record in records.items() if window_of(record) > starts[-1]}
    by_key = {key: record for key, record in records.items() if key not in later}
    assert len(expected) > 20 * len(delivered), "the simulator made tweets in every window"
    assert by_key == expected, (
        f"lost: {len(expected.keys() - by_key.keys())}, extra: {len(by_key.keys() - expected.keys())}"
    )
    assert later == {
        tweet["id"].encode(): to_record(tweet, tweet["author"])
        for start in {window_of(record) for record in later.values()}
        for tweet in simulator.tweets_between(start, start + MINUTE, query=DAG_QUERY)
    }, "each window delivered since holds its whole minute"

    for request in simulator.requests:
        end = datetime.fromisoformat(request["params"]["end_time"])
        asked = datetime.fromtimestamp(request["time"], UTC)
        assert asked >= end + timedelta(seconds=simulator.searchable_after), f"searched too early: {request}"
        assert datetime.fromisoformat(request["params"]["start_time"]) not in unreachable, request


def test_first_enable_starts_look_back_minutes_before_the_current_one(stack, simulator):
    """Expected: the first run covers the minute current 30 s before the DAG was enabled, less two of
    look-back (or one minute earlier: the dag-processor may have computed it shortly before the enable);
    no earlier minute gets a run, and the due ones all deliver."""
    expected_first = minute(stack.enabled_at - SETTLE) - LOOK_BACK * MINUTE

    runs = wait_until_settled(stack, due_by(datetime.now(UTC)) + MINUTE)

    assert start_of(runs[0]) in (expected_first, expected_first - MINUTE)
    assert start_of(runs[-1]) >= minute(stack.enabled_at - SETTLE), "up to the minute current at the enable"
    check_coverage(stack, simulator, runs)


def test_every_window_of_a_crash_of_every_airflow_process_gets_its_run(stack, simulator):
    """Expected: with a fetch in the middle of its request, every Airflow process (tasks included) is killed
    with SIGKILL and stays down 150 s; once started again, the killed run and every minute that came due in
    between run, oldest first, and each delivers its whole window."""
    next_start = start_of(scheduled_runs(stack)[-1]) + MINUTE
    simulator.add_fault(delay=20, start_time=next_start)  # holds the fetch mid-request
    stack.wait_until(
        lambda: any(r["params"]["start_time"] == x_api_time(next_start) for r in simulator.requests),
        180,
        f"the fetch of the window at {next_start:%H:%M} to send its request",
    )

    stack.kill()
    time.sleep(OUTAGE)
    stack.resume()
    restarted = datetime.now(UTC)

    runs = wait_until_settled(stack, due_by(restarted) + MINUTE)
    assert start_of(runs[-1]) - next_start >= 3 * MINUTE, "minutes came due during the outage"
    check_coverage(stack, simulator, runs)


def test_every_window_of_a_pause_gets_its_run(stack, simulator):
    """Expected: paused 150 s and unpaused, the DAG runs every minute of the pause, none skipped (Airflow's
    cron timetable with catchup=False runs only the latest)."""
    paused_after = start_of(scheduled_runs(stack)[-1])
    stack.pause(True)
    time.sleep(OUTAGE)
    stack.pause(False)

    runs = wait_until_settled(stack, due_by(datetime.now(UTC)) + MINUTE)
    assert start_of(runs[-1]) - paused_after >= 3 * MINUTE, "minutes came due during the pause"
    check_coverage(stack, simulator, runs)


@pytest.mark.timeout(900)
def test_an_outage_past_the_horizon_reports_the_unreachable_windows_and_runs_the_rest(stack, simulator):
    """Expected: with a search horizon of 4 minutes (3 reachable), Airflow killed for 5 minutes: the minutes
    beyond reach at the restart are never requested, and named in a run's log, as a skipped run of its own
    window or as the range the first run after them reports with the count in its summary; every later
    minute is delivered."""
    last_before = start_of(scheduled_runs(stack)[-1])
    stack.kill()
    stack.settings["AIRFLOW__TWEETS_TO_KAFKA__SEARCH_HORIZON_MINUTES"] = str(HORIZON)
    simulator.search_horizon = HORIZON * 60
    time.sleep(300)
    stack.resume()

    runs = wait_until_settled(stack, due_by(datetime.now(UTC)) + MINUTE)
    reported: set[datetime] = set()
    for run in (run for run in runs if start_of(run) > last_before):
        logged = fetch_logs(stack, run)
        if "is older than the X API's search horizon" in logged:
            reported.add(start_of(run))
        if gap := re.search(r"Windows \[(\S+), (\S+)\) \((\d+) minutes\) got no run", logged):
            first, end = (datetime.fromisoformat(moment) for moment in gap.groups()[:2])
            reported |= {first + n * MINUTE for n in range((end - first) // MINUTE)}
            assert "Run summary: " in logged and f"; {gap.group(3)} unreachable minutes before" in logged
    first_delivered = min(
        start_of(run) for run in runs if start_of(run) > last_before and start_of(run) not in reported
    )
    left_out = {last_before + n * MINUTE for n in range(1, (first_delivered - last_before) // MINUTE)}

    assert len(left_out) >= 2, "the outage put minutes beyond reach"
    assert reported == left_out, "every minute beyond reach is named in a run's log, and no other"
    check_coverage(stack, simulator, runs, unreachable=left_out)
