"""Where a fetched window's records wait for produce_tweets: a JSON-lines file in object storage named by the run
(`<store>/<dag id>/<run id>.jsonl`), so that nothing of them passes through Airflow's metadata database.

fetch_tweets saves the records there; produce_tweets finds them by its run (a retry reads the same file: the pages
are fetched once) and removes the file once the window is delivered, and with it the files of its stream older than
the retention, which failed runs leave behind. The store is `[tweets_to_kafka] window_store` (env
`AIRFLOW__TWEETS_TO_KAFKA__WINDOW_STORE`), an Airflow ObjectStoragePath URL such as `s3://aws_default@bucket/windows`,
or a folder of AIRFLOW_HOME; every worker must reach it (docs/operating.md, "Records between the tasks").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from airflow.sdk import ObjectStoragePath, conf

from include import state_folder
from include.windows import iso

log = logging.getLogger(__name__)
SECTION = "tweets_to_kafka"
RETENTION = timedelta(hours=12)  # X asks for a deleted post to be gone within 24 hours
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(dict[str, Any])


def store_url() -> str:
    """The store's URL: the setting, or `file://$AIRFLOW_HOME/tweets_to_kafka/windows` on the worker's own disk."""
    return (conf.get(SECTION, "window_store", fallback="") or f"file://{state_folder()}/windows").rstrip("/")


def retention() -> timedelta:
    """How long a window's file may stay when its run never delivered it (`window_store_retention_hours`)."""
    hours = conf.getfloat(SECTION, "window_store_retention_hours", fallback=RETENTION / timedelta(hours=1))
    return timedelta(hours=hours)


def window(dag_id: str, run_id: str, start: datetime, end: datetime) -> dict[str, str]:
    """A run's window in the store: `{"window": "[start, end)", "path": url}`."""
    return {"window": f"[{iso(start)}, {iso(end)})", "path": f"{store_url()}/{dag_id}/{run_id}.jsonl"}


def save(records: list[dict[str, Any]], window: dict[str, str]) -> None:
    """Write a window's records to its file (a retry of the fetch replaces them)."""
    file = ObjectStoragePath(window["path"])
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("wb") as out:
        out.write(_encoder.encode_lines(records))


def records(window: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A window's records, one by one."""
    try:
        with ObjectStoragePath(window["path"]).open("rb") as lines:
            for line in lines:
                yield _decoder.decode(line)
    except FileNotFoundError:
        raise WindowGone(window) from None


class WindowGone(LookupError):
    """A window's records are no longer in the store: delivered and removed, or past the retention."""

    def __init__(self, window: dict[str, str]):
        super().__init__(
            f"The records of window {window['window']} are no longer at {window['path']}: they are removed once "
            f"the window is delivered, and after {retention() / timedelta(hours=1):g} hours when it is not "
            "(window_store_retention_hours). Clear fetch_tweets with this task to fetch the window again"
        )


def remove(window: dict[str, str], dag_id: str) -> None:
    """Remove a delivered window's file, and the stream's files older than the retention; a failure is only
    logged (the next delivery of the stream tries again)."""
    try:
        ObjectStoragePath(window["path"]).unlink(missing_ok=True)
        expired = remove_expired(f"{store_url()}/{dag_id}", retention())
    except OSError as error:
        log.warning(
            "Could not remove the records of window %s at %s: %s", window["window"], window["path"], error
        )
        return
    if expired:
        log.info("Removed %d undelivered windows' records older than %s", len(expired), retention())


def remove_expired(folder: str, age: timedelta) -> list[str]:
    """Remove the window files in `folder` last written more than `age` ago; return their URLs."""
    directory = ObjectStoragePath(folder)
    if not directory.exists():
        return []
    before = datetime.now(UTC) - age
    removed = []
    for file in directory.iterdir():
        if file.name.endswith(".jsonl") and _modified(file) < before:
            file.unlink(missing_ok=True)
            removed.append(f"{folder}/{file.name}")
    return removed


def _modified(file: ObjectStoragePath) -> datetime:
    info = file.stat()
    moment = info.get("mtime") or info.get("LastModified") or info.get("updated")
    if isinstance(moment, datetime):
        return moment.astimezone(UTC)
    if isinstance(moment, str):
        return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(UTC)
    return datetime.fromtimestamp(float(moment), UTC)
