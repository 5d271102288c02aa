"""A component of the local system: one long-running process in a session of its own (so that stopping it
ends all it started), its output in a log file, its pid in a pid file (so that `make stop` finds what `make
run` started), and a health check."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ServiceError(RuntimeError):
    """A component did not start or stop; the message says which, and holds the end of its log."""


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on `host`:`port`."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.5) -> object:
    """Poll `condition` until it returns a true value (returned); raise ServiceError naming `what` after
    `timeout` seconds. `condition` may raise to give up early (a component that exited)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return value


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command: state, ppid, pgrp, session, ... (None: no process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    """The start time of a live, non-zombie process, None when there is none. Set at fork and kept through
    exec: with the pid it names one process, whatever its command line is at the moment."""
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else fields[19]


def session_members(session: int) -> list[int]:
    """The live processes of a session: a component started here and everything it started."""
    stats = {int(entry.name): _stat(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()}
    return [pid for pid, fields in stats.items() if fields and fields[0] != "Z" and int(fields[3]) == session]


class Service:
    """A process of the local system. Subclasses give `name`, `command()`, `ports` and `ready()`; a
    context manager that starts it (returning once `ready()`) and stops it."""

    name = "service"
    # A bound for a process that hangs, not its usual start (seconds): make test starts nine brokers and several
    # Airflows at once on two cores, and there a fresh clone's first broker took over 90 s.
    start_timeout = 300.0
    stop_signal = signal.SIGTERM
    user: str | None = None  # run as this user (root only)
    host = "127.0.0.1"  # the address its ports are on
    netns: str | None = None  # the network namespace it runs in (root only; see local_system.network)

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self._process: subprocess.Popen | None = None

    # What a component is

    @property
    def ports(self) -> list[int]:
        """The ports it listens on; start() refuses to run when one is taken by another process."""
        return []

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def prepare(self) -> None:
        """Write its configuration and data before the first start (nothing by default)."""

    def ready(self) -> bool:
        """Whether it serves its clients."""
        raise NotImplementedError

    # Where it is

    @property
    def log(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def pid(self) -> int | None:
        """The pid of its running process (the leader of its session), None when it does not run."""
        if self._process is not None:
            return self._process.pid if self._process.poll() is None else None
        try:
            pid, started = self.pidfile.read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        return int(pid) if process_start_time(int(pid)) == started else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of its output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    # Life cycle

    def launch(self) -> None:
        """Start its process in a session of its own and return at once (a no-op when it runs)."""
        if self.running:
            return
        for port in self.ports:
            if port_taken(port, self.host):
                raise ServiceError(
                    f"port {port} of the {self.name} is taken by another process; give it another port"
                )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        command = self.command()
        if self.netns is not None:  # ip execs the command in the namespace: the same process, pid and session
            command = ["ip", "netns", "exec", self.netns, *command]
        with self.log.open("wb") as output:
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
            )
        self.pidfile.write_text(f"{self._process.pid} {process_start_time(self._process.pid)}\n")

    def wait_until_ready(self) -> None:
        """Return once it serves; raise with the end of its log when it exits or times out first."""

        def serves() -> bool:
            if not self.running:
                raise ServiceError(
                    f"the {self.name} exited during start-up; last lines of {self.log}:\n" + self.log_tail()
                )
            return self.ready()

        try:
            wait_until(serves, self.start_timeout, f"the {self.name} to serve (log: {self.log})", 0.2)
        except ServiceError:
            self.stop()
            raise

    def start(self) -> Service:
        """Start it, or find it running, and return once it serves."""
        self.launch()
        self.wait_until_ready()
        return self

    def stop(self, timeout: float = 30) -> bool:
        """Stop it: its stop signal to its process group, then, after it exits or `timeout`, SIGKILL to what
        is left of its session (children that made groups of their own, such as Airflow's task runners);
        whether it ran."""
        pid = self.pid
        if pid is not None:
            with suppress(ProcessLookupError):
                os.killpg(pid, self.stop_signal)
            with suppress(ServiceError):
                wait_until(lambda: not self.running, timeout, f"the {self.name} to stop", 0.1)
        self.kill()
        return pid is not None

    def remove_state(self) -> None:
        """Stop it and delete its state (data, configuration, log): the next start is a first one."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL every process of its session, as a crash would: the component and all it started."""
        session = self._process.pid if self._process else self._recorded_pid()
        if session is not None:
            for member in session_members(session):
                with suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            wait_until(lambda: not session_members(session), 10, f"the {self.name} to die", 0.05)
        if self._process is not None:
            self._process.wait()
            self._process = None
        self.pidfile.unlink(missing_ok=True)

    def freeze(self) -> None:
        """SIGSTOP every process of its session: it stays, but answers nothing, as a host that hangs."""
        self._signal_session(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every process of its session, after freeze()."""
        self._signal_session(signal.SIGCONT)

    def _signal_session(self, signum: int) -> None:
        session = self._process.pid if self._process else self._recorded_pid()
        for member in session_members(session) if session is not None else ():
            with suppress(ProcessLookupError):
                os.kill(member, signum)

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
