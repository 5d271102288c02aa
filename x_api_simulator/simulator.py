"""``XApiSimulator``: the X API v2 recent search (``GET /2/tweets/search/recent``) and batch compliance
(``/2/compliance/jobs``, with the jobs' upload and download URLs) over real HTTP.

A FastAPI app served by uvicorn from a daemon thread. Its answers are held to X's OpenAPI contract
(``x_api_simulator/contract/``) by tests/x_api_simulator/test_contract.py.

Test controls, from Python: ``set_rate``, ``add_fault``, ``add_job_fault``, ``clear_faults``,
``add_compliance_event``, ``clear_compliance_events``, ``compliance_events``, ``compliance_results``, ``requests``,
``clear_requests``, ``tweets_between``; over HTTP (JSON bodies, no auth): ``POST /_sim/rate``,
``POST /_sim/faults``, ``POST /_sim/compliance/job-faults``, ``DELETE /_sim/faults``,
``POST /_sim/compliance/events``, ``GET /_sim/compliance/events``,
``GET /_sim/compliance/results?ids=..[&as_of=..]``, ``GET /_sim/requests``, ``DELETE /_sim/requests``,
``GET /_sim/tweets?start_time=..&end_time=..[&query=..]`` and ``GET /_sim/health``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import unquote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from x_api_simulator.compliance import (
    ACCOUNT_KINDS,
    CONFLICT,
    DOWNLOAD_PATH,
    JOB_TYPES,
    JOBS_PATH,
    KINDS,
    UNSUPPORTED_AUTHENTICATION,
    UPLOAD_PATH,
    X_ID,
    Job,
    Signer,
    hides,
    job_json,
    result_line,
    storage_error,
)
from x_api_simulator.query import QueryError, parse, subject
from x_api_simulator.tweets import (
    EPOCH,
    MINUTE_MS,
    TWITTER_EPOCH_MS,
    Event,
    Post,
    edited,
    find_post,
    format_ms,
    posts_between,
    snowflake_ms,
    user_pool,
)

SEARCH_PATH = "/2/tweets/search/recent"
MAX_WINDOW_MS = 24 * 60 * MINUTE_MS
TIERS = {"basic": {"app": 60, "user": 60}, "pro": {"app": 450, "user": 180}}  # requests per 15 minutes
REQUESTED_EDIT_WORKER = 1 << 13  # snowflake worker bit of versions made by an edit on request
MAX_UPLOAD_BYTES = 128_000_000  # X's compliance guide: one upload of at most 128 MB
TWEET_ALWAYS = {"id", "text", "edit_history_tweet_ids"}
USER_ALWAYS = {"id", "name", "username"}
PROBLEMS = {  # X's error bodies by status; the rest are {"title": phrase, "type": "about:blank", ...}
    400: {
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    },
    402: {
        "title": "CreditsDepleted",
        "detail": "Your enrolled account does not have any credits to fulfill this request.",
        "type": "https://api.twitter.com/2/problems/credits",
    },
    403: {
        "title": "Client Forbidden",
        "detail": "This request must be made using an approved developer account that is enrolled in the "
        "requested endpoint.",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    },
}
USAGE_CAPPED = {
    "title": "UsageCapExceeded",
    "detail": "Usage cap exceeded: Monthly product cap",
    "type": "https://api.twitter.com/2/problems/usage-capped",
    "period": "Monthly",
    "scope": "Product",
}
JSON_TYPE = "application/json; charset=utf-8"
PROBLEM_TYPE = "application/problem+json"
XML_TYPE = "application/xml; charset=UTF-8"
_SIGNED = {"X-Goog-Signature", "upload_id"}  # what grants access through a storage URL: never logged


class _Cursor(NamedTuple):
    """Where a page starts in a search window; encoded in ``next_token``."""

    offset: int
    page: int
    start_ms: int
    end_ms: int
    since_id: int | None


@dataclass
class _Fault:
    """A fault injected into the next ``times`` matching requests (-1: forever)."""

    status: int | None
    body: str | None
    delay: float
    times: int
    page: int | None
    start_time: str | None
    headers: dict[str, str | None]
    path: str
    method: str | None

    def matches(self, method: str, path: str, page: int | None, start_time: str | None) -> bool:
        """Tell whether a request of this method and path, for this page and start_time parameter, gets
        this fault."""
        return (
            path.startswith(self.path)
            and (self.method is None or self.method == method)
            and (self.page is None or self.page == page)
            and (self.start_time is None or self.start_time == start_time)
        )


class _Answer(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str | None]


class _Call(NamedTuple):
    """A compliance or storage request, read off the HTTP request."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str  # as the client reached the simulator: where the URLs it hands out point


class _Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_start: datetime
    count: int = Field(ge=0)


class _FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int | None = None
    body: str | dict | list | None = None
    delay: float = 0.0
    times: int = 1
    page: int | None = None
    start_time: str | None = None
    headers: dict[str, str | None] | None = None
    path: str = SEARCH_PATH
    method: str | None = None


class _JobFaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = "failed"
    times: int = 1


class _EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    id: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"timezone-aware datetime required, got {moment!r}")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _format_time(moment: datetime) -> str:
    """Format a datetime as the API's ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset, optional fraction) into an aware UTC datetime."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time without a timezone: {value!r}")
    return moment.astimezone(UTC)


def problem(status: int) -> dict:
    """X's error body for an HTTP status."""
    if status in PROBLEMS:
        return dict(PROBLEMS[status])
    phrase = HTTPStatus(status).phrase
    return {"title": phrase, "detail": phrase, "type": "about:blank", "status": status}


