"""X compliance end to end under the real scheduler and triggerer: a stream lands posts, the simulator deletes
some, protects an account, withholds one and scrubs one's geo, and the compliance DAG's run writes tombstones for
exactly the deleted and protected posts and one event per change, waiting for the job deferred (no worker slot)
even across a triggerer killed meanwhile; a try killed in the middle of its write is retried, and read_committed
consumers see each tombstone and event once."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
import requests

from include import compliance, ledger
from local_system import DAG_ID
from tests.faults.consumers import TopicWatcher, when_written
from tests.helpers import BOOTSTRAP, DAG_QUERY, create_topic, read_topic
from tests.system.harness import unused_windows

COMPLIANCE_DAG = "x_compliance_twitter_default"
TASK = "compliance_kafka_default"


@pytest.fixture
def stack(airflow_stack, x_api):
    """The session's stack with the compliance DAG parsed and unpaused, and a simulator whose compliance
    endpoints allow every look the 2-second trigger makes; a job a failed test left in progress is ended, so
    that the next test's job gets no 409."""
    airflow_stack.wait_until(
        lambda: airflow_stack.dag_is_parsed(COMPLIANCE_DAG),
        300,
        f"the dag-processor to parse {COMPLIANCE_DAG}",
    )
    airflow_stack.pause(False, dag_id=COMPLIANCE_DAG)
    x_api.compliance_rate_limit = 100_000
    yield airflow_stack
    for job in jobs(x_api):
        if job["status"] == "in_progress":
            x_api.finish_compliance_job(job["id"])


@pytest.fixture
def compliance_topic() -> str:
    name = f"test-compliance-{uuid.uuid4().hex[:12]}"
    create_topic(BOOTSTRAP, name, config=compliance.TOPIC_CONFIG)
    return name


def run_ended(stack, run_id: str, dag_id: str = DAG_ID, timeout: float = 400) -> dict:
    def ended() -> dict | None:
        run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    return stack.wait_until(ended, timeout, f"run {run_id} of {dag_id} to end")


def land(stack, x_api, topic: str, minutes_ago: int, posts_per_minute: int | None = None) -> list[dict]:
    """A compacted topic, and a stream run that lands a past window's posts in it (`posts_per_minute` of them
    posted, if given); returns those posts."""
    create_topic(BOOTSTRAP, topic, config={"cleanup.policy": "compact"})
    [(start, end)] = unused_windows(stack, minutes_ago)
    if posts_per_minute is not None:
        x_api.set_rate(start, posts_per_minute)
    run = stack.trigger(start, {"topic": topic})
    assert run_ended(stack, run["dag_run_id"])["state"] == "success"
    posts = x_api.tweets_between(start, end, DAG_QUERY)
    assert len(read_topic(topic)) == len(posts)
    return posts


def run_compliance(stack, topic: str, compliance_topic: str) -> str:
    conf = {"streams": {"tweets_to_kafka": topic}, "compliance_topic": compliance_topic}
    return stack.trigger(None, conf, dag_id=COMPLIANCE_DAG)["dag_run_id"]


def task_instance(stack, run_id: str, state: str) -> dict | None:
    """The run's one task instance once it is in `state`, else None."""
    tis = stack.task_instances(run_id, dag_id=COMPLIANCE_DAG)
    return tis[0] if tis and tis[0]["state"] == state else None


def job_of(x_api, run_id: str) -> dict:
    """The run's one compliance job, as X lists it."""
    (job,) = [job for job in jobs(x_api) if job.get("name", "").endswith(run_id)]
    return job


def jobs(x_api) -> list[dict]:
    answer = requests.get(
        f"{x_api.url}/2/compliance/jobs",
        params={"type": "tweets"},
        headers={"Authorization": f"Bearer {x_api.bearer_token}"},
        timeout=10,
    )
    return answer.json().get("data", [])


