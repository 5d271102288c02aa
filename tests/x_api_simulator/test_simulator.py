"""Tests of the X API v2 recent-search simulator, over real HTTP: auth, validation, paging, faults, controls."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.helpers import x_api_time
from x_api_simulator import XApiSimulator

SEARCH = "/2/tweets/search/recent"
QUERY = "Apple OR iphone OR iPhone"  # the DAG's default: most posts match, not all
BEARER = {"Authorization": "Bearer sim-token"}
OAUTH = {
    "Authorization": 'OAuth oauth_consumer_key="sim-consumer-key", oauth_nonce="abc123", '
    'oauth_signature="not%2Bchecked%3D", oauth_signature_method="HMAC-SHA1", '
    'oauth_timestamp="1700000000", oauth_token="sim-access-token", oauth_version="1.0"'
}
ALL_FIELDS = {
    "tweet.fields": "created_at,public_metrics,lang,author_id",
    "expansions": "author_id",
    "user.fields": "public_metrics,location",
}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def search(sim: XApiSimulator, params: dict, headers: dict = BEARER, timeout: float = 5) -> requests.Response:
    """GET the recent-search endpoint (with a default query)."""
    return requests.get(sim.url + SEARCH, params={"query": QUERY, **params}, headers=headers, timeout=timeout)


def window(start: datetime, end: datetime, **extra: str) -> dict:
    """Search parameters for [start, end) with every field and 100 results a page."""
    return {
        "start_time": x_api_time(start),
        "end_time": x_api_time(end),
        "max_results": "100",
        **ALL_FIELDS,
        **extra,
    }


def fetch_pages(sim: XApiSimulator, params: dict) -> list[dict]:
    """Follow next_token until it is absent, like tweepy's Paginator; return the page bodies."""
    pages = []
    while True:
        token = pages[-1]["meta"].get("next_token") if pages else None
        response = search(sim, {**params, "next_token": token} if token else params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if "next_token" not in pages[-1]["meta"]:
            return pages


def without_author(tweet: dict) -> dict:
    """A ground-truth tweet as it appears in ``data``."""
    return {key: value for key, value in tweet.items() if key != "author"}


@pytest.fixture
def base() -> datetime:
    """The UTC minute starting one hour ago: a window safely in the past."""
    return (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)


@pytest.fixture
def sim():
    with XApiSimulator(port=0) as simulator:
        yield simulator


# Auth


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sim-token"}, {"Authorization": "OAuth x=1"}],
)
def test_requests_without_valid_credentials_get_401(sim, base, headers):
    response = search(sim, window(base, base + timedelta(minutes=1)), headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert response.headers["Content-Type"] == "application/problem+json"


def test_oauth_1a_user_context_header_is_accepted(sim, base):
    response = search(sim, window(base, base + timedelta(minutes=1)), headers=OAUTH)

    assert response.status_code == 200
    assert response.json()["meta"]["result_count"] == len(
        sim.tweets_between(base, base + timedelta(minutes=1), QUERY)
    )


# Validation


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        (lambda now: {"max_results": "5"}, "max_results"),
        (lambda now: {"max_results": "101"}, "max_results"),
        (
            lambda now: {
                "start_time": x_api_time(now - timedelta(minutes=5)),
                "end_time": x_api_time(now - timedelta(seconds=2)),
            },
            "end_time",
        ),
        (
            lambda now: {
                "start_time": x_api_time(now - timedelta(days=8)),
                "end_time": x_api_time(now - timedelta(days=7, hours=23)),
            },
            "start_time",
        ),
        (
            lambda now: {
                "start_time": x_api_time(now - timedelta(minutes=5)),
                "end_time": x_api_time(now - timedelta(minutes=6)),
            },
            "start_time",
        ),
        (
            lambda now: {"start_time": "yesterday", "end_time": x_api_time(now - timedelta(minutes=1))},
            "start_time",
        ),
        (lambda now: {"query": ""}, "query"),
        (
            lambda now: {"start_time": x_api_time(now - timedelta(minutes=5)), "next_token": "not-a-token"},
            "next_token",
        ),
    ],
    ids=[
        "max_results 5",
        "max_results 101",
        "end_time too recent",
        "start_time older than 7 days",
        "start_time after end_time",
        "start_time malformed",
        "empty query",
        "next_token invalid",
    ],
)
def test_invalid_parameters_get_the_real_400_body(sim, params, parameter):
    response = search(sim, params(datetime.now(UTC)))

    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Request"
    assert body["detail"] == "One or more parameters to your request was invalid."
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert parameter in body["errors"][0]["parameters"]
    assert "x-rate-limit-remaining" in response.headers


