"""The Coverage pages at full size, beside Airflow's own grid: 30 streams with 7 days of minutes each.

An Airflow of 30 streams (LocalExecutor on SQLite, as `make run`) gets 7 days of runs written into its database
(302,400 runs and their 604,800 task instances: 99.5 % delivered, 1 % of those late, 0.3 % failed, 0.2 % without
a run) and the matching entries in its delivery ledger (302,400 records less the failed and missing). Once the
API server's ledger view has read them, the loads are timed side by side, interleaved, over HTTP:

- `coverage_page_ms`: the Stream coverage page (every stream's figures over 24 hours and 7 days), median;
- `grid_runs_ms`: Airflow's grid endpoint for one stream's last 1,440 runs (`/ui/grid/runs`, limit 1,440), median;
- `coverage_page_vs_grid`: their ratio (target: at most 1);
- `coverage_tab_week_ms`, `coverage_tab_day_ms`: one stream's Coverage tab, 7 days and a day.

    python -m bench.coverage fill STREAMS_FILE   (inside, with the stack's environment: writes the runs)
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.services import KAFKA_CONFIG, ROOT
from local_system import AirflowStack, connections

PORT = int(os.environ.get("BENCH_AIRFLOW_PORT", "19580"))  # and the next port, its log server
STREAMS, DAYS = 30, 7
MINUTE = timedelta(minutes=1)
SETTLE = timedelta(seconds=30)
MISSING, FAILED, LATE = 0.002, 0.003, 0.01  # shares of the minutes
SEED = 26


def stream(n: int) -> dict[str, str]:
    """The entry of the n-th stream of the file (its ledger entries carry its query and topic, as a delivery's do:
    the Coverage pages count only those)."""
    return {
        "name": f"stream_{n:02d}",
        "query": f"iPhone {n}",
        "topic": f"tweets-{n:02d}",
        "twitter_conn_id": f"x{n // 15}",
    }


def stream_file(path: Path) -> Path:
    from tests.helpers import write_stream_file

    streams = [stream(n) for n in range(STREAMS)]
    return write_stream_file(path, *streams, rate_limit_per_15_minutes=450)


def minutes(now: datetime) -> list[datetime]:
    """The minutes of the last DAYS days that are searchable now."""
    last = (now - SETTLE).replace(second=0, microsecond=0) - MINUTE
    return [last - n * MINUTE for n in range(DAYS * 24 * 60 - 1, -1, -1)]


def outcome(stream: str, start: datetime) -> str:
    """What happened to a minute of a stream: the same answer in the runs and in the ledger."""
    draw = random.Random(f"{SEED}/{stream}/{start:%Y%m%d%H%M}").random()
    if draw < MISSING:
        return "missing"
    if draw < MISSING + FAILED:
        return "failed"
    return "late" if draw < MISSING + FAILED + LATE else "delivered"


def run(loads: int, log_dir: Path) -> dict[str, Any]:
    """Write the runs and the ledger, then time `loads` loads of each page; return the figures."""
    home = ROOT / ".artifacts" / "bench" / "airflow-coverage"
    streams = stream_file(home.with_name("coverage-streams.yaml"))
    stack = AirflowStack(
        home=home,
        port=PORT,
        connections=connections("http://127.0.0.1:9", "unused", KAFKA_CONFIG),  # no run runs
        dag_id="stream_00",  # the stream file has no tweets_to_kafka
        settings={
            "TWEETS_TO_KAFKA_STREAMS": str(streams),
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": str(24 * 60),  # the grid's 1,440 runs in one answer
        },
    )
    with stack:
        names = [stream(n)["name"] for n in range(STREAMS)]
        stack.wait_until(lambda: all(map(stack.dag_is_parsed, names)), 300, "the 30 streams to be parsed")
        now = datetime.now(UTC)
        began = time.monotonic()
        fill = [sys.executable, "-m", "bench.coverage", "fill", str(streams), now.isoformat()]
        subprocess.run(fill, env=stack.env, cwd=ROOT, check=True, timeout=1800)
        written = time.monotonic() - began
        entries = produce_ledger(names, now)
        print(
            f"  {STREAMS * DAYS * 1440:,} runs written in {written:.0f} s; {entries:,} ledger entries",
            flush=True,
        )
        login = {"username": "admin", "password": stack.admin_password}
        token = requests.post(f"{stack.url}/auth/token", json=login, timeout=60).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        pages = {
            "coverage_page": "/coverage/streams",
            "grid_runs": "/ui/grid/runs/stream_00?limit=1440&order_by=-run_after",
            "coverage_tab_week": "/coverage/dags/stream_00?zoom=week",
            "coverage_tab_day": "/coverage/dags/stream_00?zoom=day",
        }
        read_from = time.monotonic()
        stack.wait_until(
            lambda: "Still reading" not in get(stack, pages["coverage_page"], headers)[1],
            600,
            "the ledger view to read the whole ledger",
        )
        ledger_read = time.monotonic() - read_from
        check(stack, headers)
        times: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(loads):
            for name, path in pages.items():
                times[name].append(get(stack, path, headers)[0])
    results = {f"{name}_ms": round(statistics.median(values) * 1000) for name, values in times.items()}
    return {
        **results,
        "coverage_page_vs_grid": round(results["coverage_page_ms"] / results["grid_runs_ms"], 2),
        "runs": STREAMS * DAYS * 1440,
        "ledger_entries": entries,
        "ledger_view_read_s": round(ledger_read, 1),
        "loads": {name: [round(value * 1000) for value in values] for name, values in times.items()},
    }


def get(stack: AirflowStack, path: str, headers: dict[str, str]) -> tuple[float, str]:
    """Seconds to load a page whole, and its text."""
    began = time.perf_counter()
    answer = requests.get(stack.url + path, headers=headers, timeout=600)
    elapsed = time.perf_counter() - began
    answer.raise_for_status()
    return elapsed, answer.text


def check(stack: AirflowStack, headers: dict[str, str]) -> None:
    """The pages show what was written: every stream, and 7 days of minutes for one."""
    streams = get(stack, "/coverage/streams", headers)[1]
    missing = [n for n in range(STREAMS) if f'data-stream="stream_{n:02d}"' not in streams]
    assert not missing, f"streams missing from the page: {missing}"
    week = get(stack, "/coverage/dags/stream_00?zoom=week", headers)[1]
    assert 'data-state="failed"' in week and 'data-state="delivered"' in week and 'data-state="late"' in week


def produce_ledger(names: list[str], now: datetime) -> int:
    """The ledger entries of every delivered minute, as produce_tweets writes them; how many."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from include import ledger

    admin = AdminClient({"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"]})
    new = NewTopic(ledger.LEDGER_TOPIC, num_partitions=1, replication_factor=1, config=ledger.TOPIC_CONFIG)
    admin.create_topics([new])[ledger.LEDGER_TOPIC].result(60)  # as produce_tweets makes it
    producer = Producer({**KAFKA_CONFIG, "linger.ms": 50, "compression.type": "lz4"})
    count = 0
    for n, name in enumerate(names):
        entry = stream(n)
        for start in minutes(now):
            happened = outcome(name, start)
            if happened in ("missing", "failed"):
                continue
            searchable = start + MINUTE + SETTLE
            after = timedelta(seconds=700 if happened == "late" else 2 + (count % 20) / 10)
            delivery = ledger.Delivery(
                stream=name,
                window_start=start,
                window_end=start + MINUTE,
                topic=entry["topic"],
                query=entry["query"],
                record_format="json",
                records=20 + count % 40,
                run_id=f"scheduled__{start:%Y-%m-%dT%H:%M}--{start + MINUTE:%H:%M}Z",
                run_type="scheduled",
                clear_number=0,
                try_number=1,
                transactional_id=f"tweets-to-kafka:{name}",
                searchable_at=searchable,
                committed_at=searchable + after,
            )
            while True:
                try:
                    producer.produce(ledger.LEDGER_TOPIC, key=delivery.key, value=ledger.encode(delivery))
                    break
                except BufferError:
                    producer.poll(0.1)
            count += 1
    producer.flush(120)
    return count


