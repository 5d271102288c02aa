"""The compliance DAG as `airflow dags test` runs it (the trigger in line): the X API simulator over HTTP, the real
broker, what it wrote read back; and its failures: a 409 from another active job, a failed job, an expired upload
URL."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests

from include import ledger
from tests.helpers import DAG_QUERY, create_topic, past_window, read_topic, run_compliance, run_dag

pytestmark = pytest.mark.usefixtures("connections")
DAG_ID = "x_compliance_twitter_default"
JOBS_PATH = "/2/compliance/jobs"
UPLOAD_PATH = "/_sim/compliance/upload"


def tries() -> int:
    """The try number of the compliance task's latest run."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID).order_by(TaskInstance.start_date.desc())
        )
        return session.scalars(query).first().try_number


@pytest.fixture
def compliance_topic() -> str:
    return f"test-compliance-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stored(simulator, kafka, topic) -> list[dict]:
    """A compacted stream topic that a run of tweets_to_kafka filled with one window: its posts, as the simulator
    has them."""
    simulator.compliance_processing = 0.5
    create_topic(kafka, topic, config={"cleanup.policy": "compact"})
    start, end = past_window(20)
    assert run_dag(start, topic=topic) == {"fetch_tweets": "success", "produce_tweets": "success"}
    posts = simulator.tweets_between(start, end, DAG_QUERY)
    assert {key.decode() for key, _ in read_topic(topic)} == {post["id"] for post in posts}
    return posts


def test_deleted_and_protected_posts_get_tombstones_and_every_change_an_event(
    simulator, stored, topic, compliance_topic
):
    """Expected: tombstones in the stream's topic for exactly the deleted posts and those of the protected
    account; one event per post with a change (those, the withheld and the geo-scrubbed one) in the compliance
    topic, as the simulator's truth has them; the job's entry in the ledger; every post uploaded once."""
    protected = stored[2]["author"]["id"]
    others = [post for post in stored if post["author"]["id"] != protected]
    deleted, withheld, scrubbed = [others[0]["id"], others[1]["id"]], others[2]["id"], others[3]["id"]
    for post_id in deleted:
        simulator.add_compliance_event("delete", post_id)
    simulator.add_compliance_event("protect", protected)
    simulator.add_compliance_event("withhold", withheld)
    simulator.add_compliance_event("scrub_geo", scrubbed)
    of_protected = {post["id"] for post in stored if post["author"]["id"] == protected}

    state = run_compliance(streams={"tweets_to_kafka": topic}, compliance_topic=compliance_topic)

    assert state == "success"
    tombstones = [key.decode() for key, value in read_topic(topic) if value is None]
    assert sorted(tombstones) == sorted({*deleted, *of_protected})
    events = {key.decode(): json.loads(value) for key, value in read_topic(compliance_topic)}
    truth = simulator.compliance_results([post["id"] for post in stored])
    assert len(events) == len(read_topic(compliance_topic)) == len(truth) == len(of_protected) + 4
    for line in truth:
        event = events[line["id"]]
        assert {key: event[key] for key in line} == line
        assert event["streams"] == ["tweets_to_kafka"]
        assert event["tombstoned"] == ([topic] if line["id"] in tombstones else [])
    assert {events[withheld]["reason"], events[scrubbed]["reason"]} == {"withheld", "geo_scrubbed"}
    uploads = [r for r in simulator.requests if r["path"].startswith("/_sim/compliance/upload")]
    assert [r["bytes"] for r in uploads] == [sum(len(post["id"]) + 1 for post in stored)]
    entries = [
        ledger.decode(value, ledger.ComplianceSweep)
        for key, value in read_topic(ledger.LEDGER_TOPIC)
        if key.startswith(f"compliance:{DAG_ID}/".encode())
        and json.loads(value)["compliance_topic"] == compliance_topic
    ]
    assert [(e.ids_checked, e.results, e.tombstones) for e in entries] == [
        (len(stored), len(truth), {topic: len(tombstones)})
    ]

    assert run_compliance(streams={"tweets_to_kafka": topic}, compliance_topic=compliance_topic) == "success"
    uploads = [r for r in simulator.requests if r["path"].startswith("/_sim/compliance/upload")]
    kept = [post["id"] for post in stored if post["id"] not in tombstones]
    assert uploads[-1]["bytes"] == sum(len(post_id) + 1 for post_id in kept), (
        "the next run checks what is left"
    )
    again = [key.decode() for key, value in read_topic(topic) if value is None]
    assert sorted(again) == sorted(tombstones), "no post gets a second tombstone"


