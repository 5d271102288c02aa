"""Fetch benchmarks against the X API simulator over HTTP: requests per window against the minimum, and the
hook's time for a window against plain `requests` calls of the same pages."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import requests

from bench.services import BEARER_TOKEN, QUERY, SEARCH_PATH, SimulatorClient

WINDOW_SIZES = (0, 1, 99, 100, 101, 250, 1000, 5000)
FETCH_COST_TWEETS = 1000


class Windows:
    """Hands out distinct past one-minute windows, so that no measurement sees another's tweets."""

    def __init__(self, hours_ago: int):
        self.next_start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=hours_ago)

    def take(self, simulator: SimulatorClient, tweets: int) -> tuple[datetime, datetime]:
        start, self.next_start = self.next_start, self.next_start + timedelta(minutes=1)
        simulator.set_rate(start, tweets)
        return start, start + timedelta(minutes=1)


def minimum_requests(tweets: int) -> int:
    """The fewest search requests that can return `tweets` tweets at 100 per page."""
    return max(1, math.ceil(tweets / 100))


def request_efficiency(simulator: SimulatorClient) -> dict[str, Any]:
    """Requests the hook makes for windows of WINDOW_SIZES tweets, as the simulator received them."""
    from twitter_provider.hooks import TwitterHook

    windows = Windows(hours_ago=3)
    per_window = []
    for size in WINDOW_SIZES:
        start, end = windows.take(simulator, size)
        simulator.clear_requests()
        tweets = TwitterHook().search_window(QUERY, start, end)
        received = simulator.search_requests()
        if len(tweets) != size or any(request["status"] != 200 for request in received):
            raise RuntimeError(f"window of {size} tweets: got {len(tweets)}, statuses {received}")
        per_window.append({"tweets": size, "requests": len(received), "minimum": minimum_requests(size)})
        print(f"  requests for {size:>5} tweets: {len(received)} (minimum {minimum_requests(size)})")
    total = sum(window["requests"] for window in per_window)
    total_minimum = sum(window["minimum"] for window in per_window)
    return {
        "per_window": per_window,
        "requests": total,
        "minimum": total_minimum,
        "requests_vs_minimum": total / total_minimum,
    }


def plain_fetch(base_url: str, params: dict[str, str]) -> int:
    """Read every page with plain `requests`, JSON decoding each; return the number of tweets."""
    tweets = 0
    params = dict(params)
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {BEARER_TOKEN}"
        while True:
            response = session.get(base_url + SEARCH_PATH, params=params, timeout=30)
            response.raise_for_status()
            page = response.json()
            tweets += len(page.get("data") or [])
            params["next_token"] = page["meta"].get("next_token")
            if not params["next_token"]:
                return tweets


def fetch_cost(simulator: SimulatorClient, repetitions: int) -> dict[str, Any]:
    """The hook's time for a 1,000-tweet window against plain requests of the same pages, interleaved."""
    from twitter_provider.hooks import TwitterHook

    start, end = Windows(hours_ago=4).take(simulator, FETCH_COST_TWEETS)
    simulator.clear_requests()
    TwitterHook().search_window(QUERY, start, end)  # warm-up; its first request gives the exact parameters
    hook_requests = simulator.search_requests()
    first_page_params = {k: v for k, v in hook_requests[0]["params"].items() if k != "next_token"}

    def hook_run() -> int:
        return len(TwitterHook().search_window(QUERY, start, end))

    def plain_run() -> int:
        return plain_fetch(simulator.url, first_page_params)

    runs: dict[str, list[float]] = {"hook": [], "plain_requests": []}
    for repetition in range(repetitions):
        order = [("hook", hook_run), ("plain_requests", plain_run)]
        for name, fetch in order if repetition % 2 == 0 else order[::-1]:
            simulator.clear_requests()
            began = time.perf_counter()
            tweets = fetch()
            runs[name].append(time.perf_counter() - began)
            pages = len(simulator.search_requests())
            if tweets != FETCH_COST_TWEETS or pages != len(hook_requests):
                raise RuntimeError(
                    f"{name}: {tweets} tweets in {pages} pages, expected 1000 in {len(hook_requests)}"
                )
    medians = {name: median(values) for name, values in runs.items()}
    print(
        f"  fetch 1,000 tweets: hook {medians['hook']:.3f} s, plain requests {medians['plain_requests']:.3f} s"
    )
    return {
        "tweets": FETCH_COST_TWEETS,
        "pages": len(hook_requests),
        "repetitions": repetitions,
        "seconds": {name: {"median": medians[name], "runs": runs[name]} for name in runs},
        "fetch_vs_plain_requests": medians["hook"] / medians["plain_requests"],
    }
