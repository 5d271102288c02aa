"""The stream file (`include/streams.yaml`, or the file that `TWEETS_TO_KAFKA_STREAMS` names): which X
query goes to which Kafka topic, each stream one DAG. Reading it is cheap (YAML and pydantic).

The streams that run are the file's, with its last good version standing in while the file cannot be read, for a
stream whose entry is bad, and for a stream whose name changed (a name is a DAG id: `display_name` renames a
stream); the last good version is kept in `$AIRFLOW_HOME/tweets_to_kafka/` of each machine that parses the file."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from include import state_folder
from include.ledger import LEDGER_TOPIC

COMPLIANCE_TOPIC = "tweets-to-kafka.compliance"  # where the compliance DAGs write their events, by default
COMPLIANCE_DAG_PREFIX = "x_compliance_"  # the compliance DAG of an X connection: x_compliance_<its id>

STREAM_FILE = Path(__file__).with_name("streams.yaml")
STREAM_FILE_SETTING = "TWEETS_TO_KAFKA_STREAMS"  # env: another stream file, e.g. for a test stack
REQUESTS_PER_STREAM = 15  # per 15 minutes: one search a minute, more for minutes of over 100 tweets
KAFKA_TOPIC = r"^(?!\.\.?$)[a-zA-Z0-9._-]{1,249}$"  # Kafka's legal topic names
MAX_QUERY_LENGTH = 512  # the X API's limit for recent search (self-serve access)
LOG_LATE_WINDOW = "include.alerts.log_late_window"  # the late alert's default: a line in the callback's log


class Stream(BaseModel):
    """One entry of the stream file."""

    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")

    name: Annotated[
        str, Field(pattern=rf"^(?!{COMPLIANCE_DAG_PREFIX})[a-zA-Z0-9_.-]{{1,200}}$")
    ]  # the DAG id
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
    # The name the UI shows, free to change (a stream's name is its DAG id, for life).
    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None

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
    compliance_topic: Annotated[str, Field(pattern=KAFKA_TOPIC)] = COMPLIANCE_TOPIC
    # a divisor of 24, at most 12: within X's 24 hours
    compliance_every_hours: Literal[1, 2, 3, 4, 6, 8, 12] = 6
    late_alert: LateAlert = LateAlert()
    streams: Annotated[list[Any], Field(min_length=1)]


class StreamFileError(ValueError):
    """The stream file cannot be read at all; the message names the file and what is wrong."""


@dataclass
class Streams:
    """What a stream file declares: its valid streams, and a problem line for every bad entry."""

    path: Path
    rate_limit_per_15_minutes: int
    delivery_ledger_topic: str = LEDGER_TOPIC
    healing_interval_minutes: int = 5
    compliance_topic: str = COMPLIANCE_TOPIC
    compliance_every_hours: int = 6
    late_alert: LateAlert = field(default_factory=LateAlert)
    streams: list[Stream] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    bad_entries: set[str] = field(default_factory=set)  # the names of the entries left out for a problem

    def by_x_connection(self) -> dict[str, list[Stream]]:
        """The streams of each X connection, in the file's order: each connection gets a compliance DAG."""
        connections: dict[str, list[Stream]] = {}
        for stream in self.streams:
            connections.setdefault(stream.twitter_conn_id, []).append(stream)
        return connections

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


def window_over_budget(stream: Stream, limit: int, window: str, tweets: int, requests: int) -> str | None:
    """Why one window alone took more requests than its X app may make in 15 minutes, with its figures, or None."""
    if requests <= limit:
        return None
    resets = -(-requests // limit) - 1
    return (
        f"Window {window} of stream {stream.name!r} took {requests} X API requests for {tweets} tweets, more than "
        f"the {limit} that the X app of connection {stream.twitter_conn_id!r} may make in 15 minutes "
        f"(rate_limit_per_15_minutes): it waited for at least {resets} resets of the limit, 15 minutes each, and "
        "the other streams on that app fell behind meanwhile"
    )


def as_id(conn_id: str) -> str:
    """A connection id as a part of a DAG or task id: each character those do not take becomes `_`."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", conn_id)


def compliance_dag_id(twitter_conn_id: str) -> str:
    """The id of an X connection's compliance DAG, e.g. `x_compliance_twitter_default`."""
    return COMPLIANCE_DAG_PREFIX + as_id(twitter_conn_id)


def stream_file() -> Path:
    """The stream file in use: `TWEETS_TO_KAFKA_STREAMS` if set, else include/streams.yaml."""
    return Path(os.environ.get(STREAM_FILE_SETTING) or STREAM_FILE)


def read_streams(path: Path | None = None) -> Streams:
    """Read and check a stream file. A bad entry (or a second one with an earlier entry's name or topic) is
    left out with a problem line naming the file, the stream and the field; the others stay. Raise
    StreamFileError when the file itself is unreadable, not YAML, or has a bad top-level key."""
    path = path or stream_file()
    try:
        data = _load_yaml(path.read_text())
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
        settings.compliance_topic,
        settings.compliance_every_hours,
        settings.late_alert,
    )
    kept = {
        settings.delivery_ledger_topic: "delivery_ledger_topic",
        settings.compliance_topic: "compliance_topic",
    }
    for index, entry in enumerate(settings.streams, start=1):
        label = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path}: stream {label!r}" if label else f"{path}: stream #{index}"
        try:
            stream = Stream.model_validate(entry)
        except ValidationError as error:
            streams.problems += [f"{where}: {problem}" for problem in _problems(error, Stream.model_fields)]
            if label:
                streams.bad_entries.add(str(label))
            continue
        taken = Counter()
        for other in streams.streams:
            taken.update({("name", other.name), ("topic", other.topic)})
        clashes = [key for key in ("name", "topic") if taken[(key, getattr(stream, key))]]
        for key in clashes:
            streams.problems.append(
                f"{where}: {key}: {getattr(stream, key)!r} is already the {key} of an earlier stream; each "
                f"stream needs its own"
            )
        if stream.topic in kept:
            clashes.append("topic")
            streams.problems.append(
                f"{where}: topic: {stream.topic!r} is the file's {kept[stream.topic]}; each stream needs its own"
            )
        if not clashes:
            streams.streams.append(stream)
    return streams


