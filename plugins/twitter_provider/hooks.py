"""TwitterHook: the X API v2 recent search, through tweepy, with timeouts, paging, retries and clear errors."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import time
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
import tweepy
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

TWEEPY_HOST = "https://api.twitter.com"  # hard-coded in tweepy.Client.request
X_API_HOST = "https://api.x.com"  # X's current host, the default base URL
TWITTER_EPOCH_MS = 1288834974657  # post ids encode their creation time in milliseconds after it
OAUTH1_FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
PAGE_SIZE = 100  # the most the recent search returns per request
RATE_LIMIT_WINDOW_SECONDS = 15 * 60  # X counts requests in 15-minute windows: a reset is never further away
_STATUS_HINTS = {
    400: "the X API refused the request's parameters",
    401: "check the connection's bearer token or OAuth 1.0a keys",
    402: "the X developer account has no credits left",
    403: "the app or its access level may not use this endpoint",
    404: "check the connection's host (API base URL)",
}
# x-rate-limit-limit of recent search per 15 minutes, by auth (user context or not): the access tier it means
_TIERS = {(60, False): "Basic", (60, True): "Basic", (450, False): "Pro", (180, True): "Pro"}
# Airflow's UI tests a connection under a random id of 8 letters and digits (airflow.utils.strings.get_random_string)
_TRANSIENT_CONN_ID = re.compile(r"[A-Za-z0-9]{8}")

# tweepy logs request headers (the bearer token) and requests-oauthlib the signed OAuth header at DEBUG.
for _logger in ("tweepy", "oauthlib", "requests_oauthlib"):
    logging.getLogger(_logger).setLevel(logging.INFO)


class TransientXApiError(AirflowException):
    """A failure that a later attempt may not meet: 5xx, no reply, a body that is not JSON."""


class UsageCapExceeded(AirflowFailException):
    """A 429 that is a usage cap, not a rate limit: waiting for the rate-limit reset does not help."""


class _RateLimited(Exception):
    def __init__(self, reset_at: datetime, message: str):
        super().__init__(message)
        self.reset_at = reset_at


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
    Reads tweets from the X API v2 with the credentials of an Airflow connection.

    The bearer token (app-only auth) is the connection's password; OAuth 1.0a user context is the
    extra fields `consumer_key`, `consumer_secret`, `access_token`, `access_token_secret`. The host,
    when set, replaces the API's base URL, `https://api.x.com` (e.g. a simulator at
    `http://127.0.0.1:8099`); plain http:// only on the loopback, unless the extra has `"allow_plain_http": true`.

    :param twitter_conn_id: the connection id
    :param timeout: connect and read timeout of every request, in seconds
    :param attempts: tries of one request that meets a transient failure, before the task fails
    :param backoff: first wait between those tries, in seconds; it doubles each time
    :param max_rate_limit_wait: after a 429, wait for a reset at most this far away (in seconds) and ask
        again; a reset further away fails with an error that names it
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
        host = (self._connection.host or "").rstrip("/")
        if not host:
            return X_API_HOST
        url = urlsplit(host)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise AirflowFailException(
                f"{self._connection_label}: host {host!r} is not an http(s) URL; "
                f"leave it empty for the X API ({X_API_HOST}) or set e.g. http://127.0.0.1:8099"
            )
        plain_http_allowed = self._connection.extra_dejson.get("allow_plain_http") is True
        if url.scheme == "http" and not _is_loopback(url.hostname or "") and not plain_http_allowed:
            raise AirflowFailException(
                f"{self._connection_label}: host {host!r} is plain http:// to another machine, which would send "
                "the credentials unencrypted; use https://, or http:// only on this machine's loopback "
                "(127.0.0.0/8, ::1, localhost), e.g. for the X API simulator (for a simulator on another host, "
                'add "allow_plain_http": true to the extra)'
            )
        return host

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

    def search_window(self, query: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """
        Return every tweet matching `query` with `start <= created_at < end`, newest first.

        Each tweet is the API's JSON object plus `author`: its user from the page's `includes.users`,
        or None (and `created_at` from its id, should the API leave it out). Every page is read, an
        empty one that carries a `next_token` too; a tweet met twice is kept once.

        :param query: the X API search query
        :param start: the window's first instant (inclusive), timezone-aware
        :param end: the window's end (exclusive), timezone-aware
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
        tweets: dict[str, dict[str, Any]] = {}
        pages = 0
        while True:
            page = self._get_page(params)
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
        try:
            self._request_page({"query": "Apple", "max_results": 10, "sort_order": "recency", **window})
        except Exception as error:
            return False, f"Recent search at {self._connection.host or X_API_HOST} failed: {error}"
        return True, (
            f"{self._connection_label} reached {self.base_url}: recent search works, "
            f"{self._rate_limit_summary()}"
        )

    def _rate_limit_summary(self) -> str:
        """The rate limit left, and the access tier its limit means, e.g. `rate limit remaining 447 of
        450 (Pro tier)`."""
        if self.rate_limit_limit is None:
            return f"rate limit remaining {self.rate_limit_remaining}"
        tier = _TIERS.get((int(self.rate_limit_limit), self._uses_oauth1), "unknown")
        return f"rate limit remaining {self.rate_limit_remaining} of {self.rate_limit_limit} ({tier} tier)"

    def _get_page(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page, retried on transient failures and after a rate-limit reset."""
        while True:
            try:
                for attempt in Retrying(
                    retry=retry_if_exception_type(TransientXApiError),
                    stop=stop_after_attempt(self.attempts),
                    wait=wait_exponential(multiplier=self.backoff, max=30),
                    before_sleep=lambda state: self.log.warning(
                        "Attempt %d of %d failed, retrying: %s",
                        state.attempt_number,
                        self.attempts,
                        state.outcome.exception(),
                    ),
                    reraise=True,
                ):
                    with attempt:
                        return self._request_page(params)
            except _RateLimited as limited:
                wait = (limited.reset_at - datetime.now(UTC)).total_seconds()
                if wait > self.max_rate_limit_wait:
                    raise AirflowException(
                        f"{limited}; the rate limit resets at {_iso(limited.reset_at)} (in {wait:.0f} s), "
                        f"later than the {self.max_rate_limit_wait:.0f} s this task waits for a reset"
                    ) from None
                self.log.warning(
                    "%s; waiting %.0f s for the reset at %s", limited, wait, _iso(limited.reset_at)
                )
                time.sleep(max(wait, 0) + 1)

    def _request_page(self, params: dict[str, Any]) -> dict[str, Any]:
        """Make one request and translate every failure into an Airflow exception with a clear message."""
        self.requests_made += 1
        try:
            response = self._client.search_recent_tweets(user_auth=self._uses_oauth1, **params)
        except tweepy.TooManyRequests as error:
            self._fail_on_usage_cap(error.response)
            reset = error.response.headers.get("x-rate-limit-reset")
            if reset is None:
                raise TransientXApiError(self._describe(error) + " (no x-rate-limit-reset header)") from None
            raise _RateLimited(datetime.fromtimestamp(int(reset), UTC), self._describe(error)) from None
        except tweepy.TwitterServerError as error:
            raise TransientXApiError(self._describe(error)) from None
        except tweepy.HTTPException as error:
            raise AirflowFailException(self._describe(error)) from None
        except requests.RequestException as error:
            raise TransientXApiError(
                f"X API request to {self.base_url} failed{self._for_connection}: "
                f"{type(error).__name__}: {error}"
            ) from None
        self.rate_limit_remaining = response.headers.get("x-rate-limit-remaining")
        self.rate_limit_limit = response.headers.get("x-rate-limit-limit")
        try:
            return response.json()
        except requests.JSONDecodeError:
            raise TransientXApiError(
                f"X API returned HTTP {response.status_code} with a body that is not JSON{self._for_connection}: "
                f"{response.text[:200]!r}"
            ) from None

    def _describe(self, error: tweepy.HTTPException) -> str:
        status = error.response.status_code
        message = "; ".join(map(str, error.api_messages)) or error.response.reason
        hint = _STATUS_HINTS.get(status, "")
        return f"X API returned HTTP {status}{self._for_connection}: {message}" + (
            f" ({hint})" if hint else ""
        )

    def _fail_on_usage_cap(self, response: requests.Response) -> None:
        """Fail at once on a 429 whose body is a usage cap (X's `UsageCapExceeded` problem)."""
        try:
            body = response.json()
        except requests.JSONDecodeError:
            return
        if not isinstance(body, dict) or not (
            body.get("title") == "UsageCapExceeded" or str(body.get("type", "")).endswith("/usage-capped")
        ):
            return
        period, scope = body.get("period", "unknown"), body.get("scope", "unknown")
        raise UsageCapExceeded(
            f"X API returned HTTP 429 UsageCapExceeded{self._for_connection}: the {period} usage cap of the "
            f"{scope} is reached ({body.get('detail', 'no detail')}); waiting for the rate-limit reset does not "
            "help. Raise the cap or change the plan in the X developer portal, or wait for the next "
            f"{period.lower()} period, then clear the failed runs"
        )


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
