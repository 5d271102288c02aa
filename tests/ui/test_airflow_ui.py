"""The Airflow UI in headless Chromium (Debian's, driven by Playwright): login, the grid, the X connection form, the
connections' Test buttons.

Screenshots are saved in .artifacts/ui/ (git-ignored); docs/grid.png is a copy of grid.png.
"""

from __future__ import annotations

import uuid

import pytest

from tests.system.harness import DAG_ID, unused_windows
from tests.ui.browser import SCREENSHOTS, logged_in

OAUTH1_LABELS = {
    "consumer_key": "OAuth 1.0a consumer key (API key)",
    "consumer_secret": "OAuth 1.0a consumer secret (API key secret)",
    "access_token": "OAuth 1.0a access token",
    "access_token_secret": "OAuth 1.0a access token secret",
}


@pytest.fixture(scope="module")
def finished_runs(airflow_stack):
    """Two successful backfill runs of the DAG, made for this module; their run ids. Their windows are the latest
    that have runs (the two complete minutes before the last), so that the grid, which shows the latest runs, has them."""
    windows = unused_windows(airflow_stack, 2, 2)
    topic = f"test-ui-{uuid.uuid4().hex[:12]}"
    runs = airflow_stack.backfill(windows, conf={"topic": topic}, timeout=300)
    assert [run["state"] for run in runs] == ["success", "success"]
    return [run["dag_run_id"] for run in runs]


@pytest.fixture(scope="module")
def page(airflow_stack):
    """A browser page logged in to the UI as admin with the generated password, as a user would."""
    with logged_in(airflow_stack) as page:
        yield page


def hover_until_visible(page, target, tooltip, attempts: int = 5) -> None:
    """Hover `target` until `tooltip` shows: a hover during a re-render of the grid shows none."""
    from playwright.sync_api import expect

    for _ in range(attempts - 1):
        page.mouse.move(0, 0)
        target.hover()
        page.wait_for_timeout(2000)  # the tooltip opens after a delay
        if tooltip.is_visible():
            return
    target.hover()
    expect(tooltip).to_be_visible()


def test_the_grid_shows_successful_runs(airflow_stack, finished_runs, page):
    from playwright.sync_api import expect

    page.goto(f"{airflow_stack.url}/dags/{DAG_ID}")

    for run_id in finished_runs:
        for task_id in ("fetch_tweets", "produce_tweets"):
            cell = page.get_by_test_id(f"grid-{run_id}-{task_id}")
            expect(cell).to_be_visible()
            tooltip = (
                page.get_by_role("tooltip").filter(has_text=f"Task ID: {task_id}").filter(has_text=run_id)
            )
            hover_until_visible(page, cell, tooltip)
            expect(tooltip).to_contain_text("State: Success")
            page.mouse.move(0, 0)
            expect(tooltip).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "grid.png")

    page.goto(f"{airflow_stack.url}/dags/{DAG_ID}/runs")
    for run_id in finished_runs:
        expect(page.locator("tr", has_text=run_id)).to_contain_text("Success")
    page.screenshot(path=SCREENSHOTS / "runs.png")


def test_the_new_connection_form_offers_x_with_its_fields(airflow_stack, page):
    from playwright.sync_api import expect

    page.goto(f"{airflow_stack.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_role("combobox").click()
    page.keyboard.type("X (Twitter)")
    page.keyboard.press("Enter")

    form = page.get_by_role("dialog")
    for label in ("API base URL", "Bearer token"):
        expect(form.get_by_text(label, exact=True)).to_be_visible()
    expect(form.locator("input[name=password]")).to_have_attribute("type", "password")
    for hidden in ("login", "port", "schema"):
        expect(form.locator(f"input[name={hidden}]")).to_have_count(0)
    form.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in OAUTH1_LABELS.values():
        expect(form.get_by_text(label, exact=True)).to_be_visible()
    for secret in ("consumer_secret", "access_token", "access_token_secret"):
        expect(form.locator(f"input[name=element_{secret}]")).to_have_attribute("type", "password")
    expect(form.locator("input[name=element_consumer_key]")).not_to_have_attribute("type", "password")
    page.screenshot(path=SCREENSHOTS / "x-connection-form.png", full_page=True)


def test_the_test_button_of_twitter_default_reaches_the_simulator(airflow_stack, x_api, page):
    page.goto(f"{airflow_stack.url}/connections")
    row = page.locator("tr", has_text="twitter_default")

    with page.expect_response("**/api/v2/connections/test") as response:
        row.get_by_role("button", name="Test Connection").click()

    answer = response.value.json()
    assert answer["status"] is True, answer
    assert f"reached {x_api.url}: recent search works" in answer["message"]
    assert [r["status"] for r in x_api.requests] == [200]
    page.screenshot(path=SCREENSHOTS / "connection-tested.png")


def test_the_test_button_of_kafka_default_reaches_the_broker(airflow_stack, page):
    """Airflow 3.3.2's button sends port 0 for a connection without a port, and the API refuses to test a stored
    connection with another port ("Bad Request"): kafka_default is stored with port 0, and its description says
    where the button is."""
    from playwright.sync_api import expect

    page.goto(f"{airflow_stack.url}/connections")
    row = page.locator("tr", has_text="kafka_default")
    expect(row).to_contain_text("Test Connection button of its row")

    with page.expect_response("**/api/v2/connections/test") as response:
        row.get_by_role("button", name="Test Connection").click()

    assert response.value.json() == {"status": True, "message": "Connection successful."}
