"""Fixtures: a throw-away Airflow home, the project's real Kafka broker, the X API simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from local_system import KafkaBroker, XApiSimulator, project_env
from tests.helpers import KAFKA_CONFIG, ROOT, TEST_KAFKA_PORT, set_connection

# Airflow reads its settings when first imported, so they are set before any test module imports it. The DAG runs
# of dag.test() and `airflow dags test` leave out the late alert's deadline (apache/airflow#73428); the stacks' real
# schedulers have it.
os.environ.update(project_env(Path(tempfile.mkdtemp(prefix="airflow-test-home-"))))
os.environ["AIRFLOW__TWEETS_TO_KAFKA__LATE_ALERTS"] = "False"


def pytest_sessionstart(session):
    """Create Airflow's metadata database once (dag.test needs it)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def kafka() -> str:
    """A real single-node Kafka broker (KRaft), fresh for the session (or one of another session still
    running on the test port, left running); yields its bootstrap servers."""
    broker = KafkaBroker(TEST_KAFKA_PORT, ROOT / ".kafka" / f"test-broker-{TEST_KAFKA_PORT}")
    if broker.running:
        yield broker.bootstrap
        return
    broker.remove_state()
    with broker:
        yield broker.bootstrap


@pytest.fixture
def simulator():
    """The X API simulator over real HTTP, 40 tweets per minute unless a test sets a minute's count."""
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
