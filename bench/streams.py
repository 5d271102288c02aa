"""How many streams one machine keeps fresh: for each stream count, a stream file of that many quiet streams
(each its own DAG and topic) under the real scheduler (LocalExecutor, make run's parallelism of 8, no x_api
pool), and for each stream the freshness of its scheduled windows: from the moment a window is searchable
(end + settle) to the broker's append time of its last record (each topic keeps LogAppendTime). Also the CPU
seconds that Airflow's processes and the tasks spend per stream-minute while measuring.

Airflow's own floor, on the same stack settings right after: as many DAGs of two empty tasks on the same schedule
(bench/dags/empty_streams.py), each window fresh when its second task ended.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.services import BEARER_TOKEN, KAFKA_CONFIG, ROOT
from tests.helpers import write_stream_file
from tests.system.harness import AirflowStack
from x_api_simulator import XApiSimulator

PORT = int(
    os.environ.get("BENCH_AIRFLOW_PORT", "19580")
)  # the api-server; the worker log server takes the next
QUERY = "iPhone -lang:en"  # a quiet stream: 5 to 10 of the simulator's posts a minute
TARGET_MEDIAN_S = 6.5  # the continuous-coverage issue's freshness target
SETTLE = timedelta(seconds=30)
MINUTE = timedelta(minutes=1)


def run(counts: list[int], windows: int, log_dir: Path) -> dict[str, Any]:
    """Measure `windows` scheduled windows of every stream, for each stream count; return the figures."""
    measured: dict[str, Any] = {}
    with XApiSimulator(bearer_token=BEARER_TOKEN) as simulator:
        for count in counts:
            measured[str(count)] = _measure(simulator, count, windows, log_dir)
            measured[str(count)]["empty"] = _measure_empty(count, windows, log_dir)
            shown = {k: v for k, v in measured[str(count)].items() if k != "freshness_s_by_stream"}
            shown["empty"] = {k: v for k, v in shown["empty"].items() if k != "freshness_s_by_stream"}
            print(f"  {count} streams: {json.dumps(shown)}", flush=True)
    within = [int(count) for count, figures in measured.items() if figures["every_stream_within_target"]]
    empty = [
        int(count) for count, figures in measured.items() if figures["empty"]["every_stream_within_target"]
    ]
    return {
        "streams_within_freshness": max(within, default=0),
        "empty_dag_streams_within_freshness": max(empty, default=0),
        "streams_vs_empty_dag_streams": round(max(within, default=0) / max(max(empty, default=0), 1), 2),
        "counts_measured": [int(count) for count in measured],
        "target_median_s": TARGET_MEDIAN_S,
        "by_count": measured,
    }


def _measure(simulator: XApiSimulator, count: int, windows: int, log_dir: Path) -> dict[str, Any]:
    home = ROOT / ".artifacts" / "bench" / "airflow-streams"
    names = ["tweets_to_kafka"] + [f"stream_{n:02d}" for n in range(1, count)]  # the first: the harness's DAG
    topics = {name: f"bench-streams-{count}-{name}-{int(time.time())}" for name in names}
    _create_topics_with_append_time(list(topics.values()))
    stream_file = write_stream_file(
        home.with_name("airflow-streams.yaml"),
        *({"name": name, "query": QUERY, "topic": topic} for name, topic in topics.items()),
    )
    stack = AirflowStack(
        home=home,
        port=PORT,
        connections={
            "twitter_default": {"conn_type": "twitter", "host": simulator.url, "password": BEARER_TOKEN},
            "kafka_default": {"conn_type": "kafka", "extra": KAFKA_CONFIG},
        },
        schedule_runs=True,
        parallelism=8,  # as make run
        settings={
            "TWEETS_TO_KAFKA_STREAMS": str(stream_file),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        },
    )
    with stack:
        stack.wait_until(lambda: all(map(stack.dag_is_parsed, names)), 300, f"the {count} DAGs to be parsed")
        for name in names:
            stack.pause(False, name)
        measured_from = datetime.now(UTC)
        cpu_before, clock_before = _cpu_seconds(stack), time.monotonic()
        runs = _wait_for_windows(stack, names, measured_from, windows)
        cpu = _cpu_seconds(stack) - cpu_before
        minutes = (time.monotonic() - clock_before) / 60
    shutil.copytree(stack.home / "logs", log_dir / f"streams-{count}", dirs_exist_ok=True)
    per_stream = {name: _freshness(topics[name], runs[name]) for name in names}
    return {"streams": count, "windows_per_stream": windows, **_figures(per_stream, cpu, count * minutes)}


def _measure_empty(count: int, windows: int, log_dir: Path) -> dict[str, Any]:
    """The same for `count` DAGs of two empty tasks: a window is fresh when its second task ended."""
    names = ["tweets_to_kafka"] + [f"stream_{n:02d}" for n in range(1, count)]
    dags = ROOT / ".artifacts" / "bench" / "empty-streams-dags"
    shutil.rmtree(dags, ignore_errors=True)
    dags.mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "dags" / "empty_streams.py", dags)
    stack = AirflowStack(
        home=ROOT / ".artifacts" / "bench" / "airflow-empty-streams",
        port=PORT,
        schedule_runs=True,
        parallelism=8,  # as make run
        settings={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "BENCH_EMPTY_STREAMS": str(count),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        },
    )
    with stack:
        stack.wait_until(
            lambda: all(map(stack.dag_is_parsed, names)), 300, f"the {count} empty DAGs to be parsed"
        )
        for name in names:
            stack.pause(False, name)
        measured_from = datetime.now(UTC)
        cpu_before, clock_before = _cpu_seconds(stack), time.monotonic()
        runs = _wait_for_windows(stack, names, measured_from, windows)
        cpu = _cpu_seconds(stack) - cpu_before
        minutes = (time.monotonic() - clock_before) / 60
        per_stream = {name: [_ended(stack, run) for run in runs[name]] for name in names}
    shutil.copytree(stack.home / "logs", log_dir / f"empty-streams-{count}", dirs_exist_ok=True)
    return _figures(per_stream, cpu, count * minutes)


def _ended(stack, run: dict) -> float:
    """Seconds from a run's window becoming searchable to the end of its last task."""
    path = f"/api/v2/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}/taskInstances"
    ends = [datetime.fromisoformat(ti["end_date"]) for ti in stack.listing(path, "task_instances")]
    return (max(ends) - (_start(run) + MINUTE + SETTLE)).total_seconds()


