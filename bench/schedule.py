"""The schedule under the real scheduler (LocalExecutor, as `make run`): catch-up after missed minutes against a
rate limit, then freshness and worker-slot seconds of scheduled runs beside a DAG of two empty tasks.

- Catch-up: the DAG is first enabled with a 30-minute look-back, so that 30 windows are due at once, as after a
  30-minute outage, against a simulator limit of 10 requests per 60 s. The figure is the time from the enable to
  the last of those windows delivered, over the time the limit itself needs for the requests made meanwhile.
- Freshness: for each later scheduled window, from the moment it is searchable (end + settle) to the broker's
  append time of its last record (the topic keeps LogAppendTime): median and p95.
- Slot seconds: per scheduled run, each task's time from queued to ended, summed; over the same for the
  scheduled runs of `bench/dags/empty_two_tasks.py` in the same stack and minutes.
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

from bench.services import BEARER_TOKEN, KAFKA_CONFIG, ROOT
from local_system import AirflowStack, XApiSimulator, connections
from tests.helpers import write_stream_file

PORT = int(os.environ.get("BENCH_AIRFLOW_PORT", "19580"))  # and the next port, its log server
TOPIC = "tweets-lambda1"  # the seed stream's
QUERY = "Apple OR iphone OR iPhone"
LOOK_BACK = 30
LIMIT, LIMIT_WINDOW = 10, 60  # requests per seconds, for the catch-up
SETTLE = timedelta(seconds=30)
RECOMMENDED_KAFKA_CONFIG = {**KAFKA_CONFIG, "transactional.id": "tweets-to-kafka"}  # a transaction per window
MINUTE = timedelta(minutes=1)


def run(runs: int, log_dir: Path) -> dict[str, Any]:
    """Catch up LOOK_BACK windows, then measure `runs` scheduled runs; return the figures."""
    with XApiSimulator(
        bearer_token=BEARER_TOKEN, rate_limit=LIMIT, rate_limit_window=LIMIT_WINDOW
    ) as simulator:
        return _measure(simulator, runs, log_dir)


def _measure(simulator: XApiSimulator, runs: int, log_dir: Path) -> dict[str, Any]:
    _create_topic_with_append_time()
    dags = ROOT / ".artifacts" / "bench" / "schedule-dags"
    shutil.rmtree(dags, ignore_errors=True)
    dags.mkdir(parents=True)
    for dag_file in (ROOT / "dags" / "tweets_to_kafka.py", ROOT / "bench" / "dags" / "empty_two_tasks.py"):
        shutil.copy(dag_file, dags)
    stack = AirflowStack(
        home=ROOT / ".artifacts" / "bench" / "airflow-schedule",
        port=PORT,
        connections=connections(simulator.url, BEARER_TOKEN, RECOMMENDED_KAFKA_CONFIG),
        pools={"x_api": 4},
        schedule_runs=True,
        settings={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "TWEETS_TO_KAFKA_STREAMS": str(
                write_stream_file(
                    dags.with_name("schedule-streams.yaml"),
                    {
                        "name": "tweets_to_kafka",
                        "query": QUERY,
                        "topic": TOPIC,
                        "look_back_minutes": LOOK_BACK,
                    },
                )
            ),
        },
    )
    with stack:
        enabled = datetime.now(UTC)
        stack.wait_until(lambda: stack.dag_is_parsed("empty_two_tasks"), 120, "empty_two_tasks to be parsed")
        stack.pause(False, dag_id="empty_two_tasks")
        missed_last = _minute(enabled - SETTLE) - MINUTE  # the last window that was due at the enable
        catchup = _wait_for_catchup(stack, simulator, enabled, missed_last)
        print(f"  catch-up: {catchup}", flush=True)
        simulator.rate_limit = 1_000_000
        measured_from = datetime.now(UTC)
        steady = _wait_for_scheduled_runs(stack, measured_from, runs)
        print(f"  {len(steady)} scheduled runs measured", flush=True)
        freshness = _freshness(steady)
        ours = _slot_seconds(stack, "tweets_to_kafka", steady)
        empty_runs = [
            run
            for run in stack.dag_runs(dag_id="empty_two_tasks")
            if run["run_type"] == "scheduled" and run["state"] == "success" and _start(run) >= measured_from
        ]
        empty = _slot_seconds(stack, "empty_two_tasks", empty_runs)
    shutil.copytree(stack.home / "logs", log_dir / "schedule", dirs_exist_ok=True)
    deliveries = _deliveries("tweets_to_kafka")
    return {
        "freshness_median_s": round(statistics.median(freshness), 2),
        "freshness_p95_s": round(_p95(freshness), 2),
        "freshness_s": [round(value, 2) for value in freshness],
        "slot_seconds_per_window": round(statistics.median(ours), 2),
        "slot_seconds_per_empty_dag_run": round(statistics.median(empty), 2),
        "slot_seconds_vs_empty_dag": round(statistics.median(ours) / statistics.median(empty), 2),
        "catchup": catchup,
        "catchup_vs_rate_limit": catchup["vs_rate_limit"],
        # The stream's transactional ids over every window of the section; a stable id per stream makes it 1,
        # however many windows (a day's 1,440) it runs. A delivery without one (the memory section's, on the same
        # broker) uses none.
        "transactional_ids_per_stream_day": len(
            {e.transactional_id for e in deliveries if e.transactional_id}
        ),
        "transactional_ids_windows_observed": len(deliveries),
    }


def _deliveries(stream: str) -> list:
    """The stream's entries in the delivery ledger of the benchmark's broker."""
    from confluent_kafka import Consumer

    from include import ledger

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"],
            "group.id": "bench-ledger",
            **ledger.READER_CONFIG,
        }
    )
    try:
        partitions = list(
            consumer.list_topics(ledger.LEDGER_TOPIC, timeout=10).topics[ledger.LEDGER_TOPIC].partitions
        )
        since = datetime.now(UTC) - timedelta(days=1)
        entries = ledger.read_entries(consumer, ledger.LEDGER_TOPIC, partitions, since, timeout=120)
    finally:
        consumer.close()
    return [entry for entry in entries if entry.stream == stream]


def _wait_for_catchup(stack, simulator, enabled: datetime, missed_last: datetime) -> dict[str, Any]:
    """Wait until the LOOK_BACK missed windows are delivered; time it against the limit's own pace."""
    first_missed = missed_last - (LOOK_BACK - 1) * MINUTE

    def delivered(runs: list[dict]) -> bool:
        missed = [
            run
            for run in runs
            if run["run_type"] == "scheduled" and first_missed <= _start(run) <= missed_last
        ]
        return len(missed) == LOOK_BACK and all(run["state"] == "success" for run in missed)

    runs = stack.wait_for_runs(delivered, 1800, f"the {LOOK_BACK} missed windows to be delivered")
    missed = [
        run for run in runs if run["run_type"] == "scheduled" and first_missed <= _start(run) <= missed_last
    ]
    done = max(datetime.fromisoformat(run["end_date"]) for run in missed)
    made = [request for request in simulator.requests if request["time"] <= done.timestamp()]
    searches = [request for request in made if request["status"] == 200]
    limited = [request for request in made if request["status"] == 429]
    first_request = min(request["time"] for request in made)
    # A fixed window of LIMIT requests: n requests need (n / LIMIT - 1) windows after the first request.
    limit_needs = (len(searches) / LIMIT - 1) * LIMIT_WINDOW
    elapsed = done.timestamp() - first_request
    return {
        "windows": LOOK_BACK,
        "requests": len(searches),
        "answered_429": len(limited),
        "seconds": round(elapsed, 1),
        "seconds_from_enable": round((done - enabled).total_seconds(), 1),
        "limit_needs_seconds": round(limit_needs, 1),
        "vs_rate_limit": round(elapsed / limit_needs, 2),
    }