def test_missing_query_is_400(sim):
    response = requests.get(sim.url + SEARCH, headers=BEARER, timeout=5)

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameters"] == {"query": []}


def test_end_time_too_recent_message_matches_the_real_api(sim):
    end = x_api_time(datetime.now(UTC) - timedelta(seconds=1))

    response = search(
        sim, {"start_time": x_api_time(datetime.now(UTC) - timedelta(minutes=2)), "end_time": end}
    )

    assert response.json()["errors"] == [
        {
            "parameters": {"end_time": [end]},
            "message": f"Invalid 'end_time':'{end}'. 'end_time' must be a minimum of 10 seconds prior to the "
            "request time.",
        }
    ]


def test_tweets_become_searchable_only_searchable_after_seconds_after_creation(sim):
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=11)
    start = end - timedelta(minutes=2)
    sim.rate_per_minute = 600  # ten tweets a second: some are younger than searchable_after
    indexed_before = datetime.now(UTC) - timedelta(seconds=sim.searchable_after)

    found = [tweet for page in fetch_pages(sim, window(start, end)) for tweet in page.get("data", [])]

    created = [datetime.fromisoformat(tweet["created_at"]) for tweet in found]
    truth = sim.tweets_between(start, end)
    assert found and max(created) < indexed_before + timedelta(seconds=1)
    assert len(found) < len(truth)  # the tweets of the last ~19 s exist but are not indexed yet
    assert {tweet["id"] for tweet in found} < {tweet["id"] for tweet in truth}


def test_start_time_must_lie_within_the_search_horizon(sim, base):
    sim.search_horizon = 1800

    answer = search(sim, window(base, base + timedelta(minutes=1)))

    assert answer.status_code == 400
    assert "'start_time' must be on or after" in answer.json()["errors"][0]["message"]


def test_window_over_24_hours_is_a_documented_simulator_limit(sim, base):
    too_long = search(sim, window(base - timedelta(hours=24, minutes=1), base))
    no_start_time = search(sim, {})

    assert too_long.status_code == no_start_time.status_code == 400
    assert "simulator limit" in too_long.json()["errors"][0]["message"]


def test_fractional_seconds_and_offsets_are_accepted(sim, base):
    params = {
        "start_time": base.isoformat(timespec="milliseconds"),
        "end_time": (base + timedelta(minutes=1)).isoformat(),
    }

    response = search(sim, params)

    assert response.status_code == 200
    assert response.json()["meta"]["result_count"] == 10


# Results and pagination


def test_250_tweets_come_in_three_pages_newest_first(sim, base):
    sim.set_rate(base, 250)
    end = base + timedelta(minutes=1)

    pages = fetch_pages(sim, window(base, end))

    truth = sim.tweets_between(base, end, QUERY)
    assert 200 < len(truth) < 250, "most posts match the query, not all"
    assert [page["meta"]["result_count"] for page in pages] == [100, 100, len(truth) - 200]
    tweets = [tweet for page in pages for tweet in page["data"]]
    assert tweets == [without_author(tweet) for tweet in truth]
    ids = [int(tweet["id"]) for tweet in tweets]
    assert ids == sorted(set(ids), reverse=True)
    assert [tweet["created_at"] for tweet in tweets] == sorted(
        (t["created_at"] for t in tweets), reverse=True
    )
    for page in pages:
        assert page["meta"]["newest_id"] == page["data"][0]["id"]
        assert page["meta"]["oldest_id"] == page["data"][-1]["id"]
    assert [request["page"] for request in sim.requests] == [1, 2, 3]


