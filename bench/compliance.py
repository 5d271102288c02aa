"""X compliance at scale, under the real scheduler and triggerer (LocalExecutor, as `make run`): a stream's
topic holding a million of the simulator's posts (4,000 a minute, 2 % of them with a compliance event), and one
run of the compliance DAG for it, against the simulator in this process.

- `compliance_ids_per_second`: the ids checked over the task's wall time, from its first start to its end:
  gathered from the topic, uploaded, resolved by the simulator (which finds each post and its events; X's own
  time is not known), the result lines downloaded and written to Kafka in one transaction.
- `compliance_slot_seconds`: the seconds the task held a worker slot (its states `queued` and `running`, as the
  REST API shows them, polled every 0.2 s), against that wall time: the job's wait is spent `deferred`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.schedule import PORT
from bench.services import BEARER_TOKEN, KAFKA_CONFIG, ROOT
from include.records import serialise, to_record
from local_system import AirflowStack, XApiSimulator, connections
from tests.helpers import write_stream_file
from x_api_simulator.tweets import MINUTE_MS, minute_posts

PER_MINUTE = 4000  # posts a minute: a busy stream
COMPLIANCE_RATE = 0.02  # the share of posts deleted, protected, withheld, ... by the time the job runs
DAG_ID, TASK_ID = "x_compliance_twitter_default", "compliance_kafka_default"
SLOT_STATES = ("queued", "running")
MINUTE = timedelta(minutes=1)


def run(ids: int, log_dir: Path) -> dict[str, Any]:
    """A topic of `ids` posts and one compliance run over it; return the figures."""
    with XApiSimulator(
        bearer_token=BEARER_TOKEN,
        rate_limit=1_000_000,
        compliance_rate=COMPLIANCE_RATE,
        compliance_processing=0,  # the job takes the simulator's own time to find the posts
        compliance_rate_limit=1_000_000,
    ) as simulator:
        topic = f"bench-compliance-{int(time.time())}"
        began = time.monotonic()
        stored = _fill(simulator, topic, ids)
        print(f"  {stored:,} posts in {topic} in {time.monotonic() - began:.0f} s", flush=True)
        return _measure(simulator, topic, stored, log_dir)


def _fill(simulator: XApiSimulator, topic: str, ids: int) -> int:
    """Write the records of `ids` of the simulator's posts, the latest ending two hours ago (their events have
    happened), to a new compacted topic, as the stream's runs would have; return how many."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"]})
    admin.create_topics([NewTopic(topic, 3, 1, config={"cleanup.policy": "compact"})])[topic].result(30)
    last = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    minutes = -(-ids // PER_MINUTE)
    producer = Producer(KAFKA_CONFIG)
    written = 0
    for n in range(minutes):
        start = last - (minutes - n) * MINUTE
        simulator.set_rate(start, PER_MINUTE)
        posts = minute_posts(
            simulator.seed, int(start.timestamp() * 1000) // MINUTE_MS, PER_MINUTE, 0.0, COMPLIANCE_RATE
        )
        for post, _ in posts[: ids - written]:
            value = serialise(to_record(post.tweet, post.author), "json")
            while True:
                try:
                    producer.produce(topic, key=post.tweet["id"].encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.1)
            written += 1
        producer.poll(0)
    producer.flush(120)
    return written


def _measure(simulator: XApiSimulator, topic: str, stored: int, log_dir: Path) -> dict[str, Any]:
    home = ROOT / ".artifacts" / "bench" / "airflow-compliance"
    stream_file = write_stream_file(
        home.with_name("compliance-streams.yaml"),
        {"name": "tweets_to_kafka", "query": "Apple OR iphone OR iPhone", "topic": topic},
    )
    stack = AirflowStack(
        home=home,
        port=PORT,
        connections=connections(simulator.url, BEARER_TOKEN, {**KAFKA_CONFIG, "transactional.id": "bench"}),
        triggerer=True,
        settings={
            "TWEETS_TO_KAFKA_STREAMS": str(stream_file),
            "AIRFLOW__TWEETS_TO_KAFKA__COMPLIANCE_POLL_SECONDS": "1",
        },
    )
    with stack:
        stack.wait_until(lambda: stack.dag_is_parsed(DAG_ID), 300, f"the dag-processor to parse {DAG_ID}")
        stack.pause(False, dag_id=DAG_ID)
        run_id = stack.trigger(None, {}, dag_id=DAG_ID)["dag_run_id"]
        timeline = _states(stack, run_id)
        log = stack.task_log(run_id, TASK_ID, 1, dag_id=DAG_ID)
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/return_value"
        written = stack.api("GET", path)["value"]
    shutil.copytree(stack.home / "logs", log_dir / "compliance", dirs_exist_ok=True)
    if isinstance(written, str):
        written = json.loads(written)
    slot = sum(end - start for state, start, end in timeline if state in SLOT_STATES)
    first = min(start for state, start, _ in timeline if state in SLOT_STATES)
    wall = timeline[-1][1] - first
    gathered = re.search(r"Gathered (\d+) post ids from \d+ topics \(.*?\) in ([0-9.]+) s", log)
    (job,) = [job for job in simulator._jobs.values() if job.name and job.name.endswith(run_id)]
    figures = {
        "ids": stored,
        "ids_checked": written["ids_checked"],
        "results": written["results"],
        "tombstones": sum(written["tombstones"].values()),
        "gather_seconds": float(gathered.group(2)),
        "simulator_resolve_seconds": round((job.resolved_ms - job.uploaded_ms) / 1000, 1),
        "task_wall_seconds": round(wall, 1),
        "compliance_slot_seconds": round(slot, 1),
        "compliance_ids_per_second": round(written["ids_checked"] / wall),
        "compliance_slot_vs_job_wall": round(slot / wall, 3),
        "states": [(state, round(start - first, 1), round(end - first, 1)) for state, start, end in timeline],
    }
    print(f"  {json.dumps({k: v for k, v in figures.items() if k != 'states'})}", flush=True)
    return figures


def _states(stack: AirflowStack, run_id: str, timeout: float = 3600) -> list[tuple[str, float, float]]:
    """The compliance task's states until its run ended, as (state, from, to) in time.monotonic() seconds."""
    timeline: list[tuple[str, float, float]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (ti,) = stack.task_instances(run_id, dag_id=DAG_ID) or [{"state": None}]
        now = time.monotonic()
        state = ti["state"]
        if timeline and timeline[-1][0] == state:
            timeline[-1] = (state, timeline[-1][1], now)
        else:
            timeline.append((state, now, now))
        if state in ("success", "failed"):
            if state == "failed":
                raise RuntimeError(f"the compliance run {run_id} failed; see its task log")
            return timeline
        time.sleep(0.2)
    raise RuntimeError(f"the compliance run {run_id} did not end within {timeout:.0f} s")
