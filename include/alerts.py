"""The late-window alert's default callback: a line in the log of the callback that Airflow runs when a window's
deadline passes (see the `deadline` of each stream's DAG in dags/tweets_to_kafka.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)


def log_late_window(context: dict[str, Any], late_after_minutes: int) -> str:
    """Log, and return, that a stream's window is not delivered `late_after_minutes` after it became searchable.

    :param context: what Airflow gives a deadline's callback: the run as the REST API shows it (`dag_run`) and the
        deadline (`deadline`)
    """
    run = context["dag_run"]
    start = datetime.fromisoformat(run["logical_date"]).replace(second=0, microsecond=0)
    topic = (run.get("conf") or {}).get("topic")
    message = (
        f"Late window: stream {run['dag_id']!r}, window [{start:%Y-%m-%dT%H:%MZ}, "
        f"{start + timedelta(minutes=1):%H:%MZ}) is not delivered {late_after_minutes} minutes after it became "
        f"searchable; its run {run['dag_run_id']!r} is {run['state']}"
        + (f" (topic {topic!r})" if topic else "")
    )
    log.warning("%s", message)
    return message