def fill(streams_path: Path, now: datetime) -> None:
    """Write the runs and task instances of every stream's minutes into the stack's database (run with its
    environment), in bulk."""
    from airflow.models.dag_version import DagVersion
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import insert

    from include.streams import read_streams

    for stream in read_streams(streams_path).streams:
        with create_session() as session:
            version = DagVersion.get_latest_version(stream.name, session=session).id
            runs, tasks = [], []
            for start in minutes(now):
                happened = outcome(stream.name, start)
                if happened == "missing":
                    continue
                searchable = start + MINUTE + SETTLE
                ended = searchable + timedelta(seconds=700 if happened == "late" else 3)
                state = "failed" if happened == "failed" else "success"
                run_id = f"scheduled__{start:%Y-%m-%dT%H:%M}--{start + MINUTE:%H:%M}Z"
                runs.append(
                    {
                        "dag_id": stream.name,
                        "run_id": run_id,
                        "run_type": "scheduled",
                        "state": state,
                        "logical_date": start,
                        "data_interval_start": start,
                        "data_interval_end": start + MINUTE,
                        "run_after": searchable,
                        "queued_at": searchable,
                        "start_date": searchable,
                        "end_date": ended,
                        "clear_number": 0,
                        "conf": {},
                        "triggered_by": "timetable",
                        "created_dag_version_id": version,
                    }
                )
                for task_id, task_state in (("fetch_tweets", state), ("produce_tweets", "success")):
                    if state == "failed" and task_id == "produce_tweets":
                        task_state = "upstream_failed"
                    tasks.append(
                        {
                            "dag_id": stream.name,
                            "task_id": task_id,
                            "run_id": run_id,
                            "map_index": -1,
                            "state": task_state,
                            "try_number": 1,
                            "max_tries": 3,
                            "pool": "default_pool",
                            "pool_slots": 1,
                            "queue": "default",
                            "priority_weight": 1,
                            "start_date": searchable,
                            "end_date": ended,
                            "dag_version_id": version,
                        }
                    )
            session.execute(insert(DagRun.__table__), runs)
            session.execute(insert(TaskInstance.__table__), tasks)
        print(f"  {stream.name}: {len(runs):,} runs", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["fill"]:
        fill(Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3]))
