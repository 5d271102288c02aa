"""The Coverage pages (plugins/tweets_to_kafka_plugin.py mounts this app on Airflow's API server at /coverage):

    /coverage/dags/<dag_id>   a stream's minutes, a cell each, coloured by what happened (the Coverage tab of its DAG)
    /coverage/streams         every stream's figures (the Stream coverage page in the navigation)

Server-rendered HTML and SVG, no JavaScript. Airflow adds no authentication to a plugin's app: each page asks the
auth manager, as Airflow's own routes do, for the user of the request's token (the UI's session cookie, or a bearer
token) and whether that user may read the DAG (401 without a valid token, 403 without access).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from include.coverage import (
    DAY,
    MINUTE,
    WEEK,
    LedgerView,
    Minute,
    State,
    Summary,
    ledger_view,
    stream_minutes,
    stream_summaries,
)
from include.streams import REQUESTS_PER_STREAM, Stream, StreamFileError, Streams, running_streams

LEDGER_WAIT = 5.0  # seconds a page waits for a view that is still reading the ledger from its beginning
COLOURS = {
    State.DELIVERED: "#43a047",
    State.LATE: "#fb8c00",
    State.REDELIVERED: "#00897b",
    State.RUNNING: "#64b5f6",
    State.FAILED: "#e53935",
    State.MISSING: "#fdd835",
    State.UNREACHABLE: "#8e24aa",
    State.NOT_DUE: "#ffffff",
    State.BEFORE: "#e0e0e0",
}
MEANINGS = {
    State.DELIVERED: "in Kafka, within the stream's late threshold of becoming searchable",
    State.LATE: "in Kafka, but later than the stream's late_after_minutes after becoming searchable",
    State.REDELIVERED: "in Kafka more than once (a cleared run that had delivered, or another run of the minute)",
    State.RUNNING: "its run is queued or running",
    State.FAILED: "its run failed; nothing in Kafka",
    State.MISSING: "searchable, but no run yet",
    State.UNREACHABLE: "beyond the search's 7-day reach when its run came: can no longer be fetched",
    State.NOT_DUE: "not searchable yet",
    State.BEFORE: "before the stream's first minute",
}
ZOOMS = {"hour": "Last hour", "day": "Day", "week": "7 days"}
STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 12px 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 6px; }
.muted { color: #666; } .banner { background: #fff3cd; padding: 6px 10px; margin: 8px 0; }
.problem { background: #fdecea; padding: 6px 10px; margin: 8px 0; }
nav a { margin-right: 12px; } nav a.current { font-weight: bold; text-decoration: none; color: #222; }
.legend span { display: inline-block; margin: 0 12px 4px 0; white-space: nowrap; }
.legend i { display: inline-block; width: 12px; height: 12px; border: 1px solid #999; margin-right: 4px;
            vertical-align: -2px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
table.figures td, table.figures th { border-bottom: 1px solid #eee; padding-right: 16px; }
svg a rect:hover { stroke: #000; stroke-width: 1.5; }
.bar { display: inline-block; width: 160px; height: 10px; background: #eee; vertical-align: middle; }
.bar i { display: inline-block; height: 10px; }
"""


