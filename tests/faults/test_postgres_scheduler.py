"""With the real scheduler on PostgreSQL (local_system.AirflowStack; Airflow 3.3.2 refuses backfills this large
on SQLite under concurrent access) and every log at DEBUG: a backfill of 120 past windows runs into the X API's
rate limit and still delivers every tweet, no task log file holds a secret at DEBUG level, and a task cut off from
the API server (its tasks reach it through Toxiproxy, as workers on other hosts would) is retried without writing
its window twice."""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import timedelta

import pytest

from include import ledger
from local_system import DAG_ID, AirflowStack, Postgres, Toxiproxy, XApiSimulator, connections
from tests.faults.consumers import TopicWatcher, check_committed_once, when_written
from tests.faults.reliability import SEARCH_PATH
from tests.helpers import BOOTSTRAP, KAFKA_CONFIG, ROOT, create_topic, past_window, read_topic, x_api_time

POSTGRES_PORT = int(os.environ.get("FAULTS_POSTGRES_PORT", "15442"))
# Its worker log server takes the next port, Toxiproxy's API the one after, the proxy to the API server the fourth.
AIRFLOW_PORT = int(os.environ.get("FAULTS_AIRFLOW_PORT", "19380"))
TOKEN = "postgres-stack-bearer-token-0123456789"
# The backfill waits out the rate limit, minute after minute; the other test shares its stack.
pytestmark = pytest.mark.wall_clock
POOL_SLOTS = 4
CUT_OFF_ATTEMPTS = 5

WINDOWS = 120
# Requests per RATE_WINDOW seconds, per credential, as X counts them. Low enough that the limit, not Airflow,
# sets the pace: at 40 per 60 s the 120 requests could all be made in 120 s, less than the ~200 s that 120
# runs take on this stack on 2 cores (produce_tweets runs one at a time, see the DAG).
RATE_LIMIT = 20
RATE_WINDOW = 60
# What a task's supervisor tries before it gives up a call to the API server: 3 attempts, each given 5 s
# (execution_api_timeout), 1 to 4 s apart: about 20 s. A task whose heartbeat is 60 s late is failed and retried
# (60 s, not less: the backfill in this stack runs 8 tasks at once on 2 busy cores, and none may miss it).
API_RETRIES = {
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "3",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "4",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
}


@pytest.fixture(scope="module")
def limited_x_api():
    """The X API simulator of this module, at the default (generous) rate limit unless a test lowers it."""
    with XApiSimulator(bearer_token=TOKEN) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def execution_api():
    """The proxy between the stack's tasks and its API server (the execution API), as between workers on other
    hosts and the API server."""
    with Toxiproxy(AIRFLOW_PORT + 2) as toxiproxy:
        yield toxiproxy.proxy(
            "execution_api", listen=f"127.0.0.1:{AIRFLOW_PORT + 3}", upstream=f"127.0.0.1:{AIRFLOW_PORT}"
        )


@pytest.fixture(scope="module")
def postgres_stack(kafka, limited_x_api, execution_api):
    """Scheduler, dag-processor and api-server (LocalExecutor) on a fresh PostgreSQL, every log at DEBUG; its
    tasks reach the API server through `execution_api`."""
    postgres = Postgres(POSTGRES_PORT, ROOT / ".artifacts" / f"postgres-{POSTGRES_PORT}")
    postgres.remove_state()
    with postgres:
        stack = AirflowStack(
            home=ROOT / ".artifacts" / f"airflow-postgres-{AIRFLOW_PORT}",
            port=AIRFLOW_PORT,
            database=postgres.sqlalchemy_url,
            connections=connections(limited_x_api.url, TOKEN, KAFKA_CONFIG),
            pools={"x_api": POOL_SLOTS},
            parallelism=POOL_SLOTS + 2,
            logging_level="DEBUG",
            settings={
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{execution_api.listen}/execution/",
                **API_RETRIES,
            },
        )
        with stack:
            yield stack


