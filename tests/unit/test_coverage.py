"""Coverage: each minute's state from its ledger entry and its runs (the colours of the Coverage tab), where the
two disagree, and the figures the ledger view aggregates in SQL for the all-streams page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include import ledger
from include.coverage import DAY, MINUTE, Entry, LedgerView, Minute, Run, State, classify, owns
from include.coverage_app import period
from include.streams import Stream

STREAM = Stream(name="apple", query="Apple", topic="tweets-apple", late_after_minutes=5)
NOW = datetime(2026, 12, 1, 12, 0, 40, tzinfo=UTC)
FIRST = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
REACHABLE = datetime(2026, 11, 24, 12, 2, tzinfo=UTC)  # 7 days back, plus the margin
START = datetime(2026, 12, 1, 11, 50, tzinfo=UTC)
SEARCHABLE = START + MINUTE + timedelta(seconds=30)


def entry(after: timedelta = timedelta(seconds=3), **fields) -> Entry:
    values = {
        "topic": STREAM.topic,
        "query": STREAM.query,
        "outcome": "delivered",
        "records": 42,
        "searchable_at": SEARCHABLE,
        "committed_at": SEARCHABLE + after,
        "run_id": "scheduled__2026-12-01T11:50--11:51Z",
        "run_type": "scheduled",
        "try_number": 1,
        "clear_number": 0,
        "transactional_id": "tweets-to-kafka:apple",
        "deliveries": 1,
        **fields,
    }
    return Entry(**values)


def run(state: str = "success", queued_after: timedelta = timedelta(seconds=2), **fields) -> Run:
    values = {
        "id": 1,
        "run_id": "scheduled__2026-12-01T11:50--11:51Z",
        "run_type": "scheduled",
        "state": state,
        "window": START,
        "topic": STREAM.topic,
        "query": STREAM.query,
        "run_after": SEARCHABLE,
        "queued_at": SEARCHABLE + queued_after,
        "start_date": None,
        "end_date": None,
        "clear_number": 0,
        "note": None,
        **fields,
    }
    return Run(**values)


def state_of(
    entry_: Entry | None = None, runs: tuple[Run, ...] = (), start: datetime = START, first: datetime = FIRST
) -> Minute:
    minute = Minute(start, start + MINUTE + timedelta(seconds=30), State.MISSING, entry_, list(runs))
    classify(minute, STREAM, NOW, first, REACHABLE)
    return minute


@pytest.mark.parametrize(
    ("entry_", "runs", "state"),
    [
        (entry(), (run(),), State.DELIVERED),
        (entry(after=timedelta(minutes=6)), (run(),), State.LATE),
        (entry(deliveries=2), (run(),), State.REDELIVERED),
        (entry(clear_number=1), (run(clear_number=1),), State.DELIVERED),
        (None, (run("queued"),), State.RUNNING),
        (None, (run("running"),), State.RUNNING),
        (None, (run("failed"),), State.FAILED),
        (None, (run("failed"), run("running", run_id="manual__x")), State.RUNNING),
        (None, (), State.MISSING),
        (
            None,
            (run(tries={"fetch_tweets": ("skipped", 1), "produce_tweets": ("skipped", 0)}),),
            State.UNREACHABLE,
        ),
        (entry(outcome="unreachable", records=0), (run("failed"),), State.UNREACHABLE),
    ],
    ids=[
        "delivered",
        "late",
        "delivered twice",
        "cleared after a failure",
        "queued",
        "running",
        "failed",
        "a rerun running",
        "missing",
        "skipped past the horizon",
        "recorded unreachable by the healing",
    ],
)
def test_a_minute_is_coloured_by_its_delivery_then_its_runs(entry_, runs, state):
    minute = state_of(entry_, runs)

    assert minute.state is state
    assert minute.disagreement is None


def test_minutes_not_searchable_yet_before_the_first_run_or_out_of_reach_without_a_run():
    assert state_of(start=NOW.replace(second=0)).state is State.NOT_DUE
    assert state_of(start=FIRST - MINUTE).state is State.BEFORE
    assert state_of(start=REACHABLE - MINUTE).state is State.BEFORE, "before the stream began, however old"
    older_stream = REACHABLE - 60 * MINUTE
    assert state_of(start=REACHABLE - MINUTE, first=older_stream).state is State.UNREACHABLE
    assert state_of(start=REACHABLE, first=older_stream).state is State.MISSING


def test_where_the_ledger_and_airflow_disagree_the_minute_says_so():
    """A try that committed and then died leaves a failed run with its window in Kafka; a successful run without
    an entry is Airflow's word only (the ledger may not have shown it yet)."""
    committed_then_failed = state_of(entry(try_number=2), (run("failed"),))
    assert committed_then_failed.state is State.DELIVERED
    assert (
        "Airflow says run 'scheduled__2026-12-01T11:50--11:51Z' failed, but the ledger has its delivery"
        in (committed_then_failed.disagreement)
    )
    assert "committed by try 2" in committed_then_failed.disagreement

    without_entry = state_of(None, (run("success"),))
    assert without_entry.state is State.DELIVERED
    assert "the ledger has no delivery of this window to topic 'tweets-apple'" in without_entry.disagreement

    without_run = state_of(entry(), ())
    assert "which Airflow does not have" in without_run.disagreement


