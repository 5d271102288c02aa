"""The simulator's batch compliance over real HTTP: jobs and their states, the pre-signed upload and
download URLs, one active job per type, rate limits, faults, and compliance events (on request and by
schedule) that search honours and jobs report."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.helpers import past_window
from x_api_simulator import XApiSimulator

JOBS = "/2/compliance/jobs"
BEARER = {"Authorization": "Bearer sim-token"}
OAUTH = {"Authorization": 'OAuth oauth_consumer_key="sim-consumer-key", oauth_token="sim-access-token"'}
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def sim():
    with XApiSimulator(compliance_processing=0.2) as simulator:
        yield simulator


def create(sim, headers=BEARER, **body) -> requests.Response:
    return requests.post(sim.url + JOBS, json={"type": "tweets", **body}, headers=headers, timeout=5)


def get(sim, job_id) -> dict:
    response = requests.get(f"{sim.url}{JOBS}/{job_id}", headers=BEARER, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_for_status(sim, job_id, *statuses) -> dict:
    """Poll the job until its status is one of ``statuses`` (the simulator's delays are short)."""
    deadline = time.monotonic() + 30
    while (job := get(sim, job_id))["status"] not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.05)
    return job


def upload(job: dict, ids: list[str], headers=TEXT) -> requests.Response:
    return requests.put(job["upload_url"], data="".join(f"{i}\n" for i in ids), headers=headers, timeout=5)


def lines(response: requests.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines()]


def ids_between(sim, start, end) -> list[str]:
    return [tweet["id"] for tweet in sim.tweets_between(start, end)]


# Jobs


def test_a_job_goes_created_in_progress_complete_and_gives_a_line_per_id_with_an_event(sim):
    start, end = past_window(120)
    posts = ids_between(sim, start, end)
    deleted, scrubbed = posts[3], posts[5]
    sim.add_compliance_event("delete", deleted)
    sim.add_compliance_event("scrub_geo", scrubbed)
    sim.compliance_processing = 3600  # in progress until the test ends it

    job = create(sim, name="nightly", resumable=False).json()["data"]
    assert (job["status"], job["name"], job["type"], job["resumable"]) == (
        "created",
        "nightly",
        "tweets",
        False,
    )
    assert upload(job, posts).status_code == 200
    assert get(sim, job["id"])["status"] == "in_progress"
    sim.finish_compliance_job(job["id"])
    done = wait_for_status(sim, job["id"], "complete")
    results = requests.get(done["download_url"], timeout=5)

    assert results.status_code == 200
    assert lines(results) == sim.compliance_results(posts)
    assert [(line["id"], line["action"], line["reason"]) for line in lines(results)] == [
        (deleted, "delete", "deleted"),
        (scrubbed, "scrub_geo", "geo_scrubbed"),
    ]
    deleted_post = next(t for t in XApiSimulator().tweets_between(start, end) if t["id"] == deleted)
    assert lines(results)[0]["created_at"] == deleted_post["created_at"]
    redacted = datetime.fromisoformat(lines(results)[0]["redacted_at"])
    assert datetime.now(UTC) - timedelta(seconds=30) < redacted <= datetime.now(UTC)


def test_one_active_job_per_type_409_until_it_finishes_or_is_cancelled(sim):
    first = create(sim).json()["data"]

    second = create(sim)
    users = create(sim, type="users")
    cancelled = requests.delete(f"{sim.url}{JOBS}/{first['id']}", headers=BEARER, timeout=5)
    third = create(sim)
    again = requests.delete(f"{sim.url}{JOBS}/{first['id']}", headers=BEARER, timeout=5)

    assert second.status_code == 409
    assert second.headers["Content-Type"] == "application/problem+json"
    assert second.json() == {
        "title": "Conflict",
        "detail": "You cannot create a new job if one is already in progress.",
        "type": "https://api.twitter.com/2/problems/conflict",
    }
    assert users.status_code == 200, "one active job per type, not per app"
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "failed"
    assert third.status_code == 200
    assert again.json()["data"]["status"] == "failed", "cancelling a finished job changes nothing"


def test_the_upload_url_expires_and_so_does_a_job_without_upload():
    with XApiSimulator(compliance_upload_ttl=1) as sim:
        job = create(sim).json()["data"]
        expired = wait_for_status(sim, job["id"], "expired")
        late = upload(job, ["1"])
        another = create(sim)

    assert expired["upload_expires_at"] == job["upload_expires_at"]
    assert late.status_code == 400 and late.headers["Content-Type"].startswith("application/xml")
    assert "<Code>ExpiredToken</Code>" in late.text
    assert another.status_code == 200, "an expired job is not active"


