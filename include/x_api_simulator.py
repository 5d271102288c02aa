"""Simulator of the X API v2 recent search (``GET /2/tweets/search/recent``) over real HTTP.

Used by the integration tests and the offline demo::

    python -m include.x_api_simulator --port 8099 [--host 127.0.0.1] [--bearer-token sim-token]
        [--rate-per-minute 40] [--seed 1] [--rate-limit 450] [--rate-limit-window 900]
        [--searchable-after 30] [--search-horizon 604800]

Every flag can also be set by an environment variable (``X_SIM_PORT``, ``X_SIM_BEARER_TOKEN``,
``X_SIM_RATE_PER_MINUTE``, ...); flags win.

Tweets are generated per UTC minute, deterministically from (seed, minute), whatever the time or the
order of the requests. As on the real API, a tweet is searchable only ``searchable_after`` seconds after
it is created (30 by default). Simulator limits, unlike the real API:

- the query is not evaluated: every generated tweet matches any query;
- a search window (``start_time`` or ``since_id`` to ``end_time``) may span at most 24 hours, so a
  request without ``start_time`` and ``since_id`` (the real default is the last 7 days) gets a 400;
- only the tweet fields id, text, edit_history_tweet_ids, author_id, created_at, lang, public_metrics
  and the user fields id, name, username, location, public_metrics exist; other fields are ignored.

Test controls, from Python: ``set_rate``, ``add_fault``, ``clear_faults``, ``requests``,
``clear_requests``, ``tweets_between``; over HTTP (JSON bodies, no auth): ``POST /_sim/rate``,
``POST /_sim/faults``, ``DELETE /_sim/faults``, ``GET /_sim/requests``, ``DELETE /_sim/requests``,
``GET /_sim/tweets?start_time=..&end_time=..`` and ``GET /_sim/health``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import random
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

SEARCH_PATH = "/2/tweets/search/recent"
TWITTER_EPOCH_MS = 1288834974657
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_US = 60_000_000
MAX_WINDOW_US = 24 * 60 * MINUTE_US
USER_POOL_SIZE = 500
TWEET_ALWAYS = {"id", "text", "edit_history_tweet_ids"}
USER_ALWAYS = {"id", "name", "username"}
INVALID_REQUEST = {
    "title": "Invalid Request",
    "detail": "One or more parameters to your request was invalid.",
    "type": "https://api.twitter.com/2/problems/invalid-request",
}

_PRODUCTS = ("iPhone", "iphone", "Apple", "iPhone 17 Pro", "#iPhone", "@Apple", "APPLE", "Apple Watch")
_OPINIONS = (
    "worth every penny",
    "meh.",
    "battery life is 🔥",
    'it\'s "fine" I guess',
    "10/10 would buy again",
    "Überraschend gut!",
    "not sure 🤔; ask me tomorrow",
    "why is it $1,199?!",
    "c'est magnifique ✨",
    "最高👍",
)
_TEMPLATES = (
    ("en", "Just got the new {product} 🍎 and honestly... {opinion}"),
    ("en", 'My mom: "is that the {product}?"\nMe: "no, it\'s a potato" 🥔'),
    ("en", "Backup folder C:\\Users\\me\\{product}\\backup is 40GB; why?? {opinion}"),
    ("en", "Pros: camera\r\nCons: price; battery\r\nVerdict: {opinion} #{product}"),
    ("en", "thread 🧵\n1/ the {product} keynote\n2/ {opinion}\n3/ fin"),
    ("en", "𝕏 users be like: {product} > everything 💯"),
    ("en", 'col1;col2;col3\n{product};{opinion};"quoted; value"'),
    ("en", "Tab\tseparated, 'single', back\\slash \\n not a newline — {product}"),
    ("en", "Weather's nice today ☀️; going for a walk 🚶"),
    ("en", "RT @someone: {opinion} 👨‍👩‍👧 {product}"),
    ("fr", "Franchement, l'{product} est trop cher… déçu 😕"),
    ("es", "¿Alguien más tiene problemas con el {product}? Año nuevo, señal mala 😤"),
    ("ja", "アップルの新しい{product}、カメラがすごい📸"),
    ("zh", "新的{product}太贵了；但是我还是买了 🍎"),
    ("de", "Größe, Gewicht, Qualität: das {product} überzeugt 👍"),
    ("und", "🍎🍎🍎 🇫🇷 👀"),
)
_FIRST_NAMES = ("José", "Zoë", "Łukasz", "Анна", "山田", "Chloé", "Seán", "Nguyễn", "Bob", "Ada", "Søren")
_LAST_NAMES = ("Álvarez", "O'Connor", "Smith", '"The Dev"', "太郎", "Müller", "🍎", "\\o/", "𝕏 fan", "Dubois")
_HANDLES = ("applefan", "techguy", "jdoe", "iphone_lvr", "_x_", "Ana_B", "dev", "MrCupertino", "zoe")
_LOCATIONS = (
    "Paris, France",
    "Paris; France",
    "New York\nNY",
    "London\r\nUK",
    "東京都",
    "São Paulo 🇧🇷",
    "Cupertino, CA 🍎",
    "🌍",
    "Zürich",
    'the "cloud"',
    "C:\\home",
    "Earth; Mars soon",
)


class _NotFoundError(Exception):
    """An HTTP path the simulator does not serve."""


class _Cursor(NamedTuple):
    """Where a page starts in a search window; encoded in ``next_token``."""

    offset: int
    page: int
    start_us: int
    end_us: int
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


def _to_us(moment: datetime) -> int:
    """Return epoch microseconds of a timezone-aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"timezone-aware datetime required, got {moment!r}")
    return (moment - EPOCH) // timedelta(microseconds=1)


