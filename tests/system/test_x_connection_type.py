"""The "X (Twitter)" connection type, as the running api-server offers it to the UI's connection form."""

from __future__ import annotations

import json
import uuid

import pytest

OAUTH1_SECRETS = ("consumer_secret", "access_token", "access_token_secret")


@pytest.fixture
def conn_id(airflow_stack):
    """A fresh connection id, deleted after the test."""
    conn_id = f"x_test_{uuid.uuid4().hex[:8]}"
    yield conn_id
    airflow_stack.api("DELETE", f"/api/v2/connections/{conn_id}")


def test_the_form_offers_x_with_labelled_fields_secret_ones_masked_irrelevant_ones_hidden(airflow_stack):
    hooks = {hook["connection_type"]: hook for hook in airflow_stack.api("GET", "/ui/connections/hook_meta")}

    x = hooks["twitter"]
    assert x["hook_name"] == "X (Twitter)"
    assert x["hook_class_name"] == "twitter_provider.hooks.TwitterHook"
    standard = x["standard_fields"]
    assert standard["host"]["title"] == "API base URL" and not standard["host"]["hidden"]
    assert standard["password"]["title"] == "Bearer token" and not standard["password"]["hidden"]
    assert standard["login"]["hidden"] and standard["port"]["hidden"] and standard["url_schema"]["hidden"]
    extra = x["extra_fields"]
    assert list(extra) == ["consumer_key", "consumer_secret", "access_token", "access_token_secret"]
    assert all(extra[name]["schema"]["title"].startswith("OAuth 1.0a ") for name in extra)
    assert {name for name in extra if extra[name]["schema"].get("format") == "password"} == set(
        OAUTH1_SECRETS
    )


def test_the_test_button_reaches_the_simulator_with_the_bearer_token(airflow_stack, x_api):
    answer = airflow_stack.api(
        "POST",
        "/api/v2/connections/test",
        json={
            "connection_id": "x",
            "conn_type": "twitter",
            "host": x_api.url,
            "password": x_api.bearer_token,
        },
    )

    assert answer["status"] is True, answer
    assert f"reached {x_api.url}: recent search works, rate limit remaining" in answer["message"]
    assert answer["message"].startswith("The connection reached") and "(Pro tier)" in answer["message"]
    assert [r["status"] for r in x_api.requests] == [200]


def test_the_test_button_works_with_oauth1_user_context(airflow_stack, x_api):
    oauth1 = {
        "consumer_key": x_api.oauth_consumer_key,
        "consumer_secret": "any-consumer-secret",
        "access_token": x_api.oauth_access_token,
        "access_token_secret": "any-token-secret",
    }
    body = {"connection_id": "x", "conn_type": "twitter", "host": x_api.url, "extra": json.dumps(oauth1)}

    answer = airflow_stack.api("POST", "/api/v2/connections/test", json=body)

    assert answer["status"] is True, answer


def test_the_test_button_names_a_wrong_token_without_showing_it(airflow_stack, x_api):
    wrong = "wrong-token-0123456789abcdef"
    answer = airflow_stack.api(
        "POST",
        "/api/v2/connections/test",
        json={"connection_id": "x", "conn_type": "twitter", "host": x_api.url, "password": wrong},
    )

    assert answer["status"] is False
    assert answer["message"].startswith(f"Recent search at {x_api.url} failed: X API returned HTTP 401: ")
    assert "for connection" not in answer["message"], "the UI's random connection id is not named"
    assert "check the connection's bearer token or OAuth 1.0a keys" in answer["message"]
    assert wrong not in answer["message"]


def test_the_api_masks_the_token_and_the_secret_oauth_fields(airflow_stack, x_api, conn_id):
    oauth1 = {name: f"{name}-value-0123456789" for name in ("consumer_key", *OAUTH1_SECRETS)}
    airflow_stack.set_connection(
        conn_id, conn_type="twitter", host=x_api.url, password="token-0123456789", extra=oauth1
    )

    connection = airflow_stack.api("GET", f"/api/v2/connections/{conn_id}")

    assert connection["password"] == "***"
    extra = json.loads(connection["extra"])
    assert {name: extra[name] for name in OAUTH1_SECRETS} == dict.fromkeys(OAUTH1_SECRETS, "***")
    assert extra["consumer_key"] == "consumer_key-value-0123456789", "the consumer key is not a secret"
    assert "token-0123456789" not in json.dumps(connection)