def test_window_includes_its_first_second_and_excludes_the_next_minute(sim, base):
    end = base + timedelta(minutes=1)

    tweets = fetch_pages(sim, window(base, end))[0]["data"]

    assert tweets[-1]["created_at"] == x_api_time(base)[:-1] + ".000Z"
    assert all(tweet["created_at"] < x_api_time(end)[:-1] + ".000Z" for tweet in tweets)
    next_minute = sim.tweets_between(end, end + timedelta(minutes=1), QUERY)
    assert next_minute[-1]["created_at"] == x_api_time(end)[:-1] + ".000Z"
    assert next_minute[-1]["id"] not in {tweet["id"] for tweet in tweets}


def test_a_window_inside_a_minute_gets_only_its_tweets(sim, base):
    start, end = base + timedelta(seconds=15), base + timedelta(seconds=45)

    tweets = [t for page in fetch_pages(sim, window(start, end)) for t in page["data"]]

    expected = [
        tweet
        for tweet in sim.tweets_between(base, base + timedelta(minutes=1), QUERY)
        if x_api_time(start)[:-1] <= tweet["created_at"] < x_api_time(end)[:-1]
    ]
    assert [tweet["id"] for tweet in tweets] == [tweet["id"] for tweet in expected]


def test_empty_window_has_only_a_zero_result_count(sim, base):
    sim.set_rate(base, 0)

    response = search(sim, window(base, base + timedelta(minutes=1)))

    assert response.status_code == 200
    assert response.json() == {"meta": {"result_count": 0}}
    assert sim.tweets_between(base, base + timedelta(minutes=1)) == []


def test_includes_users_are_exactly_the_authors_of_the_page(sim, base):
    sim.set_rate(base, 250)
    end = base + timedelta(minutes=1)
    authors = {tweet["author"]["id"]: tweet["author"] for tweet in sim.tweets_between(base, end, QUERY)}

    pages = fetch_pages(sim, window(base, end))

    for page in pages:
        users = page["includes"]["users"]
        user_ids = [user["id"] for user in users]
        assert len(user_ids) == len(set(user_ids))
        assert set(user_ids) == {tweet["author_id"] for tweet in page["data"]}
        assert all(user == authors[user["id"]] for user in users)
    # A full page of 100 from 500 authors repeats one (a short last page may not): listed once each.
    assert any(len(page["includes"]["users"]) < len(page["data"]) for page in pages)


def test_fields_not_requested_are_omitted(sim, base):
    params = {"start_time": x_api_time(base), "end_time": x_api_time(base + timedelta(minutes=1))}

    bare = search(sim, params).json()
    users = search(sim, {**params, "expansions": "author_id"}).json()

    assert {key for tweet in bare["data"] for key in tweet} == {"id", "text", "edit_history_tweet_ids"}
    assert "includes" not in bare
    assert {key for user in users["includes"]["users"] for key in user} == {"id", "name", "username"}


def test_since_id_overrides_start_time(sim, base):
    end = base + timedelta(minutes=1)
    tweets = sim.tweets_between(base, end, QUERY)
    since_id = tweets[10]["id"]

    response = search(sim, {**window(base - timedelta(hours=2), end), "since_id": since_id})

    assert [tweet["id"] for tweet in response.json()["data"]] == [tweet["id"] for tweet in tweets[:10]]


# Generated data


def test_same_seed_gives_the_same_tweets_and_another_seed_does_not(base):
    start, end = base - timedelta(minutes=3), base

    first = XApiSimulator(seed=7).tweets_between(start, end)

    assert first == XApiSimulator(seed=7).tweets_between(start, end)
    assert first != XApiSimulator(seed=8).tweets_between(start, end)
    assert len(first) == 3 * 40