def _wait_for_scheduled_runs(stack, after: datetime, count: int) -> list[dict]:
    """The first `count` scheduled runs of windows that came due after `after`, once they all succeeded."""

    def mine(runs: list[dict]) -> list[dict]:
        return [
            run for run in runs if run["run_type"] == "scheduled" and _start(run) + MINUTE + SETTLE >= after
        ]

    def done(runs: list[dict]) -> bool:
        return len(mine(runs)) >= count and all(run["state"] == "success" for run in mine(runs)[:count])

    runs = stack.wait_for_runs(done, (count + 5) * 60, f"{count} scheduled runs")
    return sorted(mine(runs), key=_start)[:count]


def _freshness(runs: list[dict]) -> list[float]:
    """Seconds from each window's searchable moment to the append time of its last record."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(  # read_committed: what a consumer of whole windows sees
        {"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"], "group.id": "bench-freshness"}
    )
    try:
        partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in partitions
        }
        assigned = [TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in partitions]
        consumer.assign(assigned)
        last_append: dict[datetime, float] = {}
        deadline = time.monotonic() + 120
        # Until each partition's position passes its end offset: transaction markers take offsets too.
        while any(tp.offset < ends[tp.partition] for tp in consumer.position(assigned)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {TOPIC} to its end took over 120 s")
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                raise RuntimeError(f"reading {TOPIC}: {message.error()}")
            created = datetime.strptime(json.loads(message.value())["created_at"], "%Y-%m-%dT%H:%M:%SZ")
            window = created.replace(second=0, tzinfo=UTC)
            appended = message.timestamp()[1] / 1000
            last_append[window] = max(last_append.get(window, 0.0), appended)
    finally:
        consumer.close()
    return [last_append[_start(run)] - (_start(run) + MINUTE + SETTLE).timestamp() for run in runs]


def _slot_seconds(stack, dag_id: str, runs: list[dict]) -> list[float]:
    """Per run: each task's seconds from queued to ended, summed."""
    seconds = []
    for run in runs:
        instances = stack.listing(
            f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances", "task_instances"
        )
        seconds.append(
            sum(
                (
                    datetime.fromisoformat(ti["end_date"]) - datetime.fromisoformat(ti["queued_when"])
                ).total_seconds()
                for ti in instances
            )
        )
    return seconds


def _create_topic_with_append_time() -> None:
    """The scheduled runs' topic, stamped by the broker when it appends each record."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"]})
    topic = NewTopic(
        TOPIC, num_partitions=3, replication_factor=1, config={"message.timestamp.type": "LogAppendTime"}
    )
    admin.create_topics([topic])[TOPIC].result(30)


def _start(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"])


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
