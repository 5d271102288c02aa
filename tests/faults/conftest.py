"""Fixtures of the fault suite: the simulator on a fixed port, a broker that tests kill, the three-broker
cluster, and the figures of every case, written to .artifacts/reliability.json at the end of the session."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.faults.reliability import Broker, Case, Cluster, write_figures

SIMULATOR_PORT = int(os.environ.get("FAULTS_SIMULATOR_PORT", "18299"))
BROKER_PORT = int(os.environ.get("FAULTS_KAFKA_PORT", "19310"))
CLUSTER_BASE_PORT = int(os.environ.get("FAULTS_CLUSTER_BASE_PORT", "19301"))
TOKEN = "test-bearer-token-0123456789"


@pytest.fixture
def simulator():
    """The X API simulator on a fixed port (a case may stop and restart it there), 40 tweets a minute."""
    from x_api_simulator import XApiSimulator

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
def broker() -> Broker:
    """A fresh single-node broker, auto-creation off, that tests may kill; stopped after the session."""
    killable = Broker(BROKER_PORT)
    shutil.rmtree(killable.state, ignore_errors=True)
    killable.start()
    yield killable
    killable.stop()


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """A fresh three-broker KRaft cluster; stopped after the session."""
    three = Cluster(CLUSTER_BASE_PORT)
    three.script("stop")
    shutil.rmtree(three.state, ignore_errors=True)
    three.script("start")
    yield three
    three.script("stop")
