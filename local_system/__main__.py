"""`make run`, `make stop`, `make tail` and `make kafka-start`/`kafka-stop`: the local system for a user.

    python -m local_system run            start everything, print how to use it, run until Ctrl-C, then stop
    python -m local_system stop           stop everything `run` started, by process group, and nothing else
    python -m local_system tail           print the topic's records as they arrive (TAIL_FROM=beginning: all)
    python -m local_system airflow ARGS   the airflow CLI against this Airflow (backfill create, tasks clear...)
    python -m local_system kafka start|stop      a broker alone on KAFKA_PORT
    python -m local_system debian PACKAGES...   apt-get install what is missing (postgresql, redis-server...)

Environment: KAFKA_PORT (9092), X_SIM_PORT (8099), AIRFLOW_PORT (8080; the log server of task logs takes the
next port), X_BEARER_TOKEN (set: twitter_default uses the real X API with it, no simulator),
X_SIM_BEARER_TOKEN (sim-token: the token the simulator accepts), X_API_POOL_SLOTS (2), TOPIC (tail),
KAFKA_SECURITY (plaintext; sasl_ssl: a broker secured as production runs it, SASL_SSL with SCRAM-SHA-512 and
ACLs, and kafka_default the producer's user `tweets-producer` with only the grants it needs).
State: .airflow/ (AIRFLOW_HOME; each component's output and pid in .airflow/logs/), .kafka/broker-<port>/
(.kafka/broker-<port>-sasl_ssl/, its CA file and passwords in security/).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid

from local_system.airflow import BIN, DAG_ID, AirflowStack, connections
from local_system.databases import install_debian_packages
from local_system.kafka import KafkaBroker
from local_system.kafka_security import (
    COMPLIANCE_TOPIC,
    LEDGER_TOPIC,
    PRODUCER,
    TRANSACTIONAL_ID_PREFIX,
    producer_grants,
)
from local_system.service import ROOT, ServiceError, process_start_time, wait_until
from local_system.simulator import SimulatorProcess

HOME = ROOT / ".airflow"
PORTS = (
    HOME / "logs" / "ports.json"
)  # the ports (and Kafka's security) of a running system win over the environment
RUN_PID = HOME / "logs" / "run.pid"


def ports() -> dict[str, int]:
    """KAFKA_PORT, X_SIM_PORT, AIRFLOW_PORT: those of the running system, else the environment's."""
    defaults = {"KAFKA_PORT": 9092, "X_SIM_PORT": 8099, "AIRFLOW_PORT": 8080}
    if PORTS.exists():
        return {name: json.loads(PORTS.read_text())[name] for name in defaults}
    return {name: int(os.environ.get(name, default)) for name, default in defaults.items()}


def kafka_security() -> str:
    """KAFKA_SECURITY (plaintext or sasl_ssl): the running system's, else the environment's."""
    if PORTS.exists():
        return json.loads(PORTS.read_text()).get("KAFKA_SECURITY", "plaintext")
    return os.environ.get("KAFKA_SECURITY", "plaintext")


def kafka_broker() -> KafkaBroker:
    """The broker of `make run`: a secured one has its own state folder, its data formatted with its users."""
    security = kafka_security()
    port = ports()["KAFKA_PORT"]
    suffix = "" if security == "plaintext" else f"-{security}"
    return KafkaBroker(port, ROOT / ".kafka" / f"broker-{port}{suffix}", security=security)


def grant_producer(broker: KafkaBroker) -> None:
    """On a secured broker: the streams' topics (made by the admin: the producer may not create them), the
    producer's user, and the grants of docs/deployment.md, with the tools its commands run."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from include.streams import read_streams

    topics = sorted({stream.topic for stream in read_streams().streams})
    admin = AdminClient(broker.admin_config)
    for topic, future in admin.create_topics([NewTopic(topic, 3, 1) for topic in topics]).items():
        try:
            future.result(timeout=30)
        except Exception as error:  # noqa: BLE001 - a KafkaException; one that exists is fine
            if "already exists" not in str(error):
                raise ServiceError(f"could not create topic {topic!r}: {error}") from None
    broker.add_user(PRODUCER)
    for grant in producer_grants(PRODUCER, topics, TRANSACTIONAL_ID_PREFIX, LEDGER_TOPIC, COMPLIANCE_TOPIC):
        broker.tool("kafka-acls.sh", *grant)


def system() -> tuple[KafkaBroker, SimulatorProcess | None, AirflowStack]:
    """The components of `make run`: the broker, the simulator (none with X_BEARER_TOKEN), Airflow."""
    port = ports()
    broker = kafka_broker()
    token = os.environ.get("X_BEARER_TOKEN")
    simulator = None
    if not token:
        token = os.environ.get("X_SIM_BEARER_TOKEN", "sim-token")
        simulator = SimulatorProcess(port["X_SIM_PORT"], token, HOME / "logs")
    kafka = {
        **(broker.client_config(PRODUCER) if broker.security else {"bootstrap.servers": broker.bootstrap}),
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 20,
        "message.timeout.ms": 60000,
        "transactional.id": TRANSACTIONAL_ID_PREFIX,
    }
    stack = AirflowStack(
        home=HOME,
        port=port["AIRFLOW_PORT"],
        connections=connections(simulator and simulator.url, token, kafka),
        pools={"x_api": int(os.environ.get("X_API_POOL_SLOTS", "2"))},
        schedule_runs=True,
        parallelism=8,
        progress=lambda line: print(line, flush=True),
        triggerer=True,  # the compliance DAG's jobs are waited for there
    )
    return broker, simulator, stack


def start() -> None:
    from include.streams import compliance_dag_id

    broker, simulator, stack = system()
    (HOME / "logs").mkdir(parents=True, exist_ok=True)
    PORTS.write_text(json.dumps({**ports(), "KAFKA_SECURITY": kafka_security()}))
    broker.start()
    print(f"Kafka broker on {broker.bootstrap} (logs in {broker.state_dir})", flush=True)
    if broker.security:
        grant_producer(broker)
        print(f"  SASL_SSL, SCRAM-SHA-512: kafka_default is user {PRODUCER} with only its grants", flush=True)
    if simulator:
        simulator.start()
        print(f"X API simulator on {simulator.url}", flush=True)
    else:
        print("X_BEARER_TOKEN is set: twitter_default uses the real X API, no simulator", flush=True)
    print(f"Starting Airflow in {HOME} (each component's output in {HOME / 'logs'})", flush=True)
    stack.start(fresh=False)
    compliance = compliance_dag_id("twitter_default")
    stack.wait_until(lambda: stack.dag_is_parsed(compliance), 240, f"the dag-processor to parse {compliance}")
    stack.pause(False, dag_id=compliance)
    secured = f"   SASL_SSL, CA file {broker.security.ca_file}" if broker.security else ""
    x_api = (
        f"simulator on {simulator.url}   bearer token: {simulator.bearer_token} (X_SIM_BEARER_TOKEN)"
        if simulator
        else "the real X API (X_BEARER_TOKEN)"
    )
    print(
        f"""
