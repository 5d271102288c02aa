"""Airflow's components on this machine with this repository's dags/, plugins/ and include/: `AirflowStack`.

The scheduler, dag-processor and api-server (and, when asked, a triggerer and Celery workers) run as
processes of their own, each in its own process group, with their own AIRFLOW_HOME (a SQLite database in
it, or the empty PostgreSQL database given), the connections and pools given; `make run`, the tests and
the fault and distributed suites all run Airflow this way, with the settings written here once.

    stack = AirflowStack(home, port=19080, connections={...}, pools={"x_api": 1}).start()
    runs = stack.backfill(windows, conf={"topic": topic}, timeout=300)   # once all its runs ended
    runs = stack.wait_for_runs(lambda runs: ..., timeout=300, what="a cleared run to succeed")
    stack.task_instances()   # every task try of the DAG, as the REST API returns them
    stack.kill()             # SIGKILL every component, tasks included, as a crash would
    stack.start(fresh=False) # the same home and database again
    stack.stop()
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from local_system.service import ROOT, Service, ServiceError, port_taken

DAG_ID = "tweets_to_kafka"
BIN = Path(sys.executable).parent
ADMIN = "admin"
# Extra keys Airflow does not mask by itself: an inline private key and an OAUTHBEARER config (which may hold a
# client secret). Airflow compares each name with the extra's key after turning non-word characters into "_".
SENSITIVE_CONN_NAMES = "ssl_key_pem,sasl_oauthbearer_config"
# Where a user meets the Test button's Airflow 3.3.2 limitation: the connection's description, in its row and form.
TEST_BUTTON = (
    "Test it with the Test Connection button of its row in Admin > Connections (the edit form has none); it works "
    "because the connection has port 0 (docs/operating.md, Connections)"
)


class AirflowError(ServiceError):
    """Airflow did not start, or a CLI command or REST call failed; the message holds its output."""


def project_env(home: Path, dags_folder: Path = ROOT / "dags") -> dict[str, str]:
    """The settings every Airflow process of this repository needs: its home, the DAGs, the plugins, the masking
    of every secret of a Kafka connection's extra."""
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": SENSITIVE_CONN_NAMES,
    }


def compile_package(dags_folder: Path) -> None:
    """Compile the DAGs, include/ and plugins/ to bytecode, as installing a package does, so that a task reads them
    compiled: where PYTHONDONTWRITEBYTECODE is set (as on this project's machines) Python caches nothing it compiles,
    and each task would compile them again at its start (about 10 ms per task)."""
    for folder in (dags_folder, ROOT / "include", ROOT / "plugins"):
        compileall.compile_dir(folder, quiet=2)


def connections(x_api_url: str | None, bearer_token: str, kafka_config: dict[str, Any]) -> dict[str, dict]:
    """`twitter_default` at the X API (the simulator's URL, or None for the real one) and `kafka_default`
    with the producer config `kafka_config`, as AirflowStack's `connections` takes them."""
    # port 0: the UI's Test button sends port 0 for a connection without one, and Airflow 3.3.2's API refuses to
    # test a stored connection with another port than its own ("Bad Request")
    twitter = {"conn_type": "twitter", "password": bearer_token, "port": 0, "description": TEST_BUTTON}
    if x_api_url:
        twitter["host"] = x_api_url
    kafka = {"conn_type": "kafka", "extra": kafka_config, "port": 0, "description": TEST_BUTTON}
    return {"twitter_default": twitter, "kafka_default": kafka}


class AirflowComponent(Service):
    """One of a stack's processes, e.g. `airflow scheduler` (`command`: its whole command line); the stack judges
    their health together."""

    def __init__(self, stack: AirflowStack, name: str, command: list[str]):
        super().__init__(stack.home / "logs")
        self.name = name
        self._command = command
        self._env = stack.env

    def command(self) -> list[str]:
        return self._command

    def env(self) -> dict[str, str]:
        return self._env

    def ready(self) -> bool:
        return True