def test_generated_tweets_look_like_real_awkward_tweets(sim, base):
    tweets = sim.tweets_between(base - timedelta(minutes=30), base)
    texts = [tweet["text"] for tweet in tweets]
    users = {tweet["author"]["id"]: tweet["author"] for tweet in tweets}

    assert len({tweet["id"] for tweet in tweets}) == len(tweets) == 30 * 40
    for tweet in tweets:
        epoch_ms = (int(tweet["id"]) >> 22) + 1288834974657
        created = datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert tweet["created_at"] == created
        assert tweet["edit_history_tweet_ids"] == [tweet["id"]]
        assert set(tweet["public_metrics"]) == {
            "retweet_count",
            "reply_count",
            "like_count",
            "quote_count",
            "bookmark_count",
            "impression_count",
        }
        assert 0 < len(tweet["text"]) <= 280
    assert any(len(text) == 280 for text in texts)
    for needle in ("Apple", "iphone", "iPhone", "🍎", "𝕏", ";", "\r\n", "\n", '"', "\\", "é", "、"):
        assert any(needle in text for text in texts), needle
    assert any("lang" not in tweet for tweet in tweets)
    assert {tweet.get("lang") for tweet in tweets} >= {"en", "ja", "fr"}
    assert any("location" not in user for user in users.values())
    assert any("\n" in user.get("location", "") for user in users.values())


# Rate limit


def test_rate_limit_headers_count_down_then_429(base):
    with XApiSimulator(rate_limit=3) as sim:
        params = window(base, base + timedelta(minutes=1))
        responses = [search(sim, params) for _ in range(4)]
        other_credential = search(sim, params, headers=OAUTH)

    assert [response.status_code for response in responses] == [200, 200, 200, 429]
    assert [response.headers["x-rate-limit-remaining"] for response in responses] == ["2", "1", "0", "0"]
    assert all(response.headers["x-rate-limit-limit"] == "3" for response in responses)
    reset = int(responses[-1].headers["x-rate-limit-reset"])
    assert time.time() < reset <= time.time() + 901
    assert responses[-1].json() == {
        "title": "Too Many Requests",
        "detail": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
    }
    assert other_credential.status_code == 200


# Faults


def test_503_fault_once_then_normal_responses(sim, base):
    sim.add_fault(status=503)
    params = window(base, base + timedelta(minutes=1))

    failed, ok = search(sim, params), search(sim, params)

    assert failed.status_code == 503
    assert failed.json() == {
        "title": "Service Unavailable",
        "detail": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
    }
    assert "x-rate-limit-reset" in failed.headers
    assert ok.status_code == 200
    assert [request["status"] for request in sim.requests] == [503, 200]


def test_delay_fault_hangs_the_request(sim, base):
    sim.add_fault(delay=3)
    params = window(base, base + timedelta(minutes=1))

    with pytest.raises(requests.exceptions.ReadTimeout):
        search(sim, params, timeout=0.3)
    assert search(sim, params).status_code == 200


def test_malformed_body_fault_is_a_200(sim, base):
    sim.add_fault(body='{"data": [')

    response = search(sim, window(base, base + timedelta(minutes=1)))

    assert response.status_code == 200
    assert response.text == '{"data": ['
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_fault_on_page_2_only(sim, base):
    sim.set_rate(base, 250)
    sim.add_fault(status=500, page=2)
    params = window(base, base + timedelta(minutes=1))

    first = search(sim, params)
    second = {**params, "next_token": first.json()["meta"]["next_token"]}

    assert first.status_code == 200
    assert search(sim, second).status_code == 500
    assert search(sim, second).status_code == 200
    assert [request["page"] for request in sim.requests] == [1, 2, 2]


def test_fault_matching_start_time_forever_until_cleared(sim, base):
    other = base - timedelta(minutes=1)
    sim.add_fault(status=502, start_time=x_api_time(base), times=-1)

    statuses = [
        search(sim, window(start, start + timedelta(minutes=1))).status_code for start in (base, other, base)
    ]
    sim.clear_faults()

    assert statuses == [502, 200, 502]
    assert search(sim, window(base, base + timedelta(minutes=1))).status_code == 200


def test_429_fault_with_custom_headers(sim, base):
    sim.add_fault(status=429, headers={"x-rate-limit-reset": "12345", "x-rate-limit-remaining": None})

    response = search(sim, window(base, base + timedelta(minutes=1)))

    assert response.status_code == 429
    assert response.json()["title"] == "Too Many Requests"
    assert response.headers["x-rate-limit-reset"] == "12345"
    assert "x-rate-limit-remaining" not in response.headers


# HTTP controls and request log


