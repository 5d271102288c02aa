"""Records: the JSON format's fields and the seed's `;` line, on awkward values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from include import window_store
from include.kafka_delivery import produce_records
from include.records import serialise, to_record

TWEET = {
    "id": "1995000000000000001",
    "text": 'Apple; "iPhone"\r\nline two \\ 🍎 𝕏 中文',
    "author_id": "42",
    "created_at": "2026-11-24T10:00:00.000Z",
    "lang": "en",
    "public_metrics": {"like_count": 7, "retweet_count": 3, "reply_count": 0, "quote_count": 0},
}
AUTHOR = {
    "id": "42",
    "username": "ada",
    "location": "Paris; France\r\nEU\n",
    "public_metrics": {"followers_count": 1234},
}


def test_to_record_has_exactly_the_documented_fields():
    assert to_record(TWEET, AUTHOR) == {
        "tweet_id": "1995000000000000001",
        "original_tweet_id": "1995000000000000001",
        "user_id": "42",
        "created_at": "2026-11-24T10:00:00Z",
        "followers_count": 1234,
        "location": "Paris; France\r\nEU\n",
        "favorite_count": 7,
        "retweet_count": 3,
        "text": TWEET["text"],
        "lang": "en",
    }


def test_an_edited_tweet_keeps_the_id_of_its_first_version():
    edited = {
        **TWEET,
        "id": "1995000000000000009",
        "edit_history_tweet_ids": ["1995000000000000001", "1995000000000000009"],
    }

    record = to_record(edited, AUTHOR)

    assert (record["tweet_id"], record["original_tweet_id"]) == ("1995000000000000009", "1995000000000000001")


def test_json_format_is_utf8_json_that_keeps_the_text_exactly():
    value = serialise(to_record(TWEET, AUTHOR), "json")
    assert "🍎 𝕏 中文".encode() in value, "UTF-8, not \\u escapes"
    assert json.loads(value.decode("utf-8"))["text"] == TWEET["text"]


def test_json_format_is_compact_with_the_fields_in_their_documented_order():
    record = to_record(TWEET, AUTHOR)
    assert serialise(record, "json") == json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    assert list(json.loads(serialise(record, "json"))) == list(record)


def test_seed_format_is_the_seeds_six_fields_with_the_location_flattened():
    value = serialise(to_record(TWEET, AUTHOR), "seed").decode()
    assert value == "42;2026-11-24 10:00:00;1234;Paris  France  EU ;7;3;"
    assert len(value.split(";")) == 7


def test_created_at_is_written_in_utc_whatever_offset_the_api_uses():
    record = to_record({**TWEET, "created_at": "2026-11-24T11:00:00.999+01:00"}, AUTHOR)
    assert record["created_at"] == "2026-11-24T10:00:00Z"
    assert serialise(record, "seed").decode().split(";")[1] == "2026-11-24 10:00:00"


def test_missing_author_location_and_metrics_become_null_and_empty_seed_fields():
    tweet = {key: value for key, value in TWEET.items() if key not in ("lang", "public_metrics")}
    record = to_record(tweet, None)
    assert record["user_id"] == "42", "from the tweet's author_id"
    assert (record["followers_count"], record["location"], record["favorite_count"]) == (None, None, None)
    assert (record["retweet_count"], record["lang"]) == (None, None)
    assert serialise(record, "seed").decode() == "42;2026-11-24 10:00:00;;;;;"
    assert json.loads(serialise(record, "json"))["location"] is None


def test_a_user_without_location_has_an_empty_seed_location():
    author = {key: value for key, value in AUTHOR.items() if key != "location"}
    assert serialise(to_record(TWEET, author), "seed").decode() == "42;2026-11-24 10:00:00;1234;;7;3;"


def test_unknown_format_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown record_format 'xml'"):
        serialise(to_record(TWEET, AUTHOR), "xml")


@pytest.mark.parametrize("record_format", ["json", "seed"])
def test_every_record_is_keyed_by_its_tweet_id(record_format, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TWEETS_TO_KAFKA__WINDOW_STORE", f"file://{tmp_path}")
    records = [to_record({**TWEET, "id": str(n)}, AUTHOR) for n in (1, 2, 3)]
    window = window_store.window(
        "stream", "run", datetime(2026, 11, 24, 10, tzinfo=UTC), datetime(2026, 11, 24, 10, 1, tzinfo=UTC)
    )
    window_store.save(records, window)
    pairs = list(produce_records(window, record_format))
    assert [key for key, _ in pairs] == [b"1", b"2", b"3"]
    assert [value for _, value in pairs] == [serialise(r, record_format) for r in records]
