"""TwitterHook: the X API v2 recent search and batch compliance, through tweepy, with timeouts, paging,
retries and clear errors."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import requests
import tweepy
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from twitter_provider import SEARCH_HORIZON

TWEEPY_HOST = "https://api.twitter.com"  # hard-coded in tweepy.Client.request
X_API_HOST = "https://api.x.com"  # X's current host, the default base URL
TWITTER_EPOCH_MS = 1288834974657  # post ids encode their creation time in milliseconds after it
OAUTH1_FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
PAGE_SIZE = 100  # the most the recent search returns per request
RATE_LIMIT_WINDOW_SECONDS = 15 * 60  # X counts requests in 15-minute windows: a reset is never further away
COMPLIANCE_JOBS = "/2/compliance/jobs"
MAX_UPLOAD_BYTES = 128_000_000  # X's compliance guide: a job takes one upload of at most 128 MB
_X_ID = re.compile(r"[0-9]{1,19}")  # a post id or a compliance job id
_STATUS_HINTS = {
    400: "the X API refused the request's parameters",
    401: "check the connection's bearer token or OAuth 1.0a keys",
    402: "the X developer account has no credits left",
    403: "the app or its access level may not use this endpoint",
    404: "check the connection's host (API base URL)",
}
_COMPLIANCE_HINTS = {
    **_STATUS_HINTS,
    404: "no compliance job has this id for this app",
    409: "X runs one compliance job of a type at a time: wait for the active one to finish, or cancel it",
}
# x-rate-limit-limit of recent search per 15 minutes, by auth (user context or not): the access tier it means
_TIERS = {(60, False): "Basic", (60, True): "Basic", (450, False): "Pro", (180, True): "Pro"}
# Airflow's UI tests a connection under a random id of 8 letters and digits (airflow.utils.strings.get_random_string)
_TRANSIENT_CONN_ID = re.compile(r"[A-Za-z0-9]{8}")

# tweepy logs request headers (the bearer token) and requests-oauthlib the signed OAuth header at DEBUG.
for _logger in ("tweepy", "oauthlib", "requests_oauthlib"):
    logging.getLogger(_logger).setLevel(logging.INFO)


class _RedactSignedUrls(logging.Filter):
    """Keeps what grants access through a pre-signed storage URL (its signature, a resumable upload's
    session) out of urllib3's DEBUG lines, which show each request's URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _SIGNED_PARTS.sub(r"\1<redacted>", record.getMessage()), None
        return True


_SIGNED_PARTS = re.compile(r"((?:X-Goog-Signature|upload_id)=)[^&\s\"]+")
logging.getLogger("urllib3.connectionpool").addFilter(_RedactSignedUrls())


class TransientXApiError(AirflowException):
    """A failure that a later attempt may not meet: 5xx, no reply, a body that is not JSON."""


class UsageCapExceeded(AirflowFailException):
    """A 429 that is a usage cap, not a rate limit: waiting for the rate-limit reset does not help."""


class ComplianceJobConflict(AirflowException):
    """A 409: a compliance job of the type is already active; a later try may find it finished."""


class ComplianceJobFailed(AirflowException):
    """A compliance job that will give no results: failed, expired, or its upload or download URL
    expired. A new job is needed."""


class BeyondSearchHorizon(AirflowException):
    """The window starts earlier than the recent search reaches (7 days back) at the time of the request."""


class RateLimited(Exception):
    """A 429 rate limit, which lifts at ``reset_at``."""

    def __init__(self, reset_at: datetime, message: str):
        super().__init__(message)
        self.reset_at = reset_at


class SearchPaused(RateLimited):
    """A rate limit that lifts later than the hook waits (`max_rate_limit_wait`), met during a window's search:
    the tweets read so far, and the page to go on from once it lifts (`search_window(next_token=...)`)."""

    def __init__(self, limited: RateLimited, tweets: list[dict[str, Any]], next_token: str | None):
        super().__init__(limited.reset_at, str(limited))
        self.tweets = tweets
        self.next_token = next_token