def test_http_control_endpoints(sim, base):
    end = base + timedelta(minutes=1)
    params = window(base, end)

    assert requests.get(sim.url + "/_sim/health", timeout=5).json() == {"status": "ok"}
    assert requests.post(
        sim.url + "/_sim/rate", json={"window_start": x_api_time(base), "count": 0}, timeout=5
    ).ok
    assert search(sim, params).json() == {"meta": {"result_count": 0}}
    assert requests.post(
        sim.url + "/_sim/rate", json={"window_start": x_api_time(base), "count": 12}, timeout=5
    ).ok
    assert requests.post(sim.url + "/_sim/faults", json={"status": 503, "page": 1}, timeout=5).ok
    assert search(sim, params).status_code == 503
    assert requests.post(sim.url + "/_sim/faults", json={"status": 500, "times": -1}, timeout=5).ok
    assert requests.delete(sim.url + "/_sim/faults", timeout=5).ok
    assert search(sim, params).json()["meta"]["result_count"] == len(sim.tweets_between(base, end, QUERY))

    logged = requests.get(sim.url + "/_sim/requests", timeout=5).json()
    assert [request["status"] for request in logged] == [200, 503, 200]
    assert logged[0]["params"] == {"query": QUERY, **params}
    assert requests.delete(sim.url + "/_sim/requests", timeout=5).ok
    assert sim.requests == []

    truth = requests.get(
        sim.url + "/_sim/tweets",
        params={"start_time": x_api_time(base), "end_time": x_api_time(end)},
        timeout=5,
    )
    assert truth.json() == sim.tweets_between(base, end)
    assert len(truth.json()) == 12
    fixed = datetime(2026, 1, 1, tzinfo=UTC)  # a fixed minute: the same 40 posts in every run
    matching = requests.get(
        sim.url + "/_sim/tweets",
        params={
            "start_time": x_api_time(fixed),
            "end_time": x_api_time(fixed + timedelta(minutes=1)),
            "query": "iphone -apple",
        },
        timeout=5,
    )
    assert matching.json() == sim.tweets_between(fixed, fixed + timedelta(minutes=1), "iphone -apple")
    assert 0 < len(matching.json()) < 40
    assert requests.post(sim.url + "/_sim/rate", json={"count": 3}, timeout=5).status_code == 400
    assert requests.post(sim.url + "/_sim/faults", json={"bogus": 1}, timeout=5).status_code == 400


def test_unknown_path_is_a_json_404(sim):
    response = requests.get(sim.url + "/2/tweets/search/all", headers=BEARER, timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_request_log_never_holds_credentials(sim, base):
    params = window(base, base + timedelta(minutes=1))

    search(sim, params)
    search(sim, params, headers=OAUTH)
    search(sim, params, headers={"Authorization": "Bearer wrong-secret"})

    log = sim.requests
    assert [(request["path"], request["status"], request["page"]) for request in log] == [
        (SEARCH, 200, 1),
        (SEARCH, 200, 1),
        (SEARCH, 401, 1),
    ]
    assert all(time.time() - 10 < request["time"] <= time.time() for request in log)
    dumped = json.dumps(log)
    for secret in ("sim-token", "sim-access-token", "sim-consumer-key", "wrong-secret", "Authorization"):
        assert secret not in dumped


# Command line


def test_command_line_prints_its_url_and_stops_on_sigterm(base):
    env = {**os.environ, "X_SIM_SEED": "9", "X_SIM_BEARER_TOKEN": "env-token", "X_SIM_RATE_PER_MINUTE": "11"}
    process = subprocess.Popen(
        [sys.executable, "-m", "x_api_simulator", "--port", "0", "--seed", "3"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("X API simulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        headers = {"Authorization": "Bearer env-token"}
        params = {
            "query": QUERY,
            "start_time": x_api_time(base),
            "end_time": x_api_time(base + timedelta(minutes=1)),
        }
        response = requests.get(url + SEARCH, params=params, headers=headers, timeout=5)
        expected = XApiSimulator(seed=3, rate_per_minute=11).tweets_between(
            base, base + timedelta(minutes=1), QUERY
        )
        assert [tweet["id"] for tweet in response.json()["data"]] == [tweet["id"] for tweet in expected[:10]]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
