"""TwitterHook against the X API simulator over real HTTP: paging, joins, errors, retries, secrets."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tests.helpers import DAG_QUERY, past_window, set_connection
from twitter_provider.hooks import TransientXApiError, TwitterHook, UsageCapExceeded

TOKEN = "test-bearer-token-0123456789"


@pytest.fixture
def hook(simulator, monkeypatch) -> TwitterHook:
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password=TOKEN)
    return TwitterHook(timeout=(2, 2), backoff=0.01)


def statuses(simulator) -> list[int]:
    return [r["status"] for r in simulator.requests]


def ids(tweets) -> list[str]:
    return [t["id"] for t in tweets]


@pytest.mark.parametrize("count", [0, 1, 99, 100, 101, 250, 1000])
def test_every_tweet_of_the_window_with_the_minimum_of_requests(hook, simulator, count):
    start, end = past_window(100)
    simulator.set_rate(start, count)

    tweets = hook.search_window(DAG_QUERY, start, end)

    truth = simulator.tweets_between(start, end, DAG_QUERY)
    assert tweets == truth, "same tweets, authors joined, newest first"
    assert count * 0.8 <= len(tweets) <= count, "most posts match the query"
    assert len(simulator.requests) == max(1, math.ceil(len(truth) / 100)) == hook.requests_made
    assert all(r["params"]["max_results"] == "100" for r in simulator.requests)


def test_bearer_token_and_oauth1_user_context_both_authenticate(simulator, monkeypatch):
    start, end = past_window(100)
    oauth = {
        "consumer_key": simulator.oauth_consumer_key,
        "consumer_secret": "consumer-secret-value",
        "access_token": simulator.oauth_access_token,
        "access_token_secret": "access-token-secret-value",
    }
    set_connection(monkeypatch, "x_oauth", conn_type="twitter", host=simulator.url, extra=json.dumps(oauth))

    tweets = TwitterHook("x_oauth").search_window(DAG_QUERY, start, end)

    assert ids(tweets) == ids(simulator.tweets_between(start, end, DAG_QUERY))


def test_a_tweet_on_two_pages_is_kept_once_and_a_missing_author_is_none(hook, simulator):
    start, end = past_window(100)
    simulator.set_rate(start, 150)  # ~88% match the query: two pages, whatever the minute
    truth = simulator.tweets_between(start, end, DAG_QUERY)
    assert len(truth) > 105
    orphan = {**truth[-1], "author_id": "999"}  # its author is not in the page's includes
    page_two = {
        "data": [{k: v for k, v in t.items() if k != "author"} for t in [truth[0], *truth[100:-1]]]
        + [{k: v for k, v in orphan.items() if k != "author"}],
        "includes": {"users": [t["author"] for t in truth[100:-1]]},
        "meta": {"result_count": len(truth) - 99},
    }
    simulator.add_fault(body=json.dumps(page_two), page=2)

    tweets = hook.search_window(DAG_QUERY, start, end)

    assert ids(tweets) == ids(truth)
    assert tweets[-1]["author"] is None


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (402, "X API returned HTTP 402 for connection 'twitter_default'"),
        (403, "X API returned HTTP 403 for connection 'twitter_default'"),
    ],
)
def test_client_errors_fail_without_retry_naming_status_and_connection(hook, simulator, status, message):
    start, end = past_window(100)
    simulator.add_fault(status=status)

    with pytest.raises(AirflowFailException, match=re.escape(message)):
        hook.search_window(DAG_QUERY, start, end)
    assert statuses(simulator) == [status]


def test_a_refused_window_fails_with_the_apis_own_message(hook, simulator):
    end = datetime.now(UTC).replace(microsecond=0)

    with pytest.raises(AirflowFailException) as failure:
        hook.search_window("Apple", end - timedelta(minutes=1), end)

    assert "HTTP 400 for connection 'twitter_default'" in str(failure.value)
    assert "'end_time' must be a minimum of 10 seconds prior to the request time" in str(failure.value)
    assert statuses(simulator) == [400]


def test_a_wrong_token_fails_with_401_and_no_secret_in_the_message(simulator, monkeypatch):
    set_connection(
        monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password="wrong-secret"
    )
    start, end = past_window(100)

    with pytest.raises(AirflowFailException, match="HTTP 401 for connection 'twitter_default'") as failure:
        TwitterHook().search_window(DAG_QUERY, start, end)

    assert "wrong-secret" not in str(failure.value)
    assert statuses(simulator) == [401]


def test_a_near_rate_limit_reset_is_waited_for(hook, simulator):
    start, end = past_window(100)
    reset = int(time.time()) + 2
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"})

    tweets = hook.search_window(DAG_QUERY, start, end)

    assert time.time() >= reset
    assert ids(tweets) == ids(simulator.tweets_between(start, end, DAG_QUERY))
    assert statuses(simulator) == [429, 200]


def test_a_reset_anywhere_in_the_x_api_s_15_minute_window_is_waited_for(hook, simulator, monkeypatch):
    """A reset 14 minutes away: the hook sleeps until a second after it (recorded here, not slept) and asks
    again, instead of failing the try and spending one of Airflow's retries."""
    start, end = past_window(100)
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=14)
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": str(int(reset.timestamp()))})
    slept = []
    monkeypatch.setattr("twitter_provider.hooks.time.sleep", slept.append)

    tweets = hook.search_window(DAG_QUERY, start, end)

    assert len(slept) == 1 and 14 * 60 - 5 < slept[0] <= 14 * 60 + 1
    assert ids(tweets) == ids(simulator.tweets_between(start, end, DAG_QUERY))
    assert statuses(simulator) == [429, 200]


