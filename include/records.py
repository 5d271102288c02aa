"""Kafka records built from X API v2 tweets, in the project's JSON format or the seed's `;` line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

RECORD_FORMATS = ("json", "seed")
# Compact UTF-8 JSON, keys in the record's order: the bytes of json.dumps(ensure_ascii=False, separators=(",", ":")),
# five times faster (the produce loop's largest cost).
_json = msgspec.json.Encoder()
_SEED_SEPARATORS = str.maketrans(";\r\n", "   ")  # each would break the seed's line or its fields


def to_record(tweet: dict[str, Any], author: dict[str, Any] | None) -> dict[str, Any]:
    """Turn a v2 tweet and its author (a user from `includes.users`, or None) into a record.

    A field the API did not send (no author, no metrics, no location) becomes None. `original_tweet_id`
    is the first id of the tweet's edit history: the same for every version of an edited tweet.
    """
    tweet_metrics = tweet.get("public_metrics") or {}
    author = author or {}
    return {
        "tweet_id": tweet["id"],
        "original_tweet_id": (tweet.get("edit_history_tweet_ids") or [tweet["id"]])[0],
        "user_id": tweet.get("author_id") or author.get("id"),
        "created_at": datetime.fromisoformat(tweet["created_at"])
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "followers_count": (author.get("public_metrics") or {}).get("followers_count"),
        "location": author.get("location"),
        "favorite_count": tweet_metrics.get("like_count"),
        "retweet_count": tweet_metrics.get("retweet_count"),
        "text": tweet.get("text"),
        "lang": tweet.get("lang"),
    }


def serialise(record: dict[str, Any], record_format: str) -> bytes:
    """Encode a record as UTF-8 bytes: a JSON object, or the seed's six `;`-terminated fields."""
    if record_format == "json":
        return _json.encode(record)
    if record_format == "seed":
        created_at = datetime.strptime(record["created_at"], "%Y-%m-%dT%H:%M:%SZ")
        fields = (
            record["user_id"],
            created_at.strftime("%Y-%m-%d %H:%M:%S"),
            record["followers_count"],
            (record["location"] or "").translate(_SEED_SEPARATORS),
            record["favorite_count"],
            record["retweet_count"],
        )
        return "".join(f"{'' if field is None else field};" for field in fields).encode()
    raise ValueError(f"unknown record_format {record_format!r}: expected one of {', '.join(RECORD_FORMATS)}")