@pytest.mark.timeout(1200)  # with the stack's start-up; the backfill alone takes about 6 minutes
def test_a_backfill_of_120_windows_waits_out_the_rate_limit_and_loses_nothing(
    case, postgres_stack, limited_x_api, monkeypatch
):
    """Expected: 120 windows against 20 requests per 60 s must run into the limit. Each fetch that gets a 429
    waits for the reset in its own try, so every run succeeds with one try per task; each window is fetched
    with one successful request, plus at most one 429 per pool slot each time the limit runs out; and the
    backfill takes not much longer than the least time the limit allows for 120 requests."""
    monkeypatch.setattr(limited_x_api, "rate_limit", RATE_LIMIT)  # for this test only
    monkeypatch.setattr(limited_x_api, "rate_limit_window", RATE_WINDOW)
    limited_x_api.clear_requests()
    first_start, _ = past_window(WINDOWS + 60)
    windows = [
        (first_start + timedelta(minutes=i), first_start + timedelta(minutes=i + 1)) for i in range(WINDOWS)
    ]
    topic = f"test-rate-limit-backfill-{uuid.uuid4().hex[:12]}"

    began = time.monotonic()
    runs = postgres_stack.backfill(windows, conf={"topic": topic}, timeout=900, max_active_runs=8)
    elapsed = time.monotonic() - began

    case.runs = len(runs)
    instances = postgres_stack.task_instances()
    mine = {run["dag_run_id"] for run in runs}
    tries = [ti["try_number"] for ti in instances if ti["dag_run_id"] in mine]
    case.task_tries = sum(tries)
    searches = [r for r in limited_x_api.requests if r["path"] == SEARCH_PATH]
    ok = [r for r in searches if r["status"] == 200]
    limited = [r for r in searches if r["status"] == 429]
    refills = math.ceil(WINDOWS / RATE_LIMIT) - 1  # times the limit must run out and reset
    least = refills * RATE_WINDOW  # seconds: the limit lets 20 through, then 20 a minute later, ...
    case.measured = {
        "seconds": round(elapsed),
        "limit_minimum_seconds": least,
        "backfill_vs_limit_minimum": round(elapsed / least, 2),
        "requests_span_vs_limit_minimum": round((ok[-1]["time"] - searches[0]["time"]) / least, 2),
        "search_requests": len(searches),
        "rate_limited_requests": len(limited),
    }

    assert [run["state"] for run in runs] == ["success"] * WINDOWS, "no run failed, 429s included"
    assert tries == [1] * (2 * WINDOWS), "a 429 never cost a try: each fetch waited the reset out"
    assert sorted(r["params"]["start_time"] for r in ok) == sorted(x_api_time(start) for start, _ in windows)
    assert limited, f"{WINDOWS} requests at {RATE_LIMIT} per {RATE_WINDOW} s must run into the limit"
    assert len(limited) <= refills * POOL_SLOTS, "one 429 per waiting fetch each time the limit runs out"
    assert elapsed < 1.5 * least + 120, case.measured
    case.check_delivered(limited_x_api, topic, windows)


def test_no_task_log_file_holds_the_token_at_debug_level(case, postgres_stack, limited_x_api):
    """Expected: at DEBUG, the task log files of real runs (a failed request and its retry included) hold
    the requests and the connection lookups, but never the bearer token; nor does any log of the scheduler,
    the dag-processor or the api-server, which serves the connection to the tasks."""
    limited_x_api.add_fault(status=503, times=1)
    windows = [past_window(minutes_ago) for minutes_ago in (50, 49)]
    topic = f"test-debug-secrets-{uuid.uuid4().hex[:12]}"

    runs = postgres_stack.backfill(windows, conf={"topic": topic}, timeout=300)
    case.runs = len(runs)

    assert [run["state"] for run in runs] == ["success"] * 2
    log_dir = postgres_stack.home / "logs" / f"dag_id={DAG_ID}"
    files = [path for run in runs for path in (log_dir / f"run_id={run['dag_run_id']}").rglob("*.log")]
    logged = "\n".join(path.read_text() for path in files)
    assert "Connection Retrieved 'twitter_default'" in logged, "the files are at DEBUG level"
    assert "Starting new HTTP connection" in logged, "urllib3's DEBUG lines about the requests are in them"
    assert "Attempt 1 of 4 failed" in logged and "Delivered " in logged, "the files are the real task logs"
    assert TOKEN not in logged
    every_log = (postgres_stack.home / "logs").rglob("*.log")
    assert [path.name for path in every_log if TOKEN in path.read_text(errors="replace")] == []
    case.check_delivered(limited_x_api, topic, windows)


