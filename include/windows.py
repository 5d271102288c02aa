"""The one-minute search window of a DAG run, and when its tweets become searchable."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

WINDOW = timedelta(minutes=1)
SEARCHABLE_AFTER = timedelta(seconds=30)  # tweets reach the X API's search index ~30 s after posting


def run_window(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """Return `[start, end)` of a run: its data interval, or for a run without a logical date
    (a manual trigger) the last complete minute before its `run_after`."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return start, end
    end = context["dag_run"].run_after.replace(second=0, microsecond=0)
    return end - WINDOW, end


def seconds_until_searchable(end: datetime, now: datetime) -> float:
    """Seconds to wait before searching a window that ended at `end` (0 once it is searchable)."""
    return max(0.0, (end + SEARCHABLE_AFTER - now).total_seconds())
