"""What the healing does with each minute that reached no delivery: wait, run it again, or report it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include import healing
from include.healing import Run

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HORIZON = timedelta(days=7)
T = NOW - 30 * MINUTE  # a minute well within reach


def run(kind: str, minute: datetime, fetch: str | None = "success", produce: str | None = "success") -> Run:
    states = {task: state for task, state in (("fetch_tweets", fetch), ("produce_tweets", produce)) if state}
    run_id = healing.run_name(kind, minute) if kind != "manual" else "manual__2026-12-01T11:31:07+00:00"
    return Run(run_id, states)


def plan(due, runs=None, budget=10, now=NOW, recovered=True):
    return healing.plan("tweets_to_kafka", now, HORIZON, due, runs or {}, budget, recovered)


def test_a_minute_whose_scheduled_run_failed_is_run_again_by_clearing_that_run():
    done = plan([T], {T: [run("scheduled", T, produce="failed")]})

    assert done.reruns == [
        {
            "trigger_dag_id": "tweets_to_kafka",
            "trigger_run_id": "scheduled__2026-12-01T11:30--11:31Z",
            "logical_date": T.isoformat(),
        }
    ]


def test_a_minute_the_schedule_passed_by_gets_a_healing_run_with_its_start_as_logical_date():
    """A backfill of later minutes moves the schedule past the minutes between: they have no run at all."""
    done = plan([T])

    assert done.reruns == [
        {
            "trigger_dag_id": "tweets_to_kafka",
            "trigger_run_id": "healing__2026-12-01T11:30--11:31Z",
            "logical_date": T.isoformat(),
            "run_after": T.isoformat(),
        }
    ]


def test_a_minute_a_manual_run_took_and_wrote_elsewhere_gets_a_healing_run_inside_the_minute():
    """The manual run has the minute's start as logical date (Airflow allows one run per logical date)."""
    done = plan([T], {T: [run("manual", T)]})

    assert [(r["trigger_run_id"], r["logical_date"]) for r in done.reruns] == [
        ("healing__2026-12-01T11:30--11:31Z", (T + timedelta(seconds=30)).isoformat())
    ]


def test_a_healing_run_that_failed_is_cleared_again():
    done = plan([T], {T: [run("manual", T), run("healing", T, produce="failed")]})

    assert [r["trigger_run_id"] for r in done.reruns] == ["healing__2026-12-01T11:30--11:31Z"]


@pytest.mark.parametrize(
    ("fetch", "produce"),
    [
        ("running", None),
        ("success", "queued"),
        ("failed", "up_for_retry"),
        ("success", "deferred"),
        (None, None),
    ],
)
def test_a_minute_whose_run_is_on_its_way_waits(fetch, produce):
    done = plan([T], {T: [run("scheduled", T, fetch=fetch, produce=produce)]})

    assert (done.reruns, done.unreachable, done.waiting) == ([], [], 1)


def test_a_minute_x_no_longer_serves_is_reported_not_run():
    """Within RERUN_MARGIN of the horizon a rerun could not reach its request in time; a run whose fetch skipped
    its window found it beyond reach already."""
    old = NOW - HORIZON + healing.RERUN_MARGIN - MINUTE
    skipped = T + MINUTE

    done = plan([old, T, skipped], {skipped: [run("scheduled", skipped, fetch="skipped", produce="skipped")]})

    assert done.unreachable == [old, skipped]
    assert [r["logical_date"] for r in done.reruns] == [T.isoformat()]


def test_reruns_go_oldest_first_within_the_budget_and_the_rest_wait_for_the_next_healing():
    due = [T + n * MINUTE for n in range(5)]

    done = plan(reversed(due), budget=2)

    assert [r["logical_date"] for r in done.reruns] == [due[0].isoformat(), due[1].isoformat()]
    assert done.later == 3


def test_while_the_streams_latest_run_fails_too_nothing_is_run_again_and_nothing_lost():
    """The outage goes on (Kafka or X still down): a rerun now would fail as well; the minutes wait."""
    done = plan([T, T + MINUTE], {T: [run("scheduled", T, produce="failed")]}, recovered=False)

    assert (done.reruns, done.later) == ([], 2)


def test_run_names_round_trip_and_others_are_not_the_packages():
    assert healing.minute_of_run(healing.run_name("healing", T)) == T
    assert healing.minute_of_run("scheduled__2026-12-01T11:30--11:31Z") == T
    assert healing.minute_of_run("manual__2026-12-01T11:30:00+00:00") is None
    assert healing.minute_of_run("backfill__nonsense") is None


def test_consecutive_minutes_are_reported_as_ranges():
    assert healing.ranges([T + 2 * MINUTE, T, T + MINUTE, T + 5 * MINUTE]) == [
        (T, T + 3 * MINUTE),
        (T + 5 * MINUTE, T + 6 * MINUTE),
    ]
