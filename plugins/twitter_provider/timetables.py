"""SearchableMinuteTimetable: a run for every UTC minute, each once the X API can search it, none skipped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import conf, timezone
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from pendulum import DateTime

from twitter_provider import SEARCH_HORIZON

WINDOW = timedelta(minutes=1)
SETTLE = timedelta(seconds=30)  # tweets become searchable about 30 s after they are posted
# A scheduled run created this long after its window became searchable is a catch-up run: Airflow was down, the DAG
# paused, or earlier runs held it back (on time, the scheduler creates it within seconds).
CATCH_UP_AFTER = timedelta(minutes=1)

# A window this close to the horizon is left alone: it could pass the horizon before its request lands.
HORIZON_MARGIN = timedelta(minutes=1)


def search_horizon() -> timedelta:
    """How far back the recent search reaches: 7 days, or, for tests only, `search_horizon_minutes` of the
    `[tweets_to_kafka]` section of Airflow's configuration (`AIRFLOW__TWEETS_TO_KAFKA__SEARCH_HORIZON_MINUTES`)."""
    return (
        conf.getint("tweets_to_kafka", "search_horizon_minutes", fallback=SEARCH_HORIZON // WINDOW) * WINDOW
    )


def floor_minute(moment: DateTime) -> DateTime:
    return moment.replace(second=0, microsecond=0)


def ceil_minute(moment: DateTime) -> DateTime:
    return floor_minute(moment - timedelta(microseconds=1)) + WINDOW


def minute_of(moment: DateTime) -> DataInterval:
    """The one-minute window `[start, end)` that holds `moment`."""
    start = floor_minute(moment)
    return DataInterval(start, start + WINDOW)


def window_run_id(kind: str, start: DateTime, end: DateTime) -> str:
    """A run named by its window, e.g. `scheduled__2026-11-25T16:06--16:07Z` for [16:06, 16:07) UTC."""
    start, end = (moment.astimezone(timezone.utc) for moment in (start, end))
    return f"{kind}__{start:%Y-%m-%dT%H:%M}--{end:%H:%M}Z"


class SearchableMinuteTimetable(Timetable):
    """
    One run per one-minute UTC window `[start, end)`, created once the window is searchable (`end + settle`).

    Unlike `CronDataIntervalTimetable` with `catchup=False`, it never skips a window: after the scheduler
    was down or the DAG paused, each missed window gets its run, oldest first. Only windows beyond the
    recent search's reach are left out (`horizon`, less a minute's margin): the task of the first run
    after them reports them. A DAG's `catchup` only says where the first run starts: with False, at the
    minute that was current `settle` before the DAG was enabled, less `look_back` minutes; with True
    (as in a backfill), at its earliest date.

    :param settle: how long after a window's end its tweets are all searchable
    :param look_back: minutes before the current one that the first run starts with
    :param horizon: how far back the search reaches
    """

    description = "Every minute, once the X API can search it; missed minutes run later, oldest first"

    def __init__(
        self,
        settle: timedelta = SETTLE,
        look_back: int = 0,
        horizon: timedelta = SEARCH_HORIZON,
    ):
        if settle < timedelta(0) or look_back < 0 or horizon <= HORIZON_MARGIN + WINDOW:
            raise ValueError(
                f"SearchableMinuteTimetable needs settle >= 0 s, look_back >= 0 minutes and a horizon over "
                f"2 minutes; got settle={settle}, look_back={look_back}, horizon={horizon}"
            )
        self.settle = settle
        self.look_back = look_back
        self.horizon = horizon

    @property
    def summary(self) -> str:
        return f"every minute, {self.settle.total_seconds():.0f} s after it ends"

    def earliest_reachable(self, now: DateTime) -> DateTime:
        """The first window start that a search made now can still reach."""
        return ceil_minute(now - self.horizon + HORIZON_MARGIN)

    def searchable_at(self, end: DateTime) -> DateTime:
        """When the tweets of a window ending at `end` are all searchable."""
        return end + self.settle

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        now = timezone.utcnow()
        if last_automated_data_interval is not None:
            start = last_automated_data_interval.end
        elif restriction.catchup and restriction.earliest is not None:
            start = ceil_minute(restriction.earliest)
        else:
            # The window whose run is not due yet: re-computed while the DAG has no run, it never passes one
            # that came due (apache/airflow#51840).
            start = floor_minute(now - self.settle) - self.look_back * WINDOW
            if restriction.earliest is not None:
                start = max(start, ceil_minute(restriction.earliest))
        start = max(start, self.earliest_reachable(now))
        if restriction.latest is not None and start > restriction.latest:
            return None
        end = start + WINDOW
        return DagRunInfo(run_after=self.searchable_at(end), data_interval=DataInterval(start, end))

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        """A manual run with a logical date takes the minute that holds it (Airflow passes the logical date as
        `run_after` here), as a scheduled run with that logical date would."""
        return minute_of(run_after)

    def run_info_from_dag_run(self, *, dag_run) -> DagRunInfo:
        """The window of a run, from its logical date: the scheduler computes the next run from a manual run
        that has a scheduled minute's logical date, and `airflow dags trigger -l` stores a manual run's data
        interval from the trigger's time, not from its logical date."""
        if dag_run.logical_date is None:
            return super().run_info_from_dag_run(dag_run=dag_run)
        return DagRunInfo(
            run_after=timezone.coerce_datetime(dag_run.run_after),
            data_interval=minute_of(timezone.coerce_datetime(dag_run.logical_date)),
        )

    def generate_run_id(
        self, *, run_type, run_after: DateTime, data_interval: DataInterval | None, **extra
    ) -> str:
        """Name a scheduled or backfill run by its window, e.g. `scheduled__2026-11-25T16:06--16:07Z` for
        [16:06, 16:07) UTC (a minute has one of those); a manual run keeps Airflow's name, from when it was
        triggered, since a minute may have several."""
        if data_interval is None or run_type.value not in ("scheduled", "backfill"):
            return super().generate_run_id(
                run_type=run_type, run_after=run_after, data_interval=None, **extra
            )
        return window_run_id(run_type.value, *data_interval)

    def serialize(self) -> dict[str, Any]:
        return {
            "settle": self.settle.total_seconds(),
            "look_back": self.look_back,
            "horizon": self.horizon.total_seconds(),
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SearchableMinuteTimetable:
        return cls(
            settle=timedelta(seconds=data["settle"]),
            look_back=data["look_back"],
            horizon=timedelta(seconds=data["horizon"]),
        )
