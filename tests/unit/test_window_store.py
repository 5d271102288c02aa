"""The window store: the records of a fetched window wait in a file for produce_tweets, and XCom holds only their
reference; a delivered window's file goes at once, an undelivered one after the retention."""

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


def test_a_window_travels_as_a_small_reference_to_its_file(store):
    reference = window_store.save(RECORDS, "stream_a", "scheduled__2026-12-01T20:20--20:21Z", START, END)

    assert reference == {
        "window": "[2026-12-01T20:20:00Z, 2026-12-01T20:21:00Z)",
        "records": 2,
        "path": f"file://{store}/stream_a/scheduled__2026-12-01T20:20--20:21Z.jsonl",
    }
    assert "iPhone" not in str(reference)
    assert list(window_store.records(reference)) == RECORDS
    assert (
        len((store / "stream_a" / "scheduled__2026-12-01T20:20--20:21Z.jsonl").read_text().splitlines()) == 2
    )
    assert [key for key, _ in produce_records(reference, "json")] == [b"2", b"1"]


def test_an_empty_window_has_an_empty_file(store):
    reference = window_store.save([], "stream_a", "manual__2026-12-01T20:20:30+00:00", START, END)

    assert reference["records"] == 0
    assert list(window_store.records(reference)) == []


def test_records_given_inline_by_a_fetch_of_an_earlier_version_are_read_as_they_are(store):
    assert list(window_store.records(RECORDS)) == RECORDS
    window_store.remove(RECORDS, "stream_a")  # nothing to remove


def test_a_delivered_window_is_removed_with_the_streams_expired_files_only(store, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__WINDOW_STORE_RETENTION_HOURS", "1")
    delivered = window_store.save(RECORDS, "stream_a", "run-delivered", START, END)
    failed_long_ago = window_store.save(RECORDS, "stream_a", "run-failed-long-ago", START, END)
    failed_lately = window_store.save(RECORDS, "stream_a", "run-failed-lately", START, END)
    other_stream = window_store.save(RECORDS, "stream_b", "run-failed-long-ago", START, END)
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
    reference = window_store.save(RECORDS, "stream_a", "run-1", START, END)
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
