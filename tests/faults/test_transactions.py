"""Each window in one Kafka transaction (kafka_default with a transactional.id, as the README recommends):
faults in the middle of a window's transaction, with a read_committed consumer reading the topic
throughout and a read_uncommitted reader showing what the transactions hid. Own broker (killable)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.faults.consumers import TopicWatcher, check_committed_once, when_written
from tests.faults.reliability import when_task_is
from tests.helpers import KAFKA_CONFIG, ROOT, create_topic, past_window, read_topic, set_connection

pytestmark = pytest.mark.usefixtures("connections")
SUCCESS = {"fetch_tweets": "success", "produce_tweets": "success"}
LARGE_WINDOW = 20_000  # 200 pages
# Small batches keep a large window's transaction open for seconds (~4 s, not 0.3 s), so that a fault lands in
# its middle.
SMALL_BATCHES = {"batch.size": 2000}


def start_large_window_try(simulator, broker, topic, monkeypatch, minutes_ago, log):
    """A window of LARGE_WINDOW tweets `minutes_ago` minutes back, written in small batches to `topic`, with a
    read_committed watcher on it, and a try of it (`airflow dags test`, its own process group, output to
    `log`) started; returns the window, the watcher and the process."""
    start, end = past_window(minutes_ago)
    simulator.set_rate(start, LARGE_WINDOW)
    create_topic(broker.bootstrap, topic)
    # A patient delivery bound: a busy machine may take more than the usual 15 s to write the window in
    # small batches.
    small_batches = {
        **KAFKA_CONFIG,
        "bootstrap.servers": broker.bootstrap,
        "message.timeout.ms": 60000,
        **SMALL_BATCHES,
    }
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=small_batches)
    watcher = TopicWatcher(topic, broker.bootstrap)
    command = [sys.executable, "-m", "airflow", "dags", "test", "tweets_to_kafka", start.isoformat()]
    command += ["--conf", json.dumps({"topic": topic})]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output, start_new_session=True)
    return (start, end), watcher, process


def test_task_process_killed_mid_produce_then_retried_shows_the_window_once(
    case, simulator, own_broker, topic, monkeypatch, tmp_path
):
    """Expected: `airflow dags test` for a 20,000-tweet window is SIGKILLed while its transaction is open
    (records in the log); the read_committed consumer sees nothing of it; the window's next try (same
    transactional id) aborts the dead try's transaction, commits its own, and the consumer then sees each
    tweet exactly once; a read_uncommitted reader sees the dead try's records too."""
    broker = own_broker
    log = tmp_path / "dags-test.log"
    (start, end), watcher, task = start_large_window_try(simulator, broker, topic, monkeypatch, 44, log)
    try:
        kill = lambda: os.killpg(task.pid, signal.SIGKILL)  # noqa: E731
        written = when_written(topic, broker.bootstrap, kill, LARGE_WINDOW, writer=task)
    except AssertionError:
        raise AssertionError(log.read_text()[-3000:]) from None
    finally:
        if task.poll() is None:
            os.killpg(task.pid, signal.SIGKILL)
        task.wait()
    time.sleep(1)
    assert watcher.seen == [], "a read_committed consumer sees nothing of the killed try"

    retried = time.monotonic()
    run = case.run(start, topic=topic)

    assert run.states == SUCCESS
    case.measured["records_at_kill"] = written
    hidden = check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, retried)
    assert hidden >= written, "the killed try's records are in the log, aborted"


def test_a_frozen_try_is_fenced_by_the_retry_and_its_records_never_become_visible(
    case, simulator, own_broker, topic, monkeypatch, tmp_path
):
    """Expected: a try of a 20,000-tweet window is frozen (SIGSTOP, a zombie: alive, its transaction open) in
    the middle of its produce; the window's next try fences it and commits; resumed, the zombie cannot add to
    the window or commit (its transactional id's epoch is gone): it fails, and the read_committed consumer
    sees each tweet exactly once."""
    broker = own_broker
    log = tmp_path / "zombie.log"
    (start, end), watcher, zombie = start_large_window_try(simulator, broker, topic, monkeypatch, 47, log)
    try:
        freeze = lambda: os.killpg(zombie.pid, signal.SIGSTOP)  # noqa: E731
        written = when_written(topic, broker.bootstrap, freeze, LARGE_WINDOW, writer=zombie)
        retried = time.monotonic()
        run = case.run(start, topic=topic)
        os.killpg(zombie.pid, signal.SIGCONT)
        # Its try fails, and is killed before its retry; a bound in case it hangs.
        deadline = time.monotonic() + 300
        while "Task failed with exception" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        os.killpg(zombie.pid, signal.SIGKILL)
        zombie.wait()

    assert run.states == SUCCESS
    zombie_log = log.read_text()
    told = "\n".join(
        line[:300] for line in zombie_log.splitlines() if "ransaction" in line or "Kafka" in line
    )
    assert "Committed transaction" not in zombie_log, f"the zombie committed nothing:\n{told}"
    # Where librdkafka sees the fence first (a delivery report, or the next produce call) decides the words.
    failure = zombie_log.partition("Task failed with exception")[2]
    assert "Kafka did not deliver record" in failure or "fenced" in failure, (
        f"the zombie's try failed, saying why:\n{told}"
    )
    case.measured["records_at_freeze"] = written
    hidden = check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, retried)
    assert hidden >= written, "the zombie's records are in the log, aborted"


