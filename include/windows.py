"""Which window a run searches, and what stands between a run and its search: the search horizon, the
windows the schedule had to leave out before it, and the time its tweets take to become searchable."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from airflow.sdk.exceptions import AirflowSkipException

from twitter_provider.timetables import WINDOW, SearchableMinuteTimetable, minute_of

log = logging.getLogger(__name__)
CLOCK_MARGIN = timedelta(minutes=5)


def run_window(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """Return `[start, end)` of a run: the minute that holds its logical date, whatever the run's type (a
    scheduled run's logical date is its window's start), or for a run without a logical date (the UI's
    Trigger) the last complete minute before it was triggered."""
    dag_run = context["dag_run"]
    if dag_run.logical_date is not None:
        return tuple(minute_of(dag_run.logical_date))
    start, end = minute_of(dag_run.run_after)
    return start - WINDOW, start


def skip_beyond_horizon(start: datetime, end: datetime, reason: object) -> NoReturn:
    """Skip the run, with a warning naming its window, when X can no longer serve it (`reason`: why, from
    TwitterHook: the search's reach at the moment of a request, or X's own answer)."""
    log.warning(
        "Window [%s, %s) is older than the X API's search horizon: its tweets can no longer be fetched (%s)",
        iso(start),
        iso(end),
        reason,
    )
    raise AirflowSkipException(f"window [{iso(start)}, {iso(end)}) is beyond the search horizon")


def unreachable_before(context: dict[str, Any], start: datetime, timetable: SearchableMinuteTimetable) -> int:
    """Warn about the windows between the previous scheduled run and this one, which the schedule left out
    because they were beyond the search horizon when it resumed; return how many minutes they span."""
    if context["dag_run"].run_type != "scheduled":
        return 0
    # The schedule resumes at the earliest reachable window: any later one follows its previous window, and its
    # run need not ask the API server (the margin allows for the scheduler's clock running ahead of this one).
    if start > timetable.earliest_reachable(datetime.now(UTC)) + CLOCK_MARGIN:
        return 0
    previous = context["ti"].get_previous_dagrun()
    if previous is None or previous.data_interval_end is None or previous.data_interval_end >= start:
        return 0
    minutes = int((start - previous.data_interval_end).total_seconds() // 60)
    log.warning(
        "Windows [%s, %s) (%d minutes) got no run: they were beyond the X API's search horizon when the "
        "schedule resumed, and their tweets can no longer be fetched",
        iso(previous.data_interval_end),
        iso(start),
        minutes,
    )
    return minutes


def wait_until_searchable(end: datetime, timetable: SearchableMinuteTimetable) -> None:
    """Sleep until every tweet of a window ending at `end` is searchable (a scheduled run starts then
    already; a manual run of the current minute does not)."""
    wait = (timetable.searchable_at(end) - datetime.now(UTC)).total_seconds()
    if wait > 0:
        log.info("Waiting %.0f s until the window's last tweets are searchable", wait)
        time.sleep(wait)


def iso(moment: datetime) -> str:
    """`moment` in UTC to the second, as the logs name windows: 2026-12-01T20:20:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
