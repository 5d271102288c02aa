"""Run overhead: the wall time of `airflow dags test tweets_to_kafka` for a 1,000-tweet window against
`airflow dags test` of a DAG of two empty tasks, interleaved, medians."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

from bench.fetch import Windows
from bench.services import QUERY, ROOT, SimulatorClient, records_in, subprocess_env

WINDOW_TWEETS = 1000


def dags_test(
    dag_id: str, logical_date: str, env: dict[str, str], log_file: Path, conf: dict | None = None
) -> float:
    """Seconds that `airflow dags test` takes, from the command's start to its exit (without the late alert's
    deadline, which Airflow 3.3.2's `dags test` cannot end with: apache/airflow#73428)."""
    env = {**env, "AIRFLOW__TWEETS_TO_KAFKA__LATE_ALERTS": "False"}
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date]
    if conf:
        command += ["--conf", json.dumps(conf)]
    with log_file.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        began = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
        elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"airflow dags test {dag_id} failed ({result.returncode}); see {log_file}")
    return elapsed


def run(simulator: SimulatorClient, airflow_home: Path, repetitions: int, log_file: Path) -> dict[str, Any]:
    """`repetitions` runs of each DAG, alternating which goes first."""
    ours_env = subprocess_env(airflow_home)
    empty_env = subprocess_env(airflow_home, dags_folder=ROOT / "bench" / "dags")
    windows = Windows(hours_ago=5)
    runs: dict[str, list[float]] = {"tweets_to_kafka": [], "empty_two_tasks": []}

    def ours() -> float:
        start, end = windows.take(simulator, WINDOW_TWEETS)
        topic = f"bench-run-{uuid.uuid4().hex[:12]}"
        elapsed = dags_test(
            "tweets_to_kafka", end.isoformat(), ours_env, log_file, conf={"topic": topic, "query": QUERY}
        )
        if (held := records_in(topic)) != WINDOW_TWEETS:
            raise RuntimeError(
                f"tweets_to_kafka run of [{start}, {end}) wrote {held} records, not {WINDOW_TWEETS}"
            )
        return elapsed

    def empty() -> float:
        _, end = windows.take(simulator, 0)
        return dags_test("empty_two_tasks", end.isoformat(), empty_env, log_file)

    order = [("tweets_to_kafka", ours), ("empty_two_tasks", empty)]
    for repetition in range(repetitions):
        for name, run_dag in order if repetition % 2 == 0 else order[::-1]:
            runs[name].append(run_dag())
            print(f"  airflow dags test {name:<16} {runs[name][-1]:.1f} s")
    medians = {name: median(values) for name, values in runs.items()}
    return {
        "window_tweets": WINDOW_TWEETS,
        "repetitions": repetitions,
        "seconds": {name: {"median": medians[name], "runs": runs[name]} for name in runs},
        "run_vs_empty_dag_run": medians["tweets_to_kafka"] / medians["empty_two_tasks"],
    }