def test_the_download_url_expires():
    with XApiSimulator(compliance_processing=0, compliance_download_ttl=1) as sim:
        job = create(sim).json()["data"]
        upload(job, ["1"])
        deadline = time.monotonic() + 30
        while (answer := requests.get(job["download_url"], timeout=5)).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    assert answer.status_code == 400 and "<Code>ExpiredToken</Code>" in answer.text


def test_the_storage_urls_hold_their_signature_content_type_and_take_no_credentials(sim):
    job = create(sim).json()["data"]

    tampered = requests.put(
        job["upload_url"].replace("Expires=900", "Expires=9000"), data="1\n", headers=TEXT
    )
    binary = upload(job, ["1"], headers={"Content-Type": "application/octet-stream"})
    with_token = upload(job, ["1"], headers={**TEXT, **BEARER})
    not_ready = requests.get(job["download_url"], timeout=5)
    made = upload(job, ["1"])

    assert tampered.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in tampered.text
    assert binary.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in binary.text
    assert with_token.status_code == 400, "a bearer token sent to the storage host is refused"
    assert not_ready.status_code == 404 and "<Code>NoSuchKey</Code>" in not_ready.text
    assert made.status_code == 200 and made.text == ""


def test_a_resumable_upload_opens_a_session_then_puts_the_ids(sim):
    job = create(sim, resumable=True).json()["data"]

    plain_put = upload(job, ["1"])
    started = requests.post(job["upload_url"], headers={**TEXT, "x-goog-resumable": "start"}, timeout=5)
    put = requests.put(started.headers["Location"], data="1\n2\n", headers=TEXT, timeout=5)

    assert job["resumable"] is True
    assert plain_put.status_code == 403, "the URL is signed for the session's POST"
    assert started.status_code == 201 and "upload_id=" in started.headers["Location"]
    assert put.status_code == 200
    assert wait_for_status(sim, job["id"], "complete")["status"] == "complete"


@pytest.mark.parametrize("status", ["failed", "expired"])
def test_a_job_fault_ends_the_next_job_failed_or_expired_without_results(sim, status):
    sim.add_job_fault(status)
    faulted = create(sim).json()["data"]
    upload(faulted, ["1"])
    ended = wait_for_status(sim, faulted["id"], status)
    results = requests.get(ended["download_url"], timeout=5)
    normal = create(sim).json()["data"]
    upload(normal, ["1"])

    assert results.status_code == 404 and "<Code>NoSuchKey</Code>" in results.text
    finished = wait_for_status(sim, normal["id"], "complete", "failed", "expired")
    assert finished["status"] == "complete", "the fault was for one job"


def test_a_line_that_is_not_an_id_fails_the_job(sim):
    job = create(sim).json()["data"]

    upload(job, ["123", "not-an-id"])

    assert wait_for_status(sim, job["id"], "complete", "failed")["status"] == "failed"


def test_an_upload_over_the_limit_is_refused(sim):
    sim.compliance_upload_limit = 100
    job = create(sim).json()["data"]

    refused = upload(job, [str(10**18 + n) for n in range(10)])

    assert refused.status_code == 413 and "<Code>EntityTooLarge</Code>" in refused.text
    assert get(sim, job["id"])["status"] == "created"


def test_jobs_are_listed_by_type_and_status_newest_first(sim):
    done = create(sim).json()["data"]
    upload(done, ["1"])
    wait_for_status(sim, done["id"], "complete")
    active = create(sim).json()["data"]

    def listed(**params) -> dict:
        answer = requests.get(sim.url + JOBS, params=params, headers=BEARER, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert [job["id"] for job in listed(type="tweets")["data"]] == [active["id"], done["id"]]
    assert [job["id"] for job in listed(type="tweets", status="complete")["data"]] == [done["id"]]
    assert listed(type="users") == {"meta": {"result_count": 0}}
    missing = requests.get(sim.url + JOBS, headers=BEARER, timeout=5)
    assert missing.status_code == 400 and missing.json()["errors"][0]["parameters"] == {"type": []}


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"type": "posts"}, "type"),
        ({"type": "tweets", "name": "x" * 65}, "name"),
        ({"type": "tweets", "resumable": "yes"}, "resumable"),
        ({"type": "tweets", "job_name": "x"}, "job_name"),
    ],
)
def test_a_bad_creation_gets_400_naming_the_parameter(sim, body, parameter):
    answer = requests.post(sim.url + JOBS, json=body, headers=BEARER, timeout=5)

    assert answer.status_code == 400
    assert [parameter] == [name for error in answer.json()["errors"] for name in error["parameters"]]