def test_only_the_streams_own_topic_and_query_are_its_coverage():
    """As the healing sees it: a manual run with another query or topic (a test) does not deliver the stream's
    minute; the healing's unreachable record does stand for it."""
    assert owns(STREAM, entry()) and owns(STREAM, run())
    assert not owns(STREAM, entry(query="iPhone lang:fr")) and not owns(STREAM, run(query="iPhone lang:fr"))
    assert not owns(STREAM, entry(topic="my-test")) and not owns(STREAM, run(topic="my-test"))
    assert owns(STREAM, entry(outcome="unreachable", query="an older query"))


def test_a_scheduled_run_created_over_a_minute_after_its_window_was_searchable_is_a_catch_up_run():
    assert state_of(entry(), (run(queued_after=timedelta(seconds=50)),)).catch_up is None
    assert state_of(entry(), (run(queued_after=timedelta(minutes=14)),)).catch_up == timedelta(minutes=14)
    manual = run(queued_after=timedelta(minutes=14), run_type="manual")
    assert state_of(entry(), (manual,)).catch_up is None


@pytest.mark.parametrize(
    ("zoom", "end", "since", "until"),
    [
        ("hour", None, "11:01", "12:01"),
        ("day", None, "2026-11-30 13:00", "2026-12-01 13:00"),
        ("week", None, "2026-11-25 00:00", "2026-12-02 00:00"),
        ("day", "2026-11-28 00:00", "2026-11-27 00:00", "2026-11-28 00:00"),
    ],
)
def test_each_zoom_shows_the_last_hour_day_or_seven_days_or_the_period_ending_at_end(zoom, end, since, until):
    def at(text: str) -> datetime:
        full = text if "-" in text else f"2026-12-01 {text}"
        return datetime.fromisoformat(full).replace(tzinfo=UTC)

    assert period(zoom, at(end) if end else None, NOW) == (at(since), at(until))


def delivery(stream: str, minute: datetime, after_s: float, records: int = 10, **fields) -> bytes:
    searchable = minute + MINUTE + timedelta(seconds=30)
    values = {
        "stream": stream,
        "window_start": minute,
        "window_end": minute + MINUTE,
        "topic": f"tweets-{stream}",
        "query": "Apple",
        "record_format": "json",
        "records": records,
        "run_id": f"scheduled__{minute:%H:%M}",
        "run_type": "scheduled",
        "clear_number": 0,
        "try_number": 1,
        "transactional_id": f"tweets-to-kafka:{stream}",
        "searchable_at": searchable,
        "committed_at": searchable + timedelta(seconds=after_s),
        **fields,
    }
    found = ledger.Delivery(**values)
    return ledger.encode(found)


