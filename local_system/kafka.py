"""Apache Kafka 4.x in KRaft mode, run with `java` from Maven Central's jars: one broker, or a cluster of
three (replication factor 3, min.insync.replicas=2) that keeps taking acks=all writes with a node down."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from local_system.service import ROOT, Service, ServiceError

LIBS = ROOT / ".kafka" / "libs"


def fetch_jars() -> None:
    """Fetch the broker's jars (local_system/pom.xml) into .kafka/libs once, with Maven; quiet unless it fails.
    Processes that start brokers at the same time (make test's two pytest runs) wait for one fetch."""
    LIBS.parent.mkdir(parents=True, exist_ok=True)
    with (LIBS.parent / "libs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (LIBS / ".complete").exists():
            return
        print(f"Fetching the Kafka broker's jars from Maven Central into {LIBS}", flush=True)
        shutil.rmtree(LIBS, ignore_errors=True)
        command = [
            "mvn",
            "-q",
            "-B",
            "--color=never",
            "-Dstyle.color=never",
            "-f",
            str(ROOT / "local_system" / "pom.xml"),
        ]
        command += ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={LIBS}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(
                f"Maven could not fetch the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        (LIBS / ".complete").touch()


def _serves(bootstrap: str, brokers: int) -> bool:
    """Whether the broker at `bootstrap` answers a metadata request naming at least `brokers` brokers."""
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=1)
    except Exception:  # noqa: BLE001 - any KafkaException means: not yet
        return False
    return len(metadata.brokers) >= brokers


class KafkaBroker(Service):
    """
    A Kafka node (broker and controller) on 127.0.0.1; its data survives a stop or a kill.

    :param port: the clients' port; the controller listens on `controller_port` (port+1)
    :param state_dir: data, server.properties, its log (default .kafka/broker-<port>)
    :param auto_create_topics: whether a producer's first write creates its topic
    :param node_id, voters, replicas: this node's place in a cluster (see KafkaCluster)
    """

    name = "kafka-broker"
    start_timeout = 90.0

    def __init__(
        self,
        port: int = 9092,
        state_dir: Path | None = None,
        auto_create_topics: bool = True,
        controller_port: int | None = None,
        node_id: int = 1,
        voters: str | None = None,
        replicas: int = 1,
        cluster_id: str | None = None,
    ):
        super().__init__(state_dir or ROOT / ".kafka" / f"broker-{port}")
        self.port = port
        self.controller_port = controller_port or port + 1
        self.auto_create_topics = auto_create_topics
        self.node_id = node_id
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self.replicas = replicas
        self.cluster_id = cluster_id

    @property
    def bootstrap(self) -> str:
        """Its bootstrap.servers."""
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def _java(self, main: str, *args: str) -> list[str]:
        options = ["-Xms256m", "-Xmx512m"]
        if self.replicas > 1:
            options.append("-XX:+UseSerialGC")  # three JVMs on one small machine
        options += [f"-Dlog4j2.configurationFile={ROOT / 'local_system' / 'log4j2.properties'}"]
        return ["java", *options, "-cp", f"{LIBS}/*", main, *args]

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.state_dir / "server.properties"))

    def prepare(self) -> None:
        """Fetch the jars, write server.properties, and format the storage the first time."""
        fetch_jars()
        min_isr = 2 if self.replicas > 1 else 1
        settings = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.state_dir / "data",
            "num.partitions": 3,
            "default.replication.factor": self.replicas,
            "min.insync.replicas": min_isr,
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "offsets.topic.replication.factor": self.replicas,
            "offsets.topic.num.partitions": 1 if self.replicas == 1 else 50,
            "transaction.state.log.replication.factor": self.replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": 1 if self.replicas == 1 else 3,
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
        }
        if self.replicas == 1:  # ACLs, for the fault suite's refused transactional id; none means allowed
            settings["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            settings["allow.everyone.if.no.acl.found"] = "true"
        config = self.state_dir / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        if not (self.state_dir / "data" / "meta.properties").exists():
            cluster_id = self.cluster_id or self._run_java("kafka.tools.StorageTool", "random-uuid").strip()
            self._run_java(
                "kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", cluster_id, "-c", str(config)
            )

    def _run_java(self, main: str, *args: str) -> str:
        result = subprocess.run(self._java(main, *args), capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"{main} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def ready(self) -> bool:
        return _serves(self.bootstrap, min(self.replicas, 2))


class KafkaCluster:
    """
    Three Kafka nodes on one machine: node N (1..3) listens on base_port+2(N-1), its controller on the next
    port. Each node is broker and controller; topics get replication factor 3 and min.insync.replicas=2.

    :param state_dir: node-N/ per node (default .kafka/cluster-<base_port>)
    """

    def __init__(
        self, base_port: int = 19301, state_dir: Path | None = None, auto_create_topics: bool = True
    ):
        self.state_dir = state_dir or ROOT / ".kafka" / f"cluster-{base_port}"
        ports = [base_port + 2 * n for n in range(3)]
        voters = ",".join(f"{n + 1}@127.0.0.1:{port + 1}" for n, port in enumerate(ports))
        self.nodes = [
            KafkaBroker(port, self.state_dir / f"node-{n + 1}", auto_create_topics, None, n + 1, voters, 3)
            for n, port in enumerate(ports)
        ]
        for node in self.nodes:
            node.name = f"kafka-node-{node.node_id}"

    def _cluster_id(self) -> str:
        """The cluster's id, made once and kept with its data (every node's storage is formatted with it)."""
        path = self.state_dir / "cluster.id"
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fetch_jars()
            command = ["java", "-cp", f"{LIBS}/*", "kafka.tools.StorageTool", "random-uuid"]
            path.write_text(
                subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
            )
        return path.read_text().strip()

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, number: int) -> KafkaBroker:
        """Node 1, 2 or 3."""
        if number not in (1, 2, 3):
            raise ValueError(f"a cluster node is 1, 2 or 3, not {number}")
        return self.nodes[number - 1]

    def start(self) -> KafkaCluster:
        """Start the three nodes (a quorum needs them all), then wait until each serves."""
        try:
            cluster_id = self._cluster_id()
            for node in self.nodes:
                node.cluster_id = cluster_id
                node.launch()
            for node in self.nodes:
                node.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def remove_state(self) -> None:
        """Stop its nodes and delete their data: the next start makes a new cluster."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
