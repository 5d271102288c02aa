"""The DAG on a Kafka secured as production runs it: SASL_SSL with SCRAM-SHA-512, TLS from the local system's own
certificate authority, and ACLs with nothing allowed without one. The producer's principal gets exactly the
grants of docs/deployment.md, made by running the docs' own kafka-configs.sh and kafka-acls.sh commands, and
kafka_default is the docs' connection extra; records are read back through SASL_SSL."""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from string import Template

import pytest

from include.records import to_record
from local_system import AirflowStack, KafkaBroker, connections
from local_system.kafka import run_tool
from local_system.kafka_security import (
    COMPLIANCE_TOPIC,
    LEDGER_TOPIC,
    PRODUCER,
    TRANSACTIONAL_ID_PREFIX,
    make_certificate_authority,
    producer_grants,
)
from tests.helpers import (
    DAG_QUERY,
    ROOT,
    create_topic,
    past_window,
    read_topic,
    run_compliance,
    run_dag,
    set_connection,
)

# Each takes the next port too: the broker's controller, Airflow's log server.
SECURED_KAFKA_PORT = int(os.environ.get("TEST_SECURED_KAFKA_PORT", "19094"))
SECURED_AIRFLOW_PORT = int(os.environ.get("TEST_SECURED_AIRFLOW_PORT", "19086"))
DEPLOYMENT = ROOT / "docs" / "deployment.md"
TOPIC = "tweets-lambda1"  # the docs' (and the seed stream's) topic


def documented_commands() -> list[list[str]]:
    """The kafka-configs.sh and kafka-acls.sh commands of docs/deployment.md, each as its words."""
    text = DEPLOYMENT.read_text().replace("\\\n", " ")
    return [
        shlex.split(line)
        for line in text.splitlines()
        if line.startswith(("kafka-configs.sh", "kafka-acls.sh"))
    ]


def documented_extra() -> dict:
    """The extra of the docs' production kafka_default."""
    connection = re.search(r"AIRFLOW_CONN_KAFKA_DEFAULT='(.*?)'", DEPLOYMENT.read_text(), re.DOTALL).group(1)
    return json.loads(connection)["extra"]


def without_connection(words: list[str]) -> list[str]:
    """A command's arguments without its script, --bootstrap-server and --command-config."""
    args = words[1:]
    for flag in ("--bootstrap-server", "--command-config"):
        del args[args.index(flag) : args.index(flag) + 2]
    return args


@pytest.fixture(scope="module")
def secured_kafka():
    """A fresh secured broker for the module, with the topic and the producer's user and grants made by the
    docs' commands as they are written (with the broker's address and its admin's settings)."""
    broker = KafkaBroker(
        SECURED_KAFKA_PORT,
        ROOT / ".kafka" / f"test-secured-broker-{SECURED_KAFKA_PORT}",
        auto_create_topics=False,
        security="sasl_ssl",
    )
    broker.remove_state()
    with broker:
        create_topic(broker.bootstrap, TOPIC, client_config=broker.admin_config)
        variables = {
            "KAFKA_BOOTSTRAP": broker.bootstrap,
            "PRODUCER_PASSWORD": broker.client_config(PRODUCER)["sasl.password"],
        }
        for words in documented_commands():
            words = [Template(word).substitute(variables) for word in words]
            words[words.index("--command-config") + 1] = str(broker.security.admin_properties)
            run_tool(words[0], *words[1:])
        yield broker


@pytest.fixture
def producer_connection(monkeypatch, simulator, secured_kafka):
    """twitter_default at the simulator and kafka_default the docs' extra for the secured broker (failures within
    5 s); returns that extra."""
    set_connection(
        monkeypatch,
        "twitter_default",
        conn_type="twitter",
        host=simulator.url,
        password=simulator.bearer_token,
    )
    extra = {**documented_extra(), **secured_kafka.client_config(PRODUCER), "message.timeout.ms": 5000}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=extra)
    return extra


def user_with_grants(broker: KafkaBroker, user: str, grants: list[list[str]]) -> dict:
    """A SCRAM user with these kafka-acls.sh grants (made with the admin API: quicker than a JVM per command);
    returns its client config."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(broker.admin_config)
    config = broker.client_config(user)
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), config["sasl.password"].encode()
    )
    admin.alter_user_scram_credentials([upsert])[user].result(timeout=30)
    bindings = []
    for grant in grants:
        words = dict(zip(grant, grant[1:], strict=False))  # each flag and the word after it
        kind, name = (
            (ResourceType.TOPIC, words["--topic"])
            if "--topic" in words
            else (ResourceType.TRANSACTIONAL_ID, words["--transactional-id"])
        )
        pattern = ResourcePatternType[words.get("--resource-pattern-type", "literal").upper()]
        operations = [
            AclOperation[op.upper()]
            for flag, op in zip(grant, grant[1:], strict=False)
            if flag == "--operation"
        ]
        bindings += [
            AclBinding(
                kind, name, pattern, words["--allow-principal"], "*", operation, AclPermissionType.ALLOW
            )
            for operation in operations
        ]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)
    return config


def task_tries(task_id: str) -> int:
    """The try number of the latest run's `task_id`."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        instance = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.task_id == task_id)
            .order_by(TaskInstance.start_date.desc())
        ).first()
        return instance.try_number


