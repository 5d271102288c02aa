"""TwitterHook against the X API simulator over real HTTP: paging, joins, errors, retries, secrets; the
batch compliance flow and its errors."""

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
from twitter_provider.hooks import (
    BeyondSearchHorizon,
    ComplianceJobConflict,
    ComplianceJobFailed,
    SearchPaused,
    TransientXApiError,
    TwitterHook,
    UsageCapExceeded,
)

TOKEN = "test-bearer-token-0123456789"


@pytest.fixture
def hook(simulator, monkeypatch) -> TwitterHook:
    set_connection(monkeypatch, "twitter_default", conn_type="twitter", host=simulator.url, password=TOKEN)
    return TwitterHook(timeout=(2, 2), backoff=0.01)


def oauth_keys(simulator) -> dict[str, str]:
    """OAuth 1.0a user-context keys the simulator accepts, as a connection's extra."""
    return {
        "consumer_key": simulator.oauth_consumer_key,
        "consumer_secret": "consumer-secret-value",
        "access_token": simulator.oauth_access_token,
        "access_token_secret": "access-token-secret-value",
    }


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
    oauth = oauth_keys(simulator)
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


def test_a_window_beyond_the_searchs_reach_makes_no_request(hook, simulator):
    start, end = past_window(10)

    with pytest.raises(BeyondSearchHorizon, match="is older than the recent search reaches"):
        hook.search_window(DAG_QUERY, start, end, horizon=timedelta(minutes=10))

    assert statuses(simulator) == []


def test_a_window_that_passes_the_horizon_while_a_rate_limit_is_waited_out_is_not_asked_again(
    hook, simulator
):
    """The reach is checked again before the request after a rate-limit wait: the window, in reach at the first
    request, is not when the limit has reset."""
    start, end = past_window(10)
    reset = int(time.time()) + 1
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"})
    horizon = datetime.now(UTC) - start + timedelta(seconds=1)  # reached for one more second

    with pytest.raises(BeyondSearchHorizon, match="no request made"):
        hook.search_window(DAG_QUERY, start, end, horizon=horizon)

    assert time.time() >= reset and statuses(simulator) == [429]


def test_x_s_own_answer_that_a_start_time_is_too_old_says_the_window_is_beyond_the_horizon(hook, simulator):
    start, end = past_window(10)
    simulator.search_horizon = 5 * 60

    with pytest.raises(BeyondSearchHorizon, match="HTTP 400.*'start_time' must be on or after"):
        hook.search_window(DAG_QUERY, start, end)

    assert statuses(simulator) == [400]


def test_a_reset_beyond_the_wait_bound_pauses_the_search_where_it_stopped(hook, simulator):
    """A reset 5 minutes away, beyond the 90 s the hook may wait: the search stops at page 3 with the tweets of pages
    1 and 2; searching again from its next_token reads page 3 on, and the two parts are the window."""
    start, end = past_window(100)
    simulator.set_rate(start, 250)
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    simulator.add_fault(status=429, page=3, headers={"x-rate-limit-reset": str(int(reset.timestamp()))})
    hook.max_rate_limit_wait = 90

    with pytest.raises(SearchPaused) as paused:
        hook.search_window(DAG_QUERY, start, end)
    rest = hook.search_window(DAG_QUERY, start, end, next_token=paused.value.next_token)

    assert paused.value.reset_at == reset and "HTTP 429" in str(paused.value)
    assert ids(paused.value.tweets + rest) == ids(simulator.tweets_between(start, end, DAG_QUERY))
    assert [(r["page"], r["status"]) for r in simulator.requests] == [(1, 200), (2, 200), (3, 429), (3, 200)]


def test_a_reset_beyond_the_x_api_s_15_minute_window_fails_for_airflow_to_retry_later(hook, simulator):
    start, end = past_window(100)
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    simulator.add_fault(status=429, headers={"x-rate-limit-reset": str(int(reset.timestamp()))})

    with pytest.raises(AirflowException) as e:
        hook.search_window(DAG_QUERY, start, end)

    assert f"the rate limit resets at {reset:%Y-%m-%dT%H:%M:%SZ}" in str(e.value)
    assert "later than X's 900 s rate-limit window allows" in str(e.value)
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
    oauth = oauth_keys(simulator)
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


# Batch compliance


