"""What the continuous-coverage tests share (test_continuous_coverage.py, test_horizon_outage.py): Airflow that
schedules every minute, waiting for its runs to settle, and the check each phase ends with."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from include.records import to_record
from local_system import AirflowStack, connections
from tests.helpers import DAG_QUERY, KAFKA_CONFIG, ROOT, read_topic, write_stream_file
from tests.system.harness import TEST_X_BEARER_TOKEN

TOPIC = "tweets-lambda1"  # the scheduled runs' default
MINUTE = timedelta(minutes=1)
SETTLE = timedelta(seconds=30)
LOOK_BACK = 2
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


@contextmanager
def scheduling_stack(port: int, simulator):
    """Airflow that schedules every minute, first enabled with a look-back of two minutes (`enabled_at`)."""
    home = ROOT / ".artifacts" / f"airflow-coverage-{port}"
    streams = write_stream_file(
        home.with_name(f"{home.name}-streams.yaml"),
        {"name": "tweets_to_kafka", "query": DAG_QUERY, "topic": TOPIC, "look_back_minutes": LOOK_BACK},
    )
    airflow = AirflowStack(
        home=home,
        port=port,
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
