"""The stream file (`include/streams.yaml`, or the file that `TWEETS_TO_KAFKA_STREAMS` names): which X
query goes to which Kafka topic, each stream one DAG. Reading it is cheap (YAML and pydantic)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from include.ledger import LEDGER_TOPIC

STREAM_FILE = Path(__file__).with_name("streams.yaml")
STREAM_FILE_SETTING = "TWEETS_TO_KAFKA_STREAMS"  # env: another stream file, e.g. for a test stack
REQUESTS_PER_STREAM = 15  # per 15 minutes: one search a minute, more for minutes of over 100 tweets
KAFKA_TOPIC = r"^(?!\.\.?$)[a-zA-Z0-9._-]{1,249}$"  # Kafka's legal topic names
MAX_QUERY_LENGTH = 512  # the X API's limit for recent search (self-serve access)
DAG_ID = r"^[a-zA-Z0-9_.-]{1,200}$"  # a stream's name is its DAG's id
LOG_LATE_WINDOW = "include.alerts.log_late_window"  # the late alert's default: a line in the callback's log


class Stream(BaseModel):
    """One entry of the stream file."""

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")

    name: Annotated[str, Field(pattern=DAG_ID)]
    query: Annotated[str, Field(pattern=r"\S", max_length=MAX_QUERY_LENGTH)]
    topic: Annotated[str, Field(pattern=KAFKA_TOPIC)]
    record_format: Literal["json", "seed"] = "json"
    look_back_minutes: Annotated[int, Field(ge=0)] = 0
    settle_seconds: Annotated[float, Field(ge=0)] = 30
    retries: Annotated[int, Field(ge=0)] = (
        3  # of each task, before its run fails (and the healing runs it again)
    )
    retry_delay_seconds: Annotated[float, Field(gt=0)] = 20  # the first; it doubles, at most 10 minutes
    twitter_conn_id: str = "twitter_default"
    kafka_conn_id: str = "kafka_default"
    late_after_minutes: Annotated[int, Field(ge=1)] = 10

    @property
    def settle(self) -> timedelta:
        return timedelta(seconds=self.settle_seconds)

    @property
    def late_after(self) -> timedelta:
        """How long after a window is searchable its delivery counts as late, and its alert fires."""
        return timedelta(minutes=self.late_after_minutes)


class LateAlert(BaseModel):
    """What a window's late alert calls: a function or a notifier class (e.g. a provider's Slack notifier) by
    its import path, with these keyword arguments and Airflow's context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    callback: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")] = LOG_LATE_WINDOW
    kwargs: dict[str, Any] = Field(default_factory=dict)


class _FileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    rate_limit_per_15_minutes: Annotated[int, Field(gt=0)] = 450  # X's Pro tier
    delivery_ledger_topic: Annotated[str, Field(pattern=KAFKA_TOPIC)] = LEDGER_TOPIC
    healing_interval_minutes: Annotated[int, Field(gt=0)] = 5
    late_alert: LateAlert = LateAlert()
    streams: Annotated[list[Any], Field(min_length=1)]


class StreamFileError(ValueError):
    """The stream file cannot be read at all; the message names the file and what is wrong."""


@dataclass
class Streams:
    """What a stream file declares: its valid streams, and a problem line for every bad entry; `broken` holds the
    problems of each bad entry by its name, where it has a name no valid stream has (its DAG reports them)."""

    path: Path
    rate_limit_per_15_minutes: int
    delivery_ledger_topic: str = LEDGER_TOPIC
    healing_interval_minutes: int = 5
    late_alert: LateAlert = field(default_factory=LateAlert)
    streams: list[Stream] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    broken: dict[str, list[str]] = field(default_factory=dict)

    def budget_warning(self, stream: Stream) -> str | None:
        """Why the streams on `stream`'s X connection cannot all fit its app's rate limit, or None."""
        sharing = [other.name for other in self.streams if other.twitter_conn_id == stream.twitter_conn_id]
        needed = REQUESTS_PER_STREAM * len(sharing)
        if needed <= self.rate_limit_per_15_minutes:
            return None
        return (
            f"The {len(sharing)} streams on connection {stream.twitter_conn_id!r} ({', '.join(sharing)}) need "
            f"at least {needed} X API requests per 15 minutes ({REQUESTS_PER_STREAM} each), more than the "
            f"{self.rate_limit_per_15_minutes} that rate_limit_per_15_minutes in {self.path} allows: their runs "
            f"will wait on 429s and fall behind. Move streams to another X app (twitter_conn_id), merge queries "
            f"with OR, or raise the limit if your access tier allows more."
        )


