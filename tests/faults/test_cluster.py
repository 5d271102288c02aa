"""A three-broker KRaft cluster (local_system.KafkaCluster: replication factor 3, min.insync.replicas=2)
loses one broker in the middle of a run of consecutive windows, with the recommended producer config: killed, or
cut off from the other two and from every client (node 3 runs on a test host of its own, whose link a partition
sets down: see local_system.network)."""

from __future__ import annotations

import time

import pytest

from tests.faults.consumers import TopicWatcher, check_committed_once
from tests.faults.reliability import when_task_is
from tests.helpers import KAFKA_CONFIG, create_topic, past_window, set_connection

pytestmark = pytest.mark.usefixtures("connections")
WINDOWS = 6
TWEETS_PER_WINDOW = 2000  # 20 pages
SUCCESS = {"fetch_tweets": "success", "produce_tweets": "success"}


def test_one_broker_killed_during_a_run_of_windows_loses_nothing_and_fails_no_task(
    case, simulator, cluster, topic, monkeypatch
):
    """Expected: node 2 is SIGKILLed as the third window starts producing and restarted after the fifth;
    the two remaining replicas keep acks=all writes going (min.insync.replicas=2), so every run succeeds at
    its first try, and a read_committed consumer reading throughout sees each tweet of the six windows once."""
    windows = [past_window(minutes_ago) for minutes_ago in range(70, 70 - WINDOWS, -1)]
    for start, _ in windows:
        simulator.set_rate(start, TWEETS_PER_WINDOW)
    create_topic(cluster.bootstrap, topic, replication=3)
    set_connection(
        monkeypatch,
        "kafka_default",
        conn_type="kafka",
        extra={**KAFKA_CONFIG, "bootstrap.servers": cluster.bootstrap, "message.timeout.ms": 60000},
    )

    watcher = TopicWatcher(topic, cluster.bootstrap)
    began = time.monotonic()
    runs = []
    for number, (start, _) in enumerate(windows, 1):
        if number == 3:
            killer = when_task_is(start, "produce_tweets", "running", cluster.node(2).kill)
        if number == 6:
            cluster.node(2).start()
        runs.append(case.run(start, topic=topic))
        if number == 3:
            killer.join(timeout=1)
            assert not killer.is_alive(), "node 2 was killed while the third window was produced"

    assert [run.states for run in runs] == [
        {"fetch_tweets": "success", "produce_tweets": "success"}
    ] * WINDOWS
    assert [run.tries["produce_tweets"] for run in runs] == [1] * WINDOWS, "no produce try failed"
    check_committed_once(case, simulator, topic, windows, cluster.bootstrap, watcher, began)


def test_one_broker_partitioned_from_the_others_during_a_run_of_windows_loses_nothing(
    case, simulator, cluster, cluster_host, topic, monkeypatch
):
    """Expected: node 3 is cut off (its link down: nothing reaches it or leaves it, silently) as the second of
    four windows starts producing, and healed before the fourth. The producer's requests to it go unanswered
    until they time out, while the other two fence it and take over what it led (partitions, and maybe the
    transaction coordinator). The produce try under way may fail when a request to node 3 outlasts the 60 s
    delivery bound (its records are aborted, and Airflow's retry commits the window); every run succeeds, and a
    read_committed consumer reading throughout sees each tweet of the four windows once."""
    from confluent_kafka.admin import AdminClient

    windows = [past_window(minutes_ago) for minutes_ago in range(80, 76, -1)]
    for start, _ in windows:
        simulator.set_rate(start, TWEETS_PER_WINDOW)
    create_topic(cluster.bootstrap, topic, replication=3)
    set_connection(
        monkeypatch,
        "kafka_default",
        conn_type="kafka",
        extra={**KAFKA_CONFIG, "bootstrap.servers": cluster.bootstrap, "message.timeout.ms": 60000},
    )
    metadata = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=30)
    led = [number for number, partition in metadata.topics[topic].partitions.items() if partition.leader == 3]

    watcher = TopicWatcher(topic, cluster.bootstrap)
    began = time.monotonic()
    runs, seconds = [], []
    try:
        for number, (start, _) in enumerate(windows, 1):
            if number == 2:
                cutter = when_task_is(start, "produce_tweets", "running", cluster_host.partition)
            if number == 4:
                cluster_host.heal()
            run_began = time.monotonic()
            runs.append(case.run(start, topic=topic))
            seconds.append(round(time.monotonic() - run_began))
            if number == 2:
                cutter.join(timeout=1)
                assert not cutter.is_alive(), "node 3 was cut off while the second window was produced"
    finally:
        cluster_host.heal()

    case.measured |= {
        "partitions_node_3_led": led,
        "run_seconds": seconds,
        "produce_tries": [run.tries["produce_tweets"] for run in runs],
    }
    assert [run.states for run in runs] == [SUCCESS] * len(windows)
    check_committed_once(case, simulator, topic, windows, cluster.bootstrap, watcher, began)