def _json(payload: object) -> bytes:
    """Encode a JSON response body (compact, UTF-8)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(status: int, payload: object, headers: dict[str, str | None] | None = None) -> _Answer:
    return _Answer(status, _json(payload), headers or {})


def _refused(code: str, details: str) -> _Answer:
    """A Cloud Storage error answer."""
    status, body = storage_error(code, details)
    return _Answer(status, body, {"content-type": XML_TYPE})


def _parsed(body: bytes) -> object:
    """A JSON request body, or None if it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def _param_error(name: str, values: list[str], message: str) -> dict:
    """One entry of a 400 body's ``errors``."""
    return {"parameters": {name: values}, "message": message}


def _select(item: dict, always: set[str], requested: set[str]) -> dict:
    """Keep the fields of a tweet or user that are always returned or were requested."""
    return {key: value for key, value in item.items() if key in always or key in requested}


def _csv(value: str | None) -> set[str]:
    """Split a comma-separated query parameter."""
    return set(filter(None, (value or "").split(",")))


def _encode_token(cursor: _Cursor) -> str:
    """Encode a cursor as an opaque ``next_token``."""
    return json.dumps(list(cursor), separators=(",", ":")).encode().hex()


def _decode_token(token: str) -> _Cursor | None:
    """Decode a ``next_token``; None if it is not one of ours."""
    try:
        cursor = _Cursor(*json.loads(bytes.fromhex(token)))
    except (ValueError, TypeError):
        return None
    if not all(isinstance(value, int) for value in cursor[:4]) or not isinstance(cursor.since_id, int | None):
        return None
    return cursor if cursor.offset >= 0 else None


def _page_of(params: dict[str, str]) -> int | None:
    """The 1-based page number a search request asks for; None for an invalid next_token."""
    token = params.get("next_token")
    if token is None:
        return 1
    cursor = _decode_token(token)
    return cursor.page if cursor else None


def _time_param(params: dict[str, str], name: str, errors: list[dict]) -> datetime | None:
    """Parse an optional time parameter; add a 400 error entry if it is malformed."""
    value = params.get(name)
    if value is None:
        return None
    try:
        return _parse_time(value)
    except ValueError:
        message = f"The `{name}` query parameter value [{value}] is not a valid RFC 3339 date-time"
        errors.append(_param_error(name, [value], message))
        return None