def create_app() -> FastAPI:
    """The app the plugin mounts at /coverage."""
    app = FastAPI(title="tweets_to_kafka coverage", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(
        "/dags/{dag_id}", response_class=HTMLResponse, dependencies=[Depends(requires_access_dag("GET"))]
    )
    def stream_page(
        request: Request,
        dag_id: str,
        session: SessionDep,
        zoom: str = "day",
        end: datetime | None = None,
        minute: datetime | None = None,
    ) -> str:
        if zoom not in ZOOMS:
            raise HTTPException(400, f"zoom must be one of {', '.join(ZOOMS)}")
        try:
            streams = running_streams()
        except StreamFileError as error:
            return page(dag_id, stream_file_problems([str(error)]), refresh=False)
        stream = next((stream for stream in streams.streams if stream.name == dag_id), None)
        if stream is None:
            return render_not_a_stream(dag_id, streams)
        view = ledger_view(stream.kafka_conn_id, streams.delivery_ledger_topic, wait=LEDGER_WAIT)
        now = datetime.now(UTC)
        since, until = period(zoom, _utc(end) if end else None, now)
        minutes = stream_minutes(session, view, stream, since, until, now)
        selected = _utc(minute).replace(second=0, microsecond=0) if minute else None
        return render_stream(request, stream, streams, view, minutes, zoom, end, selected)

    @app.get("/streams", response_class=HTMLResponse)
    def streams_page(request: Request, session: SessionDep, user: GetUserDep) -> str:
        try:
            streams = running_streams()
        except StreamFileError as error:
            return page("Stream coverage", stream_file_problems([str(error)]), refresh=False)
        readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
        conn_ids = {stream.kafka_conn_id for stream in streams.streams if stream.name in readable}
        views = {
            conn_id: ledger_view(conn_id, streams.delivery_ledger_topic, wait=LEDGER_WAIT)
            for conn_id in conn_ids
        }
        now = datetime.now(UTC)
        summaries = stream_summaries(session, views, streams, set(readable), now)
        return render_streams(request, streams, views, summaries, now)

    return app


def period(zoom: str, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The minutes a zoom shows, [since, until): the last 60 minutes; the 24 clock hours up to the current one; or
    the 7 UTC days up to today. `end` shows the period that ends there instead."""
    moment = end or now
    if zoom == "hour":
        until = moment.replace(second=0, microsecond=0) + (MINUTE if end is None else timedelta(0))
        return until - 60 * MINUTE, until
    if zoom == "day":
        until = moment.replace(minute=0, second=0, microsecond=0) + (
            timedelta(hours=1) if end is None else timedelta(0)
        )
        return until - DAY, until
    until = moment.replace(hour=0, minute=0, second=0, microsecond=0) + (DAY if end is None else timedelta(0))
    return until - WEEK, until


# Rendering


def page(title: str, body: str, refresh: bool = True) -> str:
    meta = '<meta http-equiv="refresh" content="60">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def airflow_url(request: Request, path: str) -> str:
    """A URL of Airflow's UI (the app is mounted under it), for links that open in the whole window."""
    base = request.scope.get("root_path", "").removesuffix("/coverage")
    return f"{base}{path}"


def run_link(request: Request, dag_id: str, run_id: str) -> str:
    href = airflow_url(request, f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}")
    return f'<a href="{html.escape(href)}" target="_top">{html.escape(run_id)}</a>'


def ledger_banner(views: Iterable[LedgerView]) -> str:
    banners = []
    for view in views:
        if view.error:
            banners.append(
                f"Cannot read the delivery ledger through connection {view.conn_id!r} right now (the API "
                "server's log says why): the minutes show Airflow's runs only."
            )
        elif not view.caught_up.is_set():
            banners.append(
                f"Still reading the delivery ledger ({view.records:,} records so far): minutes not read yet show "
                "Airflow's runs only. This page refreshes itself every minute."
            )
    return "".join(f'<p class="banner">{html.escape(text)}</p>' for text in banners)


def legend(counts: dict[State, int] | None = None) -> str:
    items = []
    for state, colour in COLOURS.items():
        count = f" {counts.get(state, 0):,}" if counts is not None else ""
        items.append(
            f'<span title="{html.escape(MEANINGS[state])}"><i style="background:{colour}"></i>{state.value}{count}</span>'
        )
    return f'<div class="legend">{"".join(items)}</div>'


def describe(minute: Minute, stream: Stream) -> str:
    """A minute in one line: its hover text."""
    parts = [f"{minute.start:%a %d %b %H:%M} UTC", minute.state.value]
    if (entry := minute.entry) and entry.outcome == "unreachable":
        parts.append(f"recorded by the healing ({entry.run_id}) at {entry.committed_at:%H:%M}")
    elif entry:
        parts += [
            f"{entry.records} tweets",
            f"{_seconds(entry.freshness)} after searchable",
            f"run {entry.run_id}",
            f"try {entry.try_number}",
            f"topic {entry.topic}",
            f"transaction {entry.transactional_id or 'none (at least once)'}",
        ]
    elif run := minute.run:
        parts += [f"run {run.run_id} {run.state}", f"tries {tries_text(run)}", f"topic {stream.topic}"]
    if catch_up := minute.catch_up:
        parts.append(f"catch-up run, created {_duration(catch_up)} after its window was searchable")
    if minute.run and minute.run.alerted:
        parts.append("late alert fired")
    if minute.disagreement:
        parts.append(f"disagreement: {minute.disagreement}")
    return " · ".join(parts)


def tries_text(run) -> str:
    return ", ".join(
        f"{task} try {number} {state or 'not started'}" for task, (state, number) in run.tries.items()
    )


def stream_file_problems(problems: list[str]) -> str:
    """The stream file's problems, as dags/stream_file.py's import error names them."""
    if not problems:
        return ""
    items = "".join(f"<li><code>{html.escape(problem)}</code></li>" for problem in problems)
    return (
        '<div class="problem">The stream file has problems (the import error of dags/stream_file.py says the '
        f"same); what it says keeps running meanwhile:<ul>{items}</ul></div>"
    )


def render_not_a_stream(dag_id: str, streams: Streams) -> str:
    body = (
        f"<h1>{html.escape(dag_id)}</h1><p class='muted'>Not a running stream of the stream file "
        f"{html.escape(str(streams.path.name))}: no coverage to show.</p>"
        + stream_file_problems([problem for problem in streams.problems if f"stream {dag_id!r}" in problem])
    )
    return page(dag_id, body, refresh=False)


def render_stream(
    request: Request,
    stream: Stream,
    streams: Streams,
    view: LedgerView,
    minutes: list[Minute],
    zoom: str,
    end: datetime | None,
    selected: datetime | None,
) -> str:
    counts: dict[State, int] = {}
    for minute in minutes:
        counts[minute.state] = counts.get(minute.state, 0) + 1
    delivered = sum(counts.get(state, 0) for state in (State.DELIVERED, State.LATE, State.REDELIVERED))
    due = sum(count for state, count in counts.items() if state not in (State.NOT_DUE, State.BEFORE))
    freshness = sorted(minute.entry.freshness for minute in minutes if minute.entry)
    keep = {"zoom": zoom, **({"end": end.isoformat()} if end else {})}
    nav = " ".join(
        f'<a href="?zoom={name}" class="{"current" if name == zoom else ""}">{label}</a>'
        for name, label in ZOOMS.items()
    )
    summary = f"{delivered:,} of {due:,} searchable minutes delivered"
    if freshness:
        summary += (
            f"; searchable → committed: median {_seconds(freshness[(len(freshness) - 1) // 2])}, "
            f"95th percentile {_seconds(freshness[min(len(freshness) - 1, int(len(freshness) * 0.95))])}"
        )
    disagreements = [minute for minute in minutes if minute.disagreement]
    body = [
        f"<h1>{html.escape(stream.name)}</h1>",
        f'<p class="muted">Query <code>{html.escape(stream.query)}</code> → topic <code>{html.escape(stream.topic)}'
        f"</code>; late after {stream.late_after_minutes} minutes; times in UTC; "
        f"{minutes[0].start:%Y-%m-%d %H:%M} to {minutes[-1].start + MINUTE:%Y-%m-%d %H:%M}</p>",
        stream_file_problems(
            [problem for problem in streams.problems if _concerns(problem, stream, streams)]
        ),
        ledger_banner([view]),
        f"<nav>{nav}</nav>",
        f"<p>{summary}</p>",
        legend(counts),
        grid(minutes, zoom, stream, keep),
    ]
    if disagreements:
        body.append(f"<h2>Where the ledger and Airflow disagree ({len(disagreements)})</h2><ul>")
        body += [
            f'<li><a href="?{urlencode({**keep, "minute": minute.start.isoformat()})}">'
            f"{minute.start:%a %H:%M}</a>: {html.escape(minute.disagreement or '')}</li>"
            for minute in disagreements[:50]
        ]
        body.append("</ul>")
    if selected is not None:
        chosen = next((minute for minute in minutes if minute.start == selected), None)
        if chosen is not None:
            body.append(detail(request, chosen, stream))
    return page(f"Coverage of {stream.name}", "".join(body))


def grid(minutes: list[Minute], zoom: str, stream: Stream, keep: dict[str, str]) -> str:
    """The minutes as an SVG: a row per hour (day zoom), per UTC day (7 days, runs of one state drawn as one
    bar), or one row (last hour); a cell's title says what happened, and a click shows its detail."""
    per_row = 60 if zoom in ("hour", "day") else 1440
    width, label = 1200, 70
    unit = (width - label) / per_row
    height = 26 if zoom == "hour" else 16
    rows = [minutes[i : i + per_row] for i in range(0, len(minutes), per_row)]
    parts = []
    for row_index, row in enumerate(rows):
        y = row_index * (height + 4)
        first = row[0].start
        row_label = f"{first:%a %d %b}" if zoom == "week" else f"{first:%H:%M}"
        parts.append(f'<text x="0" y="{y + height - 4}" font-size="11">{row_label}</text>')
        if zoom == "week":
            parts += week_row(row, y, unit, height, label, keep)
            continue
        for column, minute in enumerate(row):
            x = label + column * unit
            href = "?" + urlencode({**keep, "minute": minute.start.isoformat()}) + "#detail"
            mark = ""
            if minute.disagreement:
                mark += f'<circle cx="{x + unit / 2 - 1:.1f}" cy="{y + height / 2:.1f}" r="2.5" fill="#000"/>'
            if minute.catch_up:
                mark += (
                    f'<rect x="{x:.1f}" y="{y + height - 3}" width="{unit - 2:.1f}" height="3" fill="#333"/>'
                )
            parts.append(
                f'<a href="{html.escape(href)}" data-minute="{minute.start:%Y-%m-%dT%H:%MZ}" '
                f'data-state="{minute.state.value}"><rect x="{x:.1f}" y="{y}" width="{unit - 2:.1f}" '
                f'height="{height}" fill="{COLOURS[minute.state]}" stroke="#bbb" stroke-width="0.5">'
                f"<title>{html.escape(describe(minute, stream))}</title></rect>{mark}</a>"
            )
    total = len(rows) * (height + 4)
    return (
        f'<svg viewBox="0 0 {width} {total}" width="100%" role="img" aria-label="coverage of {stream.name}">'
        + "".join(parts)
        + "</svg>"
    )


def week_row(
    row: list[Minute], y: int, unit: float, height: int, label: int, keep: dict[str, str]
) -> list[str]:
    """A UTC day as bars, one per run of minutes of the same state; a click shows that day."""
    parts, start = [], 0
    for index in range(1, len(row) + 1):
        if index < len(row) and row[index].state == row[start].state:
            continue
        state, first, count = row[start].state, row[start].start, index - start
        day_end = (first.replace(hour=0, minute=0) + DAY).isoformat()
        href = "?" + urlencode({"zoom": "day", "end": day_end, "minute": first.isoformat()}) + "#detail"
        title = f"{first:%a %d %b %H:%M}–{first + count * MINUTE:%H:%M} UTC: {state.value}, {count} minutes"
        parts.append(
            f'<a href="{html.escape(href)}" data-minute="{first:%Y-%m-%dT%H:%MZ}" data-state="{state.value}">'
            f'<rect x="{label + start * unit:.2f}" y="{y}" width="{count * unit:.2f}" height="{height}" '
            f'fill="{COLOURS[state]}" stroke="{COLOURS[state]}" stroke-width="1" vector-effect="non-scaling-stroke">'
            f"<title>{html.escape(title)}</title></rect></a>"
        )
        start = index
    return parts


def detail(request: Request, minute: Minute, stream: Stream) -> str:
    """Everything known about one minute: its delivery, its runs and their tries, what disagrees."""
    rows = [
        ("Window", f"[{minute.start:%Y-%m-%d %H:%M}, {minute.start + MINUTE:%H:%M}) UTC"),
        ("State", f"{minute.state.value}: {MEANINGS[minute.state]}"),
        ("Searchable at", f"{minute.searchable_at:%H:%M:%S}"),
    ]
    if (entry := minute.entry) and entry.outcome == "unreachable":
        rows.append(
            ("Recorded", f"unreachable by the healing's run {entry.run_id}, at {entry.committed_at:%H:%M:%S}")
        )
    elif entry:
        rows += [
            (
                "Committed at",
                f"{entry.committed_at:%H:%M:%S.%f}"[:-3] + f" ({_seconds(entry.freshness)} after searchable)",
            ),
            ("Tweets", f"{entry.records}"),
            ("Topic", entry.topic),
            (
                "Kafka transaction",
                entry.transactional_id or "none: delivered at least once (no transactional.id)",
            ),
            (
                "Delivered by",
                f"try {entry.try_number} of run {entry.run_id} ({entry.run_type}, clear {entry.clear_number})",
            ),
        ]
        if entry.deliveries > 1:
            rows.append(("Deliveries", f"{entry.deliveries} (the ledger shows the latest)"))
    if minute.disagreement:
        rows.append(("Ledger and Airflow disagree", minute.disagreement))
    cells = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>" for name, value in rows
    )
    runs = []
    for run in [*minute.runs, *minute.other_runs]:
        facts = [f"{run.run_type}, {run.state}", f"topic {run.topic}"]
        if run.query != stream.query:
            facts.append(f"query {run.query!r}")
        if run.queued_at:
            facts.append(f"created {run.queued_at:%H:%M:%S}")
        if catch_up := run.catch_up:
            facts.append(f"catch-up: created {_duration(catch_up)} after its window was searchable")
        if run.tries:
            facts.append(tries_text(run))
        if run.alerted:
            facts.append("late alert fired")
        if run.note:
            facts.append(f"note: {run.note}")
        runs.append(f"<li>{run_link(request, stream.name, run.run_id)}: {html.escape('; '.join(facts))}</li>")
    runs_html = (
        f"<h2>Runs of this minute</h2><ul>{''.join(runs)}</ul>" if runs else "<p>No run of this minute.</p>"
    )
    return f'<div id="detail"><h2>{minute.start:%H:%M} UTC</h2><table>{cells}</table>{runs_html}</div>'


def render_streams(
    request: Request, streams: Streams, views: dict[str, LedgerView], summaries: list[Summary], now: datetime
) -> str:
    head = (
        "<tr><th>stream</th><th>last 24 h: delivered / due</th><th>7 days</th><th>freshness median / p95</th>"
        "<th>tweets per minute</th><th>X app: requests in the last 15 min / limit</th><th>last failure</th>"
        "<th>runs (24 h)</th></tr>"
    )
    rows = []
    for summary in summaries:
        stream = summary.stream
        tab = airflow_url(request, f"/dags/{quote(stream.name)}/plugin/coverage")
        name = f'<a href="{html.escape(tab)}" target="_top">{html.escape(stream.name)}</a>'
        failure = "none"
        if last := summary.last_failure:
            when = f"{last.window:%a %H:%M}" if last.window else ""
            failure = f"{when} {run_link(request, stream.name, last.run_id)}"
        runs = ", ".join(f"{count} {state}" for state, count in sorted(summary.runs_day.items()))
        unreachable = f"<br>{summary.unreachable_day:,} unreachable" if summary.unreachable_day else ""
        rows.append(
            f'<tr data-stream="{html.escape(stream.name)}"><td>{name}<br><span class="muted">'
            f"{html.escape(stream.topic)}</span></td>"
            f"<td>{coverage_bar(summary.delivered_day, summary.late_day, summary.due_day)}</td>"
            f"<td>{_ratio(summary.delivered_week, summary.due_week)}</td>"
            f"<td>{_seconds(summary.freshness_median)} / {_seconds(summary.freshness_p95)}</td>"
            f"<td>{'-' if summary.tweets_per_minute is None else f'{summary.tweets_per_minute:.1f}'}</td>"
            f"<td>{stream.twitter_conn_id}: {summary.app_requests} / {summary.rate_limit} "
            f"({summary.app_streams} streams need ≥ {REQUESTS_PER_STREAM * summary.app_streams}); this stream {summary.requests}</td>"
            f"<td>{failure}</td><td>{html.escape(runs) or '-'}{unreachable}</td></tr>"
        )
    body = (
        "<h1>Stream coverage</h1>"
        f'<p class="muted">Every stream of {html.escape(streams.path.name)}: the minutes delivered to its topic (from '
        "the delivery ledger) of those searchable since its first run, the time from searchable to committed, and "
        f"the X API requests its deliveries took. {now:%Y-%m-%d %H:%M} UTC.</p>"
        + stream_file_problems(streams.problems)
        + ledger_banner(views.values())
        + f'<table class="figures">{head}{"".join(rows)}</table>'
    )
    return page("Stream coverage", body)


def _concerns(problem: str, stream: Stream, streams: Streams) -> bool:
    """Whether a problem of the stream file is the stream's own, or the whole file's."""
    return f"stream {stream.name!r}" in problem or problem.startswith(f"Stream file {streams.path}")


def coverage_bar(delivered: int, late: int, due: int) -> str:
    if not due:
        return "-"
    on_time = max(0, delivered - late) / due * 100
    late_width = late / due * 100
    return (
        f'<span class="bar"><i style="width:{on_time:.1f}%;background:{COLOURS[State.DELIVERED]}"></i>'
        f'<i style="width:{late_width:.1f}%;background:{COLOURS[State.LATE]}"></i></span> '
        f"{_ratio(delivered, due)}" + (f", {late:,} late" if late else "")
    )


def _ratio(part: int, whole: int) -> str:
    if not whole:
        return "-"
    return f"{part:,} / {whole:,} ({part / whole:.1%})"


def _seconds(duration: timedelta | None) -> str:
    if duration is None:
        return "-"
    return f"{duration.total_seconds():.1f} s"


def _duration(duration: timedelta) -> str:
    minutes = duration.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