Running. The DAG {DAG_ID} is unpaused: each minute gets a run, 30 s after it ends, from the current one on.
  {compliance} checks the stored posts with X's batch compliance every 6 hours (UTC), the last one at once.
  Airflow UI   {stack.url}   user: admin   password: {stack.admin_password}
               (the password is kept in .airflow/simple_auth_manager_passwords.json.generated)
  Coverage     {stack.url}/dags/{DAG_ID}/plugin/coverage   every minute at a glance
  Kafka        {broker.bootstrap}   topic: tweets-lambda1{secured}
  X API        {x_api}
Watch records arrive:  make tail     Stop everything:  make stop (or Ctrl-C here)""",
        flush=True,
    )


def stop(from_run: bool = False) -> None:
    """Stop what `run` started: the foreground `make run` if there is one (it stops the rest itself), then
    whatever is left, by pid files."""
    if not from_run and (run_pid := running_run()):
        os.kill(run_pid, signal.SIGTERM)
        wait_until(lambda: not running_run(), 120, f"make run (pid {run_pid}) to stop")
        print(f"make run (pid {run_pid}) stopped with everything it started.", flush=True)
    broker, _, stack = system()
    simulator = SimulatorProcess(ports()["X_SIM_PORT"], "", HOME / "logs")  # whatever X_BEARER_TOKEN is now
    stopped = stack.stop() + [service.name for service in (simulator, broker) if service.stop()]
    PORTS.unlink(missing_ok=True)
    if stopped:
        print(f"Stopped {', '.join(stopped)}.", flush=True)
    elif not from_run and not run_pid:
        print("Nothing of make run was running.", flush=True)


def running_run() -> int | None:
    """The pid of a `make run` in the foreground, if one runs."""
    try:
        pid, started = RUN_PID.read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    return int(pid) if process_start_time(int(pid)) == started else None


def run() -> int:
    """Start everything, then watch Airflow's components until Ctrl-C, `make stop`, or one exits."""
    HOME.joinpath("logs").mkdir(parents=True, exist_ok=True)
    RUN_PID.write_text(f"{os.getpid()} {process_start_time(os.getpid())}")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        start()
        stack = system()[2]
        while True:
            stack.check_components()
            time.sleep(2)
    except KeyboardInterrupt:
        print("\nStopping", flush=True)
        return 0
    except ServiceError as error:
        print(error, file=sys.stderr, flush=True)
        if "is taken" in str(error):
            print("Other ports: KAFKA_PORT=9192 X_SIM_PORT=8199 AIRFLOW_PORT=8180 make run", file=sys.stderr)
        return 1
    finally:
        stop(from_run=True)
        RUN_PID.unlink(missing_ok=True)


def tail(topic: str, start_from: str) -> None:
    """Print each record of `topic` as it arrives: partition, offset, key, value."""
    from confluent_kafka import Consumer

    broker = kafka_broker()
    print(f"Records of topic {topic} on {broker.bootstrap} as they arrive (Ctrl-C to stop)", flush=True)
    consumer = Consumer(
        {
            **broker.admin_config,
            "group.id": f"make-tail-{uuid.uuid4()}",
            "auto.offset.reset": "earliest" if start_from == "beginning" else "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        while True:
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                print(f"error: {message.error()}", file=sys.stderr)
                continue
            key = message.key().decode() if message.key() else None
            print(f"[{message.partition()}:{message.offset()}] {key} {message.value().decode()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def main(args: list[str]) -> int:
    command = args[0] if args else ""
    try:
        if command == "run":
            return run()
        if command == "stop":
            stop()
        elif command == "tail":
            tail(os.environ.get("TOPIC", "tweets-lambda1"), os.environ.get("TAIL_FROM", "latest"))
        elif command == "airflow":
            os.chdir(ROOT)
            os.execve(BIN / "airflow", ["airflow", *args[1:]], system()[2].env)
        elif args[:2] in (["kafka", "start"], ["kafka", "stop"]):
            broker = KafkaBroker(int(os.environ.get("KAFKA_PORT", "9092")))
            if args[1] == "start":
                broker.start()
                print(f"Kafka broker on {broker.bootstrap} (logs in {broker.state_dir})")
            else:
                print(
                    f"Kafka broker on {broker.bootstrap} "
                    + ("stopped" if broker.stop() else "was not running")
                )
        elif command == "debian":
            install_debian_packages(*args[1:])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ServiceError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