@dataclass
class AirflowStack:
    """
    Airflow's components on one machine.

    :param home: AIRFLOW_HOME; each component's output and pid are in its logs/
    :param port: the api-server's port (UI, REST API, execution API); the log server of the tasks' logs takes
        port+1 (every component listens on 127.0.0.1 only)
    :param connections: connection id to its fields (conn_type, host, password, extra dict, ...),
        stored in the database through the REST API at every start
    :param pools: pool name to its number of slots
    :param schedule_runs: whether the scheduler makes a run every minute; when False only backfills,
        triggers and clears make runs, so that tests see only the runs they asked for
    :param parallelism: task instances that may run at once in the whole stack
    :param database: SQLAlchemy URL of a PostgreSQL database; None for a SQLite file in `home`
        (SQLite has one writer at a time, so Airflow refuses to create large backfills on it)
    :param logging_level: the level of every component's and task's log
    :param settings: more environment variables for every component, e.g. AIRFLOW__SECTION__KEY or
        `TWEETS_TO_KAFKA_STREAMS` (another stream file); a change takes effect at the next start
    :param celery_broker: a Redis URL: CeleryExecutor with `celery_workers` workers (needs `database`);
        None: LocalExecutor, tasks run as the scheduler's children
    :param triggerer: whether to run a triggerer too
    :param dag_id: the DAG that start() waits for and unpauses (one of the stream file's)
    :param progress: called with a line for each step of a start (make run prints them)
    """

    home: Path
    port: int
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, int] = field(default_factory=dict)
    schedule_runs: bool = False
    parallelism: int = 4
    database: str | None = None
    logging_level: str = "INFO"
    settings: dict[str, str] = field(default_factory=dict)
    celery_broker: str | None = None
    celery_workers: int = 2
    triggerer: bool = False
    dag_id: str = DAG_ID
    progress: Callable[[str], None] = lambda line: None
    processes: dict[str, AirflowComponent] = field(default_factory=dict, init=False)
    _token: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.processes = self._components()  # so that stop() finds those a previous start left running

    @property
    def url(self) -> str:
        """Base URL of the UI and the REST API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every Airflow process and CLI command of this stack."""
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW_", "AIRFLOW__"))  # the caller's own Airflow settings
        }
        database = self.database or f"sqlite:///{self.home / 'airflow.db'}?timeout=60"
        env = {
            **inherited,
            **project_env(self.home),
            # SQLite lets one writer at a time: wait for the lock rather than fail (the default is 5 s).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.celery_broker else "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.port + 1),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "local_system.log_server.hostname",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(self.schedule_runs),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": self.logging_level,
            # A task's calls to the api-server wait 60 s, not 5: on a busy machine a slow answer to the call that
            # starts a task would fail its try before it ran (Airflow's advice for high load).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        }
        if "x_api" in self.pools:  # the pool every stream's searches then share (see dags/tweets_to_kafka.py)
            env["AIRFLOW__TWEETS_TO_KAFKA__X_API_POOL"] = "x_api"
        if self.celery_broker:
            env["AIRFLOW__CELERY__BROKER_URL"] = self.celery_broker
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{self.database}"
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "2"
        return {**env, **self.settings}

    def _components(self) -> dict[str, AirflowComponent]:
        """The components to run, by name."""
        # Airflow's own log servers would listen on every interface: one of local_system's on 127.0.0.1 instead.
        commands = {
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "api-server": ["api-server"],
        }
        if self.triggerer:
            commands["triggerer"] = ["triggerer", "--skip-serve-logs"]
        for n in range(1, self.celery_workers + 1 if self.celery_broker else 1):
            commands[f"worker{n}"] = [
                "celery",
                "worker",
                "--celery-hostname",
                f"worker{n}@%h",
                "--skip-serve-logs",
            ]
        components = {
            name: AirflowComponent(self, name, [str(BIN / "airflow"), *command])
            for name, command in commands.items()
        }
        log_server = [sys.executable, "-m", "local_system.log_server"]
        components["log-server"] = AirflowComponent(self, "log-server", log_server)
        return components

    # Life cycle

    def start(self, timeout: float = 240, fresh: bool = True) -> AirflowStack:
        """Start the components, store the connections and pools and unpause the DAG; return when the DAG
        is parsed and the scheduler heartbeats. `fresh`: on an empty home (a SQLite database is new);
        otherwise on the home and database as they are, e.g. after kill()."""
        if fresh:
            shutil.rmtree(self.home, ignore_errors=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.processes = self._components()
        if not self.processes["api-server"].running:
            for port in (self.port, self.port + 1):
                if port_taken(port):
                    raise AirflowError(f"port {port} of Airflow is taken by another process; set its port")
        compile_package(Path(self.env["AIRFLOW__CORE__DAGS_FOLDER"]))
        self.progress("  migrating Airflow's database (about a minute the first time)")
        self.cli("db", "migrate", timeout=300)
        if self.database is None:
            with sqlite3.connect(
                self.home / "airflow.db"
            ) as db:  # readers and the writer stop blocking each other
                db.execute("PRAGMA journal_mode=WAL")
        try:
            self.progress(f"  starting {', '.join(self.processes)}; waiting for the api-server on {self.url}")
            for process in self.processes.values():
                process.launch()
            self._wait_until_healthy(timeout)
            self.progress(f"  storing the connections {', '.join(self.connections) or '(none)'}")
            for conn_id, fields in self.connections.items():
                self.set_connection(conn_id, **fields)
            for name, slots in self.pools.items():
                self.set_pool(name, slots)
            self.progress(f"  waiting for the dag-processor to parse {self.dag_id}")
            self.wait_until(
                lambda: self.dag_is_parsed(self.dag_id), timeout, f"the dag-processor to parse {self.dag_id}"
            )
            self.pause(False, self.dag_id)
        except BaseException:
            self.stop()
            raise
        return self

    def resume(self, timeout: float = 240, only: Collection[str] | None = None) -> AirflowStack:
        """Start the components again after kill(), as a host that comes back does: on the database as it
        is, with nothing migrated or stored; return when the scheduler heartbeats. `only`: start just these
        components (e.g. the api-server, to see the UI while the scheduler is down) and return when the api-server
        answers, if it is one of them; a later resume() starts the others."""
        components = self._components()
        self.processes = {
            name: process for name, process in components.items() if only is None or name in only
        }
        for process in self.processes.values():
            if not process.running:
                process.launch()
        if only is None:
            self._wait_until_healthy(timeout)
        elif "api-server" in only:
            self.wait_until(
                lambda: self._health() is not None, timeout, f"the api-server on {self.url} to answer"
            )
        return self

    def stop(self) -> list[str]:
        """Stop each component and its children (SIGTERM, then SIGKILL after 30 s), by process group;
        return the names of those that ran."""
        return [name for name, process in self.processes.items() if process.stop()]

    def kill(self) -> None:
        """SIGKILL every component's process group, tasks included, as a crash would."""
        for process in self.processes.values():
            process.kill()
        self._token = None  # the api-server signs its tokens with a key of its own start

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Talking to it

    def cli(self, *args: str, timeout: float = 600) -> str:
        """Run `airflow <args>` against this stack and return its stdout; raise with its output on failure. The
        bound is for a command that hangs: on a busy machine one takes minutes (`tasks clear` and `backfill
        create` went past 120 s)."""
        result = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AirflowError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result.stdout

    @property
    def admin_password(self) -> str:
        """The generated password of the user `admin` (SimpleAuthManager)."""
        return self.password(ADMIN)

    def password(self, user: str) -> str:
        """The generated password of a SimpleAuthManager user (`[core] simple_auth_manager_users`)."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return passwords[user]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API as `admin`; return the JSON answer, raise AirflowError on an error status."""
        if self._token is None:
            login = requests.post(
                f"{self.url}/auth/token",
                json={"username": ADMIN, "password": self.admin_password},
                timeout=30,
            )
            login.raise_for_status()
            self._token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        response = requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)
        if response.status_code >= 400:
            raise AirflowError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def backfill(
        self,
        windows: list[tuple[datetime, datetime]],
        conf: dict[str, Any],
        timeout: float,
        max_active_runs: int | None = None,
        dag_id: str = DAG_ID,
    ) -> list[dict[str, Any]]:
        """Backfill consecutive one-minute windows with `conf` (`airflow backfill create`), at most
        `max_active_runs` runs at once (None: Airflow's default); return their runs, oldest first, once
        all have ended. `conf` tells them apart from other runs: give each backfill its own (its own topic).
        Airflow allows one unfinished backfill per DAG: this first waits until the previous one completed."""
        self.create_backfill(dag_id, windows[0][0], windows[-1][0], conf, max_active_runs)

        def mine(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [run for run in runs if run["conf"] == conf]

        def ended(runs: list[dict[str, Any]]) -> bool:
            return len(mine(runs)) == len(windows) and all(
                run["state"] in ("success", "failed") for run in mine(runs)
            )

        runs = self.wait_for_runs(ended, timeout, f"the backfill of {len(windows)} windows to end", dag_id)
        return mine(runs)

    def create_backfill(
        self,
        dag_id: str,
        first: datetime,
        last: datetime,
        conf: dict[str, Any] | None = None,
        max_active_runs: int | None = None,
    ) -> None:
        """`airflow backfill create` of the runs whose logical dates are `first` to `last` (both included, a minute
        apart), once the DAG's previous backfill completed (Airflow allows one unfinished backfill per DAG)."""
        command = ["backfill", "create", "--dag-id", dag_id, "--from-date", first.isoformat()]
        command += ["--to-date", last.isoformat(), "--dag-run-conf", json.dumps(conf or {})]
        if max_active_runs is not None:
            command += ["--max-active-runs", str(max_active_runs)]

        def previous_completed() -> bool:
            backfills = self.listing("/api/v2/backfills", "backfills", dag_id=dag_id)
            return all(backfill["completed_at"] for backfill in backfills)

        def runs_made() -> int:  # by this backfill: an earlier one's run of a minute keeps its own conf
            return sum(
                run["run_type"] == "backfill"
                and run["conf"] == (conf or {})
                and first <= datetime.fromisoformat(run["logical_date"]) <= last
                for run in self.dag_runs(dag_id)
            )

        # SQLite has one writer at a time. A creation that read before it wrote fails at once ("database is
        # locked", whatever the busy timeout) when another process wrote meanwhile, rolled back whole; and Airflow
        # 3.3.2 drops a run whose insert meets the lock, and still succeeds (the backfill then completes empty).
        # Either way the runs are missing: create the backfill again.
        for attempt in range(3):
            self.wait_until(previous_completed, 180, f"the previous backfill of {dag_id} to complete")
            try:
                self.cli(*command)
            except AirflowError as error:
                if "database is locked" not in str(error) or attempt == 2:
                    raise
                continue
            if runs_made() > (last - first) // timedelta(minutes=1):
                return
        raise AirflowError(f"airflow backfill create {dag_id} [{first}, {last}] made no run three times")

    def trigger(
        self, logical_date: datetime | None, conf: dict[str, Any], dag_id: str = DAG_ID
    ) -> dict[str, Any]:
        """Trigger a manual run, as the UI's Trigger button does (`logical_date` None: without one); return it."""
        body = {"logical_date": logical_date.isoformat() if logical_date else None, "conf": conf}
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def kill_task(self, ti_id: str, worker: bool = True) -> list[int]:
        """SIGKILL a running task instance with the LocalExecutor worker that supervises it, as a lost worker:
        Airflow learns of it only when its heartbeat times out; or (`worker` False) the task's process alone,
        as the kernel's OOM killer would: its worker reports the try failed at once. Return the pids killed."""
        killed = []
        for entry in Path("/proc").iterdir():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue
            # titles: the worker's `airflow worker -- LocalExecutor: <ti id>`, the task's `airflow worker -- <ti id>`
            if entry.name.isdigit() and ti_id in title and (worker or "LocalExecutor" not in title):
                with suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
        return killed

    def set_pool(self, name: str, slots: int) -> None:
        """Create a pool, or set its slots."""
        try:
            self.api("POST", "/api/v2/pools", json={"name": name, "slots": slots})
        except AirflowError as error:
            if "answered 409" not in str(error):
                raise
            body = {"name": name, "slots": slots, "include_deferred": False}
            self.api("PATCH", f"/api/v2/pools/{name}", params={"update_mask": "slots"}, json=body)

    def set_connection(self, conn_id: str, extra: dict | None = None, **fields: Any) -> None:
        """Create or replace a connection in the database."""
        body = {"connection_id": conn_id, **fields, "extra": json.dumps(extra) if extra is not None else None}
        try:
            self.api("DELETE", f"/api/v2/connections/{conn_id}")
        except AirflowError as error:
            if "answered 404" not in str(error):
                raise
        self.api("POST", "/api/v2/connections", json=body)

    @contextmanager
    def kafka_settings(self, settings: dict[str, Any], conn_id: str = "kafka_default") -> Iterator[None]:
        """Connection `conn_id` as the stack defines it, with these librdkafka settings added to its extra
        meanwhile; then as defined again (its port and description too)."""
        defined = self.connections[conn_id]
        self.set_connection(conn_id, **{**defined, "extra": {**defined["extra"], **settings}})
        try:
            yield
        finally:
            self.set_connection(conn_id, **defined)

    def listing(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a REST API list, page by page (the API returns at most 100 at a time)."""
        items: list[dict[str, Any]] = []
        while True:
            answer = self.api("GET", path, params={**params, "limit": 100, "offset": len(items)})
            items += answer[key]
            if not answer[key] or len(items) >= answer["total_entries"]:
                return items

    def pause(self, paused: bool, dag_id: str = DAG_ID) -> None:
        """Pause or unpause a DAG, as the UI's toggle does."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        """Every run of a DAG, oldest logical date first."""
        return self.listing(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs", order_by="logical_date")

    def task_instances(self, run_id: str = "~", dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        """The latest try of every task instance of a DAG (of one run, or of all with "~")."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.listing(path, "task_instances", order_by="id")

    def task_tries(self, run_id: str, task_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        """Every try of one task instance, first try first."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return self.api("GET", path)["task_instances"]

    def task_log(self, run_id: str, task_id: str, try_number: int, dag_id: str = DAG_ID) -> str:
        """The log of one task try, one event per line."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.api("GET", path, params={"full_content": True})["content"]
        return "\n".join(json.dumps(event) if isinstance(event, dict) else str(event) for event in content)

    def wait_for_runs(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str, dag_id: str = DAG_ID
    ) -> list[dict[str, Any]]:
        """Poll a DAG's runs until `done(runs)`; return them, or fail naming `what` and the runs' states."""
        runs: list[dict[str, Any]] = []

        def check() -> bool:
            nonlocal runs
            runs = self.dag_runs(dag_id)
            return done(runs)

        self.wait_until(check, timeout, what, lambda: {run["dag_run_id"]: run["state"] for run in runs})
        return runs

    def wait_until(
        self, condition: Callable[[], Any], timeout: float, what: str, status: Callable[[], Any] = lambda: ""
    ) -> Any:
        """Poll `condition` every 2 s until it returns a true value (returned); raise AirflowError naming
        `what` (and `status()`) after `timeout`, or at once when a component exited. A poll that the api-server
        does not answer in time (busy, or waiting for SQLite's lock) counts as not yet."""
        deadline = time.monotonic() + timeout
        while not (value := self._poll(condition)):
            self.check_components()
            if time.monotonic() > deadline:
                raise AirflowError(f"timed out after {timeout:.0f} s waiting for {what}; {status()}")
            time.sleep(2)
        return value

    @staticmethod
    def _poll(condition: Callable[[], Any]) -> Any:
        try:
            return condition()
        except requests.Timeout:
            return None

    def component_log(self, component: str, lines: int = 40) -> str:
        """The last lines of a component's output."""
        return AirflowComponent(self, component, []).log_tail(lines)

    def check_components(self) -> None:
        """Raise AirflowError, with the end of its log, when a component has exited."""
        for component, process in self.processes.items():
            if not process.running:
                raise AirflowError(
                    f"airflow {component} exited; its last lines:\n" + self.component_log(component)
                )

    # Inside

    def _health(self) -> dict[str, Any] | None:
        """The api-server's health report, or None while it does not answer."""
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return None

    def _wait_until_healthy(self, timeout: float) -> None:
        def healthy() -> bool:
            health = self._health() or {}
            return all(
                health.get(part, {}).get("status") == "healthy" for part in ("scheduler", "dag_processor")
            )

        self.wait_until(healthy, timeout, f"the api-server on {self.url} to report a healthy scheduler")

    def dag_is_parsed(self, dag_id: str) -> bool:
        """Whether the dag-processor has stored the DAG."""
        try:
            self.api("GET", f"/api/v2/dags/{dag_id}")
        except AirflowError as error:
            if "answered 404" in str(error):
                return False
            raise
        return True
