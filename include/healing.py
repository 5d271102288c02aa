"""Minutes that heal themselves: which minutes of a stream reached no delivery, and what the healing does about
each. Its run is on its way: wait. Its run failed, or the schedule passed it by (a backfill ahead of it, a manual
run that took its place and wrote elsewhere): run it again, oldest first, within the stream's share of its X app's
rate budget. X can no longer serve it: report it. The inputs come from the delivery ledger and Airflow's runs; the
plan is plain data, so that every case is tested without either."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from twitter_provider.timetables import window_run_id

log = logging.getLogger(__name__)
WINDOW = timedelta(minutes=1)
# A rerun must reach its request before X stops serving its window: it starts within this of being planned.
RERUN_MARGIN = timedelta(minutes=5)
OURS = ("scheduled", "backfill", "healing")  # the run ids this package gives: `<kind>__<start>--<end>Z`
ENDED = {"success", "failed", "upstream_failed", "skipped", "removed"}


@dataclass(frozen=True)
class Run:
    """A run of a stream's minute (a run whose logical date is the minute's start), and its tasks' states."""

    run_id: str
    states: dict[str, str | None]  # task id to state; missing while the run has not made its tasks

    @property
    def ended(self) -> bool:
        return bool(self.states) and all(state in ENDED for state in self.states.values())

    @property
    def failed(self) -> bool:
        return self.ended and any(state in ("failed", "upstream_failed") for state in self.states.values())

    @property
    def beyond_horizon(self) -> bool:
        """Its fetch skipped the window: X could no longer serve it."""
        return self.states.get("fetch_tweets") == "skipped"

    @property
    def ours(self) -> bool:
        return self.run_id.split("__", 1)[0] in OURS


@dataclass
class Plan:
    """What the healing does for one stream in one of its runs."""

    reruns: list[dict] = field(default_factory=list)  # TriggerDagRunOperator's arguments, oldest minute first
    unreachable: list[datetime] = field(default_factory=list)  # minutes X no longer serves, newly found
    waiting: int = 0  # minutes whose run is on its way
    # minutes left for a later run of the healing: beyond the rate budget, or the outage goes on
    later: int = 0


def run_name(kind: str, start: datetime) -> str:
    """A run id of this package, e.g. `healing__2026-12-01T20:20--20:21Z`: the minute it is for."""
    return window_run_id(kind, start, start + WINDOW)


def minute_of_run(run_id: str) -> datetime | None:
    """The minute a run id of this package names, None for another's (a manual run keeps Airflow's name)."""
    kind, _, rest = run_id.partition("__")
    if kind not in OURS or not rest.endswith("Z") or "--" not in rest:
        return None
    try:
        return datetime.strptime(rest.split("--")[0] + "+0000", "%Y-%m-%dT%H:%M%z")
    except ValueError:
        return None