def wait_for_status(hook: TwitterHook, job_id: str, *statuses: str) -> dict:
    """Read the job through the hook until its status is one of ``statuses``."""
    deadline = time.monotonic() + 30
    while (job := hook.get_compliance_job(job_id))["status"] not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.05)
    return job


@pytest.fixture
def compliance(simulator):
    """The simulator with jobs processed in 0.2 s, and the posts of a past minute."""
    simulator.compliance_processing = 0.2
    start, end = past_window(100)
    return [tweet["id"] for tweet in simulator.tweets_between(start, end)]


@pytest.mark.parametrize("resumable", [False, True])
def test_a_compliance_job_from_creation_to_results(hook, simulator, compliance, resumable):
    deleted, protected_author = compliance[1], simulator.tweets_between(*past_window(100))[4]["author"]["id"]
    simulator.add_compliance_event("delete", deleted)
    simulator.add_compliance_event("protect", protected_author)

    job = hook.create_compliance_job("stream-check", resumable=resumable)
    uploaded = hook.upload_compliance_ids(job, compliance)
    done = wait_for_status(hook, job["id"], "complete")
    results = hook.download_compliance_results(done)

    assert (job["name"], job["status"], uploaded) == ("stream-check", "created", len(compliance))
    assert results == simulator.compliance_results(compliance)
    assert {(r["id"], r["action"], r["reason"]) for r in results} >= {(deleted, "delete", "deleted")}
    assert {r["reason"] for r in results} == {"deleted", "protected"}
    storage = [(r["method"], r["status"]) for r in simulator.requests if r["path"].startswith("/_sim/")]
    assert storage == [*([("POST", 201)] if resumable else []), ("PUT", 200), ("GET", 200)]
    assert [r["bytes"] for r in simulator.requests if r["method"] == "PUT"] == [
        sum(len(i) + 1 for i in compliance)
    ]
    assert hook.list_compliance_jobs()[0]["id"] == job["id"]
    assert hook.list_compliance_jobs(status="in_progress") == []
    assert hook.cancel_compliance_job(job["id"])["status"] == "complete", "a finished job stays as it is"


def test_a_second_job_is_a_conflict_naming_the_connection_and_what_to_do(hook, simulator):
    first = hook.create_compliance_job("first")

    with pytest.raises(ComplianceJobConflict) as conflict:
        hook.create_compliance_job("second")

    assert str(conflict.value) == (
        "X API returned HTTP 409 for connection 'twitter_default': You cannot create a new job if one is "
        "already in progress. (X runs one compliance job of a type at a time: wait for the active one to "
        "finish, or cancel it)"
    )
    assert not isinstance(conflict.value, AirflowFailException), "a later try may find the job finished"
    assert hook.cancel_compliance_job(first["id"])["status"] == "failed"
    assert hook.create_compliance_job("third")["status"] == "created"


def test_an_expired_upload_url_fails_the_job_without_showing_its_signature(hook, simulator):
    simulator.compliance_upload_ttl = 1
    job = hook.create_compliance_job("late")
    wait_for_status(hook, job["id"], "expired")

    with pytest.raises(ComplianceJobFailed) as failure:
        hook.upload_compliance_ids(job, ["1"])

    message = str(failure.value)
    assert f"Compliance upload at {simulator.url}/_sim/compliance/upload/{job['id']} failed" in message
    assert (
        "for connection 'twitter_default': HTTP 400 ExpiredToken: The provided token has expired." in message
    )
    assert "create a new job" in message
    assert "Signature" not in message and job["upload_url"].split("?")[1] not in message


@pytest.mark.parametrize("status", ["failed", "expired"])
def test_the_results_of_a_failed_or_expired_job_are_refused_naming_it(hook, simulator, compliance, status):
    simulator.add_job_fault(status)
    job = hook.create_compliance_job("doomed")
    hook.upload_compliance_ids(job, compliance)
    ended = wait_for_status(hook, job["id"], status)

    with pytest.raises(
        ComplianceJobFailed, match=f"X compliance job {job['id']} \\(doomed\\) is {status} for "
    ):
        hook.download_compliance_results(ended)


def test_results_asked_before_the_job_is_complete_are_not_ready(hook, simulator, compliance):
    simulator.compliance_processing = 60
    job = hook.create_compliance_job("early")
    hook.upload_compliance_ids(job, compliance)

    with pytest.raises(
        AirflowException, match="HTTP 404 NoSuchKey.*no results yet: wait until the job is complete"
    ):
        hook.download_compliance_results(hook.get_compliance_job(job["id"]))


