"""The window a run searches, and how long it waits for the window's tweets to become searchable."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from include.windows import run_window, seconds_until_searchable

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_a_scheduled_run_searches_its_data_interval():
    context = {"data_interval_start": T, "data_interval_end": T.replace(minute=1)}
    assert run_window(context) == (T, T.replace(minute=1))


def test_a_run_without_logical_date_takes_the_last_complete_minute_before_run_after():
    context = {"dag_run": SimpleNamespace(run_after=T.replace(minute=5, second=42, microsecond=7))}
    assert run_window(context) == (T.replace(minute=4), T.replace(minute=5))


def test_a_window_is_searched_30_seconds_after_its_end():
    end = T.replace(minute=1)
    assert seconds_until_searchable(end, end.replace(second=10)) == 20
    assert seconds_until_searchable(end, end.replace(second=30)) == 0
    assert seconds_until_searchable(end, end.replace(minute=5)) == 0
