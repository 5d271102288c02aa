"""Run one task of tweets_to_kafka in this fresh interpreter and print its memory as JSON.

    python -m bench.memory_probe fetch WINDOW_START WINDOW_END RUN_ID
        fetch_tweets for the window (ISO times) of manual run RUN_ID against the simulator: its records in the
        window store.
    python -m bench.memory_probe produce WINDOW_START RUN_ID TOPIC
        produce_tweets of the same run: those records read back from the store, then the DAG's operator.

`baseline_kib` is the resident set once the DAG and the task's modules are loaded; `peak_kib` the
highest resident set while the task runs (the peak counter is reset at the baseline).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path

from bench.produce import task_context
from bench.services import QUERY

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "MEMORY "


def memory_kib() -> dict[str, int]:
    """The resident set now and its peak since the last reset, in KiB."""
    status = Path("/proc/self/status").read_text()
    fields = {"rss": "VmRSS", "peak": "VmHWM"}
    return {name: int(re.search(rf"{field}:\s+(\d+) kB", status)[1]) for name, field in fields.items()}


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def load_task(task_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags["tweets_to_kafka"].get_task(task_id)


def fetch(start: str, end: str, run_id: str) -> dict[str, int]:
    import include.fetch_window  # noqa: F401  (the task's own imports, loaded before the baseline)
    import twitter_provider.hooks  # noqa: F401
    from include import window_store

    task = load_task("fetch_tweets")
    task.query = QUERY  # what rendering the templates sets
    reset_peak()
    baseline = memory_kib()["rss"]
    task.execute(task_context(datetime.fromisoformat(start), QUERY, run_id))
    peak = memory_kib()["peak"]
    window = window_store.window(
        task.dag_id, run_id, datetime.fromisoformat(start), datetime.fromisoformat(end)
    )
    return {
        "records": sum(1 for _ in window_store.records(window)),
        "baseline_kib": baseline,
        "peak_kib": peak,
    }


def produce(start: str, run_id: str, topic: str) -> dict[str, int]:
    import include.kafka_delivery  # noqa: F401

    task = load_task("produce_tweets").prepare_for_execution()  # as the task runner does
    reset_peak()
    baseline = memory_kib()["rss"]
    task.topic = topic  # what rendering the templates sets
    task.producer_function_kwargs = {"record_format": "json"}
    delivery = task.execute(task_context(datetime.fromisoformat(start), QUERY, run_id))
    peak = memory_kib()["peak"]
    return {"records": delivery["records"], "baseline_kib": baseline, "peak_kib": peak}


if __name__ == "__main__":
    task_name, *arguments = sys.argv[1:]
    result = {"fetch": fetch, "produce": produce}[task_name](*arguments)
    print(RESULT_PREFIX + json.dumps(result))
