"""Continuous coverage across an outage longer than the search horizon, with the real scheduler making the runs
(as in test_continuous_coverage.py, on a stack of its own so that both wait on the clock side by side): the
minutes beyond reach are reported and never requested, and shown unreachable in the Coverage tab; every later one
is delivered whole. It mostly waits on the clock, so `make test` runs it beside the others.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.system.coverage import (
    MINUTE,
    SETTLED,
    check_coverage,
    coverage,
    due_by,
    fetch_logs,
    scheduled_runs,
    scheduling_stack,
    start_of,
    wait_until_settled,
)

pytestmark = pytest.mark.wall_clock

# The continuous-coverage stack's port + 2 (each stack takes two ports), so that a caller's ports stay its own.
PORT = int(os.environ.get("TEST_COVERAGE_AIRFLOW_PORT", "19180")) + 2
HORIZON = 4  # minutes; the DAG keeps a minute of margin, so 3 are reachable


@pytest.fixture(scope="module")
def stack(kafka, simulator):
    """Airflow that schedules every minute, first enabled with a look-back of two minutes, once its first runs
    (the look-back's) ended."""
    with scheduling_stack(PORT, simulator) as airflow:
        wait_until_settled(airflow, due_by(datetime.now(UTC)))
        yield airflow


@pytest.mark.timeout(900)
def test_an_outage_past_the_horizon_reports_the_unreachable_windows_and_runs_the_rest(stack, simulator):
    """Expected: with a search horizon of 4 minutes (3 reachable), Airflow killed between two runs for 5 minutes:
    the minutes beyond reach at the restart are never requested, and named in a run's log, as a skipped run of its
    own window or as the range the first run after them reports with the count in its summary; every later minute
    is delivered."""
    last_before = between_runs(stack)
    stack.kill()
    stack.settings["AIRFLOW__TWEETS_TO_KAFKA__SEARCH_HORIZON_MINUTES"] = str(HORIZON)
    simulator.search_horizon = HORIZON * 60
    time.sleep(300)
    stack.resume()

    runs = wait_until_settled(stack, due_by(datetime.now(UTC)) + MINUTE)
    reported: set[datetime] = set()
    for run in (run for run in runs if start_of(run) > last_before):
        logged = fetch_logs(stack, run)
        skipped = "is older than the X API's search horizon" in logged
        if skipped:
            reported.add(start_of(run))
        if gap := re.search(r"Windows \[(\S+), (\S+)\) \((\d+) minutes\) got no run", logged):
            first, end = (datetime.fromisoformat(moment) for moment in gap.groups()[:2])
            reported |= {first + n * MINUTE for n in range((end - first) // MINUTE)}
            # The gap is reported before any skip; a run that then searches counts it in its summary too.
            summary = f"; {gap.group(3)} unreachable minutes before" in logged
            assert skipped or ("Run summary: " in logged and summary), logged[-3000:]
    first_delivered = min(
        start_of(run) for run in runs if start_of(run) > last_before and start_of(run) not in reported
    )
    left_out = {last_before + n * MINUTE for n in range(1, (first_delivered - last_before) // MINUTE)}

    assert len(left_out) >= 2, "the outage put minutes beyond reach"
    assert reported == left_out, "every minute beyond reach is named in a run's log, and no other"
    check_coverage(stack, simulator, runs, unreachable=left_out)
    shown = coverage(stack, "coverage-past-the-horizon")
    assert {shown[start][0] for start in left_out} == {"unreachable"}


def between_runs(stack) -> datetime:
    """Wait until every run due so far ended and the next is not due for 20 s; return the last one's window start.
    Killed then, Airflow leaves no run in flight: one whose window went beyond reach during the outage would skip
    it, reported in its own log, after a request made while the window was reachable."""

    def quiet() -> datetime | None:
        now = datetime.now(UTC)
        runs = scheduled_runs(stack)
        last = due_by(now)
        ended = bool(runs) and start_of(runs[-1]) == last and all(run["state"] in SETTLED for run in runs)
        return last if ended and due_by(now + timedelta(seconds=20)) == last else None

    return stack.wait_until(quiet, 300, "every due run to end, 20 s or more before the next is due")
