"""The local system, one component at a time, each a context manager that knows its address: a Kafka
broker or a three-broker cluster, the X API simulator, PostgreSQL, Redis, and Airflow's components; for network
faults, Toxiproxy and test hosts in network namespaces.
`make run`, the test fixtures, the fault and distributed suites and `make bench` all start them here.

    with KafkaBroker(port) as broker, SimulatorProcess(port, token) as x_api:
        ...  # broker.bootstrap, x_api.url
"""

from local_system.airflow import DAG_ID, AirflowError, AirflowStack, connections, project_env
from local_system.databases import Postgres, Redis, install_debian_packages
from local_system.kafka import KafkaBroker, KafkaCluster
from local_system.network import NetworkHost
from local_system.service import ROOT, Service, ServiceError
from local_system.simulator import SimulatorProcess, XApiSimulator
from local_system.toxiproxy import Toxiproxy

__all__ = [
    "DAG_ID",
    "ROOT",
    "AirflowError",
    "AirflowStack",
    "KafkaBroker",
    "KafkaCluster",
    "NetworkHost",
    "Postgres",
    "Redis",
    "Service",
    "ServiceError",
    "SimulatorProcess",
    "Toxiproxy",
    "XApiSimulator",
    "connections",
    "install_debian_packages",
    "project_env",
]
