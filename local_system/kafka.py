"""Apache Kafka 4.x in KRaft mode, run with `java` from Maven Central's jars: one broker, or a cluster of
three (replication factor 3, min.insync.replicas=2) that keeps taking acks=all writes with a node down; either
PLAINTEXT without authentication, or secured as production runs it (SASL_SSL, SCRAM-SHA-512, ACLs: see
local_system/kafka_security.py)."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

from local_system.kafka_security import ADMIN, MECHANISM, KafkaSecurity
from local_system.network import NetworkHost
from local_system.service import ROOT, Service, ServiceError

LIBS = ROOT / ".kafka" / "libs"
POM = ROOT / "local_system" / "pom.xml"
SECURITY = ("plaintext", "sasl_ssl")
# The classes that Kafka's command-line scripts run, so that the commands of the docs run as they are written.
TOOLS = {
    "kafka-acls.sh": "org.apache.kafka.tools.AclCommand",
    "kafka-configs.sh": "org.apache.kafka.tools.ConfigCommand",
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
}


def fetch_jars() -> None:
    """Fetch the broker's jars (local_system/pom.xml) into .kafka/libs once, and again when the pom changed, with
    Maven; quiet unless it fails. Processes that start brokers at the same time (make test's pytest runs) wait
    for one fetch."""
    LIBS.parent.mkdir(parents=True, exist_ok=True)
    pom = hashlib.sha256(POM.read_bytes()).hexdigest()
    with (LIBS.parent / "libs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (LIBS / ".complete").exists() and (LIBS / ".complete").read_text() == pom:
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
            str(POM),
        ]
        command += ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={LIBS}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(
                f"Maven could not fetch the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        (LIBS / ".complete").write_text(pom)


def run_tool(script: str, *args: str) -> str:
    """Run one of Kafka's command-line tools by its script's name (see TOOLS), e.g. `run_tool("kafka-acls.sh",
    "--bootstrap-server", ..., "--list")`; return its output, or raise ServiceError with it."""
    fetch_jars()
    command = [
        "java",
        "-Xmx256m",
        "-Dkafka.log.level=WARN",
        f"-Dlog4j2.configurationFile={ROOT / 'local_system' / 'log4j2.properties'}",
    ]
    result = subprocess.run(
        [*command, "-cp", f"{LIBS}/*", TOOLS[script], *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        # only its output: its arguments may hold a password
        raise ServiceError(f"{script} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def _serves(config: dict[str, Any], brokers: int) -> bool:
    """Whether the broker that `config` reaches answers a metadata request naming at least `brokers` brokers."""
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({**config, "log_level": 0}).list_topics(timeout=1)
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
    :param security: "plaintext" (no authentication; ACLs, but everything allowed without one) or "sasl_ssl":
        clients and brokers on SASL_SSL with SCRAM-SHA-512, the controller on mutual TLS, and nothing allowed
        without an ACL but to the super user `admin` (see `admin_config`, `client_config`, `add_user`)
    :param security_dir: where a secured node keeps its certificates and passwords (default state_dir/security;
        a cluster's nodes share one)
    :param host: the address it listens on and gives its clients (a test host's, see local_system.network)
    :param netns: the network namespace it runs in (that test host's), None for this machine's
    :param proxied: (port, address): a second listener, PROXIED (PLAINTEXT), on 127.0.0.1:port of its host, that
        sends its clients to `address` (host:port), a proxy in front of it (local_system.toxiproxy): clients that
        bootstrap there reach every broker through the proxy, the others directly
    """

    name = "kafka-broker"

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
        security: str = "plaintext",
        security_dir: Path | None = None,
        host: str = "127.0.0.1",
        netns: str | None = None,
        proxied: tuple[int, str] | None = None,
    ):
        if security not in SECURITY:
            raise ValueError(f"Kafka security is one of {', '.join(SECURITY)}, not {security!r}")
        if proxied and security != "plaintext":
            raise ValueError("a proxied listener is PLAINTEXT: a secured broker has none")
        super().__init__(state_dir or ROOT / ".kafka" / f"broker-{port}")
        self.port = port
        self.host = host
        self.netns = netns
        self.proxied = proxied
        self.controller_port = controller_port or port + 1
        self.auto_create_topics = auto_create_topics
        self.node_id = node_id
        self.voters = voters or f"{node_id}@{host}:{self.controller_port}"
        self.replicas = replicas
        self.cluster_id = cluster_id
        secured = security == "sasl_ssl"
        self.security = KafkaSecurity(security_dir or self.state_dir / "security") if secured else None

    @property
    def bootstrap(self) -> str:
        """Its bootstrap.servers."""
        return f"{self.host}:{self.port}"

    @property
    def proxied_bootstrap(self) -> str:
        """The bootstrap.servers of the clients that reach it through its proxy (see `proxied`)."""
        if self.proxied is None:
            raise ServiceError(f"the broker on {self.bootstrap} has no proxied listener")
        return self.proxied[1]

    @property
    def admin_config(self) -> dict[str, Any]:
        """A confluent-kafka config that may do anything: the super user `admin` on a secured node."""
        if self.security is None:
            return {"bootstrap.servers": self.bootstrap}
        return self.security.client_config(self.bootstrap, ADMIN)

    def client_config(self, user: str) -> dict[str, Any]:
        """A confluent-kafka config for `user` of a secured node, with its kept password."""
        if self.security is None:
            raise ServiceError(f"the broker on {self.bootstrap} is PLAINTEXT: it has no users")
        return self.security.client_config(self.bootstrap, user)

    def tool(self, script: str, *args: str) -> str:
        """Run a Kafka command-line tool (see TOOLS) against this node, as `admin` on a secured one."""
        connection = ["--bootstrap-server", self.bootstrap]
        if self.security is not None:
            connection += ["--command-config", str(self.security.admin_properties)]
        return run_tool(script, *connection, *args)

    def add_user(self, user: str) -> str:
        """Create the SCRAM user `user` of a secured node with its kept password (returned), as kafka-configs.sh
        does; ACLs give it access (`tool("kafka-acls.sh", ...)`)."""
        password = self.client_config(user)["sasl.password"]
        credential = f"{MECHANISM}=[password={password}]"
        self.tool(
            "kafka-configs.sh",
            "--alter",
            "--add-config",
            credential,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        )
        return password

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
        protocol = "PLAINTEXT" if self.security is None else "SASL_SSL"
        settings = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": self.voters,
            "listeners": f"{protocol}://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"{protocol}://{self.host}:{self.port}",
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
        format_args = []
        if self.security is not None:
            self.security.prepare()
            settings.update(self.security.broker_settings())
            # the admin's SCRAM credential is in the metadata from the start: the brokers log in with it
            format_args = ["--add-scram", self.security.scram_credential(ADMIN)]
        elif self.replicas == 1:  # ACLs, for the fault suite's refused transactional id; none means allowed
            settings["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            settings["allow.everyone.if.no.acl.found"] = "true"
        if self.proxied is not None:
            port, address = self.proxied
            settings["listeners"] += f",PROXIED://127.0.0.1:{port}"
            settings["advertised.listeners"] += f",PROXIED://{address}"
            settings["listener.security.protocol.map"] += ",PROXIED:PLAINTEXT"
            settings["inter.broker.listener.name"] = "PLAINTEXT"
        config = self.state_dir / "server.properties"
        config.touch(mode=0o600)  # a secured node's holds the admin's password
        config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        if not (self.state_dir / "data" / "meta.properties").exists():
            # the id is the output's last word: a log line the JVM printed first is not part of it
            cluster_id = (
                self.cluster_id or self._run_java("kafka.tools.StorageTool", "random-uuid").split()[-1]
            )
            self._run_java(
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(config),
                *format_args,
            )

    def _run_java(self, main: str, *args: str) -> str:
        result = subprocess.run(self._java(main, *args), capture_output=True, text=True)
        if result.returncode != 0:  # named by its first argument only: the others may hold a password
            raise ServiceError(f"{main} {args[0]} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def ready(self) -> bool:
        return _serves(self.admin_config, min(self.replicas, 2))


class KafkaCluster:
    """
    Three Kafka nodes on one machine: node N (1..3) listens on base_port+2(N-1), its controller on the next
    port. Each node is broker and controller; topics get replication factor 3 and min.insync.replicas=2.

    :param state_dir: node-N/ per node (default .kafka/cluster-<base_port>)
    :param security: as KafkaBroker's; the nodes share one certificate authority and one admin (in security/)
    :param node3_host: a test host (local_system.network.NetworkHost, started) for node 3: node 3 runs in it and
        nodes 1 and 2 on this machine's end of its link, so that its partition cuts node 3 off from the other
        two and from every client; None: all three on 127.0.0.1
    """

    def __init__(
        self,
        base_port: int = 19301,
        state_dir: Path | None = None,
        auto_create_topics: bool = True,
        security: str = "plaintext",
        node3_host: NetworkHost | None = None,
    ):
        self.state_dir = state_dir or ROOT / ".kafka" / f"cluster-{base_port}"
        ports = [base_port + 2 * n for n in range(3)]
        hosts = ["127.0.0.1"] * 3
        if node3_host is not None:
            hosts = [node3_host.outside, node3_host.outside, node3_host.address]
        voters = ",".join(f"{n + 1}@{hosts[n]}:{port + 1}" for n, port in enumerate(ports))
        self.nodes = [
            KafkaBroker(
                port,
                self.state_dir / f"node-{n + 1}",
                auto_create_topics,
                None,
                n + 1,
                voters,
                3,
                security=security,
                security_dir=self.state_dir / "security",
                host=hosts[n],
                netns=node3_host.netns if node3_host is not None and n == 2 else None,
            )
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
                subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1]
            )
        return path.read_text().strip()

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def admin_config(self) -> dict[str, Any]:
        """A confluent-kafka config that may do anything, with every node as a bootstrap server."""
        return {**self.nodes[0].admin_config, "bootstrap.servers": self.bootstrap}

    def client_config(self, user: str) -> dict[str, Any]:
        """A confluent-kafka config for `user` of a secured cluster, with every node as a bootstrap server."""
        return {**self.nodes[0].client_config(user), "bootstrap.servers": self.bootstrap}

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
