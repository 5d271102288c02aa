"""What the fault suite shares: DAG runs with their tries, brokers it may kill, the delivery check, figures."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from airflow.dag_processing.dagbag import DagBag
from airflow.models import DagRun, TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import select

from include.records import to_record
from tests.helpers import DAG_QUERY, KAFKA_CONFIG, ROOT, read_topic

FIGURES = ROOT / ".artifacts" / "reliability.json"
SEARCH_PATH = "/2/tweets/search/recent"


@dataclass
class Run:
    """A finished DAG run: each task's final state and how many tries it took."""

    states: dict[str, str]
    tries: dict[str, int]


@dataclass
class Case:
    """One fault case: the runs it made and, once checked, what the topic holds against the simulator."""

    name: str
    runs: int = 0
    task_tries: int = 0
    windows: int = 0
    tweets: int = 0
    records: int = 0
    lost: int = 0
    duplicates: int = 0
    measured: dict = field(default_factory=dict)  # other figures of the case, e.g. timings
    checked: bool = False

    def run(
        self, window_start: datetime, retries: int | None = None, retry_delay: float | None = None, **conf
    ) -> Run:
        """Run tweets_to_kafka with dag.test() (which retries failed tasks in-process) for the window
        starting at `window_start` (its logical date), optionally with other retries or a shorter first retry
        delay (seconds)."""
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags["tweets_to_kafka"]
        for task in dag.tasks:
            if retries is not None:
                task.retries = retries
            if retry_delay is not None:
                task.retry_delay = timedelta(seconds=retry_delay)
        dag_run = dag.test(logical_date=window_start, run_conf=conf or None)
        with create_session() as session:
            instances = list(
                session.scalars(select(TaskInstance).where(TaskInstance.run_id == dag_run.run_id))
            )
            run = Run(
                {ti.task_id: ti.state for ti in instances}, {ti.task_id: ti.try_number for ti in instances}
            )
        self.runs += 1
        self.task_tries += sum(run.tries.values())
        return run

    def check_delivered(
        self, simulator, topic: str, windows: list[tuple[datetime, datetime]], bootstrap: str | None = None
    ) -> None:
        """The check every case ends with: the topic holds every tweet of every window, compared by key
        and content with the simulator's tweets (see check_records)."""
        expected = []
        for start, end in windows:
            window = {
                t["id"].encode(): to_record(t, t["author"])
                for t in simulator.tweets_between(start, end, DAG_QUERY)
            }
            assert window, f"the simulator has no tweets in [{start}, {end}): the check would prove nothing"
            expected.append(window)
        self.check_records(topic, expected, bootstrap)

    def check_records(
        self, topic: str, windows: list[dict[bytes, dict]], bootstrap: str | None = None
    ) -> None:
        """Check that the topic holds every expected record (by key) of every window and nothing else; no
        window is missing; a duplicate is a repeated key with the same record, never a different one."""
        records = read_topic(topic, bootstrap or KAFKA_CONFIG["bootstrap.servers"])
        by_key: dict[bytes, dict] = {}
        conflicting = []
        for key, value in records:
            record = json.loads(value)
            if by_key.setdefault(key, record) != record:
                conflicting.append(key)
        expected = {key: record for window in windows for key, record in window.items()}
        missing = [len(window.keys() - by_key.keys()) for window in windows]
        # Figures first, so that a failing case still counts what it lost.
        self.windows += len(windows)
        self.tweets += len(expected)
        self.records += len(records)
        self.lost += sum(missing)
        self.duplicates += len(records) - len(by_key)
        self.checked = True
        assert not conflicting, f"keys holding two different records: {conflicting[:5]}"
        assert not any(missing), f"tweets lost per window: {missing}"
        assert by_key == expected, "records differ from the expected ones or come from outside the windows"


def when_task_is(
    window_start: datetime, task_id: str, state: str, action, timeout: float = 300
) -> threading.Thread:
    """Call `action` in a thread as soon as the task of the run for the window starting at `window_start` is in
    `state` (as read from the metadata database), e.g. to bring a service back while the task waits for its
    retry."""
    query = (
        select(TaskInstance.state)
        .join(DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
        .where(DagRun.logical_date == window_start, TaskInstance.task_id == task_id)
    )

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                if session.scalar(query) == state:
                    action()
                    return
            time.sleep(0.05)

    with create_session() as session:  # set the database up in this thread: two at once can deadlock
        session.scalar(query)
    watcher = threading.Thread(target=watch, name=f"when-{task_id}-{state}", daemon=True)
    watcher.start()
    return watcher


def search_requests(simulator) -> list[tuple[int | None, int | None]]:
    """(page, status) of every search request the simulator received, in order."""
    return [(r["page"], r["status"]) for r in simulator.requests if r["path"] == SEARCH_PATH]


def write_figures(cases: list[Case], seconds: float) -> dict:
    """Write the suite's figures to .artifacts/reliability.json and return them. `make test` runs the suite's
    cases in several pytest runs side by side, under one RELIABILITY_RUN id: each run adds its cases to those
    the others of that id wrote (under a lock), and the seconds are the runs' own, added up."""
    checked = [{k: v for k, v in vars(case).items() if k != "checked"} for case in cases if case.checked]
    run = os.environ.get("RELIABILITY_RUN")
    FIGURES.parent.mkdir(exist_ok=True)
    with FIGURES.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        earlier = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        if run and earlier.get("run") == run:
            mine = {case["name"] for case in checked}
            checked = [case for case in earlier["cases"] if case["name"] not in mine] + checked
            seconds += earlier["seconds"]
        figures = {
            "faults_tried": len(checked),
            "dag_runs": sum(case["runs"] for case in checked),
            "task_tries": sum(case["task_tries"] for case in checked),
            "windows": sum(case["windows"] for case in checked),
            "tweets": sum(case["tweets"] for case in checked),
            "records_read_back": sum(case["records"] for case in checked),
            "tweets_lost": sum(case["lost"] for case in checked),
            "duplicate_records": sum(case["duplicates"] for case in checked),
            "seconds": round(seconds),
            "run": run,
            "cases": checked,
        }
        FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    return figures
