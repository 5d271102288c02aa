"""Faults of the network between a task and what it reaches, during real DAG runs (dag.test, with task retries).

The broker runs on a test host of its own (a network namespace cabled to this machine by a veth link: see
local_system.network), and the task reaches it through that link and then Toxiproxy, on the broker's host, in front
of the broker: a partition sets the host's end of the link down (nothing passes either way, silently, and TCP
retransmits what was lost once it heals), and Toxiproxy's toxics slow what the broker sends back before the link
carries it. The X API simulator is reached through Toxiproxy on this machine. The test reads the broker directly
over the same link, as a downstream read_committed consumer would. Each case ends with the suite's check: each
tweet of each window once for read_committed, nothing missing.
"""

from __future__ import annotations

import threading
import time

import pytest

from include import ledger
from tests.faults.conftest import NETWORK_PORT
from tests.faults.consumers import TopicWatcher, check_committed_once, when_written
from tests.faults.reliability import search_requests, when_task_is
from tests.helpers import KAFKA_CONFIG, create_topic, past_window, read_topic, set_connection

SUCCESS = {"fetch_tweets": "success", "produce_tweets": "success"}
SMALL_BATCHES = {"batch.size": 2000}  # a transaction that stays open for seconds, so that a fault lands in it


@pytest.fixture
def x_api(simulator, monkeypatch):
    """`twitter_default` at the simulator."""
    set_connection(
        monkeypatch,
        "twitter_default",
        conn_type="twitter",
        host=simulator.url,
        password=simulator.bearer_token,
    )
    return simulator


@pytest.fixture
def worker_link(x_api, own_broker, broker_host, broker_proxy, monkeypatch):
    """`kafka_default` through the broker's link and its proxy (the recommended config), the broker running; after
    the case, the link up and no toxic left."""
    through_the_link(monkeypatch, own_broker)
    try:
        yield broker_proxy
    finally:
        broker_host.heal()
        broker_proxy.toxiproxy.reset()


def through_the_link(monkeypatch, broker, **settings) -> None:
    """`kafka_default` through the broker's link and proxy, with these librdkafka settings too."""
    extra = {**KAFKA_CONFIG, "bootstrap.servers": broker.proxied_bootstrap, **settings}
    set_connection(monkeypatch, "kafka_default", conn_type="kafka", extra=extra)


def said(capfd, caplog) -> str:
    """What the runs logged since the last call: Airflow's task loggers write to stdout, the project's modules
    propagate to the root logger, which pytest captures."""
    logged = capfd.readouterr().out + caplog.text
    caplog.clear()
    return logged


def test_the_worker_partitioned_from_the_broker_mid_transaction_and_healed_commits_the_window_once(
    case, simulator, own_broker, broker_host, worker_link, topic, monkeypatch
):
    """Expected: the broker's host is cut off for 5 s in the middle of a 4,000-tweet window's transaction and
    healed, within the 30 s delivery bound: the producer carries the same transaction over the partition (what TCP
    and librdkafka re-send, the broker takes once: idempotence), so the run succeeds at its first try, and a
    read_committed consumer sees nothing of the window until it commits, then each tweet once."""
    broker, tweets = own_broker, 4000
    start, end = past_window(53)
    simulator.set_rate(start, tweets)
    create_topic(broker.bootstrap, topic)
    through_the_link(monkeypatch, broker, **{"message.timeout.ms": 30000, **SMALL_BATCHES})
    watcher = TopicWatcher(topic, broker.bootstrap)
    cut: list[int] = []
    partitioned: list[float] = []

    def heal() -> None:
        broker_host.heal()
        partitioned.append(time.monotonic())

    def partition_for_5_seconds() -> None:
        broker_host.partition()
        partitioned.append(time.monotonic())
        threading.Timer(5, heal).start()

    def partition_mid_transaction() -> None:
        cut.append(when_written(topic, broker.bootstrap, partition_for_5_seconds, tweets))

    when_task_is(start, "produce_tweets", "running", partition_mid_transaction, timeout=600)
    began = time.monotonic()

    run = case.run(start, topic=topic)

    assert cut and 0 < cut[0] < tweets, "the partition began while the window's records were being written"
    case.measured |= {
        "records_at_partition": cut[0],
        "partition_seconds": round(partitioned[1] - partitioned[0], 1),
        "produce_tries": run.tries["produce_tweets"],
    }
    assert run.states == SUCCESS and run.tries["produce_tweets"] == 1
    check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, began)


