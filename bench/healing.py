"""Healing after a Kafka outage, under the real scheduler with the healing DAG: a stream's broker is down for
OUTAGE minutes, long enough for every run of those minutes to fail after its retries; the broker comes back and
nobody clears anything. The figure is the time from the broker's return to the last of the missed minutes
committed (its ledger entry's committed_at), over the time the X API's rate limit itself needs for the search
requests made meanwhile (a fixed window of LIMIT requests per LIMIT_WINDOW seconds: 450 per 15 minutes, X's
Pro tier, in 20-second steps). Windows of RATE posts take several pages each, so that the limit, not the
healing's own pace, is the floor.

The stream file's defaults apply (3 retries 20 s apart), except a healing every minute
(`healing_interval_minutes: 1`, not 5): the figure measures how fast the healing heals, not how long it sleeps.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.services import BEARER_TOKEN, KAFKA_CONFIG, QUERY, ROOT
from include import ledger
from local_system import AirflowStack, KafkaBroker, XApiSimulator, connections
from tests.helpers import read_topic, write_stream_file

PORT = int(os.environ.get("BENCH_HEALING_AIRFLOW_PORT", "19880"))  # and the next port, its log server
KAFKA_PORT = int(os.environ.get("BENCH_HEALING_KAFKA_PORT", "19892"))  # and the next, its controller
OUTAGE = timedelta(minutes=int(os.environ.get("BENCH_HEALING_OUTAGE_MINUTES", "30")))
LIMIT, LIMIT_WINDOW = 10, 20  # requests per seconds: X Pro's 450 per 15 minutes
RATE = 450  # posts a minute: 5 pages a window
STREAM = "heal_bench"
MINUTE = timedelta(minutes=1)


def run(log_dir: Path) -> dict[str, Any]:
    """Fail OUTAGE minutes of a stream by stopping its broker, bring it back, time the healing."""
    broker = KafkaBroker(KAFKA_PORT, ROOT / ".kafka" / f"bench-healing-broker-{KAFKA_PORT}")
    broker.remove_state()
    with (
        broker,
        XApiSimulator(
            bearer_token=BEARER_TOKEN, rate_limit=LIMIT, rate_limit_window=LIMIT_WINDOW, rate_per_minute=RATE
        ) as simulator,
    ):
        kafka_config = {
            **KAFKA_CONFIG,
            "bootstrap.servers": broker.bootstrap,
            "transactional.id": "tweets-to-kafka",
        }
        home = ROOT / ".artifacts" / "bench" / "airflow-healing"
        stream_file = write_stream_file(
            home.with_name("healing-streams.yaml"),
            {"name": STREAM, "query": QUERY, "topic": "heal-bench"},
            healing_interval_minutes=1,
        )
        stack = AirflowStack(
            home=home,
            port=PORT,
            connections=connections(simulator.url, BEARER_TOKEN, kafka_config),
            pools={"x_api": 4},
            schedule_runs=True,
            settings={"TWEETS_TO_KAFKA_STREAMS": str(stream_file)},
            dag_id=STREAM,
        )
        with stack:
            stack.wait_until(lambda: stack.dag_is_parsed("tweets_to_kafka_healing"), 180, "the healing DAG")
            stack.pause(False, "tweets_to_kafka_healing")
            stack.wait_for_runs(
                lambda runs: any(run["state"] == "success" for run in runs), 300, "a first delivery", STREAM
            )
            broker.stop()
            down = datetime.now(UTC)
            print(f"  broker down at {down:%H:%M:%S} for {OUTAGE}", flush=True)
            time.sleep(OUTAGE.total_seconds())  # the outage is the experiment, not a wait for a state
            broker.start()
            back = datetime.now(UTC)
            missed = _minutes(down, back)
            print(f"  broker back at {back:%H:%M:%S}; {len(missed)} minutes to heal", flush=True)
            committed = stack.wait_until(
                lambda: _committed(broker.bootstrap, missed), 3600, "every missed minute to be delivered"
            )
        shutil.copytree(stack.home / "logs", log_dir / "healing", dirs_exist_ok=True)
        done = max(committed[minute] for minute in missed)
        searches = [
            request
            for request in simulator.requests
            if back.timestamp() <= request["time"] <= done.timestamp() and request["status"] == 200
        ]
    # A fixed window of LIMIT requests: n requests need (n / LIMIT - 1) windows after the first request.
    limit_needs = max(len(searches) / LIMIT - 1, 1) * LIMIT_WINDOW
    elapsed = (done - back).total_seconds()
    return {
        "outage_minutes": OUTAGE // MINUTE,
        "missed_minutes": len(missed),
        "requests": len(searches),
        "healing_minutes_after_outage": round(elapsed / 60, 2),
        "limit_needs_seconds": round(limit_needs, 1),
        "healing_vs_rate_limit": round(elapsed / limit_needs, 2),
    }


def _minutes(down: datetime, back: datetime) -> list[datetime]:
    """The windows that came due while the broker was down (searchable 30 s after their end)."""
    first = (down - timedelta(seconds=30)).replace(second=0, microsecond=0)
    last = (back - timedelta(seconds=30)).replace(second=0, microsecond=0) - MINUTE
    return [first + n * MINUTE for n in range((last - first) // MINUTE + 1)]


def _committed(bootstrap: str, minutes: list[datetime]) -> dict[datetime, datetime] | None:
    """When each minute's delivery committed, from the ledger; None while one is missing."""
    committed = {
        entry.window_start: entry.committed_at
        for _, value in read_topic(ledger.LEDGER_TOPIC, bootstrap)
        if (entry := ledger.decode(value)).stream == STREAM and entry.outcome == "delivered"
    }
    return committed if set(minutes) <= committed.keys() else None