def test_unknown_and_malformed_job_ids(sim):
    unknown = requests.get(f"{sim.url}{JOBS}/123", headers=BEARER, timeout=5)
    malformed = requests.get(f"{sim.url}{JOBS}/abc", headers=BEARER, timeout=5)

    assert unknown.status_code == 404
    assert malformed.status_code == 400 and malformed.json()["errors"][0]["parameters"] == {"id": ["abc"]}


def test_compliance_takes_the_app_s_bearer_token_only(sim):
    assert create(sim, headers={}).status_code == 401
    user_context = create(sim, headers=OAUTH)

    assert user_context.status_code == 403
    assert user_context.json()["type"] == "https://api.twitter.com/2/problems/unsupported-authentication"


def test_each_compliance_endpoint_has_its_rate_limit():
    with XApiSimulator(compliance_rate_limit=2) as sim:
        job = create(sim).json()["data"]
        requests.delete(f"{sim.url}{JOBS}/{job['id']}", headers=BEARER, timeout=5)
        second, third = create(sim), create(sim)
        read = requests.get(f"{sim.url}{JOBS}/{job['id']}", headers=BEARER, timeout=5)

    assert [job and 200, second.status_code, third.status_code] == [200, 200, 429]
    assert third.headers["x-rate-limit-limit"] == "2" and third.headers["x-rate-limit-remaining"] == "0"
    assert time.time() < int(third.headers["x-rate-limit-reset"]) <= time.time() + 901
    assert read.status_code == 200 and read.headers["x-rate-limit-remaining"] == "1"


def test_faults_reach_compliance_requests_by_path_and_method(sim):
    sim.add_fault(status=503, path=JOBS, method="POST")

    failed, created = create(sim), create(sim)
    job = created.json()["data"]
    sim.add_fault(status=500, path="/_sim/compliance/upload")
    refused, uploaded = upload(job, ["1"]), upload(job, ["1"])

    assert (failed.status_code, created.status_code) == (503, 200)
    assert (refused.status_code, uploaded.status_code) == (500, 200)


def test_the_request_log_holds_compliance_requests_without_credentials_or_signatures(sim):
    job = create(sim, name="logged").json()["data"]
    upload(job, ["1", "2"])
    wait_for_status(sim, job["id"], "complete")
    requests.get(job["download_url"], timeout=5)

    log = sim.requests
    assert [(r["method"], r["path"].split("/")[-2]) for r in log[:2]] == [
        ("POST", "compliance"),
        ("PUT", "upload"),
    ]
    assert log[0]["json"] == {"type": "tweets", "name": "logged"}
    assert log[1]["bytes"] == 4 and log[-1]["status"] == 200
    dumped = json.dumps(log)
    signatures = [job[url].split("X-Goog-Signature=")[1] for url in ("upload_url", "download_url")]
    for secret in ("sim-token", "Authorization", *signatures):
        assert secret not in dumped


# Compliance events


def test_deleted_withheld_and_protected_posts_leave_search_at_once(sim):
    start, end = past_window(120)
    posts = sim.tweets_between(start, end)
    deleted, withheld, scrubbed, edited = (post["id"] for post in posts[1:5])
    author = posts[6]["author"]["id"]
    by_author = {post["id"] for post in posts if post["author"]["id"] == author}

    sim.add_compliance_event("delete", deleted)
    sim.add_compliance_event("withhold", withheld)
    sim.add_compliance_event("scrub_geo", scrubbed)
    sim.add_compliance_event("protect", author)
    event = sim.add_compliance_event("edit", edited)
    left = set(ids_between(sim, start, end))

    assert left == {post["id"] for post in posts} - {deleted, withheld, edited} - by_author
    assert scrubbed in left, "a geo scrub hides nothing"
    assert datetime.fromisoformat(event["at"]) <= datetime.now(UTC)
    kinds = [(e["kind"], e["id"]) for e in sim.compliance_events]
    assert kinds == [
        ("delete", deleted),
        ("withhold", withheld),
        ("scrub_geo", scrubbed),
        ("protect", author),
        ("edit", edited),
    ]


