"""Every kind of answer the simulator gives, and every request the hook sends, held to X's own OpenAPI
contracts of GET /2/tweets/search/recent (x_api_simulator/contract/search_recent.json) and of the batch
compliance jobs (compliance_jobs.json), X API v2 2.159."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from jsonschema import Draft4Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.helpers import DAG_QUERY, past_window, set_connection, x_api_time
from x_api_simulator import XApiSimulator
from x_api_simulator.contract.extract import COMPLIANCE_CONTRACT, CONTRACT, JOB_PATH, JOBS_PATH, PATH

SPEC = json.loads(CONTRACT.read_text())
COMPLIANCE = json.loads(COMPLIANCE_CONTRACT.read_text())
OPERATION = SPEC["paths"][PATH]["get"]
REGISTRY = Registry().with_resources(
    [
        ("urn:contract", Resource.from_contents(SPEC, default_specification=DRAFT4)),
        ("urn:compliance", Resource.from_contents(COMPLIANCE, default_specification=DRAFT4)),
    ]
)
PROBLEM_KINDS = SPEC["components"]["schemas"]["Problem"]["discriminator"]["mapping"]
BEARER = {"Authorization": "Bearer sim-token"}
FIELDS = {"tweet.fields": "author_id,created_at,lang,public_metrics", "expansions": "author_id"}


def validate(instance: object, ref: str, contract: str = "urn:contract") -> None:
    """Validate against a schema of a contract (OpenAPI 3.0's schemas are JSON Schema draft 4)."""
    Draft4Validator({"$ref": f"{contract}{ref}"}, registry=REGISTRY).validate(instance)


def check_answer(
    response: requests.Response,
    schema: str = "Get2TweetsSearchRecentResponse",
    contract: str = "urn:contract",
) -> dict:
    """Validate an answer as the contract's responses say: 200 the operation's schema (default the
    search's), anything else an application/problem+json Problem of the kind its ``type`` names."""
    body = response.json()
    if response.status_code == 200:
        assert response.headers["Content-Type"].startswith("application/json")
        validate(body, f"#/components/schemas/{schema}", contract)
    else:
        assert response.headers["Content-Type"] == "application/problem+json"
        kind = PROBLEM_KINDS.get(body.get("type"), "#/components/schemas/Problem")
        validate(body, kind, contract)
    return body


def search(sim: XApiSimulator, start: datetime, end: datetime, **params) -> requests.Response:
    window = {"query": DAG_QUERY, "start_time": x_api_time(start), "end_time": x_api_time(end)}
    return requests.get(
        sim.url + PATH, params={**window, "max_results": "100", **FIELDS, **params}, headers=BEARER
    )


@pytest.fixture
def sim():
    with XApiSimulator() as simulator:
        yield simulator


def test_the_contract_is_x_s_with_its_source_and_version():
    assert SPEC["info"]["version"] == "2.159" and "xdevplatform/xdk" in SPEC["info"]["x-source"]
    assert {parameter.get("name") for parameter in OPERATION["parameters"]} >= {
        "query",
        "max_results",
        "sort_order",
    }


def test_a_body_outside_the_contract_is_caught():
    """The check can fail: an empty data array, a numeric id and a problem without a title are refused."""
    for body, ref in [
        ({"data": [], "meta": {"result_count": 0}}, "Get2TweetsSearchRecentResponse"),
        ({"data": [{"id": 1, "text": "x"}]}, "Get2TweetsSearchRecentResponse"),
        ({"type": "about:blank", "status": 401}, "Problem"),
    ]:
        with pytest.raises(ValidationError):
            validate(body, f"#/components/schemas/{ref}")


def test_pages_the_last_page_and_an_empty_window_follow_the_contract(sim):
    start, end = past_window(60)
    sim.set_rate(start, 250)
    sim.set_rate(end, 0)

    first = check_answer(search(sim, start, end))
    last = first
    while "next_token" in last["meta"]:
        last = check_answer(search(sim, start, end, next_token=last["meta"]["next_token"]))
    empty = check_answer(search(sim, end, end + timedelta(minutes=1)))
    bare = check_answer(search(sim, start, end, **{"tweet.fields": "", "expansions": ""}))

    assert "next_token" in first["meta"] and "includes" in first
    assert last is not first and "next_token" not in last["meta"]
    assert empty == {"meta": {"result_count": 0}}
    assert "includes" not in bare


def test_an_empty_page_with_a_next_token_and_edited_posts_follow_the_contract():
    with XApiSimulator(empty_page_rate=1.0, edit_rate=0.5) as sim:
        start, end = past_window(60)
        empty = check_answer(search(sim, start, end))
        after_empty = check_answer(search(sim, start, end, next_token=empty["meta"]["next_token"]))
        sim.empty_page_rate = 0.0
        with_edits = check_answer(search(sim, start, end))

    assert empty["meta"] == {"result_count": 0, "next_token": empty["meta"]["next_token"]}
    assert after_empty["meta"]["result_count"] > 0
    assert any(len(tweet["edit_history_tweet_ids"]) == 2 for tweet in with_edits["data"])


@pytest.mark.parametrize(
    ("setup", "params", "status"),
    [
        (lambda sim: None, {"max_results": "5"}, 400),
        (lambda sim: None, {"query": "apple ("}, 400),
        (lambda sim: None, {"query": "a" * 513}, 400),
        (lambda sim: setattr(sim, "bearer_token", "other"), {}, 401),
        (lambda sim: setattr(sim, "credits", 0), {}, 402),
        (lambda sim: sim.add_fault(status=403), {}, 403),
        (lambda sim: setattr(sim, "rate_limit", 0), {}, 429),
        (lambda sim: setattr(sim, "usage_cap", 0), {}, 429),
        (lambda sim: sim.add_fault(status=503), {}, 503),
    ],
    ids=[
        "400-params",
        "400-query",
        "400-query-length",
        "401",
        "402",
        "403",
        "429-rate",
        "429-usage-cap",
        "503",
    ],
)
def test_every_error_follows_the_contract(sim, setup, params, status):
    start, end = past_window(60)
    setup(sim)

    response = search(sim, start, end, **params)

    assert response.status_code == status
    check_answer(response)


def test_an_unknown_path_answers_a_problem(sim):
    response = requests.get(sim.url + "/2/tweets/search/all", headers=BEARER)

    assert response.status_code == 404
    validate(response.json(), "#/components/schemas/Problem")


def test_the_hook_sends_only_parameters_the_contract_allows(sim, monkeypatch):
    from twitter_provider.hooks import TwitterHook

    set_connection(
        monkeypatch, "twitter_default", conn_type="twitter", host=sim.url, password=sim.bearer_token
    )
    start, end = past_window(60)
    sim.set_rate(start, 150)

    TwitterHook().search_window(DAG_QUERY, start, end)

    declared = {}  # name: (JSON pointer of its schema in the contract, schema)
    for index, parameter in enumerate(OPERATION["parameters"]):
        pointer = "#/paths/" + PATH.replace("/", "~1") + f"/get/parameters/{index}"
        if "$ref" in parameter:
            pointer = parameter["$ref"]
            parameter = SPEC["components"]["parameters"][pointer.split("/")[-1]]
        declared[parameter["name"]] = (pointer + "/schema", parameter["schema"])
    assert len(sim.requests) == 2
    for request in sim.requests:
        assert request["params"]["sort_order"] == "recency"
        for name, value in request["params"].items():
            pointer, schema = declared[name]  # a KeyError is a parameter the API does not know
            if schema.get("type") == "array":
                value = value.split(",")
            elif schema.get("type") == "integer":
                value = int(value)
            validate(value, pointer)
        assert datetime.fromisoformat(request["params"]["start_time"]) == start.astimezone(UTC)


# Batch compliance

JOB_ANSWERS = {  # (method, path): the schema of its 200 answer
    ("POST", JOBS_PATH): "CreateComplianceJobResponse",
    ("GET", JOBS_PATH): "Get2ComplianceJobsResponse",
    ("GET", JOB_PATH): "Get2ComplianceJobsIdResponse",
    (
        "DELETE",
        JOB_PATH,
    ): "Get2ComplianceJobsIdResponse",  # not in 2.159: X documents it later, its body as GET's
}


def job_call(sim: XApiSimulator, method: str, job_id: str | None = None, **kwargs) -> requests.Response:
    """A compliance request, its answer held to the compliance contract."""
    path = JOBS_PATH if job_id is None else f"{JOBS_PATH}/{job_id}"
    response = requests.request(
        method, sim.url + path, headers=kwargs.pop("headers", BEARER), timeout=5, **kwargs
    )
    schema = JOB_ANSWERS[(method, JOBS_PATH if job_id is None else JOB_PATH)]
    check_answer(response, schema, "urn:compliance")
    return response


def job_status(sim: XApiSimulator, job_id: str, *statuses: str) -> dict:
    """Read the job (each answer held to the contract) until its status is one of ``statuses``."""
    deadline = time.monotonic() + 30
    while (job := job_call(sim, "GET", job_id).json()["data"])["status"] not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.05)
    return job


