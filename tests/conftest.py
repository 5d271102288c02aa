"""Fixtures: a throw-away Airflow home, the project's real Kafka broker, the X API simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.helpers import BOOTSTRAP, KAFKA_CONFIG, ROOT, TEST_KAFKA_PORT, set_connection

# Airflow reads its settings when first imported, so they are set before any test module imports it.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-test-home-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins")])
KAFKA_STATE = ROOT / ".kafka" / f"test-broker-{TEST_KAFKA_PORT}"


def pytest_sessionstart(session):
    """Create Airflow's metadata database once (dag.test needs it)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def kafka_script(action: str) -> None:
    """Run scripts/kafka.sh for the test broker."""
    env = {**os.environ, "KAFKA_PORT": str(TEST_KAFKA_PORT), "KAFKA_STATE_DIR": str(KAFKA_STATE)}
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), action], check=True, env=env)


@pytest.fixture(scope="session")
def kafka() -> str:
    """A real single-node Kafka broker (KRaft), fresh for the session; yields its bootstrap servers."""
    pidfile = KAFKA_STATE / "broker.pid"
    already_running = pidfile.exists() and Path(f"/proc/{pidfile.read_text().strip()}").exists()
    if not already_running:
        subprocess.run(["rm", "-rf", str(KAFKA_STATE)], check=True)
    try:
        kafka_script("start")
        yield BOOTSTRAP
    finally:  # also when the start itself failed half-way
        if not already_running:
            kafka_script("stop")


@pytest.fixture
def simulator():
    """The X API simulator over real HTTP, 40 tweets per minute unless a test sets a minute's count."""
    from x_api_simulator import XApiSimulator

    with XApiSimulator(bearer_token="test-bearer-token-0123456789") as sim:
        yield sim


@pytest.fixture
def connections(monkeypatch, simulator, kafka):
    """`twitter_default` at the simulator and `kafka_default` at the test broker, as AIRFLOW_CONN_* JSON."""
    set_connection(
        monkeypatch,
        "twitter_default",
        conn_type="twitter",
        host=simulator.url,
        password=simulator.bearer_token,
    )
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=KAFKA_CONFIG)


@pytest.fixture
def topic() -> str:
    """A new topic name per test, so that reading it back shows exactly what the test wrote."""
    return f"test-tweets-{uuid.uuid4().hex[:12]}"


# Airflow with a real scheduler, and the simulator it uses (tests/system/harness.py), for any test.
from tests.system.harness import airflow_stack, x_api, x_api_server  # noqa: E402, F401
