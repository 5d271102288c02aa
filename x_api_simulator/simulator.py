"""``XApiSimulator``: the X API v2 recent search (``GET /2/tweets/search/recent``) over real HTTP.

A FastAPI app served by uvicorn from a daemon thread. Its answers are held to X's OpenAPI contract
(``x_api_simulator/contract/``) by tests/x_api_simulator/test_contract.py.

Test controls, from Python: ``set_rate``, ``add_fault``, ``clear_faults``, ``requests``,
``clear_requests``, ``tweets_between``; over HTTP (JSON bodies, no auth): ``POST /_sim/rate``,
``POST /_sim/faults``, ``DELETE /_sim/faults``, ``GET /_sim/requests``, ``DELETE /_sim/requests``,
``GET /_sim/tweets?start_time=..&end_time=..[&query=..]`` and ``GET /_sim/health``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
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
from starlette.exceptions import HTTPException

from x_api_simulator.query import QueryError, parse, subject
from x_api_simulator.tweets import EPOCH, MINUTE_MS, posts_between, snowflake_ms

SEARCH_PATH = "/2/tweets/search/recent"
MAX_WINDOW_MS = 24 * 60 * MINUTE_MS
TIERS = {"basic": {"app": 60, "user": 60}, "pro": {"app": 450, "user": 180}}  # requests per 15 minutes
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


class _Cursor(NamedTuple):
    """Where a page starts in a search window; encoded in ``next_token``."""

    offset: int
    page: int
    start_ms: int
    end_ms: int
    since_id: int | None


@dataclass
class _Fault:
    """A fault injected into the next ``times`` matching search requests (-1: forever)."""

    status: int | None
    body: str | None
    delay: float
    times: int
    page: int | None
    start_time: str | None
    headers: dict[str, str | None]

    def matches(self, page: int | None, start_time: str | None) -> bool:
        """Tell whether a request for this page and start_time parameter gets this fault."""
        return (self.page is None or self.page == page) and (
            self.start_time is None or self.start_time == start_time
        )


class _Answer(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str | None]


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
    """X API v2 recent-search simulator, serving real HTTP from a daemon thread.

    :param tier: ``pro`` (450 requests per 15 minutes app-only, 180 per user) or ``basic`` (60 for both)
    :param rate_limit: requests per window for every credential instead of the tier's (None: the tier's)
    :param rate_limit_window: the rate-limit window in seconds (X: 900)
    :param searchable_after: seconds from a post's creation until search finds it
    :param search_horizon: how far back, in seconds, ``start_time`` may reach (X: 7 days)
    :param edit_rate: share of posts edited once, 1 to 30 minutes after creation (0: none)
    :param empty_page_rate: chance of a page to come empty with a ``next_token`` (at most one a search)
    :param usage_cap: posts read before every search gets 429 ``UsageCapExceeded`` (None: no cap)
    :param credits: distinct posts per UTC day billable before every search gets 402 (None: unlimited)
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
        self._lock = threading.Lock()
        self._rates: dict[int, int] = {}
        self._faults: list[_Fault] = []
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
    ) -> None:
        """Make the next ``times`` (-1: all) matching search requests fail or hang.

        A request matches if its page number equals ``page`` and its start_time parameter equals
        ``start_time`` (each when given). It gets, after sleeping ``delay`` seconds: ``status`` with
        ``body`` (default: X's error body of that status) and ``headers`` added to the rate-limit
        headers (a None value removes a header); or, without a status, 200 with the raw ``body``;
        or, with neither, the normal response.
        """
        if times == 0 or times < -1:
            raise ValueError(f"times must be -1 or positive, got {times}")
        if isinstance(start_time, datetime):
            start_time = _format_time(start_time)
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        with self._lock:
            self._faults.append(_Fault(status, body, delay, times, page, start_time, dict(headers or {})))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[dict]:
        """Copy of the search-request log: path, params, status (None while pending), page, time."""
        with self._lock:
            return [{**record, "params": dict(record["params"])} for record in self._requests]

    def clear_requests(self) -> None:
        """Empty the search-request log."""
        with self._lock:
            self._requests.clear()

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
        edits) created before it."""
        as_of = created_before_ms if created_before_ms is not None else _to_ms(datetime.now(UTC))
        matches = parse(query) if query is not None else None
        return [
            (post.tweet, post.author)
            for post in posts_between(
                self.seed,
                self._rates,
                self.rate_per_minute,
                self.edit_rate,
                start_ms,
                min(end_ms, as_of),
                as_of,
            )
            if (since_id is None or int(post.tweet["id"]) > since_id)
            and (
                matches is None
                or matches(subject(post.tweet["text"], post.author["username"], post.tweet.get("lang")))
            )
        ]

    # HTTP

    def _build_app(self) -> FastAPI:
        """The HTTP routes: the search endpoint and the ``/_sim`` controls."""
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.get(SEARCH_PATH)
        def search(request: Request) -> Response:
            return self._respond(self._logged_search(dict(request.query_params), request.headers))

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

        @app.delete("/_sim/faults")
        def clear_faults() -> dict:
            self.clear_faults()
            return {"status": "ok"}

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
        record = {"path": SEARCH_PATH, "params": params, "status": None, "page": page, "time": time.time()}
        with self._lock:
            self._requests.append(record)
        answer = self._search(params, headers.get("authorization", ""), page)
        with self._lock:
            record["status"] = answer.status
        return answer

    def _search(self, params: dict[str, str], authorization: str, page: int | None) -> _Answer:
        """Authenticate, rate-limit, apply caps and credits, inject faults, then search."""
        credential = self._credential(authorization)
        if credential is None:
            return _answer(401, problem(401))
        headers, limited = self._count_request(credential)
        if limited:
            return _answer(429, problem(429), headers)
        if self.usage_cap is not None and self._posts_read >= self.usage_cap:
            return _answer(429, USAGE_CAPPED, headers)  # the rate-limit headers still show requests left
        fault = self._take_fault(page, params.get("start_time"))
        if fault:
            self._stopping.wait(fault.delay)
            if fault.status is not None or fault.body is not None:
                status = fault.status or 200
                body = fault.body.encode() if fault.body is not None else _json(problem(status))
                return _Answer(status, body, {**headers, **fault.headers})
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

    def _count_request(self, credential: str) -> tuple[dict[str, str], bool]:
        """Count a request in its credential's fixed window: (rate-limit headers, over the limit?)."""
        limit = self.rate_limit if self.rate_limit is not None else TIERS[self.tier][credential]
        now = time.time()
        with self._lock:
            window_start, used = self._rate_windows.get(credential, (now, 0))
            if now >= window_start + self.rate_limit_window:
                window_start, used = now, 0
            used += 1
            self._rate_windows[credential] = (window_start, used)
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(limit - used, 0)),
            "x-rate-limit-reset": str(math.ceil(window_start + self.rate_limit_window)),
        }
        return headers, used > limit

    def _take_fault(self, page: int | None, start_time: str | None) -> _Fault | None:
        """Pop (or count down) the first fault matching a request."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(page, start_time):
                    if fault.times > 0:
                        fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

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