def test_the_compliance_contract_is_x_s_with_its_operations():
    assert COMPLIANCE["info"]["version"] == "2.159" and "xdevplatform/xdk" in COMPLIANCE["info"]["x-source"]
    assert {path: sorted(methods) for path, methods in COMPLIANCE["paths"].items()} == {
        JOBS_PATH: ["get", "post"],
        JOB_PATH: ["get"],
    }


def test_a_compliance_body_outside_the_contract_is_caught():
    """The check can fail: a job without its download URL, an unknown status, an empty list's data."""
    job = {
        "id": "1",
        "type": "tweets",
        "status": "created",
        "created_at": "2026-01-01T00:00:00.000Z",
        "upload_url": "https://x",
        "upload_expires_at": "2026-01-01T00:15:00.000Z",
        "download_url": "https://y",
        "download_expires_at": "2026-01-08T00:00:00.000Z",
    }
    validate({"data": job}, "#/components/schemas/Get2ComplianceJobsIdResponse", "urn:compliance")
    for body, ref in [
        ({"data": {k: v for k, v in job.items() if k != "download_url"}}, "Get2ComplianceJobsIdResponse"),
        ({"data": {**job, "status": "done"}}, "Get2ComplianceJobsIdResponse"),
        ({"data": [], "meta": {"result_count": 0}}, "Get2ComplianceJobsResponse"),
    ]:
        with pytest.raises(ValidationError):
            validate(body, f"#/components/schemas/{ref}", "urn:compliance")