def _figures(per_stream: dict[str, list[float]], cpu: float, stream_minutes: float) -> dict[str, Any]:
    medians = {name: statistics.median(values) for name, values in per_stream.items()}
    everything = [value for values in per_stream.values() for value in values]
    return {
        "freshness_median_s": round(statistics.median(everything), 2),
        "freshness_p95_s": round(statistics.quantiles(everything, n=20, method="inclusive")[-1], 2),
        "worst_stream_median_s": round(max(medians.values()), 2),
        "every_stream_within_target": max(medians.values()) <= TARGET_MEDIAN_S,
        "cpu_seconds_per_stream_minute": round(cpu / stream_minutes, 2),
        "freshness_s_by_stream": {
            name: [round(value, 2) for value in values] for name, values in per_stream.items()
        },
    }


def _wait_for_windows(stack, names: list[str], after: datetime, windows: int) -> dict[str, list[dict]]:
    """Per stream, its first `windows` scheduled runs whose window came due after `after`, once all succeeded."""
    mine: dict[str, list[dict]] = {}

    def done() -> bool:
        runs = stack.listing("/api/v2/dags/~/dagRuns", "dag_runs", run_type="scheduled")
        mine.clear()
        for run in sorted(runs, key=_start):
            if _start(run) + MINUTE + SETTLE >= after and len(mine.setdefault(run["dag_id"], [])) < windows:
                mine[run["dag_id"]].append(run)
        return all(
            len(mine.get(name, [])) == windows and all(run["state"] == "success" for run in mine[name])
            for name in names
        )

    stack.wait_until(done, (windows + 6) * 60, f"{windows} scheduled windows of {len(names)} streams")
    return mine


def _cpu_seconds(stack) -> float:
    """CPU seconds of the stack's processes, their live children (the tasks) and the children they reaped."""
    total = 0.0
    for component in stack.processes.values():
        try:
            process = psutil.Process(component.pid)
            for member in [process, *process.children(recursive=True)]:
                times = member.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def _freshness(topic: str, runs: list[dict]) -> list[float]:
    """Seconds from each window's searchable moment to the append time of its last record."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"], "group.id": "bench-streams"})
    try:
        end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        last_append: dict[datetime, float] = {}
        for _ in range(end):
            message = consumer.poll(10)
            if message is None or message.error():
                raise RuntimeError(f"reading {topic}: {message and message.error()}")
            created = datetime.strptime(json.loads(message.value())["created_at"], "%Y-%m-%dT%H:%M:%SZ")
            window = created.replace(second=0, tzinfo=UTC)
            last_append[window] = max(last_append.get(window, 0.0), message.timestamp()[1] / 1000)
    finally:
        consumer.close()
    return [
        last_append[_start(run)] - (_start(run) + MINUTE + SETTLE).timestamp()
        for run in runs
        if _start(run) in last_append  # a window without a matching post has no record to time
    ]


def _create_topics_with_append_time(topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"]})
    config = {"message.timestamp.type": "LogAppendTime"}
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config=config) for topic in topics]
    )
    for future in futures.values():
        future.result(30)


def _start(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"])
