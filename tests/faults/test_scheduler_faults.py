"""With the real scheduler (tests/system/harness.py): a 120-window backfill that runs into the X API rate
limit, and secrets kept out of task log files, XComs, rendered templates and the REST API."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime

from tests.helpers import past_window
from tests.system.harness import DAG_ID, TEST_X_BEARER_TOKEN
from twitter_provider.hooks import OAUTH1_FIELDS

WINDOWS = 120
RATE_LIMIT, RATE_LIMIT_WINDOW = 40, 60  # requests per window, as the issue proposes
BACKFILL_SLOTS = 4  # the DAG's max_active_runs: as many concurrent searches as the backfill can make


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill(stack, windows: list[tuple[datetime, datetime]], topic: str, timeout: float) -> list[dict]:
    """Backfill consecutive windows (by their starts, the runs' logical dates) to `topic`; return its runs
    once all have ended. The DAG is paused while the backfill creates its runs: on SQLite, creating many
    runs while the scheduler works on them fails with "database is locked" and makes the scheduler exit."""
    no_backfill_running(stack)  # Airflow allows one running backfill per DAG
    stack.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": True})
    try:
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
    finally:
        stack.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})

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


def test_a_120_window_backfill_runs_into_the_rate_limit_and_no_run_fails(case, airflow_stack, x_api):
    """Expected: with 40 requests allowed per 60 s and up to 4 searches at once, the backfill meets 429s;
    the hook waits each near reset out, so every run succeeds at its first try, each window costs one
    successful request, and the backfill takes not much longer than the limit itself imposes."""
    windows = [past_window(minutes_ago) for minutes_ago in range(WINDOWS + 200, 200, -1)]
    topic = f"test-rate-limit-{uuid.uuid4().hex[:12]}"
    x_api.rate_limit, x_api.rate_limit_window = RATE_LIMIT, RATE_LIMIT_WINDOW
    airflow_stack.api(
        "PATCH",
        "/api/v2/pools/x_api",
        json={"name": "x_api", "slots": BACKFILL_SLOTS, "include_deferred": False},
    )
    try:
        began = time.monotonic()
        runs = backfill(airflow_stack, windows, topic, timeout=900)
        elapsed = time.monotonic() - began
    finally:
        airflow_stack.api(
            "PATCH", "/api/v2/pools/x_api", json={"name": "x_api", "slots": 1, "include_deferred": False}
        )

    tries = [ti["try_number"] for ti in airflow_stack.task_instances() if ti["dag_run_id"] in _ids(runs)]
    case.runs, case.task_tries = len(runs), sum(tries)
    assert [run["state"] for run in runs] == ["success"] * WINDOWS
    assert tries == [1] * 2 * WINDOWS, "no task failed a try, not even fetch_tweets on a 429"
    statuses = [r["status"] for r in x_api.requests]
    assert statuses.count(200) == WINDOWS, "one successful request per window, none repeated"
    limited = statuses.count(429)
    resets = math.ceil(WINDOWS / RATE_LIMIT) - 1
    assert limited >= 1, "the backfill ran into the rate limit"
    assert limited <= BACKFILL_SLOTS * (resets + 1), "each waiting search asked once per reset, no storm"
    floor = resets * RATE_LIMIT_WINDOW  # the least time the limit allows for WINDOWS requests
    case.measured |= {"backfill_seconds": round(elapsed), "rate_limit_floor_seconds": floor, "429s": limited}
    print(
        f"backfill of {WINDOWS} windows: {elapsed:.0f} s, limit floor {floor} s, ratio {elapsed / floor:.2f}"
    )
    assert elapsed < 3 * floor + 120
    case.check_delivered(x_api, topic, windows)


def _ids(runs: list[dict]) -> set[str]:
    return {run["dag_run_id"] for run in runs}
