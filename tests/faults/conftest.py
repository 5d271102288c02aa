"""Fixtures of the fault suite: the simulator on a fixed port, a broker that tests kill, the three-broker
cluster, and the figures of every case, written to .artifacts/reliability.json at the end of the session.
Tests that stop, kill or freeze a broker (they use `own_broker` or `cluster`) are marked `broker_faults`."""

from __future__ import annotations

import os
import time

import pytest

from local_system import KafkaBroker, KafkaCluster, XApiSimulator
from tests.faults.reliability import Case, write_figures
from tests.helpers import KAFKA_CONFIG, ROOT, set_connection

SIMULATOR_PORT = int(os.environ.get("FAULTS_SIMULATOR_PORT", "18299"))
BROKER_PORT = int(os.environ.get("FAULTS_KAFKA_PORT", "19310"))
CLUSTER_BASE_PORT = int(os.environ.get("FAULTS_CLUSTER_BASE_PORT", "19301"))
TOKEN = "test-bearer-token-0123456789"


@pytest.hookimpl(tryfirst=True)  # before -m selects by markers
def pytest_collection_modifyitems(items):
    for item in items:
        if {"own_broker", "cluster"} & set(item.fixturenames):
            item.add_marker(pytest.mark.broker_faults)


@pytest.fixture
def simulator():
    """The X API simulator on a fixed port (a case may stop and restart it there), 40 tweets a minute."""
    with XApiSimulator(port=SIMULATOR_PORT, bearer_token=TOKEN) as sim:
        yield sim


@pytest.fixture(scope="session")
def cases():
    """Every case of the session; their figures are written when the session ends."""
    began = time.monotonic()
    done: list[Case] = []
    yield done
    if any(case.checked for case in done):
        write_figures(done, time.monotonic() - began)


@pytest.fixture
def case(request, cases) -> Case:
    """This test's case: runs the DAG and makes the final delivery check."""
    current = Case(request.node.name)
    cases.append(current)
    return current


@pytest.fixture(scope="session")
def broker() -> KafkaBroker:
    """A fresh single-node broker, auto-creation off, that tests may stop, kill and start again."""
    killable = KafkaBroker(
        BROKER_PORT, ROOT / ".kafka" / f"faults-broker-{BROKER_PORT}", auto_create_topics=False
    )
    killable.remove_state()
    with killable:
        yield killable


@pytest.fixture(scope="session")
def cluster() -> KafkaCluster:
    """A fresh three-broker KRaft cluster, whose nodes tests may kill and start again."""
    three = KafkaCluster(CLUSTER_BASE_PORT)
    three.remove_state()
    with three:
        yield three


@pytest.fixture
def own_broker(broker, monkeypatch):
    """`kafka_default` (the recommended, transactional one) at the suite's killable broker, running when the
    test starts and ends."""
    broker.start()
    set_connection(
        monkeypatch,
        "kafka_default",
        conn_type="kafka",
        extra={**KAFKA_CONFIG, "bootstrap.servers": broker.bootstrap},
    )
    yield broker
    broker.start()