def test_deleted_and_protected_posts_leave_the_topic_and_every_change_is_an_event_the_job_waited_deferred(
    stack, x_api, topic, compliance_topic
):
    """Expected: while the job is in progress the task is deferred (no worker slot), and it stays so when the
    triggerer is killed: a new triggerer takes the trigger over (the job ends only once it runs). The run succeeds at its first try with one job;
    the stream's topic holds a tombstone for exactly the deleted posts and those of the protected account, the
    compliance topic one event per changed post as the simulator's truth has it, each seen once by
    read_committed consumers."""
    posts = land(stack, x_api, topic, 25)
    protected = posts[2]["author"]["id"]
    others = [post["id"] for post in posts if post["author"]["id"] != protected]
    deleted, withheld, scrubbed = others[:2], others[2], others[3]
    for post_id in deleted:
        x_api.add_compliance_event("delete", post_id)
    x_api.add_compliance_event("protect", protected)
    x_api.add_compliance_event("withhold", withheld)
    x_api.add_compliance_event("scrub_geo", scrubbed)
    of_protected = {post["id"] for post in posts if post["author"]["id"] == protected}
    truth = x_api.compliance_results([post["id"] for post in posts])
    x_api.compliance_processing = 3600  # until the test ends it
    tombstones, events = TopicWatcher(topic, BOOTSTRAP), TopicWatcher(compliance_topic, BOOTSTRAP)

    run_id = run_compliance(stack, topic, compliance_topic)
    stack.wait_until(lambda: task_instance(stack, run_id, "deferred"), 300, "the task to defer")
    job = job_of(x_api, run_id)
    assert job["status"] == "in_progress", "the task is deferred while the job runs"
    triggerer = stack.processes["triggerer"]
    triggerer.kill()
    triggerer.launch()
    assert task_instance(stack, run_id, "deferred"), "still deferred with the triggerer gone"
    x_api.finish_compliance_job(job["id"])
    assert run_ended(stack, run_id, COMPLIANCE_DAG)["state"] == "success"

    assert [ti["state"] for ti in stack.task_tries(run_id, TASK, dag_id=COMPLIANCE_DAG)] == ["success"]
    assert [j["id"] for j in jobs(x_api) if j.get("name", "").endswith(run_id)] == [job["id"]], "one job"
    dropped = {*deleted, *of_protected}
    assert sorted(key for key, value in read_topic(topic) if value is None) == sorted(
        k.encode() for k in dropped
    )
    written = {key.decode(): json.loads(value) for key, value in read_topic(compliance_topic)}
    assert len(written) == len(truth) == len(dropped) + 2
    for line in truth:
        assert {key: written[line["id"]][key] for key in line} == line
        assert written[line["id"]]["tombstoned"] == ([topic] if line["id"] in dropped else [])
    stored = sorted(key for key, _ in read_topic(topic))
    assert sorted(read.key for read in tombstones.stop()) == stored, (
        "a consumer read each post and tombstone once"
    )
    assert sorted(read.key for read in events.stop()) == sorted(key.encode() for key in written), (
        "each event once"
    )


def test_a_try_killed_mid_write_is_retried_and_read_committed_sees_each_tombstone_and_event_once(
    stack, x_api, topic, compliance_topic
):
    """Expected: the accounts of a third of 4,000 posts are protected. Once the first records of the job's
    result reach the compliance topic's log, the task's process is killed while its transaction is open (as the
    OOM killer would). Its worker fails the try and Airflow retries it: the retry finds the job complete (no new
    job), writes the result, and its transaction fences and aborts the killed one's. A read_committed consumer
    sees each event once; a read_uncommitted one also sees what the aborted transaction wrote."""
    posts = land(stack, x_api, topic, 35, posts_per_minute=4000)
    authors = Counter(post["author"]["id"] for post in posts)
    for author, _ in authors.most_common(20):
        x_api.add_compliance_event("protect", author)
    truth = x_api.compliance_results([post["id"] for post in posts])
    assert len(truth) > 1000
    x_api.compliance_processing = 3600  # until the test ends it
    events = TopicWatcher(compliance_topic, BOOTSTRAP)
    with stack.kafka_settings({"batch.size": 2000}):
        run_id = run_compliance(stack, topic, compliance_topic)
        ti = stack.wait_until(lambda: task_instance(stack, run_id, "deferred"), 300, "the task to defer")
        x_api.finish_compliance_job(job_of(x_api, run_id)["id"])
        killed = []
        written = when_written(
            compliance_topic,
            BOOTSTRAP,
            lambda: killed.extend(stack.kill_task(ti["id"], worker=False)),
            len(truth),
        )
        assert killed, "the task was running"
        assert run_ended(stack, run_id, COMPLIANCE_DAG)["state"] == "success"

    tries = stack.task_tries(run_id, TASK, dag_id=COMPLIANCE_DAG)
    assert [ti["state"] for ti in tries] == ["failed", "success"]
    retry_log = stack.task_log(run_id, TASK, 2, dag_id=COMPLIANCE_DAG)
    assert "made by an earlier try" in retry_log and "already written" not in retry_log
    assert len([j for j in jobs(x_api) if j.get("name", "").endswith(run_id)]) == 1
    committed = [key for key, _ in read_topic(compliance_topic)]
    assert sorted(committed) == sorted(line["id"].encode() for line in truth), "each event once"
    assert sorted(read.key for read in events.stop()) == sorted(committed), "a consumer read each event once"
    uncommitted = read_topic(compliance_topic, isolation="read_uncommitted")
    assert len(uncommitted) >= len(committed) + written > len(committed), "the killed try's records, aborted"
    tombstones = [key for key, value in read_topic(topic) if value is None]
    assert len(tombstones) == len(set(tombstones)) == len(truth)
    key = ledger.compliance_key(COMPLIANCE_DAG, TASK, run_id)
    entries = [
        ledger.decode(v, ledger.ComplianceSweep) for k, v in read_topic(ledger.LEDGER_TOPIC) if k == key
    ]
    assert [(e.try_number, e.results, e.tombstones) for e in entries] == [
        (2, len(truth), {topic: len(truth)})
    ]