def test_clearing_the_events_made_on_request_brings_every_post_back(sim):
    start, end = past_window(120)
    posts = {post["id"] for post in sim.tweets_between(start, end)}
    deleted, edited = sorted(posts)[:2]
    sim.add_compliance_event("delete", deleted)
    sim.add_compliance_event("edit", edited)

    sim.clear_compliance_events()

    assert set(ids_between(sim, start, end)) == posts and sim.compliance_events == []


def test_an_edit_on_request_replaces_the_post_with_a_new_version():
    with XApiSimulator(searchable_after=0) as sim:
        start, end = past_window(120)
        original = sim.tweets_between(start, end)[2]
        made = sim.add_compliance_event("edit", original["id"])
        now = datetime.now(UTC)
        edited_id = made["edited_id"]
        recent = sim.tweets_between(now - timedelta(minutes=1), now + timedelta(seconds=1))

        (line,) = sim.compliance_results([original["id"]])

    assert original["id"] not in ids_between(sim, start, end)
    (version,) = [tweet for tweet in recent if tweet["id"] == edited_id]
    assert version["edit_history_tweet_ids"] == [original["id"], edited_id]
    assert version["text"].endswith(" (edited)") and version["author"] == original["author"]
    assert line == {
        "id": original["id"],
        "action": "rehydrate",
        "created_at": original["created_at"],
        "redacted_at": made["at"],
        "reason": "tweet_edited",
    }


def test_scheduled_events_are_deterministic_and_both_search_and_jobs_agree_on_them():
    start, end = past_window(120)  # every event of the window (1 to 60 minutes after a post) has happened
    every = {tweet["id"]: tweet for tweet in XApiSimulator(seed=5).tweets_between(start, end)}
    with_events = XApiSimulator(seed=5, compliance_rate=0.5)

    searchable = set(ids_between(with_events, start, end))
    results = with_events.compliance_results(list(every))

    assert results == XApiSimulator(seed=5, compliance_rate=0.5).compliance_results(list(every))
    assert {line["reason"] for line in results} >= {"deleted", "geo_scrubbed"}
    assert {line["id"] for line in results if line["action"] == "delete"} == every.keys() - searchable
    assert searchable < every.keys()
    for line in results:
        assert line["created_at"] == every[line["id"]]["created_at"]
        after = datetime.fromisoformat(line["redacted_at"]) - datetime.fromisoformat(line["created_at"])
        assert timedelta(minutes=1) <= after < timedelta(minutes=60)
    assert XApiSimulator(seed=5).compliance_results(list(every)) == [], "no compliance rate, no events"


def test_a_job_reports_only_events_before_it_finished(sim):
    start, end = past_window(120)
    before, after = ids_between(sim, start, end)[1:3]
    sim.add_compliance_event("delete", before)
    job = create(sim).json()["data"]
    upload(job, [before, after])
    wait_for_status(sim, job["id"], "complete")

    sim.add_compliance_event("delete", after)
    results = lines(requests.get(job["download_url"], timeout=5))

    assert [line["id"] for line in results] == [before]
    assert [line["id"] for line in sim.compliance_results([before, after])] == [before, after]


def test_compliance_controls_over_http(sim):
    start, end = past_window(120)
    post = ids_between(sim, start, end)[1]

    made = requests.post(sim.url + "/_sim/compliance/events", json={"kind": "suspend", "id": "1"}, timeout=5)
    deleted = requests.post(
        sim.url + "/_sim/compliance/events", json={"kind": "delete", "id": post}, timeout=5
    )
    unknown = requests.post(sim.url + "/_sim/compliance/events", json={"kind": "burn", "id": post}, timeout=5)
    listed = requests.get(sim.url + "/_sim/compliance/events", timeout=5).json()
    results = requests.get(sim.url + "/_sim/compliance/results", params={"ids": f"{post},1"}, timeout=5)
    faulted = requests.post(sim.url + "/_sim/compliance/job-faults", json={"status": "expired"}, timeout=5)
    bad_fault = requests.post(sim.url + "/_sim/compliance/job-faults", json={"status": "complete"}, timeout=5)
    job = create(sim).json()["data"]
    upload(job, [post])

    assert made.status_code == 400 and "no user '1'" in made.json()["error"]
    assert deleted.json()["kind"] == "delete" and unknown.status_code == 400
    assert [(event["kind"], event["id"]) for event in listed] == [("delete", post)]
    assert [line["id"] for line in results.json()] == [post]
    assert faulted.ok and bad_fault.status_code == 400
    assert wait_for_status(sim, job["id"], "complete", "expired")["status"] == "expired"