def stream_file() -> Path:
    """The stream file in use: `TWEETS_TO_KAFKA_STREAMS` if set, else include/streams.yaml."""
    return Path(os.environ.get(STREAM_FILE_SETTING) or STREAM_FILE)


def read_streams(path: Path | None = None) -> Streams:
    """Read and check a stream file. A bad entry (or a second one with an earlier entry's name or topic) is
    left out with a problem line naming the file, the stream and the field; the others stay. Raise
    StreamFileError when the file itself is unreadable, not YAML, or has a bad top-level key."""
    path = path or stream_file()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise StreamFileError(f"Stream file {path}: {error}") from None
    try:
        settings = _FileSettings.model_validate(data)
    except ValidationError as error:
        raise StreamFileError(
            f"Stream file {path}: " + "; ".join(_problems(error, _FileSettings.model_fields))
        ) from None

    streams = Streams(
        path,
        settings.rate_limit_per_15_minutes,
        settings.delivery_ledger_topic,
        settings.healing_interval_minutes,
        settings.late_alert,
    )
    for index, entry in enumerate(settings.streams, start=1):
        label = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path}: stream {label!r}" if label else f"{path}: stream #{index}"
        try:
            stream = Stream.model_validate(entry)
        except ValidationError as error:
            problems = [f"{where}: {problem}" for problem in _problems(error, Stream.model_fields)]
            streams.problems += problems
            if isinstance(label, str) and re.fullmatch(DAG_ID, label):
                streams.broken.setdefault(label, []).extend(problems)
            continue
        taken = Counter()
        for other in streams.streams:
            taken.update({("name", other.name), ("topic", other.topic)})
        clashes = [key for key in ("name", "topic") if taken[(key, getattr(stream, key))]]
        for key in clashes:
            problem = (
                f"{where}: {key}: {getattr(stream, key)!r} is already the {key} of an earlier stream; each "
                f"stream needs its own"
            )
            streams.problems.append(problem)
            if "name" not in clashes:
                streams.broken.setdefault(stream.name, []).append(problem)
        if not clashes:
            streams.streams.append(stream)
    for stream in streams.streams:  # a later valid entry of the same name is that DAG
        streams.broken.pop(stream.name, None)
    return streams


_PATTERN_MISMATCH = {
    "name": "must be a DAG id: 1-200 of a-z A-Z 0-9 . _ -",
    "query": "is blank",
    "topic": "is not a legal Kafka topic name: 1-249 of a-z A-Z 0-9 . _ -, and not '.' or '..'",
}


def _problems(error: ValidationError, keys: Iterable[str]) -> list[str]:
    """One `field: what is wrong` line per pydantic error, in the words of a stream file."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        kind = problem["type"]
        if kind == "missing":
            message = "missing, and required"
        elif kind == "extra_forbidden":
            message = f"unknown key (the keys are: {', '.join(keys)})"
        elif kind in ("model_type", "model_attributes_type"):
            message = "must be a mapping of keys to values"
        elif kind == "string_pattern_mismatch" and where in _PATTERN_MISMATCH:
            message = _PATTERN_MISMATCH[where]
        elif kind == "string_too_long" and where == "query":
            message = f"is {len(problem['input'])} characters, over the X API's limit of {MAX_QUERY_LENGTH}"
        else:
            message = problem["msg"]
        lines.append(f"{where}: {message}")
    return lines
