"""Fixtures of the fault suite: the simulator on a fixed port, a broker that tests kill or cut off, the three-broker
cluster, Toxiproxy between the tasks and what they reach, and the figures of every case, written to
.artifacts/reliability.json at the end of the session.
Tests that stop, kill or freeze a broker (they use `own_broker` or `cluster`) are marked `broker_faults`.

The broker and the cluster's node 3 each run on a test host of their own, a network namespace cabled to this
machine (local_system.network, as root: CI runs as root), so that a case can partition them."""

from __future__ import annotations

import os
import time

import pytest

from local_system import KafkaBroker, KafkaCluster, NetworkHost, Toxiproxy, XApiSimulator
from local_system.toxiproxy import Proxy
from tests.faults.reliability import Case, write_figures
from tests.helpers import KAFKA_CONFIG, ROOT, set_connection

SIMULATOR_PORT = int(os.environ.get("FAULTS_SIMULATOR_PORT", "18299"))
# Its controller takes the next port, its proxied listener the one after.
BROKER_PORT = int(os.environ.get("FAULTS_KAFKA_PORT", "19310"))
CLUSTER_BASE_PORT = int(os.environ.get("FAULTS_CLUSTER_BASE_PORT", "19301"))
# Toxiproxy's API here, +1 its proxy to the X API; on the broker's host, +10 its API and +11 its proxy to the broker.
NETWORK_PORT = int(os.environ.get("FAULTS_NETWORK_PORT", "19700"))
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
def broker_host() -> NetworkHost:
    """The test host of the broker."""
    with NetworkHost.of_port(BROKER_PORT) as host:
        yield host


@pytest.fixture(scope="session")
def broker(broker_host) -> KafkaBroker:
    """A fresh single-node broker on its own test host, auto-creation off, that tests may stop, kill and start
    again, or cut off; clients that bootstrap at `proxied_bootstrap` reach it through `broker_proxy`."""
    killable = KafkaBroker(
        BROKER_PORT,
        ROOT / ".kafka" / f"faults-broker-{BROKER_PORT}",
        auto_create_topics=False,
        host=broker_host.address,
        netns=broker_host.netns,
        proxied=(BROKER_PORT + 2, f"{broker_host.address}:{NETWORK_PORT + 11}"),
    )
    killable.remove_state()
    with killable:
        yield killable


@pytest.fixture(scope="session")
def broker_proxy(broker_host, broker) -> Proxy:
    """Toxiproxy on the broker's host, between its link and the broker: what crosses the link to the broker's
    proxied listener passes it, so that a toxic slows what the broker sends back before the link carries it."""
    with Toxiproxy(NETWORK_PORT + 10, host=broker_host.address, netns=broker_host.netns) as toxiproxy:
        yield toxiproxy.proxy(
            "kafka", listen=broker.proxied_bootstrap, upstream=f"127.0.0.1:{broker.proxied[0]}"
        )


@pytest.fixture(scope="session")
def toxiproxy() -> Toxiproxy:
    """Toxiproxy on this machine, for the proxy between the tasks and the X API."""
    with Toxiproxy(NETWORK_PORT) as server:
        yield server


@pytest.fixture(scope="session")
def cluster_host() -> NetworkHost:
    """The test host of the cluster's node 3."""
    with NetworkHost.of_port(CLUSTER_BASE_PORT) as host:
        yield host


@pytest.fixture(scope="session")
def cluster(cluster_host) -> KafkaCluster:
    """A fresh three-broker KRaft cluster, whose nodes tests may kill and start again, and node 3 on a test host
    of its own (`cluster_host`), that tests may cut off."""
    three = KafkaCluster(CLUSTER_BASE_PORT, node3_host=cluster_host)
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
