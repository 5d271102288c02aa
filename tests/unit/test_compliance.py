"""What a compliance result asks of a stored post, the names of the jobs a retry finds again, and which listed
job a retry may take over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.compliance import JOB_NAME_LENGTH, drops_post, job_name, reusable

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("action", "reason", "tombstone"),
    [
        ("delete", "deleted", True),
        ("delete", "protected", True),
        ("delete", "suspended", True),
        ("delete", "deactivated", True),
        ("rehydrate", "tweet_edited", True),
        ("scrub_geo", "geo_scrubbed", False),
        ("delete", "withheld", False),
        ("delete", "a reason X adds later", True),
    ],
)
def test_a_post_is_dropped_for_a_deletion_or_an_edit_not_for_a_geo_scrub_or_a_withholding(
    action, reason, tombstone
):
    assert drops_post({"id": "1", "action": action, "reason": reason}) is tombstone


def test_a_runs_job_name_is_stable_within_xs_limit_and_differs_per_task_and_clear():
    run_id = "scheduled__2026-12-01T06:00:00+00:00"
    name = job_name("x_compliance_twitter_default", "compliance_kafka_default", run_id, 0)

    assert name == job_name("x_compliance_twitter_default", "compliance_kafka_default", run_id, 0)
    assert name.endswith(f" {run_id}") and len(name) <= JOB_NAME_LENGTH
    others = {
        job_name("x_compliance_twitter_default", "compliance_kafka_default", run_id, 1),
        job_name("x_compliance_twitter_default", "compliance_kafka_eu", run_id, 0),
        job_name("x_compliance_other_app", "compliance_kafka_default", run_id, 0),
    }
    assert name not in others and len(others) == 3
    assert (
        len(job_name("x_compliance_twitter_default", "compliance_kafka_default", "manual__" + "x" * 300, 0))
        == 64
    )


def job(status: str, name: str = "mine", upload_left: timedelta = timedelta(minutes=10), download_left=None):
    download_left = download_left if download_left is not None else timedelta(days=6)
    return {
        "name": name,
        "status": status,
        "upload_expires_at": (NOW + upload_left).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "download_expires_at": (NOW + download_left).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


@pytest.mark.parametrize(
    ("listed", "usable"),
    [
        (job("created"), True),
        (job("created", upload_left=timedelta(seconds=30)), False),
        (job("in_progress"), True),
        (job("complete"), True),
        (job("complete", download_left=timedelta(seconds=30)), False),
        (job("failed"), False),
        (job("expired"), False),
        (job("in_progress", name="another run's"), False),
    ],
    ids=[
        "created",
        "its upload URL about to expire",
        "in progress",
        "complete",
        "its results about to expire",
        "failed",
        "expired",
        "another name",
    ],
)
def test_a_retry_takes_over_its_runs_job_only_while_it_can_still_give_results(listed, usable):
    assert reusable(listed, "mine", NOW) is usable
