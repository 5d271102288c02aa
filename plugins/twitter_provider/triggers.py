"""ComplianceJobTrigger: waits in the triggerer, not in a worker slot, for an X batch compliance job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from twitter_provider.hooks import RATE_LIMIT_WINDOW_SECONDS, RateLimited, TransientXApiError, TwitterHook

FINISHED = ("complete", "failed", "expired")


class ComplianceJobTrigger(BaseTrigger):
    """
    Polls `GET /2/compliance/jobs/{id}` until the job is `complete`, `failed` or `expired`, then fires
    one event: `{"status": <that status>, "job_id": ..., "message": ...}`; or `{"status": "error", ...}`
    when the job cannot be read (a refused request, or `attempts` transient failures in a row). A 429
    waits for the rate limit's reset. The event holds no URL: the task reads the job again for them.

    :param job_id: the compliance job's id
    :param twitter_conn_id: the X connection (its bearer token)
    :param poll_interval: seconds between two looks at the job (X allows 150 a 15-minute window)
    :param attempts: transient failures (5xx, timeouts) in a row before the trigger gives up
    """

    def __init__(
        self,
        job_id: str,
        twitter_conn_id: str = TwitterHook.default_conn_name,
        poll_interval: float = 60.0,
        attempts: int = 4,
    ):
        super().__init__()
        self.job_id = job_id
        self.twitter_conn_id = twitter_conn_id
        self.poll_interval = poll_interval
        self.attempts = attempts

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "twitter_conn_id": self.twitter_conn_id,
                "poll_interval": self.poll_interval,
                "attempts": self.attempts,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = TwitterHook(self.twitter_conn_id)
        failures = 0
        while True:
            try:
                job = await hook.aget_compliance_job(self.job_id)
            except RateLimited as limited:
                wait = min((limited.reset_at - datetime.now(UTC)).total_seconds(), RATE_LIMIT_WINDOW_SECONDS)
                self.log.warning("%s; waiting %.0f s for the reset", limited, wait)
                await asyncio.sleep(max(wait, 0) + 1)
                continue
            except TransientXApiError as error:
                failures += 1
                if failures >= self.attempts:
                    yield self._event("error", f"{error} ({failures} failures in a row)")
                    return
                self.log.warning("Looking at compliance job %s failed, trying again: %s", self.job_id, error)
                await asyncio.sleep(self.poll_interval)
                continue
            except AirflowException as error:
                yield self._event("error", str(error))
                return
            failures = 0
            if job["status"] in FINISHED:
                yield self._event(job["status"], f"Compliance job {self.job_id} is {job['status']}")
                return
            self.log.info("Compliance job %s is %s", self.job_id, job["status"])
            await asyncio.sleep(self.poll_interval)

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "job_id": self.job_id, "message": message})
