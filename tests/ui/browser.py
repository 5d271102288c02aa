"""Headless Chromium (Debian's, driven by Playwright) logged in to a stack's UI, and what the Coverage pages show.

Screenshots are saved in .artifacts/ui/ (git-ignored); those in docs/ are copies of some of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers import ROOT

CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by scripts/install-browser.sh
# Headless, and nothing that reaches out to the network (this machine's is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / ".artifacts" / "ui"


@contextmanager
def logged_in(stack, user: str = "admin") -> Iterator:
    """A browser page logged in to the stack's UI with the user's generated password, as a user would."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # this machine may be busy: 30 s, not 5 s, for each expectation
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(stack.url)
        page.wait_for_url("**/auth/login**")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", stack.password(user))
        page.screenshot(path=SCREENSHOTS / "login.png")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack.url}/")
        try:
            yield page
        finally:
            browser.close()


def coverage_tab(page, stack, dag_id: str, query: str = ""):
    """Open a DAG's Coverage tab in the UI, its page with `query` (e.g. `zoom=hour`) if given; return its frame."""
    page.goto(f"{stack.url}/dags/{dag_id}/plugin/coverage")
    frame = page.locator("iframe").element_handle().content_frame()
    frame.wait_for_url(f"**/coverage/dags/{dag_id}*")
    if query:
        frame.goto(f"{stack.url}/coverage/dags/{dag_id}?{query}")
    frame.locator("svg").wait_for()
    return frame


def minute_states(frame) -> dict[str, str]:
    """The state of each minute cell of a Coverage tab, by its start (`2026-12-01T20:20Z`)."""
    cells = frame.locator("[data-minute]")
    return dict(
        cells.evaluate_all("(cells) => cells.map((cell) => [cell.dataset.minute, cell.dataset.state])")
    )
