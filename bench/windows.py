"""Windows by reference under the real scheduler (LocalExecutor, as `make run`, the recommended transactional
connection): what a delivered window leaves in Airflow's metadata database, and how fast a 150,000-post minute goes
from its first request to its last record.

- Metadata: for a 40-post window (the simulator's default minute), the bytes of its runs' XCom values and rendered
  template fields in the SQLite database, both tasks together.
- A big minute: one backfill run of a minute of 150,000 posts (1,500 pages), every post matching the query; records
  per second from fetch_tweets' start to produce_tweets' end, and each task's own rate.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.services import BEARER_TOKEN, KAFKA_CONFIG, QUERY, ROOT, SimulatorClient
from local_system import AirflowStack, connections
from tests.helpers import write_stream_file

PORT = int(os.environ.get("BENCH_AIRFLOW_PORT", "19580"))  # and the next port, its log server
BIG_MINUTE = 150_000
RECOMMENDED_KAFKA_CONFIG = {**KAFKA_CONFIG, "transactional.id": "tweets-to-kafka"}
TARGET_METADATA_BYTES = 2048


def run(simulator: SimulatorClient, log_dir: Path) -> dict[str, Any]:
    """Backfill a 40-post window, then a 150,000-post one; return the figures."""
    stack = AirflowStack(
        home=ROOT / ".artifacts" / "bench" / "airflow-windows",
        port=PORT,
        connections=connections(simulator.url, BEARER_TOKEN, RECOMMENDED_KAFKA_CONFIG),
        pools={"x_api": 1},
        settings={
            "TWEETS_TO_KAFKA_STREAMS": str(
                write_stream_file(
                    ROOT / ".artifacts" / "bench" / "windows-streams.yaml",
                    {"name": "tweets_to_kafka", "query": QUERY, "topic": "bench-windows"},
                )
            )
        },
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with stack:
        metadata = _metadata(stack, (now - timedelta(minutes=10), now - timedelta(minutes=9)))
        print(f"  metadata: {metadata}", flush=True)
        big = _big_window(stack, simulator, (now - timedelta(minutes=8), now - timedelta(minutes=7)))
        print(f"  big window: {big}", flush=True)
    shutil.copytree(stack.home / "logs", log_dir / "windows", dirs_exist_ok=True)
    return {
        "metadata_bytes_per_window": metadata["bytes"],
        "metadata": metadata,
        "big_window_records_per_second": big["records_per_second"],
        "big_window": big,
    }


def _metadata(stack: AirflowStack, window: tuple[datetime, datetime]) -> dict[str, Any]:
    topic = f"bench-metadata-{uuid.uuid4().hex[:8]}"
    [run] = stack.backfill([window], conf={"topic": topic}, timeout=600)
    if run["state"] != "success":
        raise RuntimeError(f"the 40-post window's run ended {run['state']}")
    with sqlite3.connect(stack.home / "airflow.db") as db:
        xcom = db.execute(
            "SELECT SUM(LENGTH(CAST(value AS BLOB))) FROM xcom WHERE run_id = ?", (run["dag_run_id"],)
        )
        xcom_bytes = xcom.fetchone()[0] or 0
        rendered = db.execute(
            "SELECT SUM(LENGTH(CAST(rendered_fields AS BLOB))) FROM rendered_task_instance_fields WHERE run_id = ?",
            (run["dag_run_id"],),
        )
        rendered_bytes = rendered.fetchone()[0] or 0
    return {
        "records": _delivered(stack, run),
        "xcom_bytes": xcom_bytes,
        "rendered_fields_bytes": rendered_bytes,
        "bytes": xcom_bytes + rendered_bytes,
        "target_bytes": TARGET_METADATA_BYTES,
    }


def _big_window(stack: AirflowStack, simulator: SimulatorClient, window: tuple[datetime, datetime]) -> dict:
    start, end = window
    topic = f"bench-big-{uuid.uuid4().hex[:8]}"
    simulator.set_rate(start, BIG_MINUTE)
    simulator.first_page(start, end, QUERY)  # the simulator's one evaluation of the minute, before it counts
    [run] = stack.backfill([window], conf={"topic": topic}, timeout=1800)
    if run["state"] != "success":
        raise RuntimeError(f"the 150,000-post window's run ended {run['state']}")
    records = _delivered(stack, run)
    tasks = {
        ti["task_id"]: ti
        for ti in stack.listing(
            f"/api/v2/dags/tweets_to_kafka/dagRuns/{run['dag_run_id']}/taskInstances", "task_instances"
        )
    }

    def seconds(task_id: str) -> float:
        ti = tasks[task_id]
        return (
            datetime.fromisoformat(ti["end_date"]) - datetime.fromisoformat(ti["start_date"])
        ).total_seconds()

    began = datetime.fromisoformat(tasks["fetch_tweets"]["start_date"])
    ended = datetime.fromisoformat(tasks["produce_tweets"]["end_date"])
    total = (ended - began).total_seconds()
    return {
        "posts": BIG_MINUTE,
        "records": records,
        "seconds": round(total, 1),
        "records_per_second": round(records / total),
        "fetch_seconds": round(seconds("fetch_tweets"), 1),
        "produce_seconds": round(seconds("produce_tweets"), 1),
        "produce_records_per_second": round(records / seconds("produce_tweets")),
        "tries": {task_id: ti["try_number"] for task_id, ti in tasks.items()},
    }


def _delivered(stack: AirflowStack, run: dict) -> int:
    """The records a run delivered, as its produce_tweets returned them."""
    path = f"/api/v2/dags/tweets_to_kafka/dagRuns/{run['dag_run_id']}/taskInstances/produce_tweets"
    delivery = stack.api("GET", f"{path}/xcomEntries/return_value")["value"]
    return (json.loads(delivery) if isinstance(delivery, str) else delivery)["records"]
