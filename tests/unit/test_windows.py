"""The window a run searches, and what a run checks before searching it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from include import windows
from twitter_provider.timetables import SearchableMinuteTimetable

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TIMETABLE = SearchableMinuteTimetable()


def scheduled_run(previous_end: datetime | None) -> dict:
    """The context of the scheduled run of [T, T+1) whose previous run ended at `previous_end`."""
    previous = None if previous_end is None else SimpleNamespace(data_interval_end=previous_end)
    return {
        "dag_run": SimpleNamespace(run_type="scheduled", logical_date=T),
        "ti": SimpleNamespace(get_previous_dagrun=lambda: previous),
    }


def resumed_at() -> datetime:
    """Where the schedule resumes after an outage longer than the search horizon: the earliest reachable
    window."""
    return TIMETABLE.earliest_reachable(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def test_a_scheduled_run_searches_its_data_interval():
    assert windows.run_window(scheduled_run(None)) == (T, T + MINUTE)


@pytest.mark.parametrize(
    "logical_date", [T, T + timedelta(seconds=30), T + timedelta(seconds=59, microseconds=9)]
)
def test_a_manual_run_searches_the_minute_of_its_logical_date(logical_date):
    """As the scheduled run with that logical date would: 10:00:00 and 10:00:30 both mean [10:00, 10:01)."""
    context = {
        "dag_run": SimpleNamespace(run_type="manual", logical_date=logical_date, run_after=T + 9 * MINUTE)
    }
    assert windows.run_window(context) == (T, T + MINUTE)


def test_a_run_without_logical_date_takes_the_last_complete_minute_before_run_after():
    run_after = T.replace(minute=5, second=42, microsecond=7)
    context = {"dag_run": SimpleNamespace(run_type="manual", logical_date=None, run_after=run_after)}
    assert windows.run_window(context) == (T.replace(minute=4), T.replace(minute=5))


def test_a_window_beyond_the_horizon_is_skipped_with_a_warning_naming_it_and_why(caplog):
    with (
        pytest.raises(AirflowSkipException, match="beyond the search horizon"),
        caplog.at_level(logging.WARNING),
    ):
        windows.skip_beyond_horizon(T, T + MINUTE, "X said so")
    assert f"Window [{iso(T)}, {iso(T + MINUTE)}) is older than the X API's search horizon" in caplog.text
    assert "(X said so)" in caplog.text


def test_the_first_run_after_left_out_windows_names_them(caplog):
    start = resumed_at()
    with caplog.at_level(logging.WARNING):
        minutes = windows.unreachable_before(scheduled_run(start - 90 * MINUTE), start, TIMETABLE)

    assert minutes == 90
    assert f"Windows [{iso(start - 90 * MINUTE)}, {iso(start)}) (90 minutes) got no run" in caplog.text


@pytest.mark.parametrize("previous_end", [None, "start"])
def test_no_warning_after_the_previous_window_or_for_the_first_run(caplog, previous_end):
    start = resumed_at()
    previous_end = start if previous_end == "start" else None
    assert windows.unreachable_before(scheduled_run(previous_end), start, TIMETABLE) == 0
    assert caplog.text == ""


def test_other_runs_do_not_look_for_left_out_windows():
    start = resumed_at()
    context = {
        **scheduled_run(start - 90 * MINUTE),
        "dag_run": SimpleNamespace(run_type="backfill", logical_date=T),
    }
    assert windows.unreachable_before(context, start, TIMETABLE) == 0


def test_a_run_after_where_the_schedule_resumes_does_not_ask_for_its_previous_run():
    def previous_run():
        raise AssertionError("asked the API server for the previous run")

    context = {**scheduled_run(None), "ti": SimpleNamespace(get_previous_dagrun=previous_run)}
    later = resumed_at() + windows.CLOCK_MARGIN + MINUTE
    assert windows.unreachable_before(context, later, TIMETABLE) == 0


def test_a_manual_run_of_a_minute_not_searchable_yet_waits_until_it_is(monkeypatch):
    slept = []
    monkeypatch.setattr(windows.time, "sleep", slept.append)
    end = datetime.now(UTC) + timedelta(seconds=10)

    windows.wait_until_searchable(end, TIMETABLE)
    windows.wait_until_searchable(end - MINUTE, TIMETABLE)  # searchable since 20 s: no wait

    assert len(slept) == 1 and 39 < slept[0] <= 40
