"""The window store: the records of a fetched window wait in a file named by its run for produce_tweets, nothing of
them in XCom; a delivered window's file goes at once, an undelivered one after the retention."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from include import window_store
from include.kafka_delivery import produce_records

START = datetime(2026, 12, 1, 20, 20, tzinfo=UTC)
END = START + timedelta(minutes=1)
RECORDS = [
    {
        "tweet_id": "2",
        "text": "Nouvel iPhone 🍎; qui en veut ?",
        "location": "Paris; France",
        "favorite_count": None,
    },
    {"tweet_id": "1", "text": "line\nbreak", "location": None, "favorite_count": 3},
]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__WINDOW_STORE", f"file://{tmp_path}/windows/")
    return tmp_path / "windows"


def test_a_runs_window_is_a_file_named_by_the_run(store):
    reference = window_store.window("stream_a", "scheduled__2026-12-01T20:20--20:21Z", START, END)
    window_store.save(RECORDS, reference)

    assert reference == {
        "window": "[2026-12-01T20:20:00Z, 2026-12-01T20:21:00Z)",
        "path": f"file://{store}/stream_a/scheduled__2026-12-01T20:20--20:21Z.jsonl",
    }
    assert list(window_store.records(reference)) == RECORDS
    assert (
        len((store / "stream_a" / "scheduled__2026-12-01T20:20--20:21Z.jsonl").read_text().splitlines()) == 2
    )
    assert [key for key, _ in produce_records(reference, "json")] == [b"2", b"1"]


def test_an_empty_window_has_an_empty_file(store):
    reference = saved([], "stream_a", "manual__2026-12-01T20:20:30+00:00")

    assert (store / "stream_a" / "manual__2026-12-01T20:20:30+00:00.jsonl").read_bytes() == b""
    assert list(window_store.records(reference)) == []


def test_a_delivered_window_is_removed_with_the_streams_expired_files_only(store, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__WINDOW_STORE_RETENTION_HOURS", "1")
    delivered = saved(RECORDS, "stream_a", "run-delivered")
    failed_long_ago = saved(RECORDS, "stream_a", "run-failed-long-ago")
    failed_lately = saved(RECORDS, "stream_a", "run-failed-lately")
    other_stream = saved(RECORDS, "stream_b", "run-failed-long-ago")
    two_hours_ago = time.time() - 7200
    for name in ("stream_a/run-failed-long-ago.jsonl", "stream_b/run-failed-long-ago.jsonl"):
        os.utime(store / name, (two_hours_ago, two_hours_ago))

    window_store.remove(delivered, "stream_a")

    assert sorted(path.name for path in (store / "stream_a").iterdir()) == ["run-failed-lately.jsonl"]
    assert (store / "stream_b" / "run-failed-long-ago.jsonl").exists(), "another stream's files are its own"
    with pytest.raises(window_store.WindowGone, match=r"Clear fetch_tweets with this task"):
        list(window_store.records(failed_long_ago))
    assert list(window_store.records(failed_lately)) == RECORDS
    assert list(window_store.records(other_stream)) == RECORDS


def test_a_window_that_is_gone_names_the_window_where_it_was_and_why(store):
    reference = saved(RECORDS, "stream_a", "run-1")
    window_store.remove(reference, "stream_a")

    with pytest.raises(window_store.WindowGone) as gone:
        list(produce_records(reference, "json"))
    message = str(gone.value)
    assert "window [2026-12-01T20:20:00Z, 2026-12-01T20:21:00Z)" in message
    assert reference["path"] in message and "12 hours" in message


def test_the_default_store_is_a_folder_of_airflow_home(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW__TWEETS_TO_KAFKA__WINDOW_STORE", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))

    assert window_store.store_url() == f"file://{tmp_path}/tweets_to_kafka/windows"


def saved(records: list[dict], dag_id: str, run_id: str) -> dict[str, str]:
    """The window of run `run_id` of `dag_id`, with `records` saved in it."""
    window = window_store.window(dag_id, run_id, START, END)
    window_store.save(records, window)
    return window
