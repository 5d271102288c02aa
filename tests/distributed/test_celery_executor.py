"""The DAG on a distributed Airflow: CeleryExecutor on PostgreSQL and Redis, a scheduler, a dag-processor,
an api-server, a triggerer and two Celery workers as separate processes, the real Kafka broker and the X API
simulator as a process of its own. A backfill of past windows must deliver every tweet, on both workers."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from include.records import to_record
from local_system import DAG_ID, AirflowStack, Postgres, Redis, SimulatorProcess, connections
from tests.helpers import DAG_QUERY, KAFKA_CONFIG, ROOT, past_window, read_topic, x_api_time

WINDOWS = 6
TWEETS_PER_MINUTE = 12
POSTGRES_PORT = int(os.environ.get("TEST_POSTGRES_PORT", "15432"))
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "16379"))
API_PORT = int(os.environ.get("TEST_AIRFLOW_API_PORT", "18380"))  # the log server: API_PORT+1
SIMULATOR_PORT = int(os.environ.get("TEST_X_SIM_PORT", "18399"))
STATE = ROOT / ".artifacts" / f"distributed-{API_PORT}"


@pytest.fixture(scope="module")
def cluster(kafka):
    """The whole distributed deployment: (the Airflow stack, PostgreSQL, the simulator process)."""
    postgres = Postgres(POSTGRES_PORT, STATE / "postgres")
    redis = Redis(REDIS_PORT, STATE / "redis")
    simulator = SimulatorProcess(
        SIMULATOR_PORT, "distributed-test-bearer-token", STATE, rate_per_minute=TWEETS_PER_MINUTE
    )
    for service in (postgres, redis, simulator):
        service.remove_state()  # also what a run killed before its clean-up left running
    with postgres, redis, simulator:
        stack = AirflowStack(
            home=STATE / "airflow-home",
            port=API_PORT,
            database=postgres.sqlalchemy_url,
            celery_broker=redis.url,
            triggerer=True,
            connections=connections(simulator.url, simulator.bearer_token, KAFKA_CONFIG),
            pools={"x_api": 4},
            settings={"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10"},
        )
        with stack:
            yield stack, postgres, simulator


def query(dsn: str, sql: str, *params) -> list[tuple]:
    """Rows of a query on the cluster's metadata database."""
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    connection.close()
    return rows


def get_json(url: str):
    """The JSON answer of an HTTP GET."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def workloads_run_by(log_file: Path) -> set[tuple[str, str]]:
    """(run_id, task_id) of every task a Celery worker's own log says it executed."""
    found = set()
    for line in log_file.read_text(errors="replace").splitlines():
        if "Executing workload in Celery" in line:
            run_id = re.search(r"run_id='([^']+)'", line)
            task_id = re.search(r"task_id='([^']+)'", line)
            assert run_id and task_id, f"unexpected workload line: {line}"
            found.add((run_id.group(1), task_id.group(1)))
    return found


def test_a_backfill_on_two_celery_workers_delivers_every_tweet_of_every_window(cluster):
    stack, postgres, simulator = cluster
    dsn, simulator_url, workers = postgres.dsn, simulator.url, ("worker1", "worker2")
    topic = f"test-distributed-{uuid.uuid4().hex[:12]}"
    first_start, _ = past_window(20)
    windows = [
        (first_start + timedelta(minutes=i), first_start + timedelta(minutes=i + 1)) for i in range(WINDOWS)
    ]

    for name in workers:
        stack.wait_until(
            lambda name=name: " ready." in stack.processes[name].log.read_text(errors="replace"),
            180,
            f"Celery {name} to be ready",
        )
    # A backfill run's logical date is its window's start; both ends of the date range are inclusive.
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        windows[0][0].isoformat(),
        "--to-date",
        windows[-1][0].isoformat(),
        "--max-active-runs",
        "4",
        "--dag-run-conf",
        json.dumps({"topic": topic}),
    )

    def finished_runs():
        runs = query(
            dsn,
            "SELECT run_id, state, data_interval_start, data_interval_end, run_type FROM dag_run WHERE dag_id = %s",
            DAG_ID,
        )
        done = len(runs) >= WINDOWS and all(state in ("success", "failed") for _, state, *_ in runs)
        return runs if done else None

    runs = stack.wait_until(finished_runs, 300, f"{WINDOWS} backfill runs to finish")

    logs = f"logs in {stack.home / 'logs'}"
    assert sorted((start, end) for _, _, start, end, _ in runs) == windows
    assert {(state, run_type) for _, state, _, _, run_type in runs} == {("success", "backfill")}, (runs, logs)
    task_states = query(
        dsn, "SELECT run_id, task_id, state, pool FROM task_instance WHERE dag_id = %s", DAG_ID
    )
    assert len(task_states) == 2 * WINDOWS
    assert {state for _, _, state, _ in task_states} == {"success"}, (task_states, logs)
    assert {pool for _, task_id, _, pool in task_states if task_id == "fetch_tweets"} == {"x_api"}

    expected = {}
    for start, end in windows:
        tweets = get_json(
            f"{simulator_url}/_sim/tweets?start_time={x_api_time(start)}&end_time={x_api_time(end)}"
            f"&query={urllib.parse.quote(DAG_QUERY)}"
        )
        assert tweets, f"the simulator posts tweets in every minute, none in {start}"
        expected.update({tweet["id"].encode(): to_record(tweet, tweet["author"]) for tweet in tweets})
    records = read_topic(topic)
    assert {key: json.loads(value) for key, value in records} == expected
    assert len(records) == len(expected), "each tweet is written once"

    requested = {r["params"]["start_time"] for r in get_json(f"{simulator_url}/_sim/requests")}
    assert requested == {x_api_time(start) for start, _ in windows}

    by_worker = {name: workloads_run_by(stack.processes[name].log) for name in workers}
    assert all(by_worker.values()), f"every worker ran tasks: {by_worker}"
    assert set.union(*by_worker.values()) == {(run_id, task_id) for run_id, task_id, *_ in task_states}
    assert not set.intersection(*by_worker.values()), "no task ran on both workers"
