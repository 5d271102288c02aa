"""SearchableMinuteTimetable: the next window in every case the scheduler meets, and how runs are named."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.utils.types import DagRunType

from twitter_provider import timetables
from twitter_provider.timetables import SearchableMinuteTimetable

T = pendulum.datetime(2026, 11, 25, 10, 0, tz="UTC")
MINUTE = timedelta(minutes=1)
SCHEDULER = TimeRestriction(earliest=pendulum.datetime(2026, 1, 1, tz="UTC"), latest=None, catchup=False)


@pytest.fixture
def clock(monkeypatch):
    """Set the time the timetable sees: clock(moment)."""

    def set_now(moment):
        monkeypatch.setattr(timetables.timezone, "utcnow", lambda: moment)

    return set_now


def next_run(timetable, last=None, restriction=SCHEDULER):
    return timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)


def window(info) -> tuple:
    return info.data_interval.start, info.data_interval.end


@pytest.mark.parametrize(
    ("now", "expected_start"),
    [
        (T.add(seconds=45), T),  # enabled 45 s into 10:00: that minute, searchable at 10:01:30
        (T.add(seconds=15), T - MINUTE),  # 15 s into 10:00: 09:59 is not searchable yet, so it is first
        (T.add(seconds=30), T),
    ],
)
def test_first_enable_starts_with_the_minute_whose_run_is_not_due_yet(clock, now, expected_start):
    clock(now)

    info = next_run(SearchableMinuteTimetable())

    assert window(info) == (expected_start, expected_start + MINUTE)
    assert info.run_after == expected_start + MINUTE + timedelta(seconds=30) > now
    assert info.partition_key is None and info.partition_date is None  # apache/airflow#68315


def test_asked_again_before_the_first_run_exists_it_does_not_pass_the_due_window(clock):
    """apache/airflow#51840: while no run exists the scheduler asks again and again; a window whose run
    came due must not be replaced by a later one before its run is created."""
    timetable = SearchableMinuteTimetable()
    seen = set()
    for seconds in range(45, 90, 5):  # 10:00:45 .. 10:01:25, all before the window's run_after 10:01:30
        clock(T.add(seconds=seconds))
        seen.add(window(next_run(timetable)))
    assert seen == {(T, T + MINUTE)}


def test_look_back_starts_that_many_minutes_earlier(clock):
    clock(T.add(seconds=45))

    info = next_run(SearchableMinuteTimetable(look_back=5))

    assert window(info) == (T - 5 * MINUTE, T - 4 * MINUTE)
    assert info.run_after == T - 4 * MINUTE + timedelta(seconds=30)  # past: the run is created at once


def test_after_an_outage_every_missed_window_runs_oldest_first(clock):
    """Scheduler down (or DAG paused) from 10:01 to 13:00: the next window is still 10:01, due at once."""
    clock(T.add(hours=3))
    timetable = SearchableMinuteTimetable()

    info = next_run(timetable, last=DataInterval(T, T + MINUTE))

    assert window(info) == (T + MINUTE, T + 2 * MINUTE)
    assert info.run_after == T + 2 * MINUTE + timedelta(seconds=30)


def test_windows_beyond_the_search_horizon_get_no_run(clock):
    """Down for 8 days: the windows older than 7 days (less a minute's margin) are left out."""
    now = T.add(days=8, seconds=20)
    clock(now)

    info = next_run(SearchableMinuteTimetable(), last=DataInterval(T, T + MINUTE))

    first = now - timedelta(days=7) + MINUTE  # 10:01:20 one day later: the next whole minute is 10:02
    assert window(info) == (T.add(days=1, minutes=2), T.add(days=1, minutes=3))
    assert info.data_interval.start >= first


def test_a_look_back_past_the_horizon_starts_at_the_horizon(clock):
    clock(T)
    timetable = SearchableMinuteTimetable(look_back=60, horizon=timedelta(minutes=10))

    assert window(next_run(timetable)) == (T - 9 * MINUTE, T - 8 * MINUTE)


def test_a_backfill_starts_at_its_first_date(clock):
    clock(T.add(hours=2))
    backfill = TimeRestriction(earliest=T.add(seconds=30), latest=T.add(minutes=3), catchup=True)
    timetable = SearchableMinuteTimetable()

    infos = [next_run(timetable, restriction=backfill)]
    while (info := next_run(timetable, last=infos[-1].data_interval, restriction=backfill)) is not None:
        infos.append(info)

    assert [window(info)[0] for info in infos] == [T + MINUTE, T + 2 * MINUTE, T + 3 * MINUTE]


def test_a_start_date_in_the_future_is_the_first_window(clock):
    clock(T)
    later = TimeRestriction(earliest=T.add(hours=1, seconds=1), latest=None, catchup=False)

    assert window(next_run(SearchableMinuteTimetable(), restriction=later))[0] == T.add(hours=1, minutes=1)


def test_settle_sets_when_a_run_is_created(clock):
    clock(T.add(hours=1))

    info = next_run(SearchableMinuteTimetable(settle=timedelta(seconds=12)), last=DataInterval(T, T + MINUTE))

    assert info.run_after == T + 2 * MINUTE + timedelta(seconds=12)


@pytest.mark.parametrize("seconds", [0, 42])
def test_a_manual_run_takes_the_minute_of_its_logical_date(seconds):
    """Airflow passes a manual run's logical date as run_after here: the run takes the minute a scheduled run with
    that logical date would."""
    interval = SearchableMinuteTimetable().infer_manual_data_interval(
        run_after=T.add(minutes=5, seconds=seconds)
    )
    assert (interval.start, interval.end) == (T + 5 * MINUTE, T + 6 * MINUTE)


def test_the_next_run_after_a_manual_run_that_took_a_scheduled_minutes_place_is_the_next_minute(clock):
    """The scheduler does not create a scheduled run whose logical date a manual run has: it computes the next one
    from that manual run (apache/airflow#41208). `airflow dags trigger -l` stores the trigger time's minute as the
    manual run's data interval: the window comes from its logical date instead, so the schedule goes on with the
    next minute and skips none."""
    clock(T.add(hours=1))
    timetable = SearchableMinuteTimetable()
    manual = SimpleNamespace(
        run_type=DagRunType.MANUAL,
        logical_date=T,
        run_after=T.add(minutes=7),
        data_interval_start=T.add(minutes=6),
        data_interval_end=T.add(minutes=7),
        partition_key=None,
        partition_date=None,
    )

    reference = timetable.run_info_from_dag_run(dag_run=manual)
    info = next_run(timetable, last=reference.data_interval)

    assert window(info) == (T + MINUTE, T + 2 * MINUTE)


@pytest.mark.parametrize(
    ("run_type", "expected"),
    [
        (DagRunType.SCHEDULED, "scheduled__2026-11-25T10:00--10:01Z"),
        (DagRunType.BACKFILL_JOB, "backfill__2026-11-25T10:00--10:01Z"),
    ],
)
def test_runs_are_named_by_their_window(run_type, expected):
    name = SearchableMinuteTimetable().generate_run_id(
        run_type=run_type,
        run_after=T + MINUTE + timedelta(seconds=30),
        data_interval=DataInterval(T, T + MINUTE),
    )
    assert name == expected


@pytest.mark.parametrize("data_interval", [None, DataInterval(T, T + MINUTE)])
def test_a_manual_run_keeps_airflows_name_since_a_minute_may_have_several(data_interval):
    name = SearchableMinuteTimetable().generate_run_id(
        run_type=DagRunType.MANUAL, run_after=T, data_interval=data_interval
    )
    assert name == "manual__2026-11-25T10:00:00+00:00"


def test_serialises_to_the_same_timetable():
    timetable = SearchableMinuteTimetable(
        settle=timedelta(seconds=12), look_back=3, horizon=timedelta(hours=2)
    )
    again = SearchableMinuteTimetable.deserialize(timetable.serialize())
    assert (again.settle, again.look_back, again.horizon) == (timedelta(seconds=12), 3, timedelta(hours=2))


def test_the_search_horizon_is_seven_days_unless_a_test_shortens_it(monkeypatch):
    assert timetables.search_horizon() == timedelta(days=7)
    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__SEARCH_HORIZON_MINUTES", "4")
    assert timetables.search_horizon() == timedelta(minutes=4)


@pytest.mark.parametrize(
    "arguments",
    [{"settle": timedelta(seconds=-1)}, {"look_back": -1}, {"horizon": timedelta(minutes=2)}],
)
def test_impossible_settings_are_refused_with_their_values(arguments):
    with pytest.raises(ValueError, match="SearchableMinuteTimetable needs"):
        SearchableMinuteTimetable(**arguments)