def xcom_values() -> str:
    """Every XCom value stored, as one text."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return json.dumps([row.value for row in session.scalars(select(XComModel))], default=str)


def test_the_docs_grants_are_least_privilege_and_what_make_run_grants():
    commands = documented_commands()
    grants = [without_connection(words) for words in commands if words[0] == "kafka-acls.sh"]
    assert grants == producer_grants(
        PRODUCER, [TOPIC], TRANSACTIONAL_ID_PREFIX, LEDGER_TOPIC, COMPLIANCE_TOPIC
    )
    assert [words[0] for words in commands] == ["kafka-configs.sh"] + ["kafka-acls.sh"] * len(grants)
    extra = documented_extra()
    assert extra["transactional.id"] == TRANSACTIONAL_ID_PREFIX, "one transaction per window"
    assert int(extra["message.timeout.ms"]) <= int(extra.get("transaction.timeout.ms", 60000))


def test_the_scheduler_delivers_through_sasl_ssl_with_only_the_documented_grants_and_masks_every_secret(
    simulator, secured_kafka
):
    """Airflow as the local system runs it (its scheduler, every log at DEBUG), with the docs' connection plus a
    client key inline (ssl.key.pem) and an OAUTHBEARER config: the window reaches the topic, read back through
    SASL_SSL, though the producer's principal has the docs' grants and no other; no task log holds a value of a
    secret-bearing key, and the REST API (the UI's connection form) shows each as ***."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    keystore = secured_kafka.security.keystore.read_text()
    key, certificate = re.findall(r"-----BEGIN [^-]+-----.*?-----END [^-]+-----\n", keystore, re.DOTALL)[:2]
    extra = {
        **documented_extra(),
        **secured_kafka.client_config(PRODUCER),
        "ssl.key.pem": key,
        "ssl.certificate.pem": certificate,  # a client certificate, which the broker does not ask for
        "sasl.oauthbearer.config": f"scope=tweets clientSecret={uuid.uuid4().hex}",  # unused with SCRAM
    }
    start, end = past_window(88)
    stack = AirflowStack(
        home=ROOT / ".artifacts" / f"airflow-secured-{SECURED_AIRFLOW_PORT}",
        port=SECURED_AIRFLOW_PORT,
        connections=connections(simulator.url, simulator.bearer_token, extra),
        logging_level="DEBUG",
    )

    with stack:
        runs = stack.backfill([(start, end)], conf={"topic": TOPIC}, timeout=300)
        logs = "\n".join(
            stack.task_log(runs[0]["dag_run_id"], task, 1) for task in ("fetch_tweets", "produce_tweets")
        )
        shown = json.loads(stack.api("GET", "/api/v2/connections/kafka_default")["extra"])

    assert [run["state"] for run in runs] == ["success"], logs[-3000:]
    expected = {
        t["id"].encode(): to_record(t, t["author"]) for t in simulator.tweets_between(start, end, DAG_QUERY)
    }
    records = read_topic(TOPIC, secured_kafka.bootstrap, client_config=secured_kafka.admin_config)
    assert {key: json.loads(value) for key, value in records} == expected and len(records) == len(expected)
    admin = AdminClient(secured_kafka.admin_config)
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        f"User:{PRODUCER}",
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    granted = {
        (acl.restype.name, acl.name, acl.resource_pattern_type.name, acl.operation.name)
        for acl in admin.describe_acls(everything).result(timeout=30)
    }
    assert granted == {
        ("TOPIC", TOPIC, "LITERAL", "READ"),
        ("TOPIC", TOPIC, "LITERAL", "WRITE"),
        ("TRANSACTIONAL_ID", TRANSACTIONAL_ID_PREFIX, "PREFIXED", "WRITE"),
        ("TRANSACTIONAL_ID", TRANSACTIONAL_ID_PREFIX, "PREFIXED", "DESCRIBE"),
        *{
            ("TOPIC", LEDGER_TOPIC, "LITERAL", operation)
            for operation in ("READ", "WRITE", "DESCRIBE", "CREATE")
        },
        *{("TOPIC", COMPLIANCE_TOPIC, "LITERAL", operation) for operation in ("WRITE", "DESCRIBE", "CREATE")},
    }, "the producer's principal has the docs' grants and no other"
    assert '"level": "debug"' in logs or "[debug" in logs, "the tasks logged at DEBUG level"
    for secret in ("ssl.key.pem", "sasl.oauthbearer.config", "sasl.password"):
        assert shown[secret] == "***", secret
        values = [extra[secret], *extra[secret].splitlines()[1:-1]]  # a key's lines, each alone too
        assert not [value for value in values if value in logs], f"{secret} appears in the task logs"


def test_the_compliance_dag_needs_only_the_documented_grants(simulator, secured_kafka, producer_connection):
    """Expected: with the docs' grants alone, the compliance DAG reads the stream's topic to gather its posts
    (READ), creates the compliance topic (CREATE) and writes a tombstone and an event in one transaction; read
    back through SASL_SSL."""
    start, end = past_window(78)
    assert run_dag(start) == {"fetch_tweets": "success", "produce_tweets": "success"}
    deleted = simulator.tweets_between(start, end, DAG_QUERY)[1]["id"]
    simulator.add_compliance_event("delete", deleted)
    simulator.compliance_processing = 0.2

    assert run_compliance() == "success"

    def read(topic: str) -> list[tuple[bytes, bytes]]:
        return read_topic(topic, secured_kafka.bootstrap, client_config=secured_kafka.admin_config)

    assert [key.decode() for key, value in read(TOPIC) if value is None] == [deleted]
    events = read(COMPLIANCE_TOPIC)
    assert [(key.decode(), json.loads(value)["tombstoned"]) for key, value in events] == [(deleted, [TOPIC])]


def failure_lines(logged: str) -> list[str]:
    """The lines of a run's output that name kafka_default: the produce task's error."""
    return [line for line in logged.splitlines() if "connection 'kafka_default'" in line]


# The two tests below and the missing-grant ones expect include/kafka_delivery.py to put librdkafka's reason (from
# its error callback) into the task's error, which names the connection: librdkafka's metadata request only says
# "Local: Broker transport failure".


def test_a_wrong_password_fails_produce_naming_the_authentication_failure_without_the_password(
    simulator, secured_kafka, producer_connection, monkeypatch, capfd, caplog
):
    wrong = f"wrong-password-{uuid.uuid4().hex}"
    extra = {**producer_connection, "sasl.password": wrong}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=extra)
    start, _ = past_window(86)

    states = run_dag(start, retries=0)

    assert states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    logged = "".join(capfd.readouterr()) + caplog.text
    reason = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    assert [line for line in failure_lines(logged) if reason in line], failure_lines(logged)
    assert wrong not in logged and wrong not in xcom_values()


