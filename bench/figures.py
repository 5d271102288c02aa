"""The ratios that bench/results.json leads with: label, target, and whether a value meets it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Figure(NamedTuple):
    key: str
    label: str
    target: str = ""
    meets: Callable[[float], bool] | None = None
    charted: bool = True  # among the chart's ratios (not a byte count or a rate)


FIGURES = (
    Figure("produce_vs_raw", "produce: ours / raw confluent-kafka", ">= 0.8", lambda v: v >= 0.8),
    Figure("produce_vs_seed", "produce: ours / the seed's kafka-python", ">= 5", lambda v: v >= 5),
    Figure("produce_vs_operator_defaults", "produce: ours / operator defaults"),
    Figure(
        "transactional_vs_idempotent_produce",
        "produce: one transaction per window / idempotent",
        ">= 0.9",
        lambda v: v >= 0.9,
    ),
    Figure(
        "ledger_read_ms",
        "a try's read of the delivery ledger, median milliseconds",
        "<= 100",
        lambda v: v <= 100,
    ),
    Figure("requests_vs_minimum", "requests per window / minimum", "= 1.0", lambda v: v == 1.0),
    Figure("fetch_vs_plain_requests", "fetch 1,000 tweets: hook / plain requests"),
    Figure(
        "parse_vs_empty_dag", "parse, fresh interpreter: DAG file / empty DAG", "<= 1.5", lambda v: v <= 1.5
    ),
    Figure("parse_in_dag_processor_vs_empty_dag", "parse in a dag-processor: DAG file / empty DAG"),
    Figure("run_vs_empty_dag_run", "airflow dags test: 1,000 tweets / empty 2-task DAG"),
    Figure(
        "freshness_median_s",
        "scheduled run: window searchable to last record appended, median seconds",
        "<= 6.5 (1.5 s floor + 5)",
        lambda v: v <= 6.5,
    ),
    Figure("freshness_p95_s", "scheduled run: window searchable to last record appended, p95 seconds"),
    Figure(
        "slot_seconds_vs_empty_dag",
        "worker-slot seconds per scheduled run / empty 2-task DAG",
        "<= 1.5",
        lambda v: v <= 1.5,
    ),
    Figure(
        "transactional_ids_per_stream_day",
        "transactional ids a stream uses in a day (all windows of the schedule section)",
        "bounded (1)",
        lambda v: v <= 1,
    ),
    Figure(
        "catchup_vs_rate_limit",
        "catch-up of 30 missed windows / the rate limit's own time",
        "<= 1.3",
        lambda v: v <= 1.3,
    ),
    Figure(
        "metadata_bytes_per_window",
        "XCom and rendered fields of a 40-post window, bytes",
        "< 2048",
        lambda v: v < 2048,
        charted=False,
    ),
    Figure(
        "big_window_records_per_second",
        "a 150,000-post minute, first request to last record: records/s",
        charted=False,
    ),
    Figure(
        "streams_vs_empty_dag_streams",
        "streams within freshness / streams of two empty tasks within it",
        ">= 0.8",
        lambda v: v >= 0.8,
    ),
    Figure(
        "healing_minutes_after_outage", "minutes from Kafka's return to every minute of its outage healed"
    ),
    Figure(
        "healing_vs_rate_limit",
        "healing of a 30-minute Kafka outage / the rate limit's own time",
        "<= 1.3",
        lambda v: v <= 1.3,
    ),
    Figure(
        "compliance_slot_vs_job_wall",
        "X compliance, 1,000,000 posts: worker-slot seconds / the task's wall time",
        "<= 0.5",
        lambda v: v <= 0.5,
    ),
    Figure(
        "coverage_page_vs_grid",
        "Stream coverage page, 30 streams x 7 days / Airflow's grid, one stream's 1,440 runs",
        "<= 1",
        lambda v: v <= 1,
    ),
    Figure(
        "fetch_memory_growth_vs_records",
        "fetch_tweets memory growth / records growth",
        "<= 1",
        lambda v: v <= 1,
    ),
    Figure(
        "produce_memory_growth_vs_records",
        "produce_tweets memory growth / records growth",
        "<= 1",
        lambda v: v <= 1,
    ),
)
