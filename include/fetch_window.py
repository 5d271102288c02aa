"""What fetch_tweets runs: every tweet of a run's window through TwitterHook, saved as records in the window store, with
a long rate limit waited for in the triggerer rather than in a worker slot."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from include import window_store, windows
from include.records import to_record
from include.streams import Stream, window_over_budget
from twitter_provider.timetables import SearchableMinuteTimetable

if TYPE_CHECKING:
    from twitter_provider.hooks import SearchPaused

log = logging.getLogger(__name__)
# A rate limit that lifts within this is waited for in the task: a deferral costs a trigger and a new task process.
RATE_LIMIT_SLEEP = timedelta(seconds=90)


class FetchWindowOperator(BaseOperator):
    """
    Every tweet of the run's window matching `query`, saved as records in the window store (include/window_store.py)
    under the run's name, where produce_tweets finds them: nothing of them goes to XCom.

    A rate limit that lifts within RATE_LIMIT_SLEEP is waited out in the task. A later one defers the task until the
    reset (a DateTimeTrigger in the triggerer): it holds no worker slot and spends no try meanwhile, and goes on
    from the page it stopped at, the pages read before saved in the window store.

    :param stream: the stream whose window this is (its X connection, for its rate budget)
    :param timetable: the stream's schedule (its search horizon and when a window is searchable)
    :param rate_limit_per_15_minutes: the requests the stream's X app may make in 15 minutes
    :param budget_warning: why the streams on that app need more requests than it may make, logged by every try
    :param query: the X API search query (templated)
    """

    template_fields = ("query",)

    def __init__(
        self,
        *,
        stream: Stream,
        timetable: SearchableMinuteTimetable,
        rate_limit_per_15_minutes: int,
        budget_warning: str | None = None,
        query: str = "{{ params.query }}",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.stream = stream
        self.timetable = timetable
        self.rate_limit_per_15_minutes = rate_limit_per_15_minutes
        self.budget_warning = budget_warning
        self.query = query

    def execute(self, context: Any) -> None:
        if self.budget_warning:
            log.warning("%s", self.budget_warning)
        start, end = windows.run_window(context)
        topic = context["params"]["topic"]
        log.info(
            "Window [%s, %s): query %r, to topic %r", windows.iso(start), windows.iso(end), self.query, topic
        )
        if self.query != self.stream.query and topic == self.stream.topic:
            log.warning(
                "This run searches %r, not the stream's query %r, yet writes to the stream's own topic %r: its "
                'posts land among the stream\'s. To keep them apart, give the run a topic of its own ("topic" '
                "in its conf)",
                self.query,
                self.stream.query,
                topic,
            )
        unreachable = windows.unreachable_before(context, start, self.timetable)  # reported before any skip
        windows.wait_until_searchable(end, self.timetable)
        self._fetch(context, [], None, unreachable, 0)

    def execute_after_rate_limit(
        self,
        context: Any,
        event: Any,
        window: dict[str, str],
        next_token: str | None,
        unreachable: int,
        requests: int,
    ) -> None:
        """Go on with a search that a rate limit paused, once it lifted."""
        records = list(window_store.records(window))
        log.info("The rate limit has lifted: going on with %d tweets read before it", len(records))
        self._fetch(context, records, next_token, unreachable, requests)

    def _fetch(
        self,
        context: Any,
        records: list[dict[str, Any]],
        next_token: str | None,
        unreachable: int,
        requests_before: int,
    ) -> None:
        """Search the window from `next_token` on; save its records after `records`, or defer at a long rate limit."""
        from twitter_provider.hooks import BeyondSearchHorizon, SearchPaused, TwitterHook  # not at parse time

        start, end = windows.run_window(context)
        hook = TwitterHook(self.stream.twitter_conn_id, max_rate_limit_wait=RATE_LIMIT_SLEEP.total_seconds())
        try:
            tweets = hook.search_window(self.query, start, end, self.timetable.horizon, next_token)
        except BeyondSearchHorizon as beyond:
            windows.skip_beyond_horizon(start, end, beyond)
        except SearchPaused as paused:
            tweets, pause = paused.tweets, paused
        else:
            pause = None
        seen = {record["tweet_id"] for record in records}
        records += [to_record(tweet, tweet["author"]) for tweet in tweets if tweet["id"] not in seen]
        requests = requests_before + hook.requests_made
        window = window_store.window(self.dag_id, context["run_id"], start, end)
        window_store.save(records, window)
        if pause is not None:
            self._defer_until_reset(pause, window, len(records), unreachable, requests)
        log.info(
            "Run summary: %d tweets; %d unreachable minutes before this window; saved in %s",
            len(records),
            unreachable,
            window["path"],
        )
        if over := window_over_budget(
            self.stream, self.rate_limit_per_15_minutes, window["window"], len(records), requests
        ):
            log.warning("%s", over)

    def _defer_until_reset(
        self, pause: SearchPaused, window: dict[str, str], tweets: int, unreachable: int, requests: int
    ) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from twitter_provider.hooks import RATE_LIMIT_WINDOW_SECONDS

        wait = pause.reset_at - datetime.now(UTC)
        log.warning(
            "%s; the rate limit lifts at %s (in %.0f s): deferred until then, holding no worker slot, with %d "
            "tweets read so far",
            pause,
            windows.iso(pause.reset_at),
            wait.total_seconds(),
            tweets,
        )
        self.defer(
            trigger=DateTimeTrigger(pause.reset_at + timedelta(seconds=1)),
            method_name="execute_after_rate_limit",
            kwargs={
                "window": window,
                "next_token": pause.next_token,
                "unreachable": unreachable,
                "requests": requests,
            },
            # A triggerer that never fires it: the try fails, and Airflow retries it.
            timeout=wait + timedelta(seconds=RATE_LIMIT_WINDOW_SECONDS),
        )