def job_creations(simulator) -> list[int]:
    """The status of each job creation the simulator answered."""
    return [r["status"] for r in simulator.requests if r["method"] == "POST" and r["path"] == JOBS_PATH]


def when_requested(simulator, matches, action) -> threading.Thread:
    """In a thread: once the simulator answered a request that `matches`, do `action` (while the DAG runs in the
    test's own thread)."""

    def wait() -> None:
        deadline = time.monotonic() + 120
        while not any(r["status"] is not None and matches(r) for r in simulator.requests):
            assert time.monotonic() < deadline, "the request never came"
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def test_a_409_waits_deferred_for_the_active_job_then_creates_its_own(
    simulator, stored, topic, compliance_topic
):
    """Expected: another job of the app is active (created, not yet uploaded to), so the creation gets 409; the
    task waits for that job in the trigger, which ends once its ids arrive; then it creates its own job and
    succeeds at its first try."""
    token = {"Authorization": f"Bearer {simulator.bearer_token}"}
    other = requests.post(f"{simulator.url}{JOBS_PATH}", json={"type": "tweets"}, headers=token, timeout=10)
    other = other.json()["data"]
    uploaded = when_requested(
        simulator,
        lambda r: r["path"] == JOBS_PATH and r["method"] == "POST" and r["status"] == 409,
        lambda: requests.put(
            other["upload_url"], data=b"1\n", headers={"Content-Type": "text/plain"}, timeout=10
        ).raise_for_status(),
    )
    simulator.add_compliance_event("delete", stored[1]["id"])

    state = run_compliance(streams={"tweets_to_kafka": topic}, compliance_topic=compliance_topic)

    uploaded.join()
    assert state == "success"
    assert job_creations(simulator) == [200, 409, 200]
    polls = [r for r in simulator.requests if r["path"] == f"{JOBS_PATH}/{other['id']}"]
    assert polls, "the trigger waited for the other job"
    assert [key.decode() for key, value in read_topic(topic) if value is None] == [stored[1]["id"]]
    assert tries() == 1


def test_a_failed_job_fails_the_try_and_the_retry_writes_a_new_jobs_result_once(
    simulator, stored, topic, compliance_topic, capfd
):
    simulator.add_job_fault("failed")
    simulator.add_compliance_event("delete", stored[1]["id"])

    state = run_compliance(streams={"tweets_to_kafka": topic}, compliance_topic=compliance_topic)

    assert state == "success" and tries() == 2
    assert (
        "ended failed on connection 'twitter_default': it has no results; the task's retry creates a new job"
        in (capfd.readouterr().out)
    )
    assert job_creations(simulator) == [200, 200], "the retry made a new job"
    assert [key.decode() for key, value in read_topic(topic) if value is None] == [stored[1]["id"]]
    assert [key.decode() for key, _ in read_topic(compliance_topic)] == [stored[1]["id"]]


def test_an_expired_upload_url_fails_the_try_and_the_retry_uploads_to_a_new_job(
    simulator, stored, topic, compliance_topic, capfd
):
    """Expected: the upload URL lives 1 s and the upload reaches storage 2 s after it was sent: storage answers
    ExpiredToken, and the job expires with nothing uploaded. The try fails naming it; the retry (its URLs live
    15 minutes again) creates a new job, uploads and writes the result."""
    simulator.compliance_upload_ttl = 1
    simulator.add_fault(path=UPLOAD_PATH, method="PUT", delay=2.0)
    restored = when_requested(
        simulator,
        lambda r: r["path"].startswith(UPLOAD_PATH) and r["status"] == 400,
        lambda: setattr(simulator, "compliance_upload_ttl", 900),
    )
    simulator.add_compliance_event("delete", stored[1]["id"])

    state = run_compliance(streams={"tweets_to_kafka": topic}, compliance_topic=compliance_topic)

    restored.join()
    assert state == "success" and tries() == 2
    assert "HTTP 400 ExpiredToken: The provided token has expired" in capfd.readouterr().out
    uploads = [r["status"] for r in simulator.requests if r["path"].startswith(UPLOAD_PATH)]
    assert uploads == [400, 200]
    assert job_creations(simulator) == [200, 200]
    assert [key.decode() for key, value in read_topic(topic) if value is None] == [stored[1]["id"]]
