"""ComplianceJobTrigger against the X API simulator over real HTTP: the event of each way a job ends,
failures, rate limits, and its serialisation for the triggerer."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import set_connection
from twitter_provider.hooks import TwitterHook
from twitter_provider.triggers import ComplianceJobTrigger

TOKEN = "test-bearer-token-0123456789"
JOB_PATH = "/2/compliance/jobs/"


@pytest.fixture
def hook(simulator, monkeypatch) -> TwitterHook:
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password=TOKEN)
    simulator.compliance_processing = 0.3
    return TwitterHook(timeout=(2, 2), backoff=0.01)


def first_event(trigger: ComplianceJobTrigger) -> dict:
    """Run the trigger as the triggerer does, until its first event (at most 30 s); return the payload."""

    async def run() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


def reads(simulator) -> list[int]:
    return [
        r["status"] for r in simulator.requests if r["method"] == "GET" and r["path"].startswith(JOB_PATH)
    ]


def test_the_trigger_fires_once_the_job_is_complete(hook, simulator):
    """Expected: it polls while the job is in progress (here until the test ends the processing), and fires
    once it is complete."""
    simulator.compliance_processing = 3600
    job = hook.create_compliance_job("deferred")
    hook.upload_compliance_ids(job, ["1", "2"])

    async def finish_after_two_reads() -> None:
        while len(reads(simulator)) < 2:
            await asyncio.sleep(0.01)
        simulator.finish_compliance_job(job["id"])

    async def run() -> dict:
        finisher = asyncio.create_task(finish_after_two_reads())
        async for event in ComplianceJobTrigger(job["id"], poll_interval=0.05).run():
            await finisher
            return event.payload
        raise AssertionError("the trigger ended without an event")

    event = asyncio.run(asyncio.wait_for(run(), timeout=60))

    assert event == {
        "status": "complete",
        "job_id": job["id"],
        "message": f"Compliance job {job['id']} is complete",
    }
    assert len(reads(simulator)) >= 2 and set(reads(simulator)) == {200}, "in progress first, then complete"
    assert hook.get_compliance_job(job["id"])["status"] == "complete"


@pytest.mark.parametrize("status", ["failed", "expired"])
def test_the_trigger_fires_when_the_job_fails_or_expires(hook, simulator, status):
    simulator.add_job_fault(status)
    job = hook.create_compliance_job("doomed")
    hook.upload_compliance_ids(job, ["1"])

    assert first_event(ComplianceJobTrigger(job["id"], poll_interval=0.05))["status"] == status


def test_a_job_left_without_upload_expires(hook, simulator):
    simulator.compliance_upload_ttl = 1
    job = hook.create_compliance_job("forgotten")

    assert first_event(ComplianceJobTrigger(job["id"], poll_interval=0.1))["status"] == "expired"


def test_an_unknown_job_is_an_error_event_naming_the_status_and_connection(hook, simulator):
    event = first_event(ComplianceJobTrigger("123", poll_interval=0.05))

    assert event["status"] == "error" and event["job_id"] == "123"
    assert event["message"] == (
        "X API returned HTTP 404 for connection 'twitter_default': Not Found "
        "(no compliance job has this id for this app)"
    )
    assert reads(simulator) == [404], "a refused request is not retried"
    assert TOKEN not in str(event)


def test_transient_failures_are_retried_up_to_the_trigger_s_attempts(hook, simulator):
    job = hook.create_compliance_job("flaky")
    hook.upload_compliance_ids(job, ["1"])
    simulator.add_fault(status=503, path=JOB_PATH, times=2)

    assert (
        first_event(ComplianceJobTrigger(job["id"], poll_interval=0.05, attempts=3))["status"] == "complete"
    )
    assert reads(simulator)[:3] == [503, 503, 200]

    simulator.add_fault(status=502, path=JOB_PATH, times=-1)
    event = first_event(ComplianceJobTrigger(job["id"], poll_interval=0.05, attempts=3))
    assert event["status"] == "error"
    assert event["message"].startswith("X API returned HTTP 502 for connection 'twitter_default'")
    assert event["message"].endswith("(3 failures in a row)")


def test_a_rate_limit_is_waited_for_until_its_reset(hook, simulator):
    job = hook.create_compliance_job("limited")
    hook.upload_compliance_ids(job, ["1"])
    reset = int(time.time()) + 2
    simulator.add_fault(status=429, path=JOB_PATH, headers={"x-rate-limit-reset": str(reset)})

    event = first_event(ComplianceJobTrigger(job["id"], poll_interval=0.05, attempts=1))

    assert event["status"] == "complete" and time.time() >= reset
    assert reads(simulator)[0] == 429


def test_a_connection_without_bearer_token_is_an_error_event(simulator, monkeypatch):
    set_connection(
        monkeypatch, "x_oauth", conn_type="twitter", host=simulator.url, extra='{"consumer_key": "k"}'
    )

    event = first_event(ComplianceJobTrigger("123", twitter_conn_id="x_oauth"))

    assert event["status"] == "error" and "Connection 'x_oauth' has no bearer token" in event["message"]
    assert simulator.requests == []


def test_the_trigger_serialises_to_what_rebuilds_it():
    trigger = ComplianceJobTrigger(
        "2127882411378212864", twitter_conn_id="x_app", poll_interval=30, attempts=5
    )

    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)

    assert path == "twitter_provider.triggers.ComplianceJobTrigger"
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs == {
        "job_id": "2127882411378212864",
        "twitter_conn_id": "x_app",
        "poll_interval": 30,
        "attempts": 5,
    }


def test_the_trigger_never_looks_the_connection_up_synchronously(hook, simulator, monkeypatch):
    """In the triggerer, a synchronous connection lookup inside the event loop blocks it until Airflow reports
    the loop deadlocked (seen: 49 s without a look at the job): the trigger only awaits aget_connection."""
    job = hook.create_compliance_job("no sync lookup")
    hook.upload_compliance_ids(job, ["1"])

    def synchronous(cls, conn_id):
        raise AssertionError(f"a synchronous lookup of {conn_id!r} inside the event loop")

    monkeypatch.setattr(TwitterHook, "get_connection", classmethod(synchronous))

    assert first_event(ComplianceJobTrigger(job["id"], poll_interval=0.05))["status"] == "complete"