def test_a_reset_beyond_the_wait_bound_fails_for_airflow_to_retry_later(hook, simulator):
    start, end = past_window(100)
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": str(int(reset.timestamp()))})

    with pytest.raises(AirflowException) as e:
        hook.search_window(DAG_QUERY, start, end)

    assert f"the rate limit resets at {reset:%Y-%m-%dT%H:%M:%SZ}" in str(e.value)
    assert "later than the 900 s this task waits for a reset" in str(e.value)
    assert not isinstance(e.value, AirflowFailException), "Airflow retries it"
    assert statuses(simulator) == [429]


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 500, "times": 3},
        {"status": 429, "headers": {"x-rate-limit-reset": None}},
        {"body": '{"data": ['},
        {"delay": 3},
    ],
    ids=["503", "three-500s", "429-without-reset", "malformed-body", "read-timeout"],
)
def test_transient_failures_are_retried_with_backoff_and_nothing_is_lost(hook, simulator, fault):
    start, end = past_window(100)
    simulator.set_rate(start, 150)
    simulator.add_fault(page=2, **fault)

    tweets = hook.search_window(DAG_QUERY, start, end)

    assert ids(tweets) == ids(simulator.tweets_between(start, end, DAG_QUERY))
    assert [r["page"] for r in simulator.requests][-1] == 2
    assert hook.requests_made == 2 + fault.get("times", 1)


def test_persistent_server_errors_fail_after_the_hooks_attempts(hook, simulator):
    start, end = past_window(100)
    simulator.add_fault(status=503, times=-1)

    with pytest.raises(TransientXApiError, match="HTTP 503 for connection 'twitter_default'"):
        hook.search_window(DAG_QUERY, start, end)
    assert statuses(simulator) == [503] * hook.attempts


