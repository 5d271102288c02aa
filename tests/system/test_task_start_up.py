"""What a task process starts with under the real scheduler (LocalExecutor)."""

from __future__ import annotations

from pathlib import Path

from local_system.service import session_members


def test_the_schedulers_task_workers_start_with_the_dag_libraries_imported(airflow_stack):
    """The plugin's listener imports the libraries of the DAG's tasks in the scheduler before it forks its
    LocalExecutor workers, which fork each task: confluent-kafka is already loaded in every worker, so no task
    loads it. (That no module of this package is, test_day_two.py shows: a deploy reaches the next task.) The
    executor starts `parallelism` workers and replaces a lost one (another test kills one) only when its next task
    comes, so there may be fewer at a given moment."""
    scheduler = airflow_stack.processes["scheduler"].pid
    workers = [
        pid
        for pid in session_members(scheduler)
        if "LocalExecutor" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    ]

    assert 0 < len(workers) <= airflow_stack.parallelism
    for pid in workers:
        assert "confluent_kafka" in Path(f"/proc/{pid}/maps").read_text(), f"worker {pid}"
