"""The services a benchmark run needs: its own Kafka broker, the X API simulator, an Airflow home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import requests

from local_system import ROOT, KafkaBroker, SimulatorProcess, project_env

ARTIFACTS = ROOT / ".artifacts" / "bench"
KAFKA_PORT = int(os.environ.get("BENCH_KAFKA_PORT", "19492"))
SIMULATOR_PORT = int(os.environ.get("BENCH_X_SIM_PORT", "18499"))
BEARER_TOKEN = "bench-bearer-token-0123456789"
# The DAG's default query plus the words of the simulator's two posts that name no product: it matches every
# generated post, so a window set to N posts holds exactly N results and page counts are exact.
QUERY = "Apple OR iphone OR iPhone OR walk OR lol"
# The README's recommended kafka_default config, at the benchmark's broker, without its transactional.id
# (the idempotent path; bench/produce.py's transactional way adds it).
KAFKA_CONFIG = {
    "bootstrap.servers": f"127.0.0.1:{KAFKA_PORT}",
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 20,
    "message.timeout.ms": 30000,
}
SEARCH_PATH = "/2/tweets/search/recent"


def subprocess_env(airflow_home: Path, dags_folder: Path = ROOT / "dags") -> dict[str, str]:
    """Environment of a benchmark's child process: the project's Airflow settings, connections at the services."""
    return {
        **os.environ,
        **project_env(airflow_home, dags_folder),
        "AIRFLOW_CONN_TWITTER_DEFAULT": json.dumps(
            {"conn_type": "twitter", "host": f"http://127.0.0.1:{SIMULATOR_PORT}", "password": BEARER_TOKEN}
        ),
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({"conn_type": "kafka", "extra": KAFKA_CONFIG}),
        "AIRFLOW_CONN_KAFKA_TRANSACTIONAL": json.dumps(
            {"conn_type": "kafka", "extra": {**KAFKA_CONFIG, "transactional.id": "bench"}}
        ),
    }


@contextmanager
def kafka_broker() -> Iterator[str]:
    """A fresh single-node broker on BENCH_KAFKA_PORT; yields its bootstrap servers."""
    broker = KafkaBroker(KAFKA_PORT, ROOT / ".kafka" / f"bench-broker-{KAFKA_PORT}")
    broker.remove_state()
    with broker:
        yield broker.bootstrap


class SimulatorClient:
    """The X API simulator's HTTP controls."""

    def __init__(self, url: str):
        self.url = url

    def set_rate(self, window_start: datetime, count: int) -> None:
        """Make the minute starting at `window_start` hold `count` tweets."""
        response = requests.post(
            f"{self.url}/_sim/rate",
            json={"window_start": window_start.isoformat(), "count": count},
            timeout=10,
        )
        response.raise_for_status()

    def first_page(self, start: datetime, end: datetime, query: str) -> None:
        """Search [start, end) once: the simulator then cuts every page of that search from this evaluation of
        its posts (a window of many posts takes it seconds)."""
        params = {"query": query, "max_results": 100, "start_time": f"{start:%Y-%m-%dT%H:%M:%SZ}"}
        params["end_time"] = f"{end:%Y-%m-%dT%H:%M:%SZ}"
        headers = {"Authorization": f"Bearer {BEARER_TOKEN}"}
        requests.get(self.url + SEARCH_PATH, params=params, headers=headers, timeout=600).raise_for_status()

    def search_requests(self) -> list[dict]:
        """The search requests received since the last `clear_requests`."""
        response = requests.get(f"{self.url}/_sim/requests", timeout=10)
        response.raise_for_status()
        return [request for request in response.json() if request["path"] == SEARCH_PATH]

    def clear_requests(self) -> None:
        requests.delete(f"{self.url}/_sim/requests", timeout=10).raise_for_status()


@contextmanager
def x_api_simulator() -> Iterator[SimulatorClient]:
    """The simulator in its own process on BENCH_X_SIM_PORT, with a rate limit no benchmark reaches."""
    with SimulatorProcess(SIMULATOR_PORT, BEARER_TOKEN, ARTIFACTS, rate_limit=1_000_000) as simulator:
        yield SimulatorClient(simulator.url)


@contextmanager
def airflow_home() -> Iterator[Path]:
    """A throw-away AIRFLOW_HOME with a migrated metadata database (for `airflow dags test`)."""
    home = ARTIFACTS / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    subprocess.run(migrate, check=True, env=subprocess_env(home), capture_output=True)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_probe(module: str, arguments: list[str], env: dict[str, str], prefix: str, log_file: Path) -> dict:
    """Run `python -m module arguments` in a fresh interpreter; its output goes to `log_file`, and its
    result is the JSON on the line that starts with `prefix`."""
    command = [sys.executable, "-m", module, *arguments]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    with log_file.open("a") as log:
        log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(arguments)} failed ({result.returncode}); see {log_file}")
    lines = [line for line in result.stdout.splitlines() if line.startswith(prefix)]
    if not lines:
        raise RuntimeError(f"{module} {' '.join(arguments)} printed no {prefix!r} line; see {log_file}")
    return json.loads(lines[-1].removeprefix(prefix))


def records_in(topic: str) -> int:
    """How many records the benchmark's broker holds in `topic` (the sum of its partitions' end offsets)."""
    from confluent_kafka import Consumer, TopicPartition

    # read_uncommitted: its end offsets are what the broker appended; read_committed's stop at the last stable
    # offset, which lags a commit until the broker has written the transaction's markers.
    config = {"bootstrap.servers": KAFKA_CONFIG["bootstrap.servers"], "group.id": "bench"}
    consumer = Consumer({**config, "isolation.level": "read_uncommitted"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in partitions
        )
    finally:
        consumer.close()