def test_connection_refused_fails_after_the_hooks_attempts_naming_the_connection(monkeypatch):
    set_connection(
        monkeypatch, "twitter_default", conn_type="twitter", host="http://127.0.0.1:1", password=TOKEN
    )
    start, end = past_window(100)

    with pytest.raises(
        TransientXApiError, match="to http://127.0.0.1:1 failed for connection 'twitter_default'"
    ):
        TwitterHook(backoff=0.01).search_window(DAG_QUERY, start, end)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Connection 'twitter_default' has no credentials"),
        (
            {"extra": '{"consumer_key": "k", "access_token": "t"}'},
            "missing consumer_secret, access_token_secret",
        ),
        ({"password": TOKEN, "extra": '{"consumer_key": '}, "extra is not valid JSON"),
        ({"password": TOKEN, "host": "not a url"}, "host 'not a url' is not an http(s) URL"),
        (
            {"password": TOKEN, "host": "http://api.x.com"},
            "Connection 'twitter_default': host 'http://api.x.com' is plain http:// to another machine, which "
            "would send the credentials unencrypted; use https://",
        ),
        ({"password": TOKEN, "host": "http://10.0.0.8:8099"}, "host 'http://10.0.0.8:8099' is plain http://"),
        ({"password": TOKEN, "host": "http://localhost.example.com"}, "is plain http:// to another machine"),
    ],
    ids=[
        "no-credentials",
        "half-oauth",
        "malformed-extra",
        "host-not-url",
        "plain-http",
        "plain-http-ip",
        "lookalike",
    ],
)
def test_a_bad_connection_fails_naming_it_and_what_is_wrong(simulator, monkeypatch, fields, message):
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", **fields)
    start, end = past_window(100)

    with pytest.raises(AirflowFailException, match=re.escape(message)):
        TwitterHook().search_window(DAG_QUERY, start, end)
    assert simulator.requests == []


@pytest.mark.parametrize(
    "host", ["http://localhost:8099", "http://127.0.0.2:8099", "http://[::1]:8099", "https://x.test"]
)
def test_plain_http_is_allowed_on_the_loopback_only_and_https_anywhere(monkeypatch, host):
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", host=host, password=TOKEN)

    assert TwitterHook().base_url == host


def test_plain_http_to_another_machine_is_allowed_only_when_the_extra_says_so(monkeypatch):
    extra = json.dumps({"allow_plain_http": True})
    set_connection(
        monkeypatch,
        "twitter_default",
        conn_type="twitter",
        host="http://x-api-simulator:8099",
        password=TOKEN,
        extra=extra,
    )

    assert TwitterHook().base_url == "http://x-api-simulator:8099"


def test_secrets_never_reach_a_log_line_at_debug(simulator, monkeypatch, caplog, capfd):
    oauth = {
        "consumer_key": simulator.oauth_consumer_key,
        "consumer_secret": "consumer-secret-value",
        "access_token": simulator.oauth_access_token,
        "access_token_secret": "access-token-secret-value",
    }
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password=TOKEN)
    set_connection(monkeypatch, "x_oauth", conn_type="twitter", host=simulator.url, extra=json.dumps(oauth))
    start, end = past_window(100)
    simulator.add_fault(status=503)

    with caplog.at_level(logging.DEBUG):
        TwitterHook(backoff=0.01).search_window(DAG_QUERY, start, end)
        TwitterHook("x_oauth").search_window(DAG_QUERY, start, end)

    logged = caplog.text + capfd.readouterr().out  # libraries log through logging, Airflow through structlog
    assert "Attempt 1 of 4 failed" in logged and "urllib3.connectionpool" in logged
    for secret in (TOKEN, *oauth.values()):
        assert secret not in logged


def test_test_connection_answers_for_the_ui(hook, simulator, monkeypatch):
    ok, message = hook.test_connection()
    assert ok and "reached " + simulator.url in message
    assert message.startswith("Connection 'twitter_default' reached") and "(Pro tier)" in message

    set_connection(
        monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password="wrong-secret"
    )
    ok, message = TwitterHook().test_connection()
    assert not ok and "HTTP 401 for connection 'twitter_default'" in message


