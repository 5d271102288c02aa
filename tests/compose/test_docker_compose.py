"""docker-compose.yaml's wiring, as `docker-compose config` (Debian's package) renders it with .env.example.

No Docker engine runs here: images are neither built nor started. What can be checked without one is: the
file is valid, every service is there with its health check and start order, the image is the Airflow
version of requirements.txt, kafka_default reaches the broker's internal listener, and the mounts and
PYTHONPATH make dags/, plugins/ and include/ importable as they are in this repository.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import PurePosixPath

import pytest
import yaml

from local_system import install_debian_packages
from local_system.airflow import SENSITIVE_CONN_NAMES
from tests.helpers import ROOT

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
LONG_RUNNING_AIRFLOW = AIRFLOW_SERVICES - {"airflow-init"}
OPT_AIRFLOW = PurePosixPath("/opt/airflow")


def compose_config(env_file, *args: str) -> subprocess.CompletedProcess:
    """Run `docker-compose config` on the repository's docker-compose.yaml."""
    command = ["docker-compose", "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yaml")]
    command += ["--env-file", str(env_file), "config", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    """.env.example with the two required secrets filled in, as the README tells a user to."""
    install_debian_packages("docker-compose")
    text = (ROOT / ".env.example").read_text()
    text = text.replace("AIRFLOW_FERNET_KEY=\n", "AIRFLOW_FERNET_KEY=test-fernet-key\n")
    text = text.replace("AIRFLOW_JWT_SECRET=\n", "AIRFLOW_JWT_SECRET=test-jwt-secret\n")
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def services(env_file) -> dict[str, dict]:
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def airflow_pin() -> str:
    pins = re.findall(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert len(pins) == 1, "requirements.txt pins apache-airflow once"
    return pins[0]


def mounts(service: dict) -> dict[PurePosixPath, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("/"):
            found[PurePosixPath(target)] = str(PurePosixPath(source).relative_to(ROOT))
    return found


def test_every_service_is_there_with_a_health_check(services):
    assert set(services) == AIRFLOW_SERVICES | {"postgres", "redis", "kafka", "x-api-simulator"}
    for name in set(services) - {"airflow-init"}:
        assert services[name]["healthcheck"]["test"], name


def test_airflow_starts_after_its_database_broker_and_init(services):
    for name in LONG_RUNNING_AIRFLOW:
        depends_on = services[name]["depends_on"]
        assert depends_on["postgres"] == {"condition": "service_healthy"}, name
        assert depends_on["redis"] == {"condition": "service_healthy"}, name
        assert depends_on["airflow-init"] == {"condition": "service_completed_successfully"}, name
    worker = services["airflow-worker"]["depends_on"]
    assert worker["kafka"] == {"condition": "service_healthy"}
    assert worker["airflow-apiserver"] == {"condition": "service_healthy"}
    assert services["airflow-worker"]["command"] == "celery worker"
    assert "ports" not in services["airflow-worker"], "a published port would forbid --scale airflow-worker=N"


def test_the_image_is_built_from_the_airflow_version_of_requirements(services):
    pin = airflow_pin()
    base_images = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base_images == [f"apache/airflow:{pin}-python3.11"]
    for name in AIRFLOW_SERVICES | {"x-api-simulator"}:
        assert services[name]["build"] == {"context": str(ROOT), "dockerfile": "Dockerfile"}, name
        assert services[name]["image"].endswith(f":{pin}"), name


def test_airflow_runs_celery_on_the_compose_postgres_and_redis_with_examples_off(services):
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        assert env["AIRFLOW__CORE__FERNET_KEY"] == "test-fernet-key"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "test-jwt-secret"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_airflow_masks_the_kafka_extras_secrets_as_the_local_system_does(services):
    """The extra keys Airflow does not mask by itself (an inline key, an OAUTHBEARER config): the same list as
    every Airflow process of the local system, whose masking tests/integration/test_secured_kafka.py proves."""
    for name in AIRFLOW_SERVICES:
        names = services[name]["environment"]["AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES"]
        assert names == SENSITIVE_CONN_NAMES, name


def test_kafka_default_points_at_the_brokers_internal_listener(services):
    kafka = services["kafka"]["environment"]
    listeners = dict(item.split("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    internal = kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert listeners == {internal: "kafka:29092", "EXTERNAL": "localhost:9092"}
    assert {"published": 9092, "target": 9092} in services["kafka"]["ports"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    for name in AIRFLOW_SERVICES:
        connection = json.loads(services[name]["environment"]["AIRFLOW_CONN_KAFKA_DEFAULT"])
        assert connection["conn_type"] == "kafka"
        assert connection["extra"]["bootstrap.servers"] == listeners[internal], name


def test_the_demo_simulator_serves_the_twitter_default_of_env_example(services):
    simulator = services["x-api-simulator"]
    assert simulator["profiles"] == ["demo"]
    assert simulator["entrypoint"] == ["python", "-m", "x_api_simulator"]
    command = simulator["command"]
    port = command[command.index("--port") + 1]
    twitter = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_TWITTER_DEFAULT"])
    assert twitter == {
        "conn_type": "twitter",
        "host": f"http://x-api-simulator:{port}",
        "password": command[command.index("--bearer-token") + 1],
        "extra": {"allow_plain_http": True},  # another container, no TLS: the demo's fake token only
    }


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES | {"x-api-simulator"}))
def test_mounts_and_pythonpath_match_the_package_layout(services, service):
    """Every PYTHONPATH entry is a mounted folder (or the mount point above one), and from it the
    project's packages resolve to this repository's folders."""
    spec = services[service]
    bind = mounts(spec)
    pythonpath = [PurePosixPath(entry) for entry in spec["environment"]["PYTHONPATH"].split(":")]

    def host_folder(container_path: PurePosixPath):
        for target, source in bind.items():
            if container_path == target or target in container_path.parents:
                return ROOT / source / container_path.relative_to(target)
        return None

    if service == "x-api-simulator":
        expected_binds = {OPT_AIRFLOW / "x_api_simulator": "x_api_simulator"}
        packages = {"x_api_simulator": "x_api_simulator"}
    else:
        expected_binds = {OPT_AIRFLOW / name: name for name in ("dags", "plugins", "include")}
        packages = {"include": "include", "twitter_provider": "plugins/twitter_provider"}
    assert bind == expected_binds
    assert all(volume.endswith(":ro") for volume in spec["volumes"] if volume.startswith("/")), (
        "code is read-only"
    )
    for package, repo_folder in packages.items():
        resolved = [host_folder(entry / package) for entry in pythonpath]
        resolved = [folder for folder in resolved if folder is not None and folder.is_dir()]
        assert resolved == [ROOT / repo_folder], f"{package} in {service}: PYTHONPATH {pythonpath}"


def test_the_pools_the_dag_uses_are_created_by_airflow_init(services):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["tweets_to_kafka"]
    init_script = services["airflow-init"]["command"][-1]
    assert "airflow db migrate" in init_script
    for pool in {task.pool for task in dag.tasks} - {"default_pool"}:
        assert re.search(rf'^airflow pools set {pool} \d+ "[^"]+"$', init_script, re.MULTILINE), pool


def test_without_the_required_secrets_compose_refuses_naming_them(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())

    result = compose_config(env_file, "-q")

    assert result.returncode != 0
    assert "set AIRFLOW_FERNET_KEY in .env" in result.stderr


def test_env_example_holds_no_secret():
    env = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["AIRFLOW_FERNET_KEY"] == "" and env["AIRFLOW_JWT_SECRET"] == ""
    assert json.loads(env["AIRFLOW_CONN_TWITTER_DEFAULT"].strip("'"))["password"] == "sim-token"