def _format_time(moment: datetime) -> str:
    """Format a datetime as the API's ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as a tweet's ``created_at`` (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    moment = EPOCH + timedelta(milliseconds=epoch_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def _parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset, optional fraction) into an aware UTC datetime."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time without a timezone: {value!r}")
    return moment.astimezone(UTC)


def _heavy_tail(rng: random.Random, scale: float) -> int:
    """Draw a non-negative count with a heavy tail, like social-media metrics."""
    return int((rng.paretovariate(1.3) - 1) * scale)


@functools.cache
def _user_pool(seed: int) -> tuple[dict, ...]:
    """Return the deterministic pool of users (as in ``includes.users``, all fields) for a seed."""
    rng = random.Random(f"users:{seed}")
    users = []
    for index, user_id in enumerate(rng.sample(range(10**6, 10**18), USER_POOL_SIZE)):
        user = {
            "id": str(user_id),
            "name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
            "username": f"{rng.choice(_HANDLES)}{index}",
        }
        if rng.random() < 0.7:
            user["location"] = rng.choice(_LOCATIONS)
        user["public_metrics"] = {
            "followers_count": _heavy_tail(rng, 200),
            "following_count": _heavy_tail(rng, 100),
            "tweet_count": _heavy_tail(rng, 2000),
            "listed_count": _heavy_tail(rng, 3),
            "like_count": _heavy_tail(rng, 1000),
        }
        users.append(user)
    return tuple(users)


def _tweet_text(rng: random.Random) -> tuple[str | None, str]:
    """Draw (lang or None, text) for a tweet; some texts are cut at the 280-character limit."""
    lang, template = rng.choice(_TEMPLATES)
    text = template.format(product=rng.choice(_PRODUCTS), opinion=rng.choice(_OPINIONS))
    if rng.random() < 0.1:
        text = " ".join([text, *rng.choices(_OPINIONS, k=40)])[:280]
    return (None if rng.random() < 0.05 else lang), text


@functools.lru_cache(maxsize=2048)  # more than the 1440 minutes of a 24 h window
def _minute_tweets(seed: int, minute: int, count: int) -> tuple[tuple[int, dict, dict], ...]:
    """Generate the tweets of one epoch minute as (epoch ms, tweet, author), newest first.

    The first tweet is at second 0.000 of the minute, the others spread uniformly at millisecond
    precision. The returned dicts are shared: never mutate them.
    """
    rng = random.Random(f"tweets:{seed}:{minute}")
    users = _user_pool(seed)
    offsets = sorted([0] + [rng.randrange(60_000) for _ in range(count - 1)]) if count > 0 else []
    tweets = []
    previous_ms, seq = None, 0
    for offset in offsets:
        epoch_ms = minute * 60_000 + offset
        seq = seq + 1 if epoch_ms == previous_ms else 0
        previous_ms = epoch_ms
        tweet_id = str(((epoch_ms - TWITTER_EPOCH_MS) << 22) | seq)
        author = rng.choice(users[:20]) if rng.random() < 0.3 else rng.choice(users)
        lang, text = _tweet_text(rng)
        tweet = {"id": tweet_id, "text": text, "author_id": author["id"], "created_at": _format_ms(epoch_ms)}
        if lang:
            tweet["lang"] = lang
        likes = _heavy_tail(rng, 5)
        tweet["public_metrics"] = {
            "retweet_count": _heavy_tail(rng, 1),
            "reply_count": _heavy_tail(rng, 1),
            "like_count": likes,
            "quote_count": _heavy_tail(rng, 0.2),
            "bookmark_count": _heavy_tail(rng, 0.5),
            "impression_count": likes * 40 + rng.randrange(1000),
        }
        tweet["edit_history_tweet_ids"] = [tweet_id]
        tweets.append((epoch_ms, tweet, author))
    return tuple(reversed(tweets))


def _problem(status: int) -> dict:
    """Return the X API error body for an HTTP status (401, 429, 503, ...)."""
    phrase = HTTPStatus(status).phrase
    return {"title": phrase, "detail": phrase, "type": "about:blank", "status": status}


def _param_error(name: str, values: list[str], message: str) -> dict:
    """Return one entry of a 400 body's ``errors``."""
    return {"parameters": {name: values}, "message": message}


