"""With the real scheduler (tests/system/harness.py): secrets kept out of task log files, XComs, rendered
templates and the REST API."""

from __future__ import annotations

import json
import uuid

from tests.helpers import past_window
from tests.system.harness import DAG_ID, TEST_X_BEARER_TOKEN
from twitter_provider.hooks import OAUTH1_FIELDS


def test_secrets_stay_out_of_task_log_files_xcoms_rendered_fields_and_the_api(case, airflow_stack, x_api):
    """Expected: after real runs by the scheduler, the bearer token is in no task log file, no XCom, no
    rendered template field; the REST API masks the connection's password and the OAuth 1.0a secrets in
    its extra (the consumer key, an application id, stays visible)."""
    windows = [past_window(minutes_ago) for minutes_ago in (190, 189)]
    topic = f"test-secrets-{uuid.uuid4().hex[:12]}"
    x_api.add_fault(status=503, times=1)  # a warning line with the failed request, too

    runs = airflow_stack.backfill(windows, conf={"topic": topic}, timeout=300)
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
        xcoms = airflow_stack.api("GET", f"{run_path}/produce_tweets/xcomEntries/return_value")
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
