"""Continuous coverage, with the real scheduler making the runs: every minute since the DAG was enabled gets
its run, across a crash of every Airflow process and a pause (an outage longer than the search horizon is in
test_horizon_outage.py, on a stack of its own, so that the two wait on the clock side by side).

One stack lives through the phases in order, as a deployment would. Each phase ends with the same check: the
scheduled runs cover every minute since the first one, each minute delivered whole (every tweet in the topic,
by key and content); no request came before its window was searchable. The stream's Coverage tab, in the browser,
shows the minutes of an outage (the UI up, the scheduler down) and of a pause as missing while they are, then
delivered, each by a catch-up run delivered late whose late alert fired once. These tests mostly wait on the
clock, so `make test` runs them beside the others.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from local_system import AirflowStack
from tests.helpers import late_alerts, window_text, x_api_time
from tests.system.coverage import (
    LATE_AFTER,
    LOOK_BACK,
    MINUTE,
    SETTLE,
    check_coverage,
    coverage,
    due_by,
    minute,
    scheduled_runs,
    scheduling_stack,
    start_of,
    wait_until_settled,
    without_run,
)

pytestmark = pytest.mark.wall_clock

PORT = int(os.environ.get("TEST_COVERAGE_AIRFLOW_PORT", "19180"))
OUTAGE = 150  # seconds: at least two windows come due while Airflow is down or the DAG paused
DELIVERED = {"delivered", "late"}  # what the Coverage tab shows for a minute in its topic


def check_caught_up(stack: AirflowStack, missed: list[datetime], resumed: datetime, screenshot: str) -> None:
    """Each minute held back past its deadline (a minute after it became searchable) when Airflow resumed:
    delivered in the Coverage tab, its run a catch-up run delivered late with a note saying both, its late alert
    fired once."""
    held_back = [start for start in missed if start + MINUTE + SETTLE + LATE_AFTER * MINUTE < resumed]
    assert held_back, missed
    shown = coverage(stack, screenshot)
    for start in held_back:
        state, text = shown[start]
        assert state in DELIVERED and "catch-up run, created" in text, (start, state, text)
    notes = {start_of(run): run["note"] or "" for run in scheduled_runs(stack)}
    assert all(notes[start].startswith("Catch-up run: created ") for start in held_back), notes
    assert all("\nDelivered late: " in notes[start] for start in held_back), notes

    def alerted() -> bool:
        alerts = late_alerts(stack, "tweets_to_kafka")
        return all(any(window_text(start) in alert for alert in alerts) for start in held_back)

    stack.wait_until(alerted, 120, "the late alerts of the held-back windows")
    alerts = late_alerts(stack, "tweets_to_kafka")
    assert all(sum(window_text(start) in alert for alert in alerts) == 1 for start in held_back), alerts


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
    with SIGKILL and stays down 150 s; with the api-server started first, the Coverage tab shows the minutes that
    came due meanwhile as missing; once the rest starts again, the killed run and every minute that came due in
    between run, oldest first, each delivers its whole window, and the tab shows them delivered."""
    next_start = start_of(scheduled_runs(stack)[-1]) + MINUTE
    simulator.add_fault(delay=20, start_time=next_start)  # holds the fetch mid-request
    stack.wait_until(
        lambda: any(r["params"]["start_time"] == x_api_time(next_start) for r in simulator.requests),
        180,
        f"the fetch of the window at {next_start:%H:%M} to send its request",
    )

    stack.kill()
    time.sleep(OUTAGE)
    stack.resume(only=("api-server", "log-server"))  # the UI first, the scheduler still down
    down = without_run(stack, next_start)
    assert len(down) >= 2, "minutes came due during the outage"
    shown = coverage(stack, "coverage-outage")
    assert {shown[start][0] for start in down} == {"missing"}
    restarted = datetime.now(UTC)
    stack.resume()

    runs = wait_until_settled(stack, due_by(restarted) + MINUTE)
    assert start_of(runs[-1]) - next_start >= 3 * MINUTE, "minutes came due during the outage"
    check_coverage(stack, simulator, runs)
    check_caught_up(stack, down, restarted, "coverage-after-outage")


def test_every_window_of_a_pause_gets_its_run(stack, simulator):
    """Expected: paused 150 s and unpaused, the DAG runs every minute of the pause, none skipped (Airflow's
    cron timetable with catchup=False runs only the latest); the Coverage tab shows them missing during the pause,
    delivered after it."""
    paused_after = start_of(scheduled_runs(stack)[-1])
    stack.pause(True)
    time.sleep(OUTAGE)
    paused = without_run(stack, paused_after)
    assert len(paused) >= 2, "minutes came due during the pause"
    shown = coverage(stack, "coverage-paused")
    assert {shown[start][0] for start in paused} == {"missing"}
    unpaused = datetime.now(UTC)
    stack.pause(False)

    runs = wait_until_settled(stack, due_by(unpaused) + MINUTE)
    assert start_of(runs[-1]) - paused_after >= 3 * MINUTE, "minutes came due during the pause"
    check_coverage(stack, simulator, runs)
    check_caught_up(stack, paused, unpaused, "coverage-after-pause")