def test_a_produce_failure_after_some_records_is_invisible_and_the_retry_commits_once(
    case, simulator, own_broker, topic, monkeypatch, capfd
):
    """Expected: the broker freezes (SIGSTOP) after some records of the window, longer than the 5 s delivery
    bound: the try fails and aborts; the broker resumes while the task waits for its retry, which commits
    the window; the read_committed consumer sees nothing until then, then each tweet once. The retry has a
    60 s bound: a broker frozen past its KRaft session is fenced when it resumes and elects its leaders
    again, and a busy machine may take more than 5 s to write the window in small batches."""
    broker = own_broker
    start, end = past_window(45)
    simulator.set_rate(start, LARGE_WINDOW)
    create_topic(broker.bootstrap, topic)
    quick = {
        **KAFKA_CONFIG,
        "bootstrap.servers": broker.bootstrap,
        "message.timeout.ms": 5000,
        **SMALL_BATCHES,
    }
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=quick)
    watcher = TopicWatcher(topic, broker.bootstrap)
    frozen: list[int] = []
    retried: list[float] = []

    def freeze_mid_produce() -> None:
        freeze = lambda: os.kill(broker.pid, signal.SIGSTOP)  # noqa: E731
        frozen.append(when_written(topic, broker.bootstrap, freeze, LARGE_WINDOW))
        # The frozen try read its connection when it started; the next try reads this one.
        set_connection(
            monkeypatch, "kafka_default", conn_type="kafka", extra={**quick, "message.timeout.ms": 60000}
        )

    def resume() -> None:
        os.kill(broker.pid, signal.SIGCONT)
        retried.append(time.monotonic())

    when_task_is(start, "produce_tweets", "running", freeze_mid_produce, timeout=600)
    when_task_is(start, "produce_tweets", "up_for_retry", resume, timeout=600)
    try:
        run = case.run(start, retry_delay=2, topic=topic)
    finally:
        os.kill(broker.pid, signal.SIGCONT)

    assert frozen and retried, "the broker froze in the middle of the window and resumed before the retry"
    assert run.states == SUCCESS and run.tries["produce_tweets"] == 2
    assert "Kafka did not deliver record" in capfd.readouterr().out
    case.measured["records_at_freeze"] = frozen[0]
    check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, retried[0])


def test_a_broker_refusing_the_transactional_id_fails_at_once_naming_the_connection_and_the_grant(
    case, simulator, own_broker, topic, capfd
):
    """Expected: with an ACL denying WRITE on the transactional ids prefixed `tweets-to-kafka`, produce
    fails at its first try, without retries, naming the connection, the id and the ACL to grant; nothing is
    written. Once the ACL is gone, a rerun delivers."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    broker = own_broker
    start, end = past_window(46)
    create_topic(broker.bootstrap, topic)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deny = dict(
        restype=ResourceType.TRANSACTIONAL_ID,
        name=KAFKA_CONFIG["transactional.id"],
        resource_pattern_type=ResourcePatternType.PREFIXED,
        principal="User:ANONYMOUS",
        host="*",
        operation=AclOperation.WRITE,
        permission_type=AclPermissionType.DENY,
    )
    for future in admin.create_acls([AclBinding(**deny)]).values():
        future.result(timeout=30)
    try:
        run = case.run(start, topic=topic)
    finally:
        for future in admin.delete_acls([AclBindingFilter(**deny)]).values():
            future.result(timeout=30)

    assert run.states == {"fetch_tweets": "success", "produce_tweets": "failed"}
    assert run.tries["produce_tweets"] == 1, "not retried: it fails until someone grants the ACL"
    out = capfd.readouterr().out
    assert (
        "Kafka refused transactional id 'tweets-to-kafka:tweets_to_kafka' to connection 'kafka_default': "
        in out
    )
    assert (
        "' to connection 'kafka_default': " in out and "Transactional Id authorization failed. Grant" in out
    )
    assert "--operation Write --operation Describe --transactional-id tweets-to-kafka" in out
    assert read_topic(topic, broker.bootstrap, isolation="read_uncommitted") == []

    assert case.run(start, topic=topic).states == SUCCESS
    case.check_delivered(simulator, topic, [(start, end)], broker.bootstrap)
