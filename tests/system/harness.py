"""Airflow with a real scheduler for tests (local_system.AirflowStack), and its pytest fixtures.

Fixtures (imported by tests/conftest.py, so any test can ask for them):
- `x_api`: the X API simulator over HTTP for the whole session (port `TEST_X_SIM_PORT`, default a
  free one); faults, rates and the request log are reset before each test that uses it.
- `unused_windows(stack, minutes_ago, count)`: past windows that no run of the stack's DAG covers yet, for a test
  to backfill or trigger (Airflow makes no second run of a logical date).
- `airflow_stack`: one `AirflowStack` for the session on `TEST_AIRFLOW_PORT` (default 19080; the
  worker log server takes the next port), with a triggerer, `twitter_default` at `x_api`,
  `kafka_default` at the test broker, the `x_api` pool of one slot, the DAG unpaused, compliance jobs
  looked at every 2 s and the scheduler's own schedule off (only backfills, triggers and clears make
  runs); besides `admin`, a user `outsider` who may read no DAG. Its home, with each component's log, is
  kept in `.artifacts/airflow-system-<port>/` for reading after a failure.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from local_system import DAG_ID, AirflowError, AirflowStack, XApiSimulator, connections
from tests.helpers import KAFKA_CONFIG, ROOT, past_window
from tests.ui.auth import SETTINGS as OUTSIDER_SETTINGS

__all__ = ["DAG_ID", "AirflowError", "AirflowStack", "airflow_stack", "x_api", "x_api_server"]

TEST_AIRFLOW_PORT = int(os.environ.get("TEST_AIRFLOW_PORT", "19080"))
TEST_X_SIM_PORT = int(os.environ.get("TEST_X_SIM_PORT", "0"))
TEST_X_BEARER_TOKEN = "system-test-bearer-token-0123456789"


@pytest.fixture(scope="session")
def x_api_server():
    """The X API simulator for the whole session (the stack's twitter_default points at it)."""
    with XApiSimulator(port=TEST_X_SIM_PORT, bearer_token=TEST_X_BEARER_TOKEN) as simulator:
        yield simulator


@pytest.fixture
def x_api(x_api_server):
    """The session's X API simulator, with no faults, an empty request log, default rates and limits, no
    request counted against them, and no compliance event made by an earlier test."""
    defaults = XApiSimulator()
    settings = (
        "rate_per_minute",
        "tier",
        "rate_limit",
        "rate_limit_window",
        "searchable_after",
        "search_horizon",
        "edit_rate",
        "empty_page_rate",
        "usage_cap",
        "credits",
        "compliance_rate",
        "compliance_processing",
        "compliance_rate_limit",
        "compliance_upload_ttl",
        "compliance_download_ttl",
    )
    for name in settings:
        setattr(x_api_server, name, getattr(defaults, name))
    x_api_server.clear_faults()
    x_api_server.clear_requests()
    x_api_server.clear_rate_limits()
    x_api_server.clear_compliance_events()
    yield x_api_server
    x_api_server.clear_faults()


@pytest.fixture(scope="session")
def airflow_stack(kafka, x_api_server):
    """Airflow with a real scheduler against the test broker and the simulator, for the whole session."""
    stack = AirflowStack(
        home=ROOT / ".artifacts" / f"airflow-system-{TEST_AIRFLOW_PORT}",
        port=TEST_AIRFLOW_PORT,
        connections=connections(x_api_server.url, x_api_server.bearer_token, KAFKA_CONFIG),
        pools={"x_api": 1},
        settings={
            # A task lost with its worker is failed (then retried) a minute after its last heartbeat, not 5.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__TWEETS_TO_KAFKA__COMPLIANCE_POLL_SECONDS": "2",
            # No late alerts: this stack's runs are of past minutes, each late at its creation, and Airflow 3.3.2's
            # scheduler exits when a missed deadline's row goes while it handles it (StaleDataError on `deadline`).
            # The late alerts are tested on stacks of their own (test_streams.py, test_continuous_coverage.py).
            "AIRFLOW__TWEETS_TO_KAFKA__LATE_ALERTS": "False",
            **OUTSIDER_SETTINGS,  # the user `outsider` may read no DAG (tests/ui/auth.py)
        },
        triggerer=True,
    )
    with stack:
        yield stack


def unused_windows(stack: AirflowStack, minutes_ago: int, count: int = 1) -> list[tuple[datetime, datetime]]:
    """`count` consecutive past windows, oldest first, the last starting `minutes_ago` minutes before the current
    minute or, when a run of the stack's DAG covers one of them already (an earlier test's: the session shares the
    stack, and a backfill skips a logical date that has a run), the nearest earlier ones that none covers."""
    taken = {
        datetime.fromisoformat(run["data_interval_start"])
        for run in stack.dag_runs()
        if run["data_interval_start"]
    }
    while True:
        windows = [past_window(minutes_ago + back) for back in range(count - 1, -1, -1)]
        if not taken & {start for start, _ in windows}:
            return windows
        minutes_ago += 1