def test_a_usage_cap_fails_at_once_naming_period_scope_and_what_to_do(hook, simulator):
    start, end = past_window(100)
    simulator.usage_cap = 0

    with pytest.raises(UsageCapExceeded) as failure:
        hook.search_window(DAG_QUERY, start, end)

    message = str(failure.value)
    assert "HTTP 429 UsageCapExceeded for connection 'twitter_default'" in message
    assert "the Monthly usage cap of the Product is reached" in message and "X developer portal" in message
    assert isinstance(failure.value, AirflowFailException), "not retried: a reset does not lift a cap"
    assert statuses(simulator) == [429]


def test_empty_pages_that_carry_a_next_token_are_paged_through(hook, simulator):
    start, end = past_window(100)
    simulator.set_rate(start, 300)
    simulator.empty_page_rate = 1.0  # one page of each search comes empty

    tweets = hook.search_window(DAG_QUERY, start, end)

    assert ids(tweets) == ids(simulator.tweets_between(start, end, DAG_QUERY))
    assert len(simulator.requests) == math.ceil(len(tweets) / 100) + 1
    assert all(r["params"]["sort_order"] == "recency" for r in simulator.requests)


def test_the_default_base_url_is_x_s_current_host(simulator, monkeypatch):
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", password=TOKEN)

    hook = TwitterHook()

    assert hook.base_url == "https://api.x.com"
    adapter = hook.get_conn().session.get_adapter("https://api.twitter.com/2/tweets/search/recent")
    assert adapter.base_url == "https://api.x.com", "tweepy's hard-coded host is rewritten to it"


@pytest.mark.parametrize(
    ("tier", "summary"),
    [
        ("pro", "rate limit remaining 449 of 450 (Pro tier)"),
        ("basic", "rate limit remaining 59 of 60 (Basic tier)"),
    ],
)
def test_the_summary_line_names_the_access_tier(hook, simulator, caplog, capfd, tier, summary):
    start, end = past_window(100)
    simulator.tier = tier

    hook.search_window(DAG_QUERY, start, end)

    assert summary in caplog.text + capfd.readouterr().out


def test_the_test_button_names_the_host_and_only_a_stored_connection(simulator, monkeypatch):
    """Airflow's UI tests a form under a random 8-character id: naming it would only confuse."""
    set_connection(monkeypatch, "KIabaXPX", conn_type="twitter", host=simulator.url, password="wrong")
    set_connection(monkeypatch, "x_stored", conn_type="twitter", host=simulator.url, password="wrong")

    _, under_test = TwitterHook("KIabaXPX").test_connection()
    _, stored = TwitterHook("x_stored").test_connection()

    assert under_test == (
        f"Recent search at {simulator.url} failed: X API returned HTTP 401: Unauthorized "
        "(check the connection's bearer token or OAuth 1.0a keys)"
    )
    assert "KIabaXPX" not in under_test
    assert stored.startswith(
        f"Recent search at {simulator.url} failed: X API returned HTTP 401 for connection 'x_stored'"
    )


@pytest.mark.parametrize(
    "page",
    [{}, {"meta": {"result_count": 0}}, {"includes": {}, "meta": {}}],
    ids=["nothing", "meta-only", "empty-objects"],
)
def test_a_page_with_only_what_the_contract_requires_is_an_empty_window(hook, simulator, page):
    start, end = past_window(100)
    simulator.add_fault(body=page)

    assert hook.search_window(DAG_QUERY, start, end) == []


def test_a_tweet_with_only_id_and_text_becomes_a_record_with_its_time_from_its_id(hook, simulator):
    from include.records import to_record

    start, end = past_window(100)
    truth = simulator.tweets_between(start, end, DAG_QUERY)[0]
    simulator.add_fault(body={"data": [{"id": truth["id"], "text": truth["text"]}]})

    (tweet,) = hook.search_window(DAG_QUERY, start, end)

    record = to_record(tweet, tweet["author"])
    assert (
        record["created_at"] == truth["created_at"][:19] + "Z" and record["original_tweet_id"] == truth["id"]
    )
    assert (record["user_id"], record["followers_count"], record["lang"]) == (None, None, None)
