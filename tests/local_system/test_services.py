"""The local system's components: judged by their process, not by their command line; stopped with their
whole process group; a start that fails shows the component's own log; PostgreSQL starts from a
repository in a folder only its owner can read."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from local_system import Postgres, Service, ServiceError
from local_system.service import session_members, wait_until


class Sleeper(Service):
    """A component that, like `nohup java ...`, runs under its launcher's command line for a while, then
    execs its own, and starts a child that makes a process group of its own (as Airflow's task runners do)."""

    name = "sleeper"
    start_timeout = 20

    def command(self) -> list[str]:
        child = f"{sys.executable} -c 'import os, time; os.setpgid(0, 0); time.sleep(300)'"
        return ["sh", "-c", f'sleep 1; exec sh -c "{child} & echo serving; wait"']

    def ready(self) -> bool:
        return "serving" in self.log.read_text()


class Crasher(Service):
    name = "crasher"

    def command(self) -> list[str]:
        return ["sh", "-c", "echo 'bad config line 3'; exit 3"]

    def ready(self) -> bool:
        return False


def test_a_component_is_running_while_its_command_line_changes_and_stops_with_its_children(tmp_path):
    """Expected: right after the fork the new process's command line is still the launcher's; it is judged
    running by its pid and start time, by this object and by another that reads the pid file (as `make
    stop` does); stop() ends it and its child, although the child left its process group."""
    sleeper = Sleeper(tmp_path)
    sleeper.launch()
    pid = sleeper.pid
    cmdline = Path(f"/proc/{pid}/cmdline")
    wait_until(cmdline.read_text, 5, "the launcher to exec (its command line is empty until then)", 0.01)
    assert "sleep 1;" in cmdline.read_text(), "still the launcher's command line"
    assert sleeper.running and Sleeper(tmp_path).running, "judged running before its exec"
    sleeper.wait_until_ready()
    assert "sleep 1;" not in cmdline.read_text(), "its command line changed"
    assert sleeper.pid == pid
    wait_until(lambda: len(session_members(pid)) == 2, 10, "the child to start")

    other = Sleeper(tmp_path)  # no handle on the process: only the pid file
    assert other.pid == pid
    assert other.stop()
    assert session_members(pid) == [], "the child in a process group of its own too"
    assert not sleeper.running and not other.running
    assert not (tmp_path / "sleeper.pid").exists()


def test_a_component_that_exits_during_start_up_fails_with_its_own_log(tmp_path):
    (tmp_path / "crasher.log").write_text("the log of a previous run\n")
    with pytest.raises(ServiceError) as raised:
        Crasher(tmp_path).start()
    assert "the crasher exited during start-up" in str(raised.value)
    assert "bad config line 3" in str(raised.value)
    assert "previous run" not in str(raised.value)


def test_a_pid_file_of_a_process_that_is_gone_means_not_running(tmp_path):
    (tmp_path / "sleeper.pid").write_text(f"{os.getpid()} 1\n")  # a live pid, but another start time
    assert not Sleeper(tmp_path).running
    assert not Sleeper(tmp_path).stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_postgres_starts_from_a_folder_only_its_owner_can_read():
    """Expected: a repository cloned under a private folder (mode 700, as `mktemp -d` makes it) runs
    PostgreSQL, also as root, where it runs as the postgres user, which cannot enter that folder."""
    import psycopg2

    private = Path(tempfile.mkdtemp(prefix="private-clone-"))
    assert private.stat().st_mode & 0o077 == 0
    postgres = Postgres(free_port(), private / "p" / ".artifacts" / "postgres")
    try:
        with postgres, psycopg2.connect(postgres.dsn) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE proof (id int)")
            cursor.execute("INSERT INTO proof VALUES (1)")
            cursor.execute("SELECT id FROM proof")
            assert cursor.fetchall() == [(1,)]
        connection.close()
        assert "database system is ready to accept connections" in postgres.log.read_text()
    finally:
        postgres.remove_state()
        os.system(f"rm -rf {private}")


def test_brokers_started_at_once_in_a_fresh_clone_fetch_the_jars_once(tmp_path, monkeypatch):
    """Expected: make test's pytest runs start their brokers together in a fresh clone; the second waits
    for the first one's Maven fetch instead of copying into the same folder at the same time."""
    import subprocess
    import threading
    import time

    from local_system import kafka

    monkeypatch.setattr(kafka, "LIBS", tmp_path / "libs")
    fetches = []

    def maven(command, **options):
        fetches.append(command)
        time.sleep(0.5)
        (tmp_path / "libs").mkdir()
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(kafka.subprocess, "run", maven)
    starts = [threading.Thread(target=kafka.fetch_jars) for _ in range(2)]
    for start in starts:
        start.start()
    for start in starts:
        start.join()

    assert len(fetches) == 1
    assert (tmp_path / "libs" / ".complete").exists()