def _json(payload: object) -> bytes:
    """Encode a JSON response body (compact, UTF-8)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


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
    """Return the 1-based page number a search request asks for; None for an invalid next_token."""
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


def _first_cursor(start: datetime, end: datetime, since_id: str | None) -> _Cursor:
    """Return the cursor of a search's first page; ``since_id`` overrides ``start``."""
    if since_id:
        start = EPOCH + timedelta(milliseconds=(int(since_id) >> 22) + TWITTER_EPOCH_MS)
    return _Cursor(0, 1, _to_us(start), _to_us(end), int(since_id) if since_id else None)


class XApiSimulator:
    """X API v2 recent-search simulator, serving real HTTP from a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        bearer_token: str = "sim-token",
        rate_per_minute: int = 40,
        seed: int = 1,
        rate_limit: int = 450,
        rate_limit_window: int = 900,
        oauth_consumer_key: str = "sim-consumer-key",
        oauth_access_token: str = "sim-access-token",
        searchable_after: float = 30.0,
        search_horizon: float = 7 * 24 * 3600,
    ):
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
        self._lock = threading.Lock()
        self._rates: dict[int, int] = {}
        self._faults: list[_Fault] = []
        self._requests: list[dict] = []
        self._rate_windows: dict[str, tuple[float, int]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Life cycle

    def start(self) -> XApiSimulator:
        """Bind the port (port 0: a free one) and serve in a daemon thread."""
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # quick stop()
        self._thread = threading.Thread(target=serve, name="x-api-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; requests held by a delay fault are released."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8099``."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> XApiSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Controls and ground truth

    def tweets_between(self, start: datetime, end: datetime) -> list[dict]:
        """Return every tweet with start <= created_at < end (aware datetimes), newest first.

        Each tweet is as in a response's ``data`` with every field, plus its user under "author".
        """
        found = self._window(_to_us(start), _to_us(end))
        return [copy.deepcopy({**tweet, "author": author}) for tweet, author in found]

    def set_rate(self, window_start: datetime, count: int) -> None:
        """Generate ``count`` tweets in the UTC minute starting at ``window_start`` (floored to the minute)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._rates[_to_us(window_start) // MINUTE_US] = count

    def add_fault(
        self,
        status: int | None = None,
        body: str | None = None,
        delay: float = 0.0,
        times: int = 1,
        page: int | None = None,
        start_time: str | datetime | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> None:
        """Make the next ``times`` (-1: all) matching search requests fail or hang.

        A request matches if its page number equals ``page`` and its start_time parameter equals
        ``start_time`` (each when given). It gets, after sleeping ``delay`` seconds: ``status`` with
        ``body`` (default: the X API error body of that status) and ``headers`` added to the rate-limit
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

    # Tweet store

    def _window(
        self, start_us: int, end_us: int, since_id: int | None = None, created_before_us: int | None = None
    ) -> list[tuple[dict, dict]]:
        """Return (tweet, author) with start_us <= created_at < end_us (epoch µs), newest first; with
        ``created_before_us``, only the tweets created before it."""
        if created_before_us is not None:
            end_us = min(end_us, created_before_us)
        found = []
        for minute in range((end_us - 1) // MINUTE_US, start_us // MINUTE_US - 1, -1):
            count = self._rates.get(minute, self.rate_per_minute)
            found += [
                (tweet, author)
                for epoch_ms, tweet, author in _minute_tweets(self.seed, minute, count)
                if start_us <= epoch_ms * 1000 < end_us and (since_id is None or int(tweet["id"]) > since_id)
            ]
        return found

    # HTTP

    def _handle(
        self, method: str, path: str, params: dict[str, str], body: bytes, authorization: str
    ) -> tuple[int, bytes, dict[str, str | None]]:
        """Answer one HTTP request with (status, body, extra headers)."""
        if (method, path) == ("GET", SEARCH_PATH):
            return self._logged_search(params, authorization)
        try:
            return 200, _json(self._control(method, path, params, json.loads(body or b"{}"))), {}
        except _NotFoundError:
            return 404, _json(_problem(404)), {}
        except (ValueError, TypeError, KeyError) as exc:
            return 400, _json({"error": f"{type(exc).__name__}: {exc}"}), {}

    def _control(self, method: str, path: str, params: dict[str, str], payload: dict) -> object:
        """Run a ``/_sim/...`` control request and return its JSON answer."""
        match method, path:
            case "GET", "/_sim/health":
                pass
            case "POST", "/_sim/rate":
                self.set_rate(_parse_time(payload["window_start"]), payload["count"])
            case "POST", "/_sim/faults":
                self.add_fault(**payload)
            case "DELETE", "/_sim/faults":
                self.clear_faults()
            case "GET", "/_sim/requests":
                return self.requests
            case "DELETE", "/_sim/requests":
                self.clear_requests()
            case "GET", "/_sim/tweets":
                return self.tweets_between(_parse_time(params["start_time"]), _parse_time(params["end_time"]))
            case _:
                raise _NotFoundError(path)
        return {"status": "ok"}

    def _logged_search(
        self, params: dict[str, str], authorization: str
    ) -> tuple[int, bytes, dict[str, str | None]]:
        """Answer a search request and record it (never its credentials) in the request log."""
        page = _page_of(params)
        record = {"path": SEARCH_PATH, "params": params, "status": None, "page": page, "time": time.time()}
        with self._lock:
            self._requests.append(record)
        status, body, headers = self._search(params, authorization, page)
        with self._lock:
            record["status"] = status
        return status, body, headers

    def _search(
        self, params: dict[str, str], authorization: str, page: int | None
    ) -> tuple[int, bytes, dict[str, str | None]]:
        """Authenticate, rate-limit, inject faults, then search."""
        credential = self._credential(authorization)
        if credential is None:
            return 401, _json(_problem(401)), {}
        headers, limited = self._count_request(credential)
        if limited:
            return 429, _json(_problem(429)), headers
        fault = self._take_fault(page, params.get("start_time"))
        if fault:
            self._stopping.wait(fault.delay)
            if fault.status is not None or fault.body is not None:
                status = fault.status or 200
                body = fault.body if fault.body is not None else json.dumps(_problem(status))
                return status, body.encode(), {**headers, **fault.headers}
        status, payload = self._search_result(params)
        return status, _json(payload), headers

    def _credential(self, authorization: str) -> str | None:
        """Return the rate-limit bucket of a valid Authorization header, None if it is not valid."""
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
        now = time.time()
        with self._lock:
            window_start, used = self._rate_windows.get(credential, (now, 0))
            if now >= window_start + self.rate_limit_window:
                window_start, used = now, 0
            used += 1
            self._rate_windows[credential] = (window_start, used)
        headers = {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": str(max(self.rate_limit - used, 0)),
            "x-rate-limit-reset": str(math.ceil(window_start + self.rate_limit_window)),
        }
        return headers, used > self.rate_limit

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
        if not params.get("query", "").strip():
            errors.append(_param_error("query", [], "The `query` query parameter can not be empty"))
        raw_max = params.get("max_results", "10")
        max_results = int(raw_max) if raw_max.isdigit() else 0
        if not 10 <= max_results <= 100:
            message = f"The `max_results` query parameter value [{raw_max}] is not between 10 and 100"
            errors.append(_param_error("max_results", [raw_max], message))
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
            cursor = _first_cursor(start or oldest, end or now - timedelta(seconds=30), since_id)
        if not errors and cursor.end_us - cursor.start_us > MAX_WINDOW_US:
            message = (
                "X API simulator limit: the search window (start_time or since_id to end_time) exceeds 24 h"
            )
            errors.append(_param_error("start_time", [start_value or ""], message))
        if errors:
            return 400, {"errors": errors, **INVALID_REQUEST}
        return 200, self._page(cursor, max_results, params)

    def _page(self, cursor: _Cursor, max_results: int, params: dict[str, str]) -> dict:
        """Build one page of search results with the requested fields and expansions."""
        indexed_before = _to_us(datetime.now(UTC) - timedelta(seconds=self.searchable_after))
        found = self._window(cursor.start_us, cursor.end_us, cursor.since_id, indexed_before)
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


class _Handler(BaseHTTPRequestHandler):
    """Hands each HTTP request to the simulator and writes its JSON answer."""

    server: _Server

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def log_message(self, *args: object) -> None:
        """Keep quiet: no line per request on stderr."""

    def _answer(self, method: str) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        status, payload, headers = self.server.simulator._handle(method, url.path, params, body, auth)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                if value is not None:  # a fault can remove a header
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, e.g. during a delay fault


class _Server(ThreadingHTTPServer):
    """HTTP server that knows its simulator; one daemon thread per connection."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: XApiSimulator):
        self.simulator = simulator
        super().__init__(address, _Handler)


_OPTIONS = (
    ("host", "127.0.0.1", str, "address to listen on"),
    ("port", "8099", int, "port to listen on (0: a free one)"),
    ("bearer-token", "sim-token", str, "accepted app bearer token"),
    ("rate-per-minute", "40", int, "tweets generated per minute"),
    ("seed", "1", int, "seed of the generated data"),
    ("rate-limit", "450", int, "requests allowed per rate-limit window and credential"),
    ("rate-limit-window", "900", int, "rate-limit window in seconds"),
    ("oauth-consumer-key", "sim-consumer-key", str, "accepted OAuth 1.0a consumer key"),
    ("oauth-access-token", "sim-access-token", str, "accepted OAuth 1.0a access token"),
    ("searchable-after", "30", float, "seconds from a tweet's creation until search finds it"),
    ("search-horizon", "604800", float, "how far back, in seconds, start_time may reach (7 days)"),
)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="X API v2 recent-search simulator.")
    for name, default, kind, description in _OPTIONS:
        env = "X_SIM_" + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}", type=kind, default=os.environ.get(env, default), help=f"{description} (env {env})"
        )
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    with XApiSimulator(**vars(args)) as simulator:
        print(f"X API simulator listening on {simulator.url}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
