"""The simulator as the real API behaves: queries, access tiers, usage caps, credits, edits, empty pages."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from tests.helpers import DAG_QUERY, past_window, x_api_time
from x_api_simulator import XApiSimulator
from x_api_simulator.query import QueryError, parse, subject

PATH = "/2/tweets/search/recent"
BEARER = {"Authorization": "Bearer sim-token"}
OAUTH = {"Authorization": 'OAuth oauth_consumer_key="sim-consumer-key", oauth_token="sim-access-token"'}


def matches(query: str, text: str, username: str = "ada", lang: str | None = "en") -> bool:
    return parse(query)(subject(text, username, lang))


def search(sim, start, end, headers=BEARER, **params) -> requests.Response:
    window = {"query": DAG_QUERY, "start_time": x_api_time(start), "end_time": x_api_time(end)}
    return requests.get(
        sim.url + PATH, params={**window, "max_results": "100", **params}, headers=headers, timeout=5
    )


def pages(sim, start, end, **params) -> list[dict]:
    found = [search(sim, start, end, **params).json()]
    while "next_token" in found[-1]["meta"]:
        found.append(search(sim, start, end, next_token=found[-1]["meta"]["next_token"], **params).json())
    return found


@pytest.fixture
def sim():
    with XApiSimulator() as simulator:
        yield simulator


# Queries


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("apple", "I love my Apple Watch", True),
        ("apple", "pineapple juice", False),  # whole tokens only
        ("apple watch", "my watch and my APPLE", True),  # implicit AND, any order, any case
        ("apple watch", "my Apple", False),
        ("apple OR android", "android phone", True),
        ("iphone apple OR android", "android", True),  # AND binds tighter than OR
        ("iphone (apple OR android)", "android", False),
        ('"apple watch"', "apple watch band", True),
        ('"apple watch"', "watch apple", False),
        ("apple -watch", "apple watch", False),
        ("apple -(watch OR pencil)", "apple pencil", False),
        ("#iphone", "new #iPhone day", True),
        ("#iphone", "new iPhone day", False),
        ("@apple", "thanks @Apple", True),
        ("from:ada", "anything", True),
        ("from:bob", "anything", False),
        ("apple lang:fr", "Apple", False),
        ("apple -is:retweet", "RT @x: apple", False),
        ("apple has:links", "apple https://t.co/x", True),
        ("iphone", "アップルの新しいiPhone、カメラ", True),  # a run of Japanese is a token apart
    ],
)
def test_queries_are_evaluated_as_x_s_search_syntax(query, text, expected):
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("apple (", "Expected a term"),
        ("(apple", "Missing closing parenthesis"),
        ('"apple', "Unterminated quoted phrase"),
        ("apple OR", "Expected a term"),
        ("lang:en", "standalone"),
        ("-apple", "standalone"),
        ("url:apple.com apple", "not supported by the X API simulator"),
        ("a" * 513, "exceeds the limit of 512 characters"),
    ],
)
def test_a_malformed_query_gets_the_api_s_400(sim, query, message):
    start, end = past_window(60)

    response = search(sim, start, end, query=query)

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["parameters"] == {"query": [query]} and message in error["message"]
    with pytest.raises(QueryError):
        parse(query)


def test_different_queries_return_different_posts_deterministically(sim):
    start, end = past_window(60)
    sim.set_rate(start, 300)

    every = sim.tweets_between(start, end)
    default = [tweet["id"] for page in pages(sim, start, end) for tweet in page.get("data", [])]
    french = [
        tweet["id"]
        for page in pages(sim, start, end, query="(apple OR iphone) lang:fr")
        for tweet in page.get("data", [])
    ]

    assert default == [tweet["id"] for tweet in sim.tweets_between(start, end, DAG_QUERY)]
    assert 0.8 * len(every) < len(default) < len(every), "the DAG's query matches most posts, not all"
    assert french and set(french) < set(default)
    assert default == [tweet["id"] for page in pages(sim, start, end) for tweet in page.get("data", [])]


# Tiers, caps and credits


@pytest.mark.parametrize(
    ("tier", "headers", "limit"),
    [("basic", BEARER, 60), ("basic", OAUTH, 60), ("pro", BEARER, 450), ("pro", OAUTH, 180)],
)
def test_each_tier_sends_its_limit_per_15_minutes_in_x_s_headers(tier, headers, limit):
    start, end = past_window(60)
    with XApiSimulator(tier=tier) as sim:
        first, second = search(sim, start, end, headers), search(sim, start, end, headers)

    assert first.headers["x-rate-limit-limit"] == str(limit)
    assert [first.headers["x-rate-limit-remaining"], second.headers["x-rate-limit-remaining"]] == [
        str(limit - 1),
        str(limit - 2),
    ]
    assert first.headers["x-rate-limit-reset"] == second.headers["x-rate-limit-reset"]


def test_basic_answers_the_61st_request_in_15_minutes_with_429(sim):
    start, end = past_window(60)
    sim.tier = "basic"

    statuses = [search(sim, start, end).status_code for _ in range(61)]

    assert statuses == [200] * 60 + [429]


def test_a_usage_cap_is_a_429_with_period_and_scope_while_requests_remain(sim):
    start, end = past_window(60)
    sim.usage_cap = 10

    first, capped = search(sim, start, end), search(sim, start, end)

    assert first.status_code == 200 and first.json()["meta"]["result_count"] > 0
    assert capped.status_code == 429
    assert capped.json() == {
        "title": "UsageCapExceeded",
        "detail": "Usage cap exceeded: Monthly product cap",
        "type": "https://api.twitter.com/2/problems/usage-capped",
        "period": "Monthly",
        "scope": "Product",
    }
    assert capped.headers["x-rate-limit-remaining"] == "448", "the rate limit still shows requests left"


def test_credits_bill_each_post_once_per_utc_day_then_402(sim):
    start, end = past_window(60)
    other, _ = past_window(61)
    sim.credits = len(sim.tweets_between(start, end, DAG_QUERY))

    statuses = [search(sim, *window).status_code for window in [(start, end), (start, end), (other, start)]]

    assert statuses == [200, 200, 402], "a reread the same day is free; new posts need credits"
    refused = search(sim, other, start)
    assert refused.json()["title"] == "CreditsDepleted" and refused.status_code == 402


# Edits and paging


def test_an_edit_replaces_its_original_with_a_new_id_and_the_edit_history():
    start, end = past_window(120)
    span_end = end + timedelta(minutes=31)
    originals = {tweet["id"]: tweet for tweet in XApiSimulator().tweets_between(start, end)}  # none edited
    with XApiSimulator(edit_rate=0.2) as sim:
        window = sim.tweets_between(start, end)
        span = sim.tweets_between(start, span_end)
        searched = [t for page in pages(sim, start, span_end) for t in page.get("data", [])]

    edits = [
        tweet for tweet in span if tweet["edit_history_tweet_ids"][0] in originals.keys() - {tweet["id"]}
    ]
    assert edits, "some posts of the window were edited"
    unedited = {tweet["id"] for tweet in window if len(tweet["edit_history_tweet_ids"]) == 1}
    assert unedited == originals.keys() - {edit["edit_history_tweet_ids"][0] for edit in edits}
    for edit in edits:
        original = originals[edit["edit_history_tweet_ids"][0]]
        assert edit["edit_history_tweet_ids"] == [original["id"], edit["id"]]
        assert int(edit["id"]) > int(original["id"])
        edited_after = datetime.fromisoformat(edit["created_at"]) - datetime.fromisoformat(
            original["created_at"]
        )
        assert timedelta(minutes=1) <= edited_after < timedelta(minutes=30), "within X's edit window"
        assert edit["author"] == original["author"]
    assert [tweet["id"] for tweet in searched] == [tweet["id"] for tweet in span if matches_default(tweet)]


def matches_default(tweet: dict) -> bool:
    return parse(DAG_QUERY)(subject(tweet["text"], tweet["author"]["username"], tweet.get("lang")))


def test_empty_pages_carry_a_next_token_and_paging_still_reaches_every_post():
    with XApiSimulator(empty_page_rate=1.0) as sim:
        start, end = past_window(60)
        sim.set_rate(start, 500)
        found = pages(sim, start, end)
        again = pages(sim, start, end)

    empty = [page for page in found if page["meta"]["result_count"] == 0]
    assert len(empty) == 1 and "next_token" in empty[0]["meta"], "one page of the search, never two"
    assert found == again, "deterministic"
    ids = [tweet["id"] for page in found for tweet in page.get("data", [])]
    assert ids == [tweet["id"] for tweet in sim.tweets_between(start, end, DAG_QUERY)]
