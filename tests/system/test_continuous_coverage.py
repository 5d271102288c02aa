"""Continuous coverage, with the real scheduler making the runs: every minute since the DAG was enabled gets
its run, across a crash of every Airflow process and a pause (an outage longer than the search horizon is in
test_horizon_outage.py, on a stack of its own, so that the two wait on the clock side by side).

One stack lives through the phases in order, as a deployment would. Each phase ends with the same check: the
scheduled runs cover every minute since the first one, each minute delivered whole (every tweet in the topic,
by key and content); no request came before its window was searchable. These tests mostly wait on the clock,
so `make test` runs them beside the others.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from tests.helpers import x_api_time
from tests.system.coverage import (
    LOOK_BACK,
    MINUTE,
    SETTLE,
    check_coverage,
    due_by,
    minute,
    scheduled_runs,
    scheduling_stack,
    start_of,
    wait_until_settled,
)

pytestmark = pytest.mark.wall_clock

PORT = int(os.environ.get("TEST_COVERAGE_AIRFLOW_PORT", "19180"))
OUTAGE = 150  # seconds: at least two windows come due while Airflow is down or the DAG paused


@pytest.fixture(scope="module")
def stack(kafka, simulator):
    """Airflow that schedules every minute, first enabled with a look-back of two minutes."""
    with scheduling_stack(PORT, simulator) as airflow:
        yield airflow


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