def test_a_commit_whose_acknowledgement_a_partition_hides_is_not_written_again_by_the_retry(
    case, simulator, own_broker, broker_host, worker_link, topic, monkeypatch, capfd, caplog
):
    """Expected: once the window's first records are written, what the broker sends back starts taking 3 s; once
    the window's transaction has committed (a read_committed consumer sees it), and before the commit's answer has
    crossed the link, the broker's host is cut off. The try cannot learn that its commit succeeded: the commit
    times out after message.timeout.ms and the try fails; the link heals while it waits for its retry; the retry
    fences it, finds the window in the delivery ledger and writes nothing. The consumer sees each tweet once, and
    the ledger holds one entry for the window."""
    broker, proxy, tweets = own_broker, worker_link, 2000
    start, end = past_window(54)
    simulator.set_rate(start, tweets)
    create_topic(broker.bootstrap, topic)
    # A few batches (not the small ones: each answer takes 3 s); the commit waits at most message.timeout.ms.
    settings = {"batch.size": 100_000, "message.timeout.ms": 15000, "transaction.timeout.ms": 30000}
    through_the_link(monkeypatch, broker, **settings)
    watcher = TopicWatcher(topic, broker.bootstrap)
    hidden: list[float] = []

    def cut_off_after_the_commit() -> None:
        slow = lambda: proxy.add_toxic("latency", latency=3000)  # noqa: E731
        when_written(topic, broker.bootstrap, slow, tweets)
        deadline = time.monotonic() + 120
        while not watcher.seen:  # the commit, seen by another client
            if time.monotonic() > deadline:
                return  # never committed: the assertion on `hidden` says so
            time.sleep(0.05)
        broker_host.partition()
        hidden.append(time.monotonic())

    def heal() -> None:
        broker_host.heal()
        proxy.toxiproxy.reset()

    when_task_is(start, "produce_tweets", "running", cut_off_after_the_commit, timeout=600)
    retry = when_task_is(start, "produce_tweets", "up_for_retry", heal, timeout=300)
    # Should the try never fail (a commit that waits for ever), heal anyway, so that the run ends and the test fails.
    threading.Thread(target=lambda: (retry.join(), heal()), daemon=True).start()
    began = time.monotonic()

    run = case.run(start, retry_delay=2, topic=topic)

    assert hidden, "the link was cut once the window had committed"
    assert run.states == SUCCESS and run.tries["produce_tweets"] == 2, "the try that committed failed"
    logged = said(capfd, caplog)
    assert "while committing its transaction" in logged, "the try failed on its commit's timeout"
    assert "was already delivered by try 1 of this run" in logged, "the retry wrote nothing"
    check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, began)
    key = ledger.ledger_key("tweets_to_kafka", topic, start)
    entries = [
        ledger.decode(value) for k, value in read_topic(ledger.LEDGER_TOPIC, broker.bootstrap) if k == key
    ]
    assert [(entry.try_number, entry.records) for entry in entries] == [(1, case.tweets)], (
        "one entry, by try 1"
    )


def test_two_seconds_of_latency_to_the_broker_slow_the_window_but_it_commits_once_at_its_first_try(
    case, simulator, own_broker, worker_link, topic
):
    """Expected: everything the broker sends the task arrives 2 s late (Toxiproxy's latency toxic, on the broker's
    host): every request of the try takes 2 s more, and the 15 s delivery bound still holds, so the window commits
    at the first try, each tweet once for read_committed."""
    broker = own_broker
    start, end = past_window(55)
    simulator.set_rate(start, 2000)
    create_topic(broker.bootstrap, topic)
    worker_link.add_toxic("latency", latency=2000)
    watcher = TopicWatcher(topic, broker.bootstrap)
    began = time.monotonic()

    run = case.run(start, topic=topic)

    case.measured["run_seconds"] = round(time.monotonic() - began, 1)
    assert run.states == SUCCESS and run.tries == {"fetch_tweets": 1, "produce_tweets": 1}
    check_committed_once(case, simulator, topic, [(start, end)], broker.bootstrap, watcher, began)


MAX_WINDOWS = 20  # the windows run until a connection was lost: 0.7^20 = 0.08% of runs would see none


def test_thirty_percent_loss_to_the_x_api_costs_retries_never_a_tweet(
    case, simulator, kafka, connections, toxiproxy, topic, monkeypatch, capfd, caplog
):
    """Expected: 30% of the connections to the X API are lost (Toxiproxy works on connections, not packets: the
    request never arrives and the connection is dropped after 2 s, or the API's answer is lost and the connection
    reset). The hook retries each lost request on a new connection; windows run until at least one was lost
    (3 at least): every run succeeds, and each window's tweets are in the topic once for read_committed."""
    proxy = toxiproxy.proxy(
        "x_api", listen=f"127.0.0.1:{NETWORK_PORT + 1}", upstream=simulator.url.removeprefix("http://")
    )
    # Half of the lost connections lose the request, half the answer: 1 - (1 - 0.16)(1 - 0.167) = 30%.
    proxy.add_toxic("timeout", stream="upstream", toxicity=0.16, timeout=2000)
    proxy.add_toxic("reset_peer", stream="downstream", toxicity=0.167, timeout=0)
    set_connection(
        monkeypatch,
        "twitter_default",
        conn_type="twitter",
        host=f"http://{proxy.listen}",
        password=simulator.bearer_token,
    )
    create_topic(kafka, topic)
    watcher = TopicWatcher(topic, kafka)
    began = time.monotonic()
    windows, lost = [], 0
    try:
        for minutes_ago in range(100, 100 - MAX_WINDOWS, -1):
            start, end = past_window(minutes_ago)
            simulator.set_rate(start, 300)  # 3 pages
            run = case.run(start, retry_delay=1, topic=topic)
            assert run.states == SUCCESS, f"the run of [{start}, {end}) failed: {run.tries}"
            windows.append((start, end))
            said = (
                capfd.readouterr().out + caplog.text
            )  # the hook's logger writes to stdout, not to the root's
            caplog.clear()
            lost += said.count("failed for connection 'twitter_default': ConnectionError")
            if lost and len(windows) >= 3:
                break
    finally:
        toxiproxy.reset()

    case.measured |= {"lost_connections": lost, "search_requests_answered": len(search_requests(simulator))}
    assert lost, f"no connection was lost in {len(windows)} windows"
    check_committed_once(case, simulator, topic, windows, kafka, watcher, began)
