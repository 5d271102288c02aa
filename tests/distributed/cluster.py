"""Airflow with CeleryExecutor as separate processes on this machine, and the services it runs on."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.helpers import ROOT

VENV_BIN = Path(sys.executable).parent
POSTGRES_PORT = int(os.environ.get("TEST_POSTGRES_PORT", "15432"))
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "16379"))
API_PORT = int(os.environ.get("TEST_AIRFLOW_API_PORT", "18380"))
SIMULATOR_PORT = int(os.environ.get("TEST_X_SIM_PORT", "18399"))
# Each Celery worker serves its task logs on a port of its own (8793 by default, shared by all).
WORKER_LOG_PORTS = {
    "worker1": int(os.environ.get("TEST_WORKER1_LOG_PORT", "18393")),
    "worker2": int(os.environ.get("TEST_WORKER2_LOG_PORT", "18394")),
}
SIMULATOR_TOKEN = "distributed-test-bearer-token"


@contextmanager
def postgres_and_redis(postgres_port: int = POSTGRES_PORT, redis_port: int = REDIS_PORT) -> Iterator[str]:
    """A fresh PostgreSQL database cluster and Redis (scripts/distributed.sh) on these ports; yields the
    database's DSN."""
    state_dir = ROOT / ".distributed" / f"test-pg-{postgres_port}-redis-{redis_port}"
    env = {
        **os.environ,
        "POSTGRES_PORT": str(postgres_port),
        "REDIS_PORT": str(redis_port),
        "DISTRIBUTED_STATE_DIR": str(state_dir),
    }

    def script(action: str) -> None:
        subprocess.run([str(ROOT / "scripts" / "distributed.sh"), action], check=True, env=env)

    script("install")
    script("stop")  # a run killed before its clean-up left them running
    subprocess.run(["rm", "-rf", str(state_dir)], check=True)
    try:
        script("start")
        yield f"postgresql://airflow:airflow@127.0.0.1:{postgres_port}/airflow"
    finally:
        script("stop")


def airflow_env(home: Path, kafka_config: dict) -> dict[str, str]:
    """The environment every Airflow process of the cluster shares, as a deployment's airflow.cfg would."""
    from cryptography.fernet import Fernet

    database = f"postgresql+psycopg2://airflow:airflow@127.0.0.1:{POSTGRES_PORT}/airflow"
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow:airflow@127.0.0.1:{POSTGRES_PORT}/airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        # Every process must sign and check the workers' execution-API tokens with the same secret.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{API_PORT}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{API_PORT}/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__TWEETS_TO_KAFKA__X_API_POOL": "x_api",
        # Only the backfill runs: no scheduled run of the current minute competes with them.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW_CONN_TWITTER_DEFAULT": json.dumps(
            {
                "conn_type": "twitter",
                "host": f"http://127.0.0.1:{SIMULATOR_PORT}",
                "password": SIMULATOR_TOKEN,
            }
        ),
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({"conn_type": "kafka", "extra": kafka_config}),
    }


class Processes:
    """Long-running processes, each in a session of its own with its output in a log file."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Path:
        """Start `command` as process `name`; return its log file."""
        log_file = self.log_dir / f"{name}.log"
        with log_file.open("wb") as output:
            self.started[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        return log_file

    def check_alive(self) -> None:
        """Fail, with the end of its log, if a process has exited."""
        for name, process in self.started.items():
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with code {process.returncode}; end of its log:\n{tail}")

    def stop_all(self) -> None:
        """SIGTERM each process group started here (a Celery worker's pool and task processes too),
        then SIGKILL what is left after 30 s."""
        for process in self.started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.started.values():
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.started.values():
            with suppress(ProcessLookupError):  # also a group's children that outlived its leader
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def airflow(env: dict[str, str], *args: str) -> str:
    """Run an `airflow` CLI command; return its output, or fail with it."""
    result = subprocess.run(
        [str(VENV_BIN / "airflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def wait_until(condition, timeout: float, what: str, processes: Processes, interval: float = 1.0):
    """Poll `condition` until it returns a true value (returned), a process dies, or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        processes.check_alive()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def answers(url: str) -> bool:
    """Whether an HTTP GET of `url` succeeds."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def start_x_api_simulator(processes: Processes, rate_per_minute: int) -> str:
    """Start `python -m x_api_simulator` on the test port; return its base URL once it answers."""
    url = f"http://127.0.0.1:{SIMULATOR_PORT}"
    command = [sys.executable, "-m", "x_api_simulator", "--port", str(SIMULATOR_PORT)]
    command += ["--bearer-token", SIMULATOR_TOKEN, "--rate-per-minute", str(rate_per_minute)]
    processes.start("x-api-simulator", command, {**os.environ, "PYTHONPATH": str(ROOT)})
    wait_until(lambda: answers(f"{url}/_sim/health"), 30, "the X API simulator", processes, 0.2)
    return url


def start_celery_cluster(env: dict[str, str], processes: Processes) -> None:
    """Migrate the metadata database, create the x_api pool, then start the scheduler, dag-processor,
    api-server, triggerer and two Celery workers."""
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "x_api", "4", "X API calls")
    processes.start(
        "api-server", ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(API_PORT)], env
    )
    processes.start("scheduler", ["airflow", "scheduler", "--skip-serve-logs"], env)
    processes.start("dag-processor", ["airflow", "dag-processor"], env)
    processes.start("triggerer", ["airflow", "triggerer", "--skip-serve-logs"], env)
    for name, log_port in WORKER_LOG_PORTS.items():
        worker_env = {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port)}
        processes.start(name, ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h"], worker_env)