def test_a_job_in_every_status_and_the_lists_follow_the_contract():
    with XApiSimulator(compliance_processing=0.3) as sim:
        job = job_call(sim, "POST", json={"type": "tweets", "name": "contract", "resumable": True}).json()
        job = job["data"]
        created = job_status(sim, job["id"], "created")
        started = requests.post(
            job["upload_url"], headers={"Content-Type": "text/plain", "x-goog-resumable": "start"}
        )
        requests.put(started.headers["Location"], data="1\n", headers={"Content-Type": "text/plain"})
        in_progress = job_status(sim, job["id"], "in_progress")
        complete = job_status(sim, job["id"], "complete")
        listed = job_call(sim, "GET", params={"type": "tweets", "status": "complete"}).json()
        other = job_call(sim, "POST", json={"type": "tweets"}).json()["data"]
        cancelled = job_call(sim, "DELETE", other["id"]).json()["data"]
        failed = job_status(sim, other["id"], "failed")
        empty = job_call(sim, "GET", params={"type": "users"}).json()
    with XApiSimulator(compliance_upload_ttl=1) as sim:
        expired = job_status(
            sim, job_call(sim, "POST", json={"type": "tweets"}).json()["data"]["id"], "expired"
        )

    assert [created["status"], in_progress["status"], complete["status"]] == [
        "created",
        "in_progress",
        "complete",
    ]
    assert listed["meta"]["result_count"] == 1 and listed["data"][0]["id"] == job["id"]
    assert cancelled["status"] == failed["status"] == "failed" and expired["status"] == "expired"
    assert empty == {"meta": {"result_count": 0}}


