"""The baseline of the parse-time benchmark: a DAG file with one DAG and no task."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag


@dag(dag_id="empty", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))
def empty():
    pass


empty()