def minutes(first: datetime, end: datetime) -> list[datetime]:
    """The minutes from `first` up to `end` (exclusive)."""
    return [first + n * WINDOW for n in range(max(0, (end - first) // WINDOW))]


def plan(
    stream: str,
    now: datetime,
    horizon: timedelta,
    due: Iterable[datetime],
    runs: dict[datetime, list[Run]],
    budget: int,
    recovered: bool = True,
) -> Plan:
    """What to do for each minute of `due` (the stream's minutes since it began, before its schedule's next run,
    that have neither a delivery nor an unreachable entry in the ledger), oldest first, with at most `budget`
    reruns; none while the outage goes on (not `recovered`: the stream's latest run that ended failed), so that
    a rerun is not spent on a Kafka or an X API still down.

    :param runs: the runs of those minutes, by minute
    """
    result = Plan()
    for minute in sorted(due):
        minute_runs = runs.get(minute, [])
        if any(not run.ended for run in minute_runs):
            result.waiting += 1
        elif minute < now - horizon + RERUN_MARGIN or any(run.beyond_horizon for run in minute_runs):
            result.unreachable.append(minute)
        elif not recovered or len(result.reruns) == budget:
            result.later += 1
        else:
            result.reruns.append(_rerun(stream, minute, minute_runs))
    return result


def _rerun(stream: str, minute: datetime, runs: list[Run]) -> dict:
    """The trigger that runs a minute again: a failed run of this package is cleared (reset); a minute without
    one gets a healing run, with the minute's start as logical date, or, when another run has that date (a manual
    run that wrote elsewhere), a date inside the minute. Its run_after is its logical date, from which Airflow
    infers the data interval the UI shows (the trigger's time otherwise)."""
    failed = [run for run in runs if run.ours and run.failed]
    if failed:
        return {
            "trigger_dag_id": stream,
            "trigger_run_id": failed[-1].run_id,
            "logical_date": minute.isoformat(),
        }
    taken = any(not run.ours for run in runs)
    logical_date = (minute + timedelta(seconds=30) if taken else minute).isoformat()
    return {
        "trigger_dag_id": stream,
        "trigger_run_id": run_name("healing", minute),
        "logical_date": logical_date,
        "run_after": logical_date,
    }


def ranges(moments: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive minutes as `[start, end)` ranges, e.g. for a report."""
    spans: list[list[datetime]] = []
    for moment in sorted(moments):
        if spans and spans[-1][1] == moment:
            spans[-1][1] = moment + WINDOW
        else:
            spans.append([moment, moment + WINDOW])
    return [(start, end) for start, end in spans]


# What the healing reads and writes: the ledger (Kafka), the streams' runs and schedule (Airflow's task SDK), and
# how far each stream is resolved: every minute before it was delivered or reported (an Airflow Variable per
# stream, `tweets_to_kafka_healing.<stream>`, which Admin -> Variables shows).

CHUNK = 100  # minutes per query of run states
HEALED_TASKS = ["fetch_tweets", "produce_tweets"]


def heal(streams, ti, now: datetime, horizon: timedelta, interval: timedelta) -> dict:
    """Plan the healing of every unpaused stream, record the minutes X no longer serves in the ledger, and return
    `{"reruns": [...], "unreachable": {stream: [[start, end], ...]}, "problems": [...]}` for the tasks that act
    and report. A Kafka cluster that cannot be read is a problem of its streams only."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowException

    from include.kafka_delivery import KafkaClients

    found: dict = {"reruns": [], "unreachable": {}, "problems": []}
    for conn_id in sorted({stream.kafka_conn_id for stream in streams.streams}):
        group = [stream for stream in streams.streams if stream.kafka_conn_id == conn_id]
        try:
            _heal_group(
                streams,
                group,
                KafkaClients(BaseHook.get_connection(conn_id)),
                ti,
                now,
                horizon,
                interval,
                found,
            )
        except AirflowException as problem:
            log.error("Could not heal the streams of connection %r: %s", conn_id, problem)
            found["problems"].append(f"streams of connection {conn_id!r}: {problem}")
    return found


def _heal_group(streams, group: list, clients, ti, now, horizon, interval, found: dict) -> None:
    """The healing of the streams that write to one Kafka cluster (`clients`): adds to `found`."""
    from airflow.sdk.exceptions import AirflowException

    schedules = {stream.name: _schedule(ti, stream.name) for stream in group}
    group = [
        s
        for s in group
        if schedules[s.name] and not schedules[s.name].is_paused and schedules[s.name].next_dagrun
    ]
    if not group:
        return
    resolved = {s.name: _resolved_until(s.name, ti, now, horizon, schedules[s.name]) for s in group}
    entries, partitions = _ledger(clients, streams.delivery_ledger_topic, group, min(resolved.values()))
    producer = None
    for stream in group:
        due = set(minutes(resolved[stream.name], schedules[stream.name].next_dagrun))
        due -= {
            e.window_start
            for e in entries
            if e.stream == stream.name
            and e.topic == stream.topic
            and (e.outcome == "unreachable" or e.query == stream.query)
        }
        runs = _runs(ti, stream.name, sorted(due))
        recovered = _recovered(ti, stream.name, schedules[stream.name].next_dagrun)
        budget = _budget(streams, stream, interval)
        stream_plan = plan(stream.name, now, horizon, due, runs, budget, recovered)
        found["reruns"] += stream_plan.reruns
        if stream_plan.unreachable:
            producer = producer or clients.producer(None)
            topic, partition = streams.delivery_ledger_topic, partitions[stream.name]
            _record_unreachable(producer, topic, stream, stream_plan.unreachable, ti, partition)
            found["unreachable"][stream.name] = [
                [start.isoformat(), end.isoformat()] for start, end in ranges(stream_plan.unreachable)
            ]
        pending = sorted(due - set(stream_plan.unreachable))
        _set_resolved_until(stream.name, pending[0] if pending else schedules[stream.name].next_dagrun)
        _log(stream.name, stream_plan, len(due))
    if producer is not None and (left := producer.flush(clients.timeout)):
        raise AirflowException(
            f"{left} unreachable entries were not written to the ledger in {clients.timeout:.0f} s"
        )


def _schedule(ti, stream: str):
    """The stream's DAG as Airflow has it (paused, its next run), None before the dag-processor stored it."""
    from airflow.sdk.exceptions import AirflowRuntimeError

    try:
        return ti.get_dag(stream)
    except AirflowRuntimeError as missing:
        log.warning("Stream %s has no DAG in Airflow yet: %s", stream, missing)
        return None


def _resolved_until(stream: str, ti, now: datetime, horizon: timedelta, schedule) -> datetime:
    """The first minute of the stream not known to be resolved: from its Variable, or at first from its earliest
    run (the stream began there), never earlier than the horizon's day before (older minutes are long reported)."""
    from airflow.sdk import Variable

    stored = Variable.get(_variable(stream), default=None)
    if stored:
        return datetime.fromisoformat(stored)
    states = ti.get_task_states(dag_id=stream, task_ids=["fetch_tweets"])
    began = [minute for minute in map(minute_of_run, states) if minute is not None]
    return max(min(began, default=schedule.next_dagrun), now - horizon - timedelta(days=1))


def _set_resolved_until(stream: str, minute: datetime) -> None:
    from airflow.sdk import Variable

    Variable.set(
        _variable(stream),
        minute.isoformat(),
        description="tweets_to_kafka_healing: minutes before are resolved",
    )


def _variable(stream: str) -> str:
    return f"tweets_to_kafka_healing.{stream}"


def _ledger(clients, topic: str, streams: list, since: datetime) -> tuple[list, dict[str, int]]:
    """The ledger entries of these streams' partitions written since `since`, and each stream's partition."""
    from include import ledger
    from include.kafka_delivery import LEDGER_READ_TIMEOUT

    reader = clients.reader()
    try:
        partitions = {
            stream.name: clients.ledger_partition(reader, topic, stream.name)[0] for stream in streams
        }
        since -= ledger.CLOCK_MARGIN
        return ledger.read_entries(
            reader, topic, sorted(set(partitions.values())), since, LEDGER_READ_TIMEOUT
        ), partitions
    finally:
        reader.close()


def _runs(ti, stream: str, due: list[datetime]) -> dict[datetime, list[Run]]:
    """The runs of these minutes, by minute: those with the minute's start as logical date, and its healing run
    (whose logical date may lie inside the minute)."""
    runs: dict[datetime, list[Run]] = {}
    for first in range(0, len(due), CHUNK):
        chunk = due[first : first + CHUNK]
        states = ti.get_task_states(dag_id=stream, task_ids=HEALED_TASKS, logical_dates=chunk)
        healing = [run_name("healing", minute) for minute in chunk]
        states |= ti.get_task_states(dag_id=stream, task_ids=HEALED_TASKS, run_ids=healing)
        others = False
        for run_id, tasks in states.items():
            minute = minute_of_run(run_id)
            if minute is None:
                others = True  # a manual run with a minute's start as logical date: its minute is asked below
            else:
                runs.setdefault(minute, []).append(Run(run_id, tasks))
        for minute in chunk if others else ():
            for run_id, tasks in ti.get_task_states(
                dag_id=stream, task_ids=HEALED_TASKS, logical_dates=[minute]
            ).items():
                if minute_of_run(run_id) is None:
                    runs.setdefault(minute, []).append(Run(run_id, tasks))
    return runs


def _recovered(ti, stream: str, next_run: datetime) -> bool:
    """Whether the latest of the stream's last few scheduled runs that ended succeeded (or none ended yet)."""
    latest = [next_run - n * WINDOW for n in range(1, 6)]
    names = [run_name("scheduled", minute) for minute in latest]
    states = ti.get_task_states(dag_id=stream, task_ids=["produce_tweets"], run_ids=names)
    for name in names:
        run = Run(name, states.get(name, {}))
        if run.ended:
            return not run.failed
    return True


def _budget(streams, stream, interval: timedelta) -> int:
    """The reruns a stream may start in one healing: its share of what its X app's rate limit leaves beyond one
    search a minute for each of the app's streams, over the healing's interval (at least one)."""
    from include.streams import REQUESTS_PER_STREAM

    sharing = [other for other in streams.streams if other.twitter_conn_id == stream.twitter_conn_id]
    spare = streams.rate_limit_per_15_minutes - REQUESTS_PER_STREAM * len(sharing)
    return max(1, int(spare * (interval / timedelta(minutes=15))) // len(sharing))


def _record_unreachable(producer, topic: str, stream, found: list[datetime], ti, partition: int) -> None:
    """An `unreachable` ledger entry for each minute, read as the stream's record of it, as a delivery would be."""
    from datetime import UTC

    from include import ledger

    for minute in found:
        entry = ledger.Delivery(
            stream=stream.name,
            window_start=minute,
            window_end=minute + WINDOW,
            topic=stream.topic,
            query=stream.query,
            record_format=stream.record_format,
            records=0,
            run_id=ti.run_id,
            run_type="healing",
            clear_number=0,
            try_number=ti.try_number,
            transactional_id=None,
            searchable_at=minute + WINDOW + stream.settle,
            committed_at=datetime.now(UTC),
            outcome="unreachable",
        )
        producer.produce(topic, key=entry.key, value=ledger.encode(entry), partition=partition)


def _log(stream: str, done: Plan, due: int) -> None:
    log.info(
        "Stream %s: %d minutes without a delivery; %d run again, %d waiting for their runs, %d left for the next "
        "healing (the rate budget, or its latest run failed too), %d beyond the X API's reach (reported)",
        stream,
        due,
        len(done.reruns),
        done.waiting,
        done.later,
        len(done.unreachable),
    )