@pytest.mark.parametrize(
    ("setup", "method", "job_id", "request_args", "status"),
    [
        (lambda sim: None, "POST", None, {"json": {"type": "posts"}}, 400),
        (lambda sim: None, "POST", None, {"data": "not json"}, 400),
        (lambda sim: None, "GET", None, {"params": {"status": "complete"}}, 400),
        (lambda sim: None, "GET", "abc", {}, 400),
        (lambda sim: None, "POST", None, {"json": {"type": "tweets"}, "headers": {}}, 401),
        (
            lambda sim: None,
            "POST",
            None,
            {
                "json": {"type": "tweets"},
                "headers": {"Authorization": 'OAuth oauth_consumer_key="sim-consumer-key"'},
            },
            401,
        ),
        (
            lambda sim: None,
            "POST",
            None,
            {
                "json": {"type": "tweets"},
                "headers": {
                    "Authorization": 'OAuth oauth_consumer_key="sim-consumer-key", oauth_token="sim-access-token"'
                },
            },
            403,
        ),
        (lambda sim: None, "GET", "123", {}, 404),
        (
            lambda sim: job_call(sim, "POST", json={"type": "tweets"}),
            "POST",
            None,
            {"json": {"type": "tweets"}},
            409,
        ),
        (
            lambda sim: setattr(sim, "compliance_rate_limit", 0),
            "POST",
            None,
            {"json": {"type": "tweets"}},
            429,
        ),
        (lambda sim: sim.add_fault(status=503, path=JOBS_PATH), "GET", "123", {}, 503),
    ],
    ids=[
        "400-type",
        "400-body",
        "400-list",
        "400-id",
        "401",
        "401-oauth",
        "403-user-context",
        "404",
        "409",
        "429",
        "503",
    ],
)
def test_every_compliance_error_follows_the_contract(sim, setup, method, job_id, request_args, status):
    setup(sim)

    response = job_call(sim, method, job_id, **request_args)

    assert response.status_code == status


def test_the_hook_sends_only_compliance_requests_the_contract_allows(sim, monkeypatch):
    from twitter_provider.hooks import TwitterHook

    set_connection(
        monkeypatch, "twitter_default", conn_type="twitter", host=sim.url, password=sim.bearer_token
    )
    hook = TwitterHook()

    job = hook.create_compliance_job("contract-check", resumable=True)
    hook.upload_compliance_ids(job, ["1", "2"])
    hook.get_compliance_job(job["id"])
    hook.list_compliance_jobs(status="in_progress")
    hook.cancel_compliance_job(job["id"])

    api = [request for request in sim.requests if request["path"].startswith(JOBS_PATH)]
    assert [request["method"] for request in api] == ["POST", "GET", "GET", "DELETE"]
    for request in api:
        path = JOBS_PATH if request["path"] == JOBS_PATH else JOB_PATH
        if request["method"] == "POST":
            validate(request["json"], "#/components/schemas/CreateComplianceJobRequest", "urn:compliance")
        if path == JOB_PATH:
            validate(request["path"].rsplit("/", 1)[-1], "#/components/schemas/JobId", "urn:compliance")
        parameters = [parameter.get("name") for parameter in COMPLIANCE["paths"][path]["get"]["parameters"]]
        for name, value in request["params"].items():
            assert name in parameters, f"{name} is not a parameter of GET {path}"
            pointer = (
                "#/paths/" + path.replace("/", "~1") + f"/get/parameters/{parameters.index(name)}/schema"
            )
            validate(value, pointer, "urn:compliance")
    assert api[0]["json"] == {"type": "tweets", "name": "contract-check", "resumable": True}
    assert api[2]["params"] == {"type": "tweets", "status": "in_progress"}