class XApiSimulator:
    """X API v2 recent-search and batch-compliance simulator, serving real HTTP from a daemon thread.

    :param tier: ``pro`` (450 requests per 15 minutes app-only, 180 per user) or ``basic`` (60 for both)
    :param rate_limit: requests per window for every credential instead of the tier's (None: the tier's)
    :param rate_limit_window: the rate-limit window in seconds (X: 900)
    :param searchable_after: seconds from a post's creation until search finds it
    :param search_horizon: how far back, in seconds, ``start_time`` may reach (X: 7 days)
    :param edit_rate: share of posts edited once, 1 to 30 minutes after creation (0: none)
    :param empty_page_rate: chance of a page to come empty with a ``next_token`` (at most one a search)
    :param usage_cap: posts read before every search gets 429 ``UsageCapExceeded`` (None: no cap)
    :param credits: distinct posts per UTC day billable before every search gets 402 (None: unlimited)
    :param compliance_rate: share of posts (never edited ones) that meet a compliance event 1 to 60
        minutes after creation: deleted, withheld, geo scrubbed, their author protected, suspended or
        deactivated
    :param compliance_processing: seconds a compliance job stays ``in_progress`` after its upload
    :param compliance_rate_limit: requests per rate-limit window to each compliance endpoint (X: 150)
    :param compliance_upload_ttl: seconds a job's upload URL lives (X: about 15 minutes), rounded up
    :param compliance_download_ttl: seconds a job's download URL lives from the job's creation (X: 7
        days), rounded up
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        bearer_token: str = "sim-token",
        rate_per_minute: int = 40,
        seed: int = 1,
        rate_limit: int | None = None,
        rate_limit_window: int = 900,
        oauth_consumer_key: str = "sim-consumer-key",
        oauth_access_token: str = "sim-access-token",
        searchable_after: float = 30.0,
        search_horizon: float = 7 * 24 * 3600,
        tier: str = "pro",
        edit_rate: float = 0.0,
        empty_page_rate: float = 0.0,
        usage_cap: int | None = None,
        credits: int | None = None,
        compliance_rate: float = 0.0,
        compliance_processing: float = 5.0,
        compliance_rate_limit: int = 150,
        compliance_upload_ttl: float = 900.0,
        compliance_download_ttl: float = 7 * 24 * 3600,
    ):
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}: expected one of {', '.join(TIERS)}")
        self.host = host
        self.port = port
        self.bearer_token = bearer_token
        self.rate_per_minute = rate_per_minute
        self.seed = seed
        self.rate_limit = rate_limit
        self.rate_limit_window = rate_limit_window
        self.oauth_consumer_key = oauth_consumer_key
        self.oauth_access_token = oauth_access_token
        self.searchable_after = searchable_after
        self.search_horizon = search_horizon
        self.tier = tier
        self.edit_rate = edit_rate
        self.empty_page_rate = empty_page_rate
        self.usage_cap = usage_cap
        self.credits = credits
        self.compliance_rate = compliance_rate
        self.compliance_processing = compliance_processing
        self.compliance_rate_limit = compliance_rate_limit
        self.compliance_upload_ttl = compliance_upload_ttl
        self.compliance_download_ttl = compliance_download_ttl
        self.compliance_upload_limit = MAX_UPLOAD_BYTES
        self._lock = threading.Lock()
        self._rates: dict[int, int] = {}
        self._last_window: tuple[tuple, list[tuple[dict, dict]]] | None = None  # (its key, its posts)
        self._faults: list[_Fault] = []
        self._job_faults: list[list] = []  # [status, times left]
        self._jobs: dict[str, Job] = {}
        self._signer = Signer(secrets.token_bytes(16))
        self._events: dict[str, Event] = {}  # requested events by post id
        self._account_events: dict[str, Event] = {}  # requested events by user id
        self._edits: dict[str, Post] = {}  # versions made by an edit on request, by the id they replace
        self._event_log: list[dict] = []  # the events made on request, in order
        self._requests: list[dict] = []
        self._rate_windows: dict[str, tuple[float, int]] = {}
        self._posts_read = 0
        self._billed: set[tuple[str, str]] = set()  # (UTC day, post id): X bills a post once a day
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # Life cycle

    def start(self) -> XApiSimulator:
        """Bind the port (port 0: a free one) and serve in a daemon thread; return once it serves."""
        self._stopping.clear()
        self._socket = socket.create_server((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="x-api-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"X API simulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; requests held by a delay fault are released."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join()
        self._socket.close()
        self._server = self._thread = self._socket = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8099``."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> XApiSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Controls and ground truth

    def tweets_between(self, start: datetime, end: datetime, query: str | None = None) -> list[dict]:
        """Every post with start <= created_at < end (aware datetimes) that ``query`` matches (None: all),
        newest first, in its latest version as of now, whether or not it is searchable yet.

        Each post is as in a response's ``data`` with every field, plus its user under "author".
        """
        found = self._window(_to_ms(start), _to_ms(end), query)
        return [copy.deepcopy({**tweet, "author": author}) for tweet, author in found]

    def set_rate(self, window_start: datetime, count: int) -> None:
        """Generate ``count`` posts in the UTC minute starting at ``window_start`` (floored to the minute)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._rates[_to_ms(window_start) // MINUTE_MS] = count

    def add_fault(
        self,
        status: int | None = None,
        body: str | dict | list | None = None,
        delay: float = 0.0,
        times: int = 1,
        page: int | None = None,
        start_time: str | datetime | None = None,
        headers: dict[str, str | None] | None = None,
        path: str = SEARCH_PATH,
        method: str | None = None,
    ) -> None:
        """Make the next ``times`` (-1: all) matching requests fail or hang.

        A request matches if its path starts with ``path`` (default: the search's), its method is
        ``method``, its page number equals ``page`` and its start_time parameter equals ``start_time``
        (each when given; compliance requests have neither). It gets, after sleeping ``delay``
        seconds: ``status`` with ``body`` (default: X's error body of that status) and ``headers``
        added to the rate-limit headers (a None value removes a header); or, without a status, 200
        with the raw ``body``; or, with neither, the normal response.
        """
        if times == 0 or times < -1:
            raise ValueError(f"times must be -1 or positive, got {times}")
        if isinstance(start_time, datetime):
            start_time = _format_time(start_time)
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        fault = _Fault(status, body, delay, times, page, start_time, dict(headers or {}), path, method)
        with self._lock:
            self._faults.append(fault)

    def add_job_fault(self, status: str = "failed", times: int = 1) -> None:
        """Make the next ``times`` compliance jobs to get their upload end ``failed`` or ``expired``
        instead of ``complete``."""
        if status not in ("failed", "expired"):
            raise ValueError(f"a job fault's status is failed or expired, got {status!r}")
        if times < 1:
            raise ValueError(f"times must be positive, got {times}")
        with self._lock:
            self._job_faults.append([status, times])

    def finish_compliance_job(self, job_id: str) -> None:
        """End an uploaded compliance job's processing now (its status then follows at once)."""
        with self._lock:
            job = self._jobs[job_id]
            if job.uploaded_ms is None:
                raise ValueError(f"compliance job {job_id} has no upload yet")
            job.processing_ms = min(job.processing_ms, int(time.time() * 1000) - job.uploaded_ms)

    def clear_faults(self) -> None:
        """Remove every pending fault, job faults included."""
        with self._lock:
            self._faults.clear()
            self._job_faults.clear()

    def clear_rate_limits(self) -> None:
        """Start every credential's rate-limit window afresh, with no request counted."""
        with self._lock:
            self._rate_windows.clear()

    @property
    def requests(self) -> list[dict]:
        """Copy of the request log (searches, compliance requests, uploads and downloads): method, path,
        params, status (None while pending), page (searches), time; ``json`` (the body of a job's
        creation) or ``bytes`` (an upload's size). Never credentials, nor the URLs' signatures."""
        with self._lock:
            return [{**record, "params": dict(record["params"])} for record in self._requests]

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._requests.clear()

    # Compliance events

    def add_compliance_event(self, kind: str, id: str) -> dict:
        """Make a compliance event happen now: ``delete``, ``withhold``, ``scrub_geo`` or ``edit`` a
        post (``id``: a post id the simulator generated), or ``protect``, ``suspend`` or ``deactivate``
        an account (``id``: a user id). Deleted, withheld posts and every post of a protected,
        suspended or deactivated account leave search at once; an edit makes a new version, found
        once searchable in the window of its edit, that replaces the post. Returns the event:
        kind, id, at (and ``edited_id`` for an edit)."""
        if kind not in KINDS:
            raise ValueError(f"unknown compliance event {kind!r}: expected one of {', '.join(KINDS)}")
        post = None if kind in ACCOUNT_KINDS else self._post(id)
        if kind in ACCOUNT_KINDS and id not in {user["id"] for user in user_pool(self.seed)}:
            raise ValueError(f"no user {id!r} among the simulator's users (seed {self.seed})")
        if kind not in ACCOUNT_KINDS and post is None:
            raise ValueError(f"no post {id!r} among the simulator's posts")
        now_ms = _now_ms()
        made = {"kind": kind, "id": id, "at": format_ms(now_ms)}
        with self._lock:
            if kind == "edit" and id in self._edits:
                raise ValueError(f"post {id} was already edited into {self._edits[id].tweet['id']}")
            if kind == "edit":
                self._edits[id] = self._edit(post, now_ms)
                made["edited_id"] = self._edits[id].tweet["id"]
            (self._account_events if kind in ACCOUNT_KINDS else self._events)[id] = Event(kind, now_ms)
            self._event_log.append(made)
        return dict(made)

    def clear_compliance_events(self) -> None:
        """Undo every event made on request: each post is again as generated (and a past window's pages again
        come from one evaluation)."""
        with self._lock:
            self._events.clear()
            self._account_events.clear()
            self._edits.clear()
            self._event_log.clear()

    @property
    def compliance_events(self) -> list[dict]:
        """The events made on request, in order: kind, id, at (and ``edited_id``, the new version's id,
        for an edit)."""
        with self._lock:
            return [dict(event) for event in self._event_log]

    def compliance_results(self, ids: list[str], as_of: datetime | None = None) -> list[dict]:
        """The result lines a tweets compliance job finishing at ``as_of`` (default: now) gives for
        these ids: one per id with an event by then, in the order given."""
        as_of_ms = _to_ms(as_of) if as_of is not None else _now_ms()
        lines = (self._result_line(id, as_of_ms) for id in dict.fromkeys(ids))
        return [line for line in lines if line is not None]

    # Posts

    def _window(
        self,
        start_ms: int,
        end_ms: int,
        query: str | None,
        since_id: int | None = None,
        created_before_ms: int | None = None,
    ) -> list[tuple[dict, dict]]:
        """(tweet, author) of the posts with start_ms <= created_at < end_ms that the query matches,
        newest first; with ``since_id``, only later ids; with ``created_before_ms``, only posts (and
        edits) created before it. Posts deleted, withheld or of an account protected, suspended or
        deactivated by now are left out."""
        now_ms = _now_ms()
        as_of = created_before_ms if created_before_ms is not None else now_ms
        with self._lock:
            events, accounts, edits = dict(self._events), dict(self._account_events), dict(self._edits)
        if self.edit_rate or self.compliance_rate or events or accounts or edits or as_of < end_ms:
            return self._matching(start_ms, end_ms, query, since_id, as_of, now_ms, events, accounts, edits)
        # A past window without edits or compliance events stays as it is: the pages of one search are cut from
        # one evaluation (the 1,500 pages of a 150,000-post minute would each evaluate the query on every post).
        minutes = range(start_ms // MINUTE_MS, (end_ms - 1) // MINUTE_MS + 1)
        rates = tuple(self._rates.get(minute, self.rate_per_minute) for minute in minutes)
        key = (self.seed, rates, start_ms, end_ms, query, since_id)
        last = self._last_window
        if last is None or last[0] != key:
            found = self._matching(start_ms, end_ms, query, since_id, as_of, now_ms, events, accounts, edits)
            last = self._last_window = (key, found)
        return last[1]

    def _matching(
        self,
        start_ms: int,
        end_ms: int,
        query: str | None,
        since_id: int | None,
        as_of: int,
        now_ms: int,
        events: dict[str, Event],
        accounts: dict[str, Event],
        edits: dict[str, Post],
    ) -> list[tuple[dict, dict]]:
        matches = parse(query) if query is not None else None
        posts = posts_between(
            self.seed,
            self._rates,
            self.rate_per_minute,
            self.edit_rate,
            start_ms,
            min(end_ms, as_of),
            as_of,
            self.compliance_rate,
        )
        if edits:  # versions made on request replace theirs once they exist (at as_of too)
            replaced = {tweet_id for tweet_id, post in edits.items() if post.epoch_ms <= as_of}
            posts += [post for post in edits.values() if start_ms <= post.epoch_ms < min(end_ms, as_of + 1)]
            posts = [post for post in posts if post.tweet["id"] not in replaced]
            posts.sort(key=lambda post: int(post.tweet["id"]), reverse=True)

        def removed(post: Post) -> bool:
            found = (post.event, events.get(post.tweet["id"]), accounts.get(post.author["id"]))
            return any(event and hides(event) and event.at_ms <= now_ms for event in found)

        return [
            (post.tweet, post.author)
            for post in posts
            if (since_id is None or int(post.tweet["id"]) > since_id)
            and not removed(post)
            and (
                matches is None
                or matches(subject(post.tweet["text"], post.author["username"], post.tweet.get("lang")))
            )
        ]

    def _version(self, tweet_id: str) -> tuple[Post, Event | None] | None:
        """The version of a post with this id, and the scheduled edit that replaced it, if any."""
        found = find_post(
            self.seed, self._rates, self.rate_per_minute, self.edit_rate, self.compliance_rate, tweet_id
        )
        if found:
            original, edit = found
            if original.tweet["id"] != tweet_id:
                return edit, None
            return original, Event("edit", edit.epoch_ms) if edit else None
        with self._lock:
            made = [post for post in self._edits.values() if post.tweet["id"] == tweet_id]
        return (made[0], None) if made else None

    def _post(self, tweet_id: str) -> Post | None:
        version = self._version(tweet_id)
        return version[0] if version else None

    def _edit(self, post: Post, now_ms: int) -> Post:
        """A new version of a post, edited now on request (under the lock)."""
        return edited(post, now_ms, REQUESTED_EDIT_WORKER | len(self._edits) % 4096)

    def _result_line(self, tweet_id: str, as_of_ms: int, version: tuple | None = None) -> dict | None:
        """A post's result line in a tweets job finishing at ``as_of_ms`` (``version``: the post's, found
        already); None without an event."""
        version = version or self._version(tweet_id)
        if version is None:
            return None
        post, scheduled_edit = version
        with self._lock:
            requested, account = self._events.get(tweet_id), self._account_events.get(post.author["id"])
        if account:  # a post made after its account was protected is protected from its creation
            account = account._replace(at_ms=max(account.at_ms, post.epoch_ms))
        return result_line(
            tweet_id, post.epoch_ms, [post.event, scheduled_edit, requested, account], as_of_ms
        )

    def _user_line(self, user_id: str, as_of_ms: int) -> dict | None:
        """A user's result line in a users job finishing at ``as_of_ms``; None without an event."""
        with self._lock:
            event = self._account_events.get(user_id)
        return result_line(user_id, None, [event], as_of_ms)

    # HTTP

    def _build_app(self) -> FastAPI:
        """The HTTP routes: search, compliance jobs, the jobs' storage URLs and the ``/_sim`` controls."""
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.get(SEARCH_PATH)
        def search(request: Request) -> Response:
            return self._respond(self._logged_search(dict(request.query_params), request.headers))

        async def compliance_api(request: Request) -> Response:
            body = await request.body()
            return self._respond(await run_in_threadpool(self._logged, request, body, self._compliance))

        async def storage(request: Request) -> Response:
            body = await request.body()
            return self._respond(await run_in_threadpool(self._logged, request, body, self._storage))

        app.add_api_route(JOBS_PATH, compliance_api, methods=["GET", "POST"])
        app.add_api_route(JOBS_PATH + "/{job_id}", compliance_api, methods=["GET", "DELETE"])
        app.add_api_route(UPLOAD_PATH + "/{job_id}", storage, methods=["PUT", "POST"])
        app.add_api_route(DOWNLOAD_PATH + "/{job_id}", storage, methods=["GET"])

        @app.get("/_sim/health")
        def health() -> dict:
            return {"status": "ok"}

        @app.post("/_sim/rate")
        def rate(body: _Rate) -> dict:
            self.set_rate(body.window_start, body.count)
            return {"status": "ok"}

        @app.post("/_sim/faults")
        def add_fault(body: _FaultRequest) -> dict:
            self.add_fault(**body.model_dump())
            return {"status": "ok"}

        @app.post("/_sim/compliance/job-faults")
        def add_job_fault(body: _JobFaultRequest) -> dict:
            self.add_job_fault(body.status, body.times)
            return {"status": "ok"}

        @app.delete("/_sim/faults")
        def clear_faults() -> dict:
            self.clear_faults()
            return {"status": "ok"}

        @app.post("/_sim/compliance/events")
        def add_compliance_event(body: _EventRequest) -> dict:
            return self.add_compliance_event(body.kind, body.id)

        @app.get("/_sim/compliance/events")
        def compliance_events() -> list[dict]:
            return self.compliance_events

        @app.get("/_sim/compliance/results")
        def compliance_results(ids: str, as_of: datetime | None = None) -> list[dict]:
            return self.compliance_results(ids.split(","), as_of)

        @app.get("/_sim/requests")
        def requests() -> list[dict]:
            return self.requests

        @app.delete("/_sim/requests")
        def clear_requests() -> dict:
            self.clear_requests()
            return {"status": "ok"}

        @app.get("/_sim/tweets")
        def tweets(start_time: datetime, end_time: datetime, query: str | None = None) -> list[dict]:
            return self.tweets_between(start_time, end_time, query)

        @app.exception_handler(RequestValidationError)
        def invalid_control(request: Request, error: RequestValidationError) -> JSONResponse:
            return JSONResponse({"error": str(error.errors())}, status_code=400)

        @app.exception_handler(ValueError)
        def refused_control(request: Request, error: ValueError) -> JSONResponse:
            return JSONResponse({"error": str(error)}, status_code=400)

        @app.exception_handler(HTTPException)
        def not_served(request: Request, error: HTTPException) -> Response:
            return self._respond(_answer(error.status_code, problem(error.status_code)))

        return app

    @staticmethod
    def _respond(answer: _Answer) -> Response:
        headers = {name: value for name, value in answer.headers.items() if value is not None}
        media_type = JSON_TYPE if answer.status < 400 else PROBLEM_TYPE
        return Response(answer.body, status_code=answer.status, headers=headers, media_type=media_type)

    def _logged_search(self, params: dict[str, str], headers) -> _Answer:
        """Answer a search request and record it (never its credentials) in the request log."""
        page = _page_of(params)
        record = {
            "method": "GET",
            "path": SEARCH_PATH,
            "params": params,
            "status": None,
            "page": page,
            "time": time.time(),
        }
        with self._lock:
            self._requests.append(record)
        answer = self._search(params, headers.get("authorization", ""), page)
        with self._lock:
            record["status"] = answer.status
        return answer

    def _logged(self, request: Request, body: bytes, answer) -> _Answer:
        """Answer a compliance or storage request with ``answer(_Call)`` and record it (never its
        credentials nor the URL's signature) in the request log."""
        params = dict(request.query_params)
        call = _Call(
            request.method,
            request.url.path,
            params,
            request.headers,
            body,
            str(request.base_url).rstrip("/"),
        )
        record = {
            "method": call.method,
            "path": call.path,
            "params": {name: value for name, value in params.items() if name not in _SIGNED},
            "status": None,
            "page": None,
            "time": time.time(),
        }
        if call.path == JOBS_PATH and call.method == "POST":
            record["json"] = _parsed(body)
        elif call.path.startswith(UPLOAD_PATH):
            record["bytes"] = len(body)
        with self._lock:
            self._requests.append(record)
        result = answer(call)
        with self._lock:
            record["status"] = result.status
        return result

    def _search(self, params: dict[str, str], authorization: str, page: int | None) -> _Answer:
        """Authenticate, rate-limit, apply caps and credits, inject faults, then search."""
        credential = self._credential(authorization)
        if credential is None:
            return _answer(401, problem(401))
        limit = self.rate_limit if self.rate_limit is not None else TIERS[self.tier][credential]
        headers, limited = self._count_request(credential, limit)
        if limited:
            return _answer(429, problem(429), headers)
        if self.usage_cap is not None and self._posts_read >= self.usage_cap:
            return _answer(429, USAGE_CAPPED, headers)  # the rate-limit headers still show requests left
        faulted = self._fault("GET", SEARCH_PATH, page, params.get("start_time"), headers)
        if faulted:
            return faulted
        status, payload = self._search_result(params)
        if status == 200 and not self._bill(payload.get("data", [])):
            return _answer(402, problem(402), headers)
        return _answer(status, payload, headers)

    def _bill(self, tweets: list[dict]) -> bool:
        """Count the posts read against the usage cap and bill them, each once per UTC day; False if
        the credits do not cover the posts not billed yet today (then nothing is billed)."""
        day = datetime.now(UTC).date().isoformat()
        with self._lock:
            new = {(day, tweet["id"]) for tweet in tweets} - self._billed
            if self.credits is not None and len(self._billed) + len(new) > self.credits:
                return False
            self._posts_read += len(tweets)
            self._billed |= new
            return True

    def _credential(self, authorization: str) -> str | None:
        """The rate-limit bucket (``app`` or ``user``) of a valid Authorization header, None if not valid."""
        scheme, _, value = authorization.partition(" ")
        if scheme == "Bearer" and value == self.bearer_token:
            return "app"
        if scheme == "OAuth":
            oauth = {key: unquote(val) for key, val in re.findall(r'(\w+)="([^"]*)"', value)}
            if (
                oauth.get("oauth_consumer_key") == self.oauth_consumer_key
                and oauth.get("oauth_token") == self.oauth_access_token
            ):
                return "user"
        return None

    def _count_request(self, bucket: str, limit: int) -> tuple[dict[str, str], bool]:
        """Count a request in its bucket's fixed window: (rate-limit headers, over the limit?)."""
        now = time.time()
        with self._lock:
            window_start, used = self._rate_windows.get(bucket, (now, 0))
            if now >= window_start + self.rate_limit_window:
                window_start, used = now, 0
            used += 1
            self._rate_windows[bucket] = (window_start, used)
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(limit - used, 0)),
            "x-rate-limit-reset": str(math.ceil(window_start + self.rate_limit_window)),
        }
        return headers, used > limit

    def _fault(
        self, method: str, path: str, page: int | None, start_time: str | None, headers: dict[str, str]
    ) -> _Answer | None:
        """Pop (or count down) the first fault matching a request and apply it: sleep its delay, then
        its answer, or None to answer normally."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path, page, start_time)), None)
            if fault and fault.times > 0:
                fault.times -= 1
            if fault and fault.times == 0:
                self._faults.remove(fault)
        if fault is None:
            return None
        self._stopping.wait(fault.delay)
        if fault.status is None and fault.body is None:
            return None
        status = fault.status or 200
        body = fault.body.encode() if fault.body is not None else _json(problem(status))
        return _Answer(status, body, {**headers, **fault.headers})

    # Batch compliance

    def _compliance(self, call: _Call) -> _Answer:
        """Authenticate (app-only), rate-limit and inject faults, then answer a compliance request."""
        credential = self._credential(call.headers.get("authorization", ""))
        if credential is None:
            return _answer(401, problem(401))
        if credential == "user":
            return _answer(403, UNSUPPORTED_AUTHENTICATION)
        job_id = call.path.removeprefix(JOBS_PATH).lstrip("/")
        bucket = f"{call.method} {JOBS_PATH}" + ("/{id}" if job_id else "")
        headers, limited = self._count_request(bucket, self.compliance_rate_limit)
        if limited:
            return _answer(429, problem(429), headers)
        faulted = self._fault(call.method, call.path, None, None, headers)
        if faulted:
            return faulted
        now_ms = _now_ms()
        if not job_id:
            if call.method == "POST":
                status, payload = self._create_job(call.body, call.base_url, now_ms)
            else:
                status, payload = self._list_jobs(call.params, call.base_url, now_ms)
            return _answer(status, payload, headers)
        if not X_ID.fullmatch(job_id):
            message = f"The `id` path parameter value [{job_id}] is not valid"
            return _answer(400, {"errors": [_param_error("id", [job_id], message)], **problem(400)}, headers)
        with self._lock:
            job = self._jobs.get(job_id)
            if job and call.method == "DELETE" and job.active(now_ms):
                job.cancelled = True
        if job is None:
            return _answer(404, problem(404), headers)
        return _answer(200, {"data": job_json(job, self._signer, call.base_url, now_ms)}, headers)

    def _create_job(self, body: bytes, base_url: str, now_ms: int) -> tuple[int, dict]:
        """Validate a job's creation like the API, then create it unless one of its type is active."""
        request = _parsed(body)
        if not isinstance(request, dict):
            return 400, {"errors": [{"message": "The request body must be a JSON object"}], **problem(400)}
        errors = []
        kind, name, resumable = request.get("type"), request.get("name"), request.get("resumable", False)
        if kind not in JOB_TYPES:
            message = f"The `type` body parameter value [{kind}] is not one of [{', '.join(JOB_TYPES)}]"
            errors.append(_param_error("type", [str(kind)], message))
        if name is not None and (not isinstance(name, str) or len(name) > 64):
            message = f"The `name` body parameter value [{name}] is not a string of at most 64 characters"
            errors.append(_param_error("name", [str(name)], message))
        if not isinstance(resumable, bool):
            message = f"The `resumable` body parameter value [{resumable}] is not a boolean"
            errors.append(_param_error("resumable", [str(resumable)], message))
        for unknown in sorted(set(request) - {"type", "name", "resumable"}):
            errors.append(_param_error(unknown, [], f"The body parameter `{unknown}` is not known"))
        if errors:
            return 400, {"errors": errors, **problem(400)}
        with self._lock:
            if any(job.type == kind and job.active(now_ms) for job in self._jobs.values()):
                return 409, CONFLICT
            created_ms = now_ms // 1000 * 1000  # X's job times are whole seconds, as the URLs' expiries
            job = Job(
                id=str(((now_ms - TWITTER_EPOCH_MS) << 22) | len(self._jobs) % 4096),
                type=kind,
                name=name,
                resumable=resumable,
                created_ms=created_ms,
                upload_expires_ms=created_ms + math.ceil(self.compliance_upload_ttl) * 1000,
                download_expires_ms=created_ms + math.ceil(self.compliance_download_ttl) * 1000,
                processing_ms=int(self.compliance_processing * 1000),
            )
            self._jobs[job.id] = job
        return 200, {"data": job_json(job, self._signer, base_url, now_ms)}

    def _list_jobs(self, params: dict[str, str], base_url: str, now_ms: int) -> tuple[int, dict]:
        """The jobs of a type (and a status), newest first."""
        kind, status = params.get("type"), params.get("status")
        errors = []
        if kind not in JOB_TYPES:
            message = f"The `type` query parameter value [{kind}] is not one of [{', '.join(JOB_TYPES)}]"
            errors.append(_param_error("type", [kind] if kind else [], message))
        listable = ("created", "in_progress", "failed", "complete")
        if status is not None and status not in listable:
            message = f"The `status` query parameter value [{status}] is not one of [{', '.join(listable)}]"
            errors.append(_param_error("status", [status], message))
        if errors:
            return 400, {"errors": errors, **problem(400)}
        with self._lock:
            jobs = [
                job
                for job in sorted(self._jobs.values(), key=lambda job: int(job.id), reverse=True)
                if job.type == kind and status in (None, job.status(now_ms))
            ]
        if not jobs:
            return 200, {"meta": {"result_count": 0}}
        data = [job_json(job, self._signer, base_url, now_ms) for job in jobs]
        return 200, {"data": data, "meta": {"result_count": len(data)}}

    def _storage(self, call: _Call) -> _Answer:
        """Answer a request to a job's upload or download URL as Cloud Storage would."""
        if "authorization" in call.headers:
            return _refused("InvalidArgument", "A signed URL takes no Authorization header")
        faulted = self._fault(call.method, call.path, None, None, {})
        if faulted:
            return faulted
        now_ms = _now_ms()
        with self._lock:
            job = self._jobs.get(call.path.rsplit("/", 1)[-1])
        session = call.params.get("upload_id")
        if session is None:
            refusal = self._signer.check(call.method, call.path, call.params, now_ms)
            if refusal:
                return _refused(*refusal)
        elif job is None or call.method != "PUT" or session not in job.sessions:
            return _refused("InvalidArgument", "No such resumable upload session")
        # a valid signature or session: the job exists
        if call.path.startswith(DOWNLOAD_PATH):
            return self._download(job, now_ms)
        if call.headers.get("content-type", "").partition(";")[0].strip() != "text/plain":
            return _refused("SignatureDoesNotMatch", "Content-Type must be text/plain")
        if call.method == "POST":
            if call.headers.get("x-goog-resumable") != "start":
                return _refused("InvalidArgument", "x-goog-resumable: start expected")
            session = secrets.token_hex(8)
            with self._lock:
                job.sessions.add(session)
            location = f"{call.base_url}{call.path}?upload_id={session}"
            return _Answer(201, b"", {"location": location, "content-type": "text/plain"})
        return self._receive(job, call.body, now_ms)

    def _receive(self, job: Job, body: bytes, now_ms: int) -> _Answer:
        """Take a job's ids; while it is active, (re)start its processing."""
        if len(body) > self.compliance_upload_limit:
            details = f"{len(body)} bytes; at most {self.compliance_upload_limit}"
            return _refused("EntityTooLarge", details)
        lines = [line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
        with self._lock:
            if job.active(now_ms):
                job.ids, job.uploaded_ms, job.resolved_ms, job.versions = lines, now_ms, None, {}
                job.outcome = "complete"
                if not all(X_ID.fullmatch(line) for line in lines):
                    job.outcome = "failed"
                elif self._job_faults:
                    job.outcome = self._job_faults[0][0]
                    self._job_faults[0][1] -= 1
                    if not self._job_faults[0][1]:
                        self._job_faults.pop(0)
                resolve = threading.Thread(target=self._resolve, args=(job, lines), daemon=True)
                resolve.start()
        return _Answer(200, b"", {"content-type": "text/plain"})

    def _resolve(self, job: Job, ids: list[str]) -> None:
        """Find the post of each of a job's ids (a tweets job that did not fail), then mark it resolved, unless
        another upload replaced its ids meanwhile."""
        versions = {}
        if job.type == "tweets" and job.outcome != "failed":
            versions = {tweet_id: self._version(tweet_id) for tweet_id in dict.fromkeys(ids)}
        with self._lock:
            if job.ids is ids:
                job.versions, job.resolved_ms = versions, _now_ms()

    def _download(self, job: Job, now_ms: int) -> _Answer:
        """A complete job's result lines, one JSON object a line, as of when it finished."""
        with self._lock:
            status = job.status(now_ms)
        if status != "complete":
            return _refused("NoSuchKey", f"the results of a {status} job")
        if job.type == "tweets":
            lines = [
                self._result_line(tweet_id, job.finished_ms, version)
                for tweet_id, version in job.versions.items()
            ]
        else:
            lines = [self._user_line(user_id, job.finished_ms) for user_id in dict.fromkeys(job.ids)]
        body = "".join(json.dumps(line) + "\n" for line in lines if line is not None)
        return _Answer(200, body.encode(), {"content-type": "application/json"})

    def _search_result(self, params: dict[str, str]) -> tuple[int, dict]:
        """Validate the search parameters like the real API and return (status, JSON payload)."""
        now = datetime.now(UTC)
        errors: list[dict] = []
        query = params.get("query", "")
        if not query.strip():
            errors.append(_param_error("query", [], "The `query` query parameter can not be empty"))
        else:
            try:
                parse(query)
            except QueryError as error:
                errors.append(_param_error("query", [query], str(error)))
        raw_max = params.get("max_results", "10")
        max_results = int(raw_max) if raw_max.isdigit() else 0
        if not 10 <= max_results <= 100:
            message = f"The `max_results` query parameter value [{raw_max}] is not between 10 and 100"
            errors.append(_param_error("max_results", [raw_max], message))
        sort_order = params.get("sort_order", "recency")
        if sort_order not in ("recency", "relevancy"):
            message = (
                f"The `sort_order` query parameter value [{sort_order}] is not one of [recency, relevancy]"
            )
            errors.append(_param_error("sort_order", [sort_order], message))
        start = _time_param(params, "start_time", errors)
        end = _time_param(params, "end_time", errors)
        start_value, end_value = params.get("start_time"), params.get("end_time")
        if end and end > now - timedelta(seconds=10):
            message = (
                f"Invalid 'end_time':'{end_value}'. "
                "'end_time' must be a minimum of 10 seconds prior to the request time."
            )
            errors.append(_param_error("end_time", [end_value], message))
        oldest = now - timedelta(seconds=self.search_horizon)
        if start and start < oldest:
            message = (
                f"Invalid 'start_time':'{start_value}'. "
                f"'start_time' must be on or after {_format_time(oldest)}"
            )
            errors.append(_param_error("start_time", [start_value], message))
        if start and end and start >= end:
            message = (
                f"Invalid 'start_time':'{start_value}'. 'start_time' must be before 'end_time':'{end_value}'"
            )
            errors.append(_param_error("start_time", [start_value], message))
        since_id = params.get("since_id")
        if since_id is not None and not since_id.isdigit():
            message = f"The `since_id` query parameter value [{since_id}] is not valid"
            errors.append(_param_error("since_id", [since_id], message))
        token = params.get("next_token")
        cursor = None if token is None else _decode_token(token)
        if token is not None and cursor is None:
            message = f"The `next_token` query parameter value [{token}] is not valid"
            errors.append(_param_error("next_token", [token], message))
        if not errors and cursor is None:
            first = start or oldest
            if since_id:
                first = EPOCH + timedelta(milliseconds=snowflake_ms(int(since_id)))
            last = end or now - timedelta(seconds=30)
            cursor = _Cursor(0, 1, _to_ms(first), _to_ms(last), int(since_id) if since_id else None)
        if not errors and cursor.end_ms - cursor.start_ms > MAX_WINDOW_MS:
            message = (
                "X API simulator limit: the search window (start_time or since_id to end_time) exceeds 24 h"
            )
            errors.append(_param_error("start_time", [start_value or ""], message))
        if errors:
            return 400, {"errors": errors, **problem(400)}
        return 200, self._page(cursor, max_results, params)

    def _page(self, cursor: _Cursor, max_results: int, params: dict[str, str]) -> dict:
        """Build one page of search results with the requested fields and expansions."""
        indexed_before = _to_ms(datetime.now(UTC) - timedelta(seconds=self.searchable_after))
        found = self._window(cursor.start_ms, cursor.end_ms, params["query"], cursor.since_id, indexed_before)
        if cursor.offset < len(found) and self._empty_page(cursor, max_results, params["query"]):
            next_cursor = cursor._replace(page=cursor.page + 1)
            return {"meta": {"result_count": 0, "next_token": _encode_token(next_cursor)}}
        page = found[cursor.offset : cursor.offset + max_results]
        if not page:
            return {"meta": {"result_count": 0}}
        tweet_fields, user_fields = _csv(params.get("tweet.fields")), _csv(params.get("user.fields"))
        payload: dict = {"data": [_select(tweet, TWEET_ALWAYS, tweet_fields) for tweet, _ in page]}
        if "author_id" in _csv(params.get("expansions")):
            authors = {author["id"]: _select(author, USER_ALWAYS, user_fields) for _, author in page}
            payload["includes"] = {"users": list(authors.values())}
        meta = {"newest_id": page[0][0]["id"], "oldest_id": page[-1][0]["id"], "result_count": len(page)}
        if cursor.offset + max_results < len(found):
            next_cursor = cursor._replace(offset=cursor.offset + max_results, page=cursor.page + 1)
            meta["next_token"] = _encode_token(next_cursor)
        payload["meta"] = meta
        return payload

    def _empty_page(self, cursor: _Cursor, max_results: int, query: str) -> bool:
        """Whether this page comes empty with a ``next_token``, decided by the seed, window, query and page;
        at most one page of a search does."""
        if not self.empty_page_rate or cursor.page > cursor.offset // max_results + 1:
            return False
        key = f"empty:{self.seed}:{cursor.start_ms}:{cursor.end_ms}:{cursor.page}:{query}"
        return random.Random(key).random() < self.empty_page_rate
