"""The Coverage pages on the session's stack: only a logged-in user who may read the DAG gets them, and they show no
connection data; a stream's tab shows a minute delivered (late, by a backfill) and a failed one, each cell saying
what happened, and the Stream coverage page lists the stream with its figures.

The pause, the outage and the late alerts, which need the scheduler's own schedule, are in
tests/system/test_continuous_coverage.py and tests/system/test_streams.py.
"""

from __future__ import annotations

import pytest
import requests

from tests.helpers import KAFKA_CONFIG, past_window
from tests.system.harness import DAG_ID, TEST_X_BEARER_TOKEN
from tests.ui.auth import OUTSIDER
from tests.ui.browser import SCREENSHOTS, coverage_tab, logged_in, minute_states

TOPIC = "tweets-lambda1"  # the stream's own: the minutes of runs to another topic are not its coverage


def token(stack, user: str) -> str:
    answer = requests.post(
        f"{stack.url}/auth/token", json={"username": user, "password": stack.password(user)}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def get(stack, path: str, user: str | None = None, cookie: bool = False) -> requests.Response:
    """A page as the UI's session cookie (cookie=True) or a bearer token of `user` gets it; anonymously without."""
    if user is None:
        return requests.get(stack.url + path, timeout=60)
    if cookie:
        return requests.get(stack.url + path, cookies={"_token": token(stack, user)}, timeout=60)
    return requests.get(
        stack.url + path, headers={"Authorization": f"Bearer {token(stack, user)}"}, timeout=60
    )


def test_only_a_logged_in_user_who_may_read_the_dag_gets_its_pages(airflow_stack):
    """Airflow adds no authentication to a plugin's app: the pages ask the auth manager themselves."""
    tab, streams = f"/coverage/dags/{DAG_ID}", "/coverage/streams"

    assert [get(airflow_stack, path).status_code for path in (tab, streams)] == [401, 401]
    forged = requests.get(airflow_stack.url + tab, cookies={"_token": "not-a-token"}, timeout=60)
    assert forged.status_code == 403
    assert get(airflow_stack, tab, OUTSIDER).status_code == 403
    outsiders = get(airflow_stack, streams, OUTSIDER, cookie=True)
    assert outsiders.status_code == 200 and DAG_ID not in outsiders.text

    admins_tab, admins_streams = (
        get(airflow_stack, tab, "admin", cookie=True),
        get(airflow_stack, streams, "admin"),
    )
    assert admins_tab.status_code == 200 and "<svg" in admins_tab.text
    assert admins_streams.status_code == 200 and f'data-stream="{DAG_ID}"' in admins_streams.text
    for page in (admins_tab, admins_streams):
        for secret in (KAFKA_CONFIG["bootstrap.servers"], TEST_X_BEARER_TOKEN, "transactional.id"):
            assert secret not in page.text


@pytest.fixture(scope="module")
def two_minutes(airflow_stack, x_api_server):
    """A backfill of two windows to the stream's own topic: the first delivered, the second refused for good by the
    X API (401), so that its run fails; their starts."""
    delivered, failed = past_window(121), past_window(120)
    x_api_server.add_fault(status=401, times=-1, start_time=failed[0])
    try:
        runs = airflow_stack.backfill([delivered, failed], conf={"topic": TOPIC}, timeout=300)
    finally:
        x_api_server.clear_faults()
    assert [run["state"] for run in runs] == ["success", "failed"]
    return delivered[0], failed[0]


def test_a_streams_tab_shows_a_late_and_a_failed_minute_and_what_happened_to_each(airflow_stack, two_minutes):
    from playwright.sync_api import expect

    delivered, failed = two_minutes
    with logged_in(airflow_stack) as page:
        frame = coverage_tab(page, airflow_stack, DAG_ID)  # the last 24 hours
        states = minute_states(frame)
        # delivered two hours after it became searchable: in Kafka, and late (past late_after_minutes)
        assert states[f"{delivered:%Y-%m-%dT%H:%MZ}"] == "late"
        assert states[f"{failed:%Y-%m-%dT%H:%MZ}"] == "failed"

        cell = frame.locator(f'[data-minute="{delivered:%Y-%m-%dT%H:%MZ}"]')
        title = cell.locator("title").text_content()
        assert " tweets · " in title and f"topic {TOPIC}" in title
        assert "transaction tweets-to-kafka:tweets_to_kafka" in title and "after searchable" in title
        cell.click()
        detail = frame.locator("#detail")
        expect(detail).to_contain_text("Kafka transaction")
        expect(detail).to_contain_text("backfill, success")
        page.screenshot(path=SCREENSHOTS / "coverage-tab-session.png", full_page=True)

        failed_cell = frame.locator(f'[data-minute="{failed:%Y-%m-%dT%H:%MZ}"]')
        assert "failed" in failed_cell.locator("title").text_content()
        failed_cell.click()
        expect(frame.locator("#detail")).to_contain_text("fetch_tweets try 1 failed")


def test_the_stream_coverage_page_lists_the_stream_with_its_failed_runs(airflow_stack, two_minutes):
    """(Other tests of the session make runs too: the figures are checked for what this module's runs add.)"""
    from playwright.sync_api import expect

    with logged_in(airflow_stack) as page:
        page.goto(f"{airflow_stack.url}/plugin/stream-coverage")
        frame = page.frame_locator("iframe")
        row = frame.locator(f'tr[data-stream="{DAG_ID}"]')
        expect(row).to_contain_text(TOPIC)
        expect(row).to_contain_text(" failed")
        expect(row.get_by_role("link")).to_have_count(2)  # the stream's tab, and its last failed run
        expect(row).to_contain_text("twitter_default")
        page.screenshot(path=SCREENSHOTS / "stream-coverage-session.png", full_page=True)
