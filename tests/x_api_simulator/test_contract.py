"""Every kind of answer the simulator gives, and every request the hook sends, held to X's own OpenAPI
contract of GET /2/tweets/search/recent (x_api_simulator/contract/search_recent.json, X API v2 2.159)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from jsonschema import Draft4Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.helpers import DAG_QUERY, past_window, set_connection, x_api_time
from x_api_simulator import XApiSimulator
from x_api_simulator.contract.extract import CONTRACT, PATH

SPEC = json.loads(CONTRACT.read_text())
OPERATION = SPEC["paths"][PATH]["get"]
REGISTRY = Registry().with_resource(
    "urn:contract", Resource.from_contents(SPEC, default_specification=DRAFT4)
)
PROBLEM_KINDS = SPEC["components"]["schemas"]["Problem"]["discriminator"]["mapping"]
BEARER = {"Authorization": "Bearer sim-token"}
FIELDS = {"tweet.fields": "author_id,created_at,lang,public_metrics", "expansions": "author_id"}


def validate(instance: object, ref: str) -> None:
    """Validate against a schema of the contract (OpenAPI 3.0's schemas are JSON Schema draft 4)."""
    Draft4Validator({"$ref": f"urn:contract{ref}"}, registry=REGISTRY).validate(instance)


def check_answer(response: requests.Response) -> dict:
    """Validate a search answer as the contract's responses say: 200 a Get2TweetsSearchRecentResponse,
    anything else an application/problem+json Problem of the kind its ``type`` names."""
    body = response.json()
    if response.status_code == 200:
        assert response.headers["Content-Type"].startswith("application/json")
        validate(body, "#/components/schemas/Get2TweetsSearchRecentResponse")
    else:
        assert response.headers["Content-Type"] == "application/problem+json"
        kind = PROBLEM_KINDS.get(body.get("type"), "#/components/schemas/Problem")
        validate(body, kind)
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
