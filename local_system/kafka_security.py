"""A secured Kafka of the local system, as production runs it: clients on a SASL_SSL listener with SCRAM-SHA-512,
TLS from a certificate authority made here (with `cryptography`), ACLs with StandardAuthorizer and nothing allowed
without one, and the grants that the producer's principal needs (least privilege), as kafka-acls.sh arguments."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path
from typing import Any

# The stream file's default topics of the delivery ledger and the compliance events
from include.ledger import LEDGER_TOPIC as LEDGER_TOPIC
from include.streams import COMPLIANCE_TOPIC as COMPLIANCE_TOPIC

ADMIN = "admin"  # the super user of the local system's own admin work: topics, users, ACLs
MECHANISM = "SCRAM-SHA-512"
BROKER_SUBJECT = (
    "kafka-broker"  # the brokers' certificate; their principal on the mutual-TLS controller listener
)
PRODUCER = "tweets-producer"  # the producer's user in make run, the docs and the tests
TRANSACTIONAL_ID_PREFIX = (
    "tweets-to-kafka"  # kafka_default's transactional.id in make run, the docs and tests
)


def producer_grants(
    principal: str,
    topics: list[str],
    transactional_id_prefix: str,
    ledger_topic: str,
    compliance_topic: str,
) -> list[list[str]]:
    """The ACLs the producer's principal needs and nothing more, as the arguments of one kafka-acls.sh command
    each (without --bootstrap-server and --command-config): WRITE on the streams' topics, and READ for the
    compliance DAGs to gather the posts they hold; WRITE and DESCRIBE on its transactional ids (prefixed); READ,
    WRITE and DESCRIBE on the delivery ledger's topic, and CREATE on it so that the first produce task creates
    it; WRITE, DESCRIBE and CREATE on the compliance topic likewise. Idempotent and transactional writes need
    nothing on the cluster (Kafka 3.0, KIP-679), and topics are read without a consumer group."""
    allow = ["--add", "--allow-principal", f"User:{principal}"]

    def operations(*names: str) -> list[str]:
        return [word for name in names for word in ("--operation", name)]

    grants = [[*allow, *operations("Read", "Write"), "--topic", topic] for topic in topics]
    grants.append(
        [*allow, *operations("Write", "Describe"), "--transactional-id", transactional_id_prefix]
        + ["--resource-pattern-type", "prefixed"]
    )
    grants.append([*allow, *operations("Read", "Write", "Describe", "Create"), "--topic", ledger_topic])
    grants.append([*allow, *operations("Write", "Describe", "Create"), "--topic", compliance_topic])
    return grants


def make_certificate_authority(directory: Path, name: str) -> Path:
    """A certificate authority: its certificate in `directory`/ca.pem (returned) and its key in ca.key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    certificate = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / "ca.key", _pem_key(key, serialization))
    (directory / "ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return directory / "ca.pem"


def make_broker_keystore(ca_directory: Path, keystore: Path) -> None:
    """The brokers' key and certificate, signed by the authority in `ca_directory`, for 127.0.0.1 and localhost,
    for both ends of a TLS connection: a PEM keystore (key, certificate, the authority's certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    ca_key = serialization.load_pem_private_key((ca_directory / "ca.key").read_bytes(), None)
    ca_pem = (ca_directory / "ca.pem").read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, BROKER_SUBJECT)])
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usages = [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    certificate = (
        _builder(subject, ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(
        keystore, _pem_key(key, serialization) + certificate.public_bytes(serialization.Encoding.PEM) + ca_pem
    )


def _builder(subject, issuer, public_key):
    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
    )


def _key_usage(cert_sign: bool):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=not cert_sign,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key, serialization) -> bytes:
    """The key as unencrypted PKCS#8 PEM, which Kafka's PEM keystores and OpenSSL both read."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, content: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(content)


class KafkaSecurity:
    """
    The credentials of a secured broker or cluster, made once in `directory` and kept there (mode 0700): the
    certificate authority (ca.pem, the file clients trust), the brokers' keystore, the password of the super
    user `admin` and of any user made with `password()`, and admin.properties for the Kafka command-line tools.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def admin_properties(self) -> Path:
        """The tools' --command-config: SASL_SSL as the super user, trusting the local authority."""
        return self.directory / "admin.properties"

    def prepare(self) -> None:
        """Make what is missing: the authority, the brokers' keystore, the admin's password, admin.properties."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.ca_file.exists():
            make_certificate_authority(self.directory, "tweets-to-kafka local CA")
        if not self.keystore.exists():
            make_broker_keystore(self.directory, self.keystore)
        if not self.admin_properties.exists():
            lines = [
                "security.protocol=SASL_SSL",
                f"sasl.mechanism={MECHANISM}",
                f"sasl.jaas.config={self.jaas(ADMIN)}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca_file}",
            ]
            _write_private(self.admin_properties, "".join(f"{line}\n" for line in lines).encode())

    def password(self, user: str) -> str:
        """The SCRAM password of `user`, made the first time it is asked for and kept."""
        path = self.directory / f"{user}.password"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_private(path, secrets.token_urlsafe(24).encode())
        return path.read_text()

    def jaas(self, user: str) -> str:
        return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{self.password(user)}";'

    def broker_settings(self) -> dict[str, Any]:
        """server.properties entries of a node: SASL_SSL for clients and between brokers (as `admin`), mutual
        TLS on the controller listener, StandardAuthorizer with no access without an ACL."""
        return {
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": self.jaas(ADMIN),
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": self.keystore,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.ca_file,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:CN={BROKER_SUBJECT}",
        }

    def scram_credential(self, user: str) -> str:
        """A user for `kafka-storage format --add-scram`."""
        return f"{MECHANISM}=[name={user},password={self.password(user)}]"

    def client_config(self, bootstrap: str, user: str) -> dict[str, Any]:
        """A confluent-kafka (librdkafka) config for `user`, with its kept password."""
        return {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca_file),
        }
