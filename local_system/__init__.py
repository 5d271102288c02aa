"""The local system, one component at a time, each a context manager that knows its address: a Kafka
broker or a three-broker cluster, the X API simulator, PostgreSQL, Redis, and Airflow's components.
`make run`, the test fixtures, the fault and distributed suites and `make bench` all start them here.

    with KafkaBroker(port) as broker, SimulatorProcess(port, token) as x_api:
        ...  # broker.bootstrap, x_api.url
"""

from local_system.airflow import DAG_ID, AirflowError, AirflowStack, connections, project_env
from local_system.databases import Postgres, Redis, install_debian_packages
from local_system.kafka import KafkaBroker, KafkaCluster
from local_system.service import ROOT, Service, ServiceError
from local_system.simulator import SimulatorProcess, XApiSimulator

__all__ = [
    "DAG_ID",
    "ROOT",
    "AirflowError",
    "AirflowStack",
    "KafkaBroker",
    "KafkaCluster",
    "Postgres",
    "Redis",
    "Service",
    "ServiceError",
    "SimulatorProcess",
    "XApiSimulator",
    "connections",
    "install_debian_packages",
    "project_env",
]
