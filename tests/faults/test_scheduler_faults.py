"""With the real scheduler (tests/system/harness.py): secrets kept out of task log files, XComs, rendered
templates and the REST API."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from tests.helpers import past_window
from tests.system.harness import DAG_ID, TEST_X_BEARER_TOKEN
from twitter_provider.hooks import OAUTH1_FIELDS


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill(stack, windows: list[tuple[datetime, datetime]], topic: str, timeout: float) -> list[dict]:
    """Backfill consecutive windows (by their starts, the runs' logical dates) to `topic`; return its runs
    once all have ended. Keep backfills small on this SQLite stack: Airflow 3.3.2 refuses to create dozens
    of runs under concurrent access ("Backfill creation is not supported on SQLite under concurrent
    access. Please use PostgreSQL or MySQL.")."""
    no_backfill_running(stack)  # Airflow allows one running backfill per DAG
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        iso(windows[0][0]),
        "--to-date",
        iso(windows[-1][0]),
        "--dag-run-conf",
        json.dumps({"topic": topic}),
    )

    def mine(runs: list[dict]) -> list[dict]:
        return [run for run in runs if (run["conf"] or {}).get("topic") == topic]

    def ended(runs: list[dict]) -> bool:
        return len(mine(runs)) == len(windows) and all(
            r["state"] in ("success", "failed") for r in mine(runs)
        )

    runs = mine(stack.wait_for_runs(ended, timeout, f"the backfill of {len(windows)} windows to end"))
    no_backfill_running(stack)  # nor for the next test
    return runs


def no_backfill_running(stack) -> None:
    """Wait until the scheduler has marked every backfill of the DAG completed."""

    def completed() -> bool:
        backfills = stack.api("GET", "/api/v2/backfills", params={"dag_id": DAG_ID})["backfills"]
        return all(backfill["completed_at"] for backfill in backfills)

    stack.wait_until(completed, 120, "the DAG's backfills to be marked completed")


def test_secrets_stay_out_of_task_log_files_xcoms_rendered_fields_and_the_api(case, airflow_stack, x_api):
    """Expected: after real runs by the scheduler, the bearer token is in no task log file, no XCom, no
    rendered template field; the REST API masks the connection's password and the OAuth 1.0a secrets in
    its extra (the consumer key, an application id, stays visible)."""
    windows = [past_window(minutes_ago) for minutes_ago in (190, 189)]
    topic = f"test-secrets-{uuid.uuid4().hex[:12]}"
    x_api.add_fault(status=503, times=1)  # a warning line with the failed request, too

    runs = backfill(airflow_stack, windows, topic, timeout=300)
    case.runs = len(runs)

    assert [run["state"] for run in runs] == ["success"] * 2
    log_files = [
        path
        for run in runs
        for path in (airflow_stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run['dag_run_id']}").rglob(
            "*.log"
        )
    ]
    assert len(log_files) >= 4, "a log file per task try"
    logged = "\n".join(path.read_text() for path in log_files)
    assert "Attempt 1 of 4 failed" in logged and "Delivered " in logged, "the files are the real task logs"
    assert TEST_X_BEARER_TOKEN not in logged
    for run in runs:
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
        xcoms = airflow_stack.api("GET", f"{run_path}/fetch_tweets/xcomEntries/return_value")
        assert xcoms["value"] and TEST_X_BEARER_TOKEN not in json.dumps(xcoms)
        for task_id in ("fetch_tweets", "produce_tweets"):
            rendered = airflow_stack.api("GET", f"{run_path}/{task_id}")["rendered_fields"]
            assert TEST_X_BEARER_TOKEN not in json.dumps(rendered)
    connection = airflow_stack.api("GET", "/api/v2/connections/twitter_default")
    assert connection["password"] in (None, "***") and TEST_X_BEARER_TOKEN not in json.dumps(connection)
    oauth = {name: f"{name}-value-0123456789" for name in OAUTH1_FIELDS}
    airflow_stack.set_connection("x_oauth_masked", conn_type="twitter", extra=oauth)
    shown = json.dumps(airflow_stack.api("GET", "/api/v2/connections/x_oauth_masked"))
    assert [name for name in OAUTH1_FIELDS if oauth[name] in shown] == ["consumer_key"], "the key is an id"
    case.check_delivered(x_api, topic, windows)