def running_streams(path: Path | None = None) -> Streams:
    """The streams to run (see the module's docstring), with a problem line for every stand-in; kept as the next
    last good version. Raise StreamFileError when the file cannot be read and no last good version exists."""
    path = path or stream_file()
    last_good_file = _last_good_file(path)
    last_good = _read_last_good(last_good_file, path)
    try:
        streams = read_streams(path)
    except StreamFileError as error:
        if last_good is None:
            raise
        names = ", ".join(stream.name for stream in last_good.streams)
        last_good.problems = [f"{error}; its last good streams keep running until it is fixed: {names}"]
        return last_good
    if last_good is not None:
        _keep_from(streams, last_good)
    if streams.streams:
        _save(streams, last_good_file)
    return streams


def _keep_from(streams: Streams, last_good: Streams) -> None:
    """Add the last good version of each stream that the file left out for a bad entry, or whose name it changed
    (another stream took its topic); a stream no longer in the file at all was removed, and stays out."""
    names = {stream.name for stream in streams.streams}
    for old in last_good.streams:
        if old.name in names:
            continue
        where = f"{streams.path}: stream {old.name!r}"
        if old.name in streams.bad_entries:
            streams.streams.append(old)
            streams.problems.append(f"{where}: its last good version keeps running until the entry is fixed")
            continue
        taker = next((new for new in streams.streams if new.topic == old.topic), None)
        if taker is None:
            continue
        streams.streams.remove(taker)
        streams.streams.append(old)
        streams.problems.append(
            f"{streams.path}: stream {taker.name!r}: topic: {old.topic!r} is the topic of stream {old.name!r}, "
            f"which left the file. A stream's name is its DAG id: a new name starts a new DAG, and {old.name!r}'s "
            f"minutes would stop. To rename the stream, keep name: {old.name} and set display_name: {taker.name}; "
            f"to replace it, remove {old.name!r} from the file first. {old.name!r} keeps running meanwhile"
        )


def _read_last_good(last_good_file: Path, path: Path) -> Streams | None:
    try:
        last_good = read_streams(last_good_file)
    except StreamFileError:  # none yet (or damaged: the next good read replaces it)
        return None
    last_good.path = path
    return last_good


def _last_good_file(path: Path) -> Path:
    digest = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:12]
    return state_folder() / f"last-good-{path.stem}-{digest}.yaml"


def _save(streams: Streams, last_good: Path) -> None:
    """Write the streams as a stream file at `last_good`, unless it holds them already (atomically: every parse
    of the DAG file, in any process, calls this)."""
    settings = {key: getattr(streams, key) for key in _FileSettings.model_fields if key != "streams"}
    settings["late_alert"] = streams.late_alert.model_dump(exclude_defaults=True)
    settings["streams"] = [stream.model_dump(exclude_defaults=True) for stream in streams.streams]
    text = f"# The last good streams of {streams.path}, as they run (include/streams.py)\n" + yaml.dump(
        settings, Dumper=_FAST_DUMPER, sort_keys=False, allow_unicode=True
    )
    try:
        if last_good.exists() and last_good.read_text() == text:
            return
        last_good.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=last_good.parent, delete=False, suffix=".tmp") as out:
            out.write(text)
        os.replace(out.name, last_good)
    except OSError:  # a read-only home: the streams run, without a stand-in for a later bad edit
        return


# libyaml's, where PyYAML has it: the stream file and its last good version are read at every parse.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return yaml.safe_load(
            text
        )  # fails again, with the pure-Python loader's message, which shows the line


_PATTERN_MISMATCH = {
    "name": f"must be a DAG id: 1-200 of a-z A-Z 0-9 . _ -, not starting with {COMPLIANCE_DAG_PREFIX} (the "
    "compliance DAGs' ids)",
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
