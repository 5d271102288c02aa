"""Exactly once per window under the real scheduler: a try that dies after its transaction committed, before
Airflow recorded its success, is retried, and the retry finds the window's entry in the delivery ledger instead of
writing the window a second time."""

from __future__ import annotations

from include import ledger
from local_system import DAG_ID
from tests.faults.consumers import TopicWatcher, when_written
from tests.helpers import BOOTSTRAP, DAG_QUERY, create_topic, read_topic
from tests.system.harness import unused_windows

WINDOW = 8000  # posts: 80 pages, and a transaction that stays open for a second or two in small batches


def test_a_try_killed_after_its_commit_is_retried_without_writing_the_window_again(
    airflow_stack, x_api, topic
):
    """Expected: the API server is frozen while the window's transaction runs, so the try cannot report its
    success; once a read_committed consumer sees the whole window, the task and the worker supervising it are
    killed (a lost worker), and the API server thawed. Airflow fails the try when its heartbeat times out and
    retries it; the retry reads the ledger, says the window was already delivered by try 1, and writes nothing:
    the consumer sees each post of the window once, and the ledger holds one entry for it."""
    stack = airflow_stack
    [(start, end)] = unused_windows(stack, 40)
    x_api.set_rate(start, WINDOW)
    expected = {tweet["id"].encode() for tweet in x_api.tweets_between(start, end, DAG_QUERY)}
    create_topic(BOOTSTRAP, topic)
    watcher = TopicWatcher(topic, BOOTSTRAP)
    with stack.kafka_settings({"batch.size": 2000}):
        run_id = stack.trigger(start, {"topic": topic})["dag_run_id"]
        # Its first try's id, known before it runs: a transaction of a second or two ends between two polls of
        # the task's state, so the API server is frozen once the first records are in the topic's log instead.
        produce = stack.wait_until(
            lambda: next(
                (ti for ti in stack.task_instances(run_id) if ti["task_id"] == "produce_tweets"), None
            ),
            120,
            "the run's produce_tweets",
        )
        api_server = stack.processes["api-server"]
        when_written(topic, BOOTSTRAP, api_server.freeze, WINDOW, timeout=300)
        try:
            stack.wait_until(lambda: len(watcher.seen) >= len(expected), 120, "the window to be committed")
            assert stack.kill_task(produce["id"]), "the task and its worker were running"
        finally:
            api_server.thaw()

        def ended() -> dict | None:
            run = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        assert stack.wait_until(ended, 400, "the run to end")["state"] == "success"

    tries = stack.task_tries(run_id, "produce_tweets")
    assert [ti["state"] for ti in tries] == ["failed", "success"], (
        "the killed try failed, its retry succeeded"
    )
    retry_log = stack.task_log(run_id, "produce_tweets", 2)
    assert (
        f"was already delivered by try 1 of this run ({run_id}, clear 0): {len(expected)} records"
        in retry_log
    )
    assert sorted(key for key, _ in read_topic(topic)) == sorted(expected), "each post of the window once"
    assert sorted(read.key for read in watcher.stop()) == sorted(expected), "the consumer read each post once"
    key = ledger.ledger_key(DAG_ID, topic, start)
    entries = [ledger.decode(value) for k, value in read_topic(ledger.LEDGER_TOPIC) if k == key]
    assert [(entry.run_id, entry.try_number, entry.records) for entry in entries] == [
        (run_id, 1, len(expected))
    ]