class _XApiAdapter(HTTPAdapter):
    """Sends tweepy's requests to `base_url` instead of its hard-coded host, always with a timeout."""

    def __init__(self, base_url: str, timeout: tuple[float, float]):
        super().__init__()
        self.base_url = base_url
        self.timeout = timeout

    def send(self, request, **kwargs):
        request.url = self.base_url + request.url.removeprefix(TWEEPY_HOST)
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, **kwargs)


class TwitterHook(BaseHook):
    """
    Reads tweets from the X API v2, and runs its batch compliance jobs, with the credentials of an
    Airflow connection.

    The bearer token (app-only auth) is the connection's password; OAuth 1.0a user context is the
    extra fields `consumer_key`, `consumer_secret`, `access_token`, `access_token_secret` (search
    only: batch compliance takes the bearer token). The host, when set, replaces the API's base URL,
    `https://api.x.com` (e.g. a simulator at `http://127.0.0.1:8099`); plain http:// only on the loopback,
    unless the extra has `"allow_plain_http": true`.

    :param twitter_conn_id: the connection id
    :param timeout: connect and read timeout of every request, in seconds
    :param attempts: tries of one request that meets a transient failure, before the task fails
    :param backoff: first wait between those tries, in seconds; it doubles each time
    :param max_rate_limit_wait: after a 429, wait for a reset at most this far away (in seconds) and ask
        again; a reset further away, within X's 15-minute window, raises `RateLimited` (`SearchPaused` from a
        search) for the caller to wait elsewhere; one beyond it (a wrong header, a skewed clock) fails with an
        error that names it
    """

    conn_name_attr = "twitter_conn_id"
    default_conn_name = "twitter_default"
    conn_type = "twitter"
    hook_name = "X (Twitter)"

    def __init__(
        self,
        twitter_conn_id: str = default_conn_name,
        timeout: tuple[float, float] = (10.0, 30.0),
        attempts: int = 4,
        backoff: float = 1.0,
        max_rate_limit_wait: float = RATE_LIMIT_WINDOW_SECONDS,
    ):
        super().__init__()
        self.twitter_conn_id = twitter_conn_id
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self.requests_made = 0
        self.rate_limit_remaining: str | None = None
        self.rate_limit_limit: str | None = None

    @cached_property
    def base_url(self) -> str:
        return self._base_url_of(self._connection)

    def _base_url_of(self, conn) -> str:
        host = (conn.host or "").rstrip("/")
        if not host:
            return X_API_HOST
        url = urlsplit(host)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise AirflowFailException(
                f"{self._connection_label}: host {host!r} is not an http(s) URL; "
                f"leave it empty for the X API ({X_API_HOST}) or set e.g. http://127.0.0.1:8099"
            )
        plain_http_allowed = conn.extra_dejson.get("allow_plain_http") is True
        if url.scheme == "http" and not _is_loopback(url.hostname or "") and not plain_http_allowed:
            raise AirflowFailException(
                f"{self._connection_label}: host {host!r} is plain http:// to another machine, which would send "
                "the credentials unencrypted; use https://, or http:// only on this machine's loopback "
                "(127.0.0.0/8, ::1, localhost), e.g. for the X API simulator (for a simulator on another host, "
                'add "allow_plain_http": true to the extra)'
            )
        return host

    def _bearer_token_of(self, conn) -> str:
        """The app's bearer token, which batch compliance requires (it takes no user context)."""
        if not conn.password:
            raise AirflowFailException(
                f"{self._connection_label} has no bearer token: X's batch compliance takes app-only "
                "auth; put the app's bearer token in the connection's password"
            )
        return conn.password

    @cached_property
    def _stored(self) -> bool:
        """Whether the connection id is one the user knows: not the random id under which Airflow's UI
        tests a connection (an 8-character id defined only by an environment variable)."""
        transient = _TRANSIENT_CONN_ID.fullmatch(self.twitter_conn_id) and os.environ.get(
            f"AIRFLOW_CONN_{self.twitter_conn_id.upper()}"
        )
        return not transient

    @property
    def _for_connection(self) -> str:
        return f" for connection '{self.twitter_conn_id}'" if self._stored else ""

    @property
    def _connection_label(self) -> str:
        return f"Connection '{self.twitter_conn_id}'" if self._stored else "The connection"

    @cached_property
    def _connection(self):
        return self.get_connection(self.twitter_conn_id)

    @cached_property
    def _uses_oauth1(self) -> bool:
        """Whether requests are signed with OAuth 1.0a rather than sent with the bearer token."""
        return not self._connection.password

    def get_conn(self) -> tweepy.Client:
        """Return the tweepy client, built once from the connection."""
        return self._client

    @cached_property
    def _client(self) -> tweepy.Client:
        conn = self._connection
        try:
            extra = json.loads(conn.extra) if conn.extra else {}
        except json.JSONDecodeError as error:
            raise AirflowFailException(
                f"{self._connection_label}: extra is not valid JSON ({error.msg} at "
                f"line {error.lineno} column {error.colno})"
            ) from None
        oauth1 = {field: extra.get(field) for field in OAUTH1_FIELDS if extra.get(field)}
        if oauth1 and len(oauth1) < len(OAUTH1_FIELDS):
            missing = ", ".join(field for field in OAUTH1_FIELDS if field not in oauth1)
            raise AirflowFailException(
                f"{self._connection_label}: OAuth 1.0a needs all of {', '.join(OAUTH1_FIELDS)} "
                f"in extra; missing {missing}"
            )
        if not conn.password and not oauth1:
            raise AirflowFailException(
                f"{self._connection_label} has no credentials: put the bearer token in its "
                f"password, or {', '.join(OAUTH1_FIELDS)} in its extra"
            )
        for value in oauth1.values():  # Airflow masks the password itself, not these extra fields
            mask_secret(value)
        client = tweepy.Client(
            bearer_token=conn.password or None,
            **(oauth1 if self._uses_oauth1 else {}),
            return_type=requests.Response,
        )
        client.session.mount(TWEEPY_HOST, _XApiAdapter(self.base_url, self.timeout))
        return client

    def search_window(
        self,
        query: str,
        start: datetime,
        end: datetime,
        horizon: timedelta = SEARCH_HORIZON,
        next_token: str | None = None,
    ) -> list[dict[str, Any]]:
        """
        Return every tweet matching `query` with `start <= created_at < end`, newest first.

        Each tweet is the API's JSON object plus `author`: its user from the page's `includes.users`,
        or None (and `created_at` from its id, should the API leave it out). Every page is read, an
        empty one that carries a `next_token` too; a tweet met twice is kept once. Raise
        BeyondSearchHorizon, without a request, when `start` is older than `horizon` at the moment of a
        request (also after waiting out a rate limit), and when X answers that it is. Raise SearchPaused, with
        the tweets read so far, at a rate limit that lifts later than `max_rate_limit_wait`.

        :param query: the X API search query
        :param start: the window's first instant (inclusive), timezone-aware
        :param end: the window's end (exclusive), timezone-aware
        :param horizon: how far back the recent search reaches
        :param next_token: the page to start from (a paused search's), instead of the first
        """
        params: dict[str, Any] = {
            "query": query,
            "start_time": start,
            "end_time": end,
            "max_results": PAGE_SIZE,
            "sort_order": "recency",  # relevancy ordering does not page
            "expansions": "author_id",
            "tweet_fields": "author_id,created_at,lang,public_metrics",
            "user_fields": "location,public_metrics",
        }
        if next_token:
            params["next_token"] = next_token
        tweets: dict[str, dict[str, Any]] = {}
        pages = 0
        while True:
            try:
                page = self._call(lambda: self._search(params, start + horizon))
            except RateLimited as limited:
                raise SearchPaused(limited, list(tweets.values()), params.get("next_token")) from None
            pages += 1
            authors = {user["id"]: user for user in (page.get("includes") or {}).get("users") or []}
            for tweet in page.get("data") or []:
                if "created_at" not in tweet:
                    tweet = {**tweet, "created_at": _created_at(tweet["id"])}
                if start <= datetime.fromisoformat(tweet["created_at"]) < end:
                    tweets.setdefault(tweet["id"], {**tweet, "author": authors.get(tweet.get("author_id"))})
            params["next_token"] = (page.get("meta") or {}).get("next_token")
            if not params["next_token"]:
                break
        self.log.info(
            "Window [%s, %s): %d tweets, %d pages, %d requests, %s",
            _iso(start),
            _iso(end),
            len(tweets),
            pages,
            self.requests_made,
            self._rate_limit_summary(),
        )
        return list(tweets.values())

    def test_connection(self) -> tuple[bool, str]:
        """Make one small search of the last searchable minute, for the UI's Test button."""
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)  # searchable by now
        window = {"start_time": end - timedelta(minutes=1), "end_time": end}
        params = {"query": "Apple", "max_results": 10, "sort_order": "recency", **window}
        try:
            self._request(lambda: self._search(params, window["start_time"] + SEARCH_HORIZON))
        except Exception as error:
            return False, f"Recent search at {self._connection.host or X_API_HOST} failed: {error}"
        return True, (
            f"{self._connection_label} reached {self.base_url}: recent search works, "
            f"{self._rate_limit_summary()}"
        )

    # Batch compliance: create a job, upload its post ids, wait for it, download its results.

    def create_compliance_job(self, name: str, resumable: bool = False) -> dict[str, Any]:
        """
        Create a batch compliance job for post ids; return it as X's `ComplianceJob` (`id`, `name`,
        `status`, `upload_url`, `upload_expires_at`, `download_url`, ...).

        Made once, not retried after a failure that X may have acted on (a 5xx, a timeout): a job
        created unseen would make the next creation a 409; find it by its name with
        `list_compliance_jobs`. A 429 is waited for like the search's.

        :param name: the job's name (at most 64 characters), to find it again
        :param resumable: whether its upload URL takes a resumable upload
        """
        self._bearer_token_of(self._connection)
        return self._call(
            lambda: self._client.create_compliance_job("tweets", name=name, resumable=resumable),
            _COMPLIANCE_HINTS,
            attempts=1,
        )["data"]

    def get_compliance_job(self, job_id: str) -> dict[str, Any]:
        """
        Return a compliance job as X's `ComplianceJob`; its `status` is `created`, `in_progress`,
        `complete`, `failed` or `expired`.

        :param job_id: the job's id
        """
        self._bearer_token_of(self._connection)
        return self._call(lambda: self._client.get_compliance_job(_job_id(job_id)), _COMPLIANCE_HINTS)["data"]

    async def aget_compliance_job(self, job_id: str) -> dict[str, Any]:
        """
        `get_compliance_job` for an event loop (a trigger): one request through httpx, its failures
        translated alike, a 429 raised as `RateLimited` for the caller to wait for.

        :param job_id: the job's id
        """
        conn = await self.aget_connection(self.twitter_conn_id)
        base_url, token = self._base_url_of(conn), self._bearer_token_of(conn)
        url = f"{base_url}{COMPLIANCE_JOBS}/{_job_id(job_id)}"
        timeout = httpx.Timeout(self.timeout[1], connect=self.timeout[0])
        self.requests_made += 1
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            raise TransientXApiError(
                f"X API request to {base_url} failed{self._for_connection}: {type(error).__name__}: {error}"
            ) from None
        body = _json_body(response.text)
        if response.status_code >= 400:
            status, reason = response.status_code, response.reason_phrase
            raise self._error_for(status, reason, response.headers, body, _COMPLIANCE_HINTS)
        if not isinstance(body, dict) or "data" not in body:
            raise TransientXApiError(
                f"X API returned HTTP {response.status_code} without a job{self._for_connection}: "
                f"{response.text[:200]!r}"
            )
        return body["data"]

    def list_compliance_jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        """
        Return the app's recent compliance jobs for post ids, newest first.

        :param status: only the jobs of this status (`created`, `in_progress`, `complete`, `failed`)
        """
        self._bearer_token_of(self._connection)
        jobs = self._call(
            lambda: self._client.get_compliance_jobs("tweets", status=status), _COMPLIANCE_HINTS
        )
        return jobs.get("data") or []

    def cancel_compliance_job(self, job_id: str) -> dict[str, Any]:
        """
        Cancel a compliance job that has not finished (it becomes `failed`, and another job can be
        created); return the job. A finished job is returned as it is.

        :param job_id: the job's id
        """
        self._bearer_token_of(self._connection)
        route = f"{COMPLIANCE_JOBS}/{_job_id(job_id)}"
        return self._call(lambda: self._client.request("DELETE", route), _COMPLIANCE_HINTS)["data"]

    def upload_compliance_ids(self, job: dict[str, Any], post_ids: Iterable[str]) -> int:
        """
        Upload post ids, one a line, to a job's upload URL in one PUT (X takes at most 128 MB); return
        how many. The URL is pre-signed on X's storage host: it gets no credentials.

        :param job: the job, as `create_compliance_job` returned it
        :param post_ids: the ids of the posts to check
        """
        lines = []
        for number, post_id in enumerate(post_ids, 1):
            if not _X_ID.fullmatch(str(post_id)):
                raise AirflowFailException(
                    f"Post id number {number}, {str(post_id)[:40]!r}, is not an X post id (1 to 19 digits)"
                )
            lines.append(f"{post_id}\n")
        body = "".join(lines).encode()
        if len(body) > MAX_UPLOAD_BYTES:
            raise AirflowFailException(
                f"{len(lines)} post ids make {len(body)} bytes, more than the {MAX_UPLOAD_BYTES} bytes X "
                f"takes in compliance job {job['id']}'s one upload: split them between jobs"
            )
        url, text = job["upload_url"], {"Content-Type": "text/plain"}
        if job.get("resumable"):  # a resumable upload opens a session first, as on Google Cloud Storage
            started = self._storage("POST", url, "upload", headers={**text, "x-goog-resumable": "start"})
            url = started.headers["Location"]
        self._storage("PUT", url, "upload", data=body, headers=text)
        self.log.info(
            "Uploaded %d post ids (%d bytes) to compliance job %s", len(lines), len(body), job["id"]
        )
        return len(lines)

    def download_compliance_results(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """
        Return a complete job's results from its download URL (pre-signed: it gets no credentials):
        one dict per post with a compliance event, `id`, `action` (`delete`, `rehydrate`, `scrub_geo`),
        `reason` (`deleted`, `protected`, `deactivated`, `suspended`, `tweet_edited`, `geo_scrubbed`),
        `created_at` and `redacted_at`.

        :param job: the job, complete, as `get_compliance_job` returned it
        """
        if job["status"] in ("failed", "expired"):
            raise ComplianceJobFailed(
                f"X compliance job {job['id']} ({job.get('name', 'no name')}) is {job['status']}"
                f"{self._for_connection}: it has no results; create a new job"
            )
        response = self._storage("GET", job["download_url"], "download")
        results = []
        for number, line in enumerate(response.text.splitlines(), 1):
            result = _json_body(line) if line.strip() else {}
            if not isinstance(result, dict):
                raise TransientXApiError(
                    f"Line {number} of compliance job {job['id']}'s results is not a JSON object: {line[:200]!r}"
                )
            if result:
                results.append(result)
        self.log.info("Compliance job %s: %d results", job["id"], len(results))
        return results

    def _rate_limit_summary(self) -> str:
        """The rate limit left, and the access tier its limit means, e.g. `rate limit remaining 447 of
        450 (Pro tier)`."""
        if self.rate_limit_limit is None:
            return f"rate limit remaining {self.rate_limit_remaining}"
        tier = _TIERS.get((int(self.rate_limit_limit), self._uses_oauth1), "unknown")
        return f"rate limit remaining {self.rate_limit_remaining} of {self.rate_limit_limit} ({tier} tier)"

    def _search(self, params: dict[str, Any], reachable_until: datetime) -> requests.Response:
        """One search request, made only while the search still reaches back to its start (from
        `reachable_until`, start + horizon, it no longer does)."""
        now = datetime.now(UTC)
        if now >= reachable_until:
            horizon = reachable_until - params["start_time"]
            raise BeyondSearchHorizon(
                f"the window starting {_iso(params['start_time'])} is older than the recent search reaches "
                f"({horizon.total_seconds() / 60:g} minutes back) at {_iso(now)}: no request made"
            )
        return self._client.search_recent_tweets(user_auth=self._uses_oauth1, **params)

    def _call(
        self,
        request: Callable[[], requests.Response],
        hints: dict[int, str] = _STATUS_HINTS,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        """Make a request (`attempts` tries at most, default the hook's), retried on transient failures
        and after a rate-limit reset within `max_rate_limit_wait`; return its JSON body."""
        while True:
            try:
                for attempt in self._retrying(attempts or self.attempts):
                    with attempt:
                        return self._request(request, hints)
            except RateLimited as limited:
                wait = (limited.reset_at - datetime.now(UTC)).total_seconds()
                if wait > RATE_LIMIT_WINDOW_SECONDS:
                    raise AirflowException(
                        f"{limited}; the rate limit resets at {_iso(limited.reset_at)} (in {wait:.0f} s), "
                        f"later than X's {RATE_LIMIT_WINDOW_SECONDS} s rate-limit window allows: a wrong header "
                        "or a skewed clock"
                    ) from None
                if wait > self.max_rate_limit_wait:
                    raise
                self.log.warning(
                    "%s; waiting %.0f s for the reset at %s", limited, wait, _iso(limited.reset_at)
                )
                time.sleep(max(wait, 0) + 1)

    def _retrying(self, attempts: int) -> Retrying:
        """Tries on transient failures, with exponential backoff, each failure logged."""
        return Retrying(
            retry=retry_if_exception_type(TransientXApiError),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.backoff, max=30),
            before_sleep=lambda state: self.log.warning(
                "Attempt %d of %d failed, retrying: %s",
                state.attempt_number,
                attempts,
                state.outcome.exception(),
            ),
            reraise=True,
        )

    def _request(
        self, request: Callable[[], requests.Response], hints: dict[int, str] = _STATUS_HINTS
    ) -> dict[str, Any]:
        """Make one request and translate every failure into an Airflow exception with a clear message."""
        self.requests_made += 1
        try:
            response = request()
        except tweepy.HTTPException as error:
            failed = error.response
            body = _json_body(failed.text)
            raise self._error_for(failed.status_code, failed.reason, failed.headers, body, hints) from None
        except requests.RequestException as error:
            raise TransientXApiError(
                f"X API request to {self.base_url} failed{self._for_connection}: "
                f"{type(error).__name__}: {error}"
            ) from None
        self.rate_limit_remaining = response.headers.get("x-rate-limit-remaining")
        self.rate_limit_limit = response.headers.get("x-rate-limit-limit")
        body = _json_body(response.text)
        if not isinstance(body, dict):
            raise TransientXApiError(
                f"X API returned HTTP {response.status_code} with a body that is not JSON{self._for_connection}: "
                f"{response.text[:200]!r}"
            )
        return body

    def _error_for(self, status: int, reason: str, headers, body: object, hints: dict[int, str]) -> Exception:
        """The exception an X API error answer means, naming the status, the API's message, the
        connection and what to check."""
        messages = _api_messages(body) or [reason]
        hint = hints.get(status, "")
        message = f"X API returned HTTP {status}{self._for_connection}: {'; '.join(messages)}" + (
            f" ({hint})" if hint else ""
        )
        if status == 429:
            reset, capped = headers.get("x-rate-limit-reset"), self._usage_cap(body)
            if capped:
                return capped
            if reset is None:
                return TransientXApiError(message + " (no x-rate-limit-reset header)")
            return RateLimited(datetime.fromtimestamp(int(reset), UTC), message)
        if status >= 500:
            return TransientXApiError(message)
        if status == 409:
            return ComplianceJobConflict(message)
        if status == 400 and any("'start_time' must be on or after" in text for text in messages):
            return BeyondSearchHorizon(message)
        return AirflowFailException(message)

    def _usage_cap(self, body: object) -> UsageCapExceeded | None:
        """The failure a 429 whose body is a usage cap (X's `UsageCapExceeded` problem) means, at once."""
        if not isinstance(body, dict) or not (
            body.get("title") == "UsageCapExceeded" or str(body.get("type", "")).endswith("/usage-capped")
        ):
            return None
        period, scope = body.get("period", "unknown"), body.get("scope", "unknown")
        return UsageCapExceeded(
            f"X API returned HTTP 429 UsageCapExceeded{self._for_connection}: the {period} usage cap of the "
            f"{scope} is reached ({body.get('detail', 'no detail')}); waiting for the rate-limit reset does not "
            "help. Raise the cap or change the plan in the X developer portal, or wait for the next "
            f"{period.lower()} period, then clear the failed runs"
        )

    def _storage(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """A request to a job's pre-signed `what` (upload or download) URL on X's storage host, without
        credentials, retried on transient failures; its errors (Cloud Storage's XML) translated. The
        URL's query (its signature) never reaches a message."""
        shown = urlsplit(url)._replace(query="").geturl()
        for attempt in self._retrying(self.attempts):
            with attempt:
                try:
                    response = requests.request(method, url, timeout=self.timeout, **kwargs)
                except requests.RequestException as error:
                    reason = str(error).replace(urlsplit(url).query, "<signature>")
                    raise TransientXApiError(
                        f"Compliance {what} to {shown} failed{self._for_connection}: "
                        f"{type(error).__name__}: {reason}"
                    ) from None
                if response.status_code < 400:
                    return response
                code, message = _storage_error(response)
                failure = (
                    f"Compliance {what} at {shown} failed{self._for_connection}: HTTP {response.status_code} "
                    f"{code}: {message}"
                )
                if response.status_code >= 500:
                    raise TransientXApiError(failure)
                if code == "ExpiredToken":
                    raise ComplianceJobFailed(f"{failure} (the job's {what} URL expired: create a new job)")
                if code == "NoSuchKey":
                    raise AirflowException(f"{failure} (no results yet: wait until the job is complete)")
                raise AirflowFailException(failure)


def _job_id(job_id: str) -> str:
    """A compliance job id, checked before it goes into a URL."""
    if not _X_ID.fullmatch(str(job_id)):
        raise AirflowFailException(f"{str(job_id)[:40]!r} is not an X compliance job id (1 to 19 digits)")
    return str(job_id)


def _json_body(text: str) -> object:
    """A response body's JSON, or None if it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _api_messages(body: object) -> list[str]:
    """The messages of an X API error body: its `errors`' messages, else its `detail` (as tweepy reads them)."""
    if not isinstance(body, dict):
        return []
    errors = [*body.get("errors", []), *([body["error"]] if "error" in body else [])]
    messages = [error if isinstance(error, str) else error.get("message") for error in errors]
    messages = [str(message) for message in messages if message]
    return messages or ([str(body["detail"])] if "detail" in body else [])


def _storage_error(response: requests.Response) -> tuple[str, str]:
    """(code, message) of a storage error: Google Cloud Storage's XML `<Error>`, or the status's phrase."""
    try:
        error = ElementTree.fromstring(response.text)
    except ElementTree.ParseError:
        return response.reason or "Error", response.text[:200]
    details = error.findtext("Details")
    message = error.findtext("Message") or ""
    return error.findtext("Code") or "Error", message + (f" {details}" if details else "")


def _is_loopback(hostname: str) -> bool:
    """Whether a URL's host is this machine's loopback: localhost, 127.0.0.0/8 or ::1."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _created_at(tweet_id: str) -> str:
    """A post's creation time as the API writes `created_at`, from the milliseconds its id encodes."""
    epoch_ms = (int(tweet_id) >> 22) + TWITTER_EPOCH_MS
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