def test_the_ledger_view_keeps_each_minutes_latest_entry_and_aggregates_each_streams_figures():
    """Entries of the stream's own topic count; another topic's (a manual test run) do not; a second delivery of a
    minute replaces the first and is counted; a tombstone forgets one; percentiles are nearest-rank (to 0.1 s)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    view = LedgerView("kafka_default", ledger.LEDGER_TOPIC, config={})
    apple = Stream(name="apple", query="Apple", topic="tweets-apple", late_after_minutes=1)
    records = []
    for n in range(1, 21):  # 20 minutes, searchable -> committed in 1..20 s, 150 records each: 2 requests
        records.append((b"k", delivery("apple", now - n * MINUTE, after_s=n, records=150)))
    records.append((b"k", delivery("apple", now - 30 * MINUTE, after_s=90)))  # late (over a minute)
    records.append((b"k", delivery("apple", now - 30 * MINUTE, after_s=95, clear_number=1)))  # cleared, again
    records.append((b"k", delivery("apple", now - 3 * DAY, after_s=1, topic="my-test")))  # another topic
    records.append((b"k", delivery("apple", now - 40 * MINUTE, after_s=1, query="a test")))  # another query
    unreachable = {"records": 0, "outcome": "unreachable", "run_type": "healing"}
    records.append((b"k", delivery("apple", now - 50 * MINUTE, after_s=600, **unreachable)))
    records.append((b"k", delivery("apple", now - 3 * DAY, after_s=1)))  # 3 days ago
    sweep = ledger.ComplianceSweep(
        run_id="scheduled__2026-12-01T06:00:00+00:00",
        run_type="scheduled",
        clear_number=0,
        try_number=1,
        transactional_id=None,
        committed_at=now,
        dag_id="x_compliance_twitter_default",
        task_id="compliance_kafka_default",
        job_id="1",
        job_name="sweep",
        ids_checked=10,
        results=1,
        compliance_topic="tweets-to-kafka.compliance",
        tombstones={"tweets-apple": 1},
    )
    key = ledger.compliance_key(sweep.dag_id, sweep.task_id, sweep.run_id)
    records.append((key, ledger.encode(sweep)))  # a compliance job's entry: left alone
    view._apply(records)

    figures = view.summaries([apple], now)["apple"]

    assert view.records == len(records)
    assert (figures["week"], figures["day"]) == (22, 21)
    assert figures["day_late"] == 1 and figures["day_unreachable"] == 1
    assert figures["day_records"] == 20 * 150 + 10
    assert figures["median_ms"] == 11_000 and figures["p95_ms"] == 20_000  # of 1..20 s and 95 s
    recent = [n for n in range(1, 21) if now - n * MINUTE + timedelta(seconds=90 + n) >= now - 15 * MINUTE]
    assert figures["requests"] == 2 * len(recent)  # the deliveries committed in the last 15 minutes
    three_days_ago = f"apple/tweets-apple/{now - 3 * DAY:%Y-%m-%dT%H:%MZ}".encode()
    view._apply([(three_days_ago, None)])  # a tombstone: compaction forgets it
    assert view.summaries([apple], now)["apple"]["week"] == 21
    entries = view.entries("apple", now - 31 * MINUTE, now)
    (redelivered,) = entries[now - 30 * MINUTE]
    assert (redelivered.deliveries, redelivered.clear_number) == (2, 1)
    assert {
        entry.topic for found in view.entries("apple", now - 4 * DAY, now).values() for entry in found
    } == {
        "tweets-apple",
        "my-test",
    }


def scheduled_run(queued_after: timedelta, ended_after: timedelta, late_after: timedelta | None):
    """A scheduled run of START's window as the scheduler's listeners get it: its DAG's schedule and its deadlines."""
    from types import SimpleNamespace

    from twitter_provider.timetables import SearchableMinuteTimetable

    deadlines = [SimpleNamespace(deadline_time=SEARCHABLE + late_after)] if late_after else []
    return SimpleNamespace(
        dag=SimpleNamespace(timetable=SearchableMinuteTimetable()),
        run_type="scheduled",
        data_interval_start=START,
        queued_at=SEARCHABLE + queued_after,
        end_date=SEARCHABLE + ended_after,
        deadlines=deadlines,
        note=None,
    )


def test_a_catch_up_run_and_a_run_past_its_late_alerts_deadline_get_notes_saying_so():
    """The scheduler's listener notes both from the run and its schedule alone (no module of include/)."""
    from tweets_to_kafka_plugin import LateRunNotes

    notes = LateRunNotes()
    late = scheduled_run(timedelta(minutes=14), timedelta(minutes=15), late_after=timedelta(minutes=5))
    notes.on_dag_run_running(late, msg="")
    notes.on_dag_run_success(late, msg="")
    assert late.note == (
        "Catch-up run: created 14 min after its window [11:50, 11:51) UTC became searchable (Airflow was down, "
        "the DAG paused, or earlier runs held it back).\n"
        "Delivered late: 15 min after its window [11:50, 11:51) UTC became searchable (late after 5 min)."
    )

    for on_time in (
        scheduled_run(timedelta(seconds=2), timedelta(seconds=20), late_after=timedelta(minutes=5)),
        scheduled_run(timedelta(seconds=2), timedelta(minutes=15), late_after=None),  # late alerts off
    ):
        notes.on_dag_run_running(on_time, msg="")
        notes.on_dag_run_success(on_time, msg="")
        assert on_time.note is None


def test_the_coverage_pages_name_the_stream_files_problems(tmp_path):
    """A bad entry keeps its last good version running; its tab says why, and so does the all-streams page."""
    from include.coverage_app import render_not_a_stream, stream_file_problems
    from include.streams import Streams

    problem = (
        f"{tmp_path}/streams.yaml: stream 'french': topic: is not a legal Kafka topic name: <1-249 of ...>"
    )
    streams = Streams(tmp_path / "streams.yaml", 450, problems=[problem])

    assert stream_file_problems([]) == ""
    shown = stream_file_problems(streams.problems)
    assert "import error of dags/stream_file.py" in shown and "&lt;1-249 of ...&gt;" in shown
    assert "is not a legal Kafka topic name" in render_not_a_stream("french", streams)
    assert "is not a legal Kafka topic name" not in render_not_a_stream("apple", streams)