def test_a_creation_is_made_once_while_reads_are_retried(hook, simulator):
    simulator.add_fault(status=503, path="/2/compliance/jobs", method="POST")
    simulator.add_fault(status=503, path="/2/compliance/jobs/", method="GET", times=2)

    with pytest.raises(TransientXApiError, match="HTTP 503 for connection 'twitter_default'"):
        hook.create_compliance_job("once")
    job = hook.create_compliance_job("twice")
    read = hook.get_compliance_job(job["id"])

    assert read["id"] == job["id"]
    assert [(r["method"], r["status"]) for r in simulator.requests] == [
        ("POST", 503),
        ("POST", 200),
        ("GET", 503),
        ("GET", 503),
        ("GET", 200),
    ]


def test_a_failed_upload_is_retried_and_then_succeeds(hook, simulator, compliance):
    job = hook.create_compliance_job("flaky")
    simulator.add_fault(status=503, path="/_sim/compliance/upload", times=2)

    assert hook.upload_compliance_ids(job, compliance) == len(compliance)
    assert [r["status"] for r in simulator.requests if r["method"] == "PUT"] == [503, 503, 200]


def test_a_near_rate_limit_reset_on_a_job_is_waited_for_and_a_far_one_fails(hook, simulator):
    job = hook.create_compliance_job("limited")
    near = int(time.time()) + 2
    simulator.add_fault(status=429, path="/2/compliance/jobs/", headers={"x-rate-limit-reset": str(near)})

    assert hook.get_compliance_job(job["id"])["id"] == job["id"]
    assert time.time() >= near
    far = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    simulator.add_fault(
        status=429, path="/2/compliance/jobs/", headers={"x-rate-limit-reset": str(int(far.timestamp()))}
    )
    with pytest.raises(AirflowException, match=f"the rate limit resets at {far:%Y-%m-%dT%H:%M:%SZ}"):
        hook.get_compliance_job(job["id"])


def test_bad_ids_and_too_many_bytes_are_refused_before_any_request(hook, simulator, monkeypatch):
    job = hook.create_compliance_job("refused")
    simulator.clear_requests()

    with pytest.raises(AirflowFailException, match="Post id number 2, 'abc', is not an X post id"):
        hook.upload_compliance_ids(job, ["1", "abc"])
    monkeypatch.setattr("twitter_provider.hooks.MAX_UPLOAD_BYTES", 100)
    with pytest.raises(AirflowFailException) as too_big:
        hook.upload_compliance_ids(job, [str(10**18 + n) for n in range(10)])
    with pytest.raises(AirflowFailException, match="'../1' is not an X compliance job id"):
        hook.get_compliance_job("../1")

    assert str(too_big.value) == (
        f"10 post ids make 200 bytes, more than the 100 bytes X takes in compliance job {job['id']}'s one "
        "upload: split them between jobs"
    )
    assert simulator.requests == []


def test_compliance_needs_the_bearer_token_not_oauth1(simulator, monkeypatch):
    oauth = oauth_keys(simulator)
    set_connection(monkeypatch, "x_oauth", conn_type="twitter", host=simulator.url, extra=json.dumps(oauth))

    with pytest.raises(
        AirflowFailException, match="Connection 'x_oauth' has no bearer token: X's batch compliance"
    ):
        TwitterHook("x_oauth").create_compliance_job("user-context")
    assert simulator.requests == []


def test_no_secret_reaches_a_log_line_or_an_error_of_the_compliance_flow(
    hook, simulator, compliance, caplog, capfd
):
    simulator.add_fault(status=503, path="/_sim/compliance/upload")
    with caplog.at_level(logging.DEBUG):
        job = hook.create_compliance_job("secret-check")
        hook.upload_compliance_ids(job, compliance)
        results = hook.download_compliance_results(wait_for_status(hook, job["id"], "complete"))

    logged = caplog.text + capfd.readouterr().out
    assert f"Attempt 1 of 4 failed, retrying: Compliance upload at {simulator.url}/_sim/" in logged
    assert (
        f"Uploaded {len(compliance)} post ids" in logged
        and f"Compliance job {job['id']}: {len(results)} results" in logged
    )
    for secret in (
        TOKEN,
        job["upload_url"].split("Signature=")[1],
        job["download_url"].split("Signature=")[1],
    ):
        assert secret not in logged