def test_a_broker_certificate_the_configured_authority_did_not_sign_fails_produce_naming_it(
    simulator, secured_kafka, producer_connection, monkeypatch, tmp_path, capfd, caplog
):
    other_ca = make_certificate_authority(tmp_path, "another CA")
    extra = {**producer_connection, "ssl.ca.location": str(other_ca)}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=extra)
    start, _ = past_window(84)

    states = run_dag(start, retries=0)

    assert states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    logged = "".join(capfd.readouterr()) + caplog.text
    assert [line for line in failure_lines(logged) if "certificate verify failed" in line], failure_lines(
        logged
    )
    assert producer_connection["sasl.password"] not in logged


@pytest.mark.parametrize(
    ("missing", "resource"),
    [("topic", TOPIC), ("ledger", LEDGER_TOPIC)],
    ids=["stream-topic", "ledger-topic"],
)
def test_a_missing_grant_fails_produce_at_its_first_try_naming_the_connection_resource_and_grant(
    simulator, secured_kafka, monkeypatch, capfd, caplog, missing, resource
):
    user = f"no-{missing}-grant"
    grants = producer_grants(user, [TOPIC], TRANSACTIONAL_ID_PREFIX, LEDGER_TOPIC, COMPLIANCE_TOPIC)
    kept = [grant for grant in grants if resource not in grant]
    assert len(kept) == len(grants) - 1
    set_connection(
        monkeypatch,
        "twitter_default",
        conn_type="twitter",
        host=simulator.url,
        password=simulator.bearer_token,
    )
    extra = {**documented_extra(), **user_with_grants(secured_kafka, user, kept), "message.timeout.ms": 5000}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=extra)
    start, _ = past_window(82 if missing == "topic" else 80)

    states = run_dag(start, retries=1)

    assert states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    assert task_tries("produce_tweets") == 1, "not retried: it fails until someone grants the ACL"
    logged = "".join(capfd.readouterr()) + caplog.text
    grant = f"kafka-acls.sh --add --allow-principal User:{user} "
    assert [
        line
        for line in failure_lines(logged)
        if f"'{resource}'" in line and grant in line and f"--topic {resource}" in line
    ], failure_lines(logged)
