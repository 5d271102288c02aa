"""PostgreSQL and Redis for Airflow on a real database and CeleryExecutor, run from Debian's packages; the Debian
packages the local system needs, installed when missing."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from local_system.service import ROOT, Service, ServiceError

PACKAGES = {
    "postgresql": "initdb",
    "redis-server": "redis-server",
    "docker-compose": "docker-compose",
    "iproute2": "ip",
}


def install_debian_packages(*packages: str) -> None:
    """apt-get install those of `packages` (keys of PACKAGES) that are missing; as root only. Processes that
    need them at the same time (make test's pytest runs) wait for one install."""
    if all(_find(PACKAGES[package]) for package in packages):
        return
    (ROOT / ".artifacts").mkdir(exist_ok=True)
    with (ROOT / ".artifacts" / "debian-packages.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [package for package in packages if not _find(PACKAGES[package])]
        if not missing:
            return
        if os.geteuid() != 0:
            raise ServiceError(
                f"missing Debian packages; install them as root: apt-get install {' '.join(missing)}"
            )
        print(f"Installing Debian packages: {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        subprocess.run(install, check=True, env=env, stdout=subprocess.DEVNULL)


def _find(program: str) -> str | None:
    """A program on PATH, or in the newest /usr/lib/postgresql/*/bin (Debian keeps initdb there)."""
    found = shutil.which(program)
    if found is None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        found = next((str(d / program) for d in reversed(versions) if (d / program).exists()), None)
    return found


class Postgres(Service):
    """
    A PostgreSQL server on 127.0.0.1 with the database "airflow" owned by the role "airflow" (password
    "airflow", local only). PostgreSQL refuses to run as root: as root it runs as Debian's "postgres" user,
    with its data in a folder of the temporary directory that this user owns, since the repository may
    sit in a folder only root can read. Its log and pid stay in `state_dir`.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: end the clients' sessions

    def __init__(self, port: int = 5432, state_dir: Path | None = None):
        super().__init__(state_dir or ROOT / ".distributed" / f"postgres-{port}")
        self.port = port
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            key = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
            self.data_dir = Path(tempfile.gettempdir()) / f"tweets-to-kafka-postgres-{key}"
        else:
            self.data_dir = self.state_dir / "data"

    @property
    def dsn(self) -> str:
        """The airflow database's libpq URL (psycopg2.connect); add `+psycopg2` for SQLAlchemy."""
        return f"postgresql://airflow:airflow@127.0.0.1:{self.port}/airflow"

    @property
    def sqlalchemy_url(self) -> str:
        """The airflow database's URL for Airflow's sql_alchemy_conn."""
        return self.dsn.replace("postgresql://", "postgresql+psycopg2://")

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def command(self) -> list[str]:
        settings = ["listen_addresses=127.0.0.1", f"unix_socket_directories={self.data_dir}", "fsync=off"]
        return [
            _find("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            *sum((["-c", s] for s in settings), []),
        ]

    def prepare(self) -> None:
        """Create the database cluster the first time."""
        install_debian_packages("postgresql")
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.data_dir, self.user, self.user)
        initdb = [
            _find("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
        ]
        result = subprocess.run(
            [*initdb, "--no-locale"], capture_output=True, text=True, user=self.user, cwd=self.data_dir
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed for {self.data_dir}:\n{result.stdout}{result.stderr}")

    def ready(self) -> bool:
        """Whether it answers; then create the role and the database "airflow" once."""
        import psycopg2

        try:
            connection = psycopg2.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
            )
        except psycopg2.OperationalError:
            return False
        connection.autocommit = True  # CREATE DATABASE runs outside a transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'airflow'")
            if not cursor.fetchone():
                cursor.execute("CREATE ROLE airflow LOGIN PASSWORD 'airflow'")
                cursor.execute("CREATE DATABASE airflow OWNER airflow")
        connection.close()
        return True

    def remove_state(self) -> None:
        super().remove_state()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Redis(Service):
    """A Redis server on 127.0.0.1 that keeps nothing on disk (Celery's broker)."""

    name = "redis"

    def __init__(self, port: int = 6379, state_dir: Path | None = None):
        super().__init__(state_dir or ROOT / ".distributed" / f"redis-{port}")
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def prepare(self) -> None:
        install_debian_packages("redis-server")

    def command(self) -> list[str]:
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.state_dir),
                "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False