def test_a_task_cut_off_from_the_api_server_longer_than_its_retry_budget_is_retried_without_writing_again(
    case, postgres_stack, limited_x_api, execution_api
):
    """Expected: while produce_tweets writes a window (records in the log), everything between the tasks and the
    API server is dropped (Toxiproxy's timeout toxic, both ways), longer than the supervisor's retry budget: the
    try commits the window but cannot report its success, its heartbeats stop, and the scheduler fails it when
    its heartbeat is 60 s late. Once it is up for retry the API server is reachable again; the retry finds the
    window in the delivery ledger and writes nothing: a read_committed consumer sees each tweet once.

    A try writes its window and reports its success within a tenth of a second, so the cut, made when the test
    sees the window's first records, can come after the report: then that window is delivered at its first try,
    and the case takes the next window, up to CUT_OFF_ATTEMPTS."""
    stack, tweets = postgres_stack, 4000

    def cut_off() -> None:
        for way in ("upstream", "downstream"):
            execution_api.add_toxic("timeout", stream=way, timeout=0)

    for attempt in range(CUT_OFF_ATTEMPTS):
        start, end = past_window(57 - attempt)
        limited_x_api.set_rate(start, tweets)
        topic = f"test-api-cut-off-{uuid.uuid4().hex[:12]}"
        create_topic(BOOTSTRAP, topic)
        watcher = TopicWatcher(topic, BOOTSTRAP)
        run_id = stack.trigger(start, {"topic": topic})["dag_run_id"]
        case.runs += 1
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/produce_tweets"

        def produce_ended_its_try(path=path) -> dict | None:
            """produce_tweets once its try ended: up for retry, or succeeded (the task instance's own state)."""
            instance = stack.api("GET", path)
            return instance if instance["state"] in ("up_for_retry", "success") else None

        try:
            when_written(topic, BOOTSTRAP, cut_off, tweets, timeout=300)
            began = time.monotonic()
            instance = stack.wait_until(produce_ended_its_try, 300, "the cut-off try to be failed")
            case.measured["seconds_cut_off"] = round(time.monotonic() - began)
        finally:
            execution_api.toxiproxy.reset()
        if instance["state"] != "success" or instance["try_number"] > 1:
            break
        watcher.stop()  # the cut came after the report: this window was delivered at its first try
        case.task_tries += 2
    else:
        pytest.fail(f"each of {CUT_OFF_ATTEMPTS} tries reported its success before the cut")
    case.measured["windows_until_cut_mid_write"] = attempt + 1

    def ended() -> dict | None:
        run = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    assert stack.wait_until(ended, 300, "the run to end")["state"] == "success"
    tries = stack.task_tries(run_id, "produce_tweets")
    case.task_tries += 1 + len(tries)
    assert [ti["state"] for ti in tries] == ["failed", "success"], (
        "the cut-off try failed, its retry succeeded"
    )
    assert case.measured["seconds_cut_off"] > 20, "cut off longer than the supervisor's retry budget"
    expected = len(read_topic(topic))
    retry_log = stack.task_log(run_id, "produce_tweets", 2)
    assert f"was already delivered by try 1 of this run ({run_id}, clear 0): {expected} records" in retry_log
    check_committed_once(case, limited_x_api, topic, [(start, end)], BOOTSTRAP, watcher, 0)
    key = ledger.ledger_key(DAG_ID, topic, start)
    entries = [ledger.decode(value) for k, value in read_topic(ledger.LEDGER_TOPIC) if k == key]
    assert [(entry.try_number, entry.records) for entry in entries] == [(1, expected)]
