"""The DAG's params (what a run fetches and where it writes) and their validation."""

from __future__ import annotations

import re
from typing import Any

from include.records import RECORD_FORMATS

DEFAULT_QUERY = "Apple OR iphone OR iPhone"
DEFAULT_TOPIC = "tweets-lambda1"
MAX_QUERY_LENGTH = 512  # the X API's limit for recent search on the basic tiers
TOPIC_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"  # Kafka's legal topic names


def validate_params(params: dict[str, Any]) -> None:
    """Raise ValueError naming the first param that the X API or Kafka would refuse."""
    query = params.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("param 'query' must be a non-empty X API search query")
    if len(query) > MAX_QUERY_LENGTH:
        raise ValueError(
            f"param 'query' is {len(query)} characters long; the X API allows {MAX_QUERY_LENGTH}"
        )
    topic = params.get("topic")
    if not isinstance(topic, str) or not re.match(TOPIC_PATTERN, topic) or topic in (".", ".."):
        raise ValueError(
            f"param 'topic' {topic!r} is not a valid Kafka topic name: use 1-249 of a-z A-Z 0-9 . _ -"
        )
    if params.get("record_format") not in RECORD_FORMATS:
        raise ValueError(
            f"param 'record_format' {params.get('record_format')!r} is unknown: "
            f"expected one of {', '.join(RECORD_FORMATS)}"
        )
