"""Airflow with a real scheduler, for tests: `AirflowStack` and its pytest fixtures.

`AirflowStack` runs Airflow's scheduler (LocalExecutor), dag-processor and api-server as three
processes with their own AIRFLOW_HOME (a fresh SQLite database, or the empty PostgreSQL database it is
given), this repository's dags/, plugins/ and include/, and the connections and pools it is given; it
stops them by process group.

    stack = AirflowStack(home, port=19080, connections={...}, pools={"x_api": 1}).start()
    runs = stack.backfill(windows, conf={"topic": topic}, timeout=300)   # once all its runs ended
    runs = stack.wait_for_runs(lambda runs: ..., timeout=300, what="a cleared run to succeed")
    stack.task_instances()   # every task try of the DAG, as the REST API returns them
    stack.stop()

Fixtures (imported by tests/conftest.py, so any test can ask for them):
- `x_api`: the X API simulator over HTTP for the whole session (port `TEST_X_SIM_PORT`, default a
  free one); faults, rates and the request log are reset before each test that uses it.
- `airflow_stack`: one `AirflowStack` for the session on `TEST_AIRFLOW_PORT` (default 19080; the
  worker log server takes the next port), with `twitter_default` at `x_api`, `kafka_default` at
  the test broker, the `x_api` pool of one slot, the DAG unpaused and the scheduler's own schedule
  off (only backfills, triggers and clears make runs). Its home, with each component's log, is
  kept in `.artifacts/airflow-system-<port>/` for reading after a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import KAFKA_CONFIG, ROOT

DAG_ID = "tweets_to_kafka"
BIN = Path(sys.executable).parent
TEST_AIRFLOW_PORT = int(os.environ.get("TEST_AIRFLOW_PORT", "19080"))
TEST_X_SIM_PORT = int(os.environ.get("TEST_X_SIM_PORT", "0"))
TEST_X_BEARER_TOKEN = "system-test-bearer-token-0123456789"
COMPONENTS = ("scheduler", "dag-processor", "api-server")
ADMIN = "admin"


class AirflowError(RuntimeError):
    """Airflow did not start, or a CLI command or REST call failed; the message holds its output."""


@dataclass
class AirflowStack:
    """
    Airflow's scheduler, dag-processor and api-server on one machine, for tests.

    :param home: AIRFLOW_HOME; emptied by start()
    :param port: the api-server's port (UI, REST API, execution API); the worker log server takes port+1
    :param connections: connection id to its fields (conn_type, host, password, extra dict, ...),
        stored in the database through the REST API
    :param pools: pool name to its number of slots
    :param schedule_runs: whether the scheduler makes a run every minute; when False only backfills,
        triggers and clears make runs, so that tests see only the runs they asked for
    :param parallelism: task instances that may run at once in the whole stack
    :param database: SQLAlchemy URL of an empty PostgreSQL database; None for a SQLite file in `home`
        (SQLite has one writer at a time, so Airflow refuses to create large backfills on it)
    :param logging_level: the level of every component's and task's log
    :param settings: more environment variables of every component, e.g. Airflow settings
        (`AIRFLOW__TWEETS_TO_KAFKA__SEARCH_HORIZON_MINUTES`) or `TWEETS_TO_KAFKA_STREAMS` (another stream
        file); a change takes effect at the next start()
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
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    _token: str | None = field(default=None, init=False)

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
            if not name.startswith(("AIRFLOW_", "AIRFLOW__"))  # the test process's own Airflow settings
        }
        return {
            **inherited,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "AIRFLOW_HOME": str(self.home),
            # SQLite lets one writer at a time: wait for the lock rather than fail (the default is 5 s).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database
            or f"sqlite:///{self.home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.port + 1),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(self.schedule_runs),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": self.logging_level,
            # The streams' searches share the x_api pool where the stack has one, as make run's do.
            **({"AIRFLOW__TWEETS_TO_KAFKA__X_API_POOL": "x_api"} if "x_api" in self.pools else {}),
            **self.settings,
        }

    # Life cycle

    def start(self, timeout: float = 240, fresh: bool = True) -> AirflowStack:
        """Create the database, start the three components, then store the connections and pools and
        unpause the DAG; return when the DAG is parsed and the scheduler heartbeats. With `fresh=False`,
        start the components again on the home and database they had (e.g. after kill())."""
        if fresh:
            shutil.rmtree(self.home, ignore_errors=True)
            (self.home / "logs").mkdir(parents=True)
            self.cli("db", "migrate", timeout=300)
            if self.database is None:
                with sqlite3.connect(
                    self.home / "airflow.db"
                ) as db:  # readers and the writer stop blocking each other
                    db.execute("PRAGMA journal_mode=WAL")
        try:
            for component in COMPONENTS:
                log = (self.home / "logs" / f"{component}.log").open("ab")
                self.processes[component] = subprocess.Popen(
                    [str(BIN / "airflow"), component],
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() ends its children too
                )
            self._wait_until_healthy(timeout)
            if not fresh:
                return self
            for conn_id, fields in self.connections.items():
                self.set_connection(conn_id, **fields)
            for name, slots in self.pools.items():
                self.api("POST", "/api/v2/pools", json={"name": name, "slots": slots})
            self.wait_until(
                lambda: self.dag_is_parsed(DAG_ID), timeout, f"the dag-processor to parse {DAG_ID}"
            )
            self.pause(False)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop each component and its children (SIGTERM, then SIGKILL after 30 s), by process group."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def kill(self) -> None:
        """Crash the stack: SIGKILL every component's process group, the tasks it runs included."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.processes.clear()
        self._token = None

    def pause(self, paused: bool, dag_id: str = DAG_ID) -> None:
        """Pause or unpause a DAG, as the UI's toggle does."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Talking to it

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run `airflow <args>` against this stack and return its stdout; raise with its output on failure."""
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
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return passwords[ADMIN]

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
    ) -> list[dict[str, Any]]:
        """Backfill consecutive one-minute windows with `conf` (`airflow backfill create`), at most
        `max_active_runs` runs at once (None: Airflow's default); return their runs, oldest first, once
        all have ended. `conf` tells them apart from other runs: give each backfill its own (its own topic).
        Airflow allows one unfinished backfill per DAG: this first waits until the previous one completed."""

        def previous_completed() -> bool:
            backfills = self.listing("/api/v2/backfills", "backfills", dag_id=DAG_ID)
            return all(backfill["completed_at"] for backfill in backfills)

        self.wait_until(previous_completed, 180, f"the previous backfill of {DAG_ID} to complete")
        # A run's logical date is its window's start; both ends of the range are inclusive.
        command = ["backfill", "create", "--dag-id", DAG_ID, "--dag-run-conf", json.dumps(conf)]
        command += ["--from-date", windows[0][0].isoformat(), "--to-date", windows[-1][0].isoformat()]
        if max_active_runs is not None:
            command += ["--max-active-runs", str(max_active_runs)]
        for attempt in range(3):
            try:
                self.cli(*command)
                break
            except AirflowError as error:
                # SQLite has one writer at a time; the creation is one transaction, rolled back when the
                # scheduler holds the lock past the timeout, so trying again is safe.
                if "database is locked" not in str(error) or attempt == 2:
                    raise
                time.sleep(5)

        def mine(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [run for run in runs if run["conf"] == conf]

        def ended(runs: list[dict[str, Any]]) -> bool:
            return len(mine(runs)) == len(windows) and all(
                run["state"] in ("success", "failed") for run in mine(runs)
            )

        return mine(self.wait_for_runs(ended, timeout, f"the backfill of {len(windows)} windows to end"))

    def set_connection(self, conn_id: str, extra: dict | None = None, **fields: Any) -> None:
        """Create or replace a connection in the database."""
        body = {"connection_id": conn_id, **fields, "extra": json.dumps(extra) if extra is not None else None}
        try:
            self.api("DELETE", f"/api/v2/connections/{conn_id}")
        except AirflowError as error:
            if "answered 404" not in str(error):
                raise
        self.api("POST", "/api/v2/connections", json=body)

    def listing(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a REST API list, page by page (the API returns at most 100 at a time)."""
        items: list[dict[str, Any]] = []
        while True:
            answer = self.api("GET", path, params={**params, "limit": 100, "offset": len(items)})
            items += answer[key]
            if not answer[key] or len(items) >= answer["total_entries"]:
                return items

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        """Every run of a DAG, oldest logical date first."""
        return self.listing(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs", order_by="logical_date")

    def task_instances(self, run_id: str = "~") -> list[dict[str, Any]]:
        """The latest try of every task instance of the DAG (of one run, or of all with "~")."""
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
        return self.listing(path, "task_instances", order_by="id")

    def task_tries(self, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task instance, first try first."""
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return self.api("GET", path)["task_instances"]

    def task_log(self, run_id: str, task_id: str, try_number: int) -> str:
        """The log of one task try, one event per line."""
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.api("GET", path, params={"full_content": True})["content"]
        return "\n".join(json.dumps(event) if isinstance(event, dict) else str(event) for event in content)

    def wait_for_runs(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
    ) -> list[dict[str, Any]]:
        """Poll the DAG's runs until `done(runs)`; return them, or fail naming `what` and the runs' states."""
        runs: list[dict[str, Any]] = []

        def check() -> bool:
            nonlocal runs
            runs = self.dag_runs()
            return done(runs)

        self.wait_until(check, timeout, what, lambda: {run["run_id"]: run["state"] for run in runs})
        return runs

    def wait_until(
        self, condition: Callable[[], bool], timeout: float, what: str, status: Callable[[], Any] = lambda: ""
    ) -> None:
        """Poll `condition` every 2 s; raise AirflowError naming `what` (and `status()`) after `timeout`."""
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_components()
            if time.monotonic() > deadline:
                raise AirflowError(f"timed out after {timeout:.0f} s waiting for {what}; {status()}")
            time.sleep(2)

    def component_log(self, component: str, lines: int = 40) -> str:
        """The last lines of a component's output."""
        path = self.home / "logs" / f"{component}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # Inside

    def _check_components(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise AirflowError(
                    f"airflow {component} exited {process.returncode}; its last lines:\n"
                    + self.component_log(component)
                )

    def _wait_until_healthy(self, timeout: float) -> None:
        def healthy() -> bool:
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
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


# Fixtures


@pytest.fixture(scope="session")
def x_api_server():
    """The X API simulator for the whole session (the stack's twitter_default points at it)."""
    from x_api_simulator import XApiSimulator

    with XApiSimulator(port=TEST_X_SIM_PORT, bearer_token=TEST_X_BEARER_TOKEN) as simulator:
        yield simulator


@pytest.fixture
def x_api(x_api_server):
    """The session's X API simulator, with no faults, an empty request log and default rates and limits."""
    from x_api_simulator import XApiSimulator

    defaults = XApiSimulator()
    settings = (
        "rate_per_minute",
        "tier",
        "rate_limit",
        "rate_limit_window",
        "searchable_after",
        "search_horizon",
        "edit_rate",
        "empty_page_rate",
        "usage_cap",
        "credits",
    )
    for name in settings:
        setattr(x_api_server, name, getattr(defaults, name))
    x_api_server.clear_faults()
    x_api_server.clear_requests()
    yield x_api_server
    x_api_server.clear_faults()


@pytest.fixture(scope="session")
def airflow_stack(kafka, x_api_server):
    """Airflow with a real scheduler against the test broker and the simulator, for the whole session."""
    stack = AirflowStack(
        home=ROOT / ".artifacts" / f"airflow-system-{TEST_AIRFLOW_PORT}",
        port=TEST_AIRFLOW_PORT,
        connections={
            "twitter_default": {
                "conn_type": "twitter",
                "host": x_api_server.url,
                "password": x_api_server.bearer_token,
                "port": 0,  # the UI's Test button sends port 0 for a connection without one (Airflow 3.3.2)
            },
            "kafka_default": {"conn_type": "kafka", "extra": KAFKA_CONFIG},
        },
        pools={"x_api": 1},
    )
    with stack:
        yield stack
