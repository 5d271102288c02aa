"""Day two under the real scheduler: the stream file edited (a stream renamed, the file broken for minutes) and the
package's code deployed, while the schedule runs every minute, with no restart and no minute lost.

The stack runs a deployment of its own: a copy of dags/, include/ and plugins/, which the tests edit as a deploy
would (include/streams.yaml of the copy is the stream file). These tests wait on the clock, so `make test` runs them
beside the others."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local_system import AirflowStack, connections
from tests.helpers import DAG_QUERY, KAFKA_CONFIG, ROOT, read_topic, write_stream_file
from tests.system.harness import TEST_X_BEARER_TOKEN

pytestmark = pytest.mark.wall_clock

PORT = int(os.environ.get("TEST_DAY_TWO_AIRFLOW_PORT", "19780"))  # its log server takes the next port
MINUTE = timedelta(minutes=1)
SETTLED = "success", "failed"
TOPIC = f"day-two-{uuid.uuid4().hex[:8]}"
STREAM = {"name": "tweets_to_kafka", "query": DAG_QUERY, "topic": TOPIC, "look_back_minutes": 1}


@pytest.fixture(scope="module")
def deployment() -> Path:
    """A deployment of the package: its own copy of the folders Airflow reads."""
    folder = ROOT / ".artifacts" / f"airflow-day-two-{PORT}-deployment"
    shutil.rmtree(folder, ignore_errors=True)
    for part in ("dags", "include", "plugins"):
        shutil.copytree(
            ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    write_stream_file(folder / "include" / "streams.yaml", STREAM)
    return folder


@pytest.fixture(scope="module")
def stack(kafka, simulator, deployment):
    """Airflow on the deployment, scheduling every minute; the dag-processor parses each file every 10 s."""
    airflow = AirflowStack(
        home=ROOT / ".artifacts" / f"airflow-day-two-{PORT}",
        port=PORT,
        connections=connections(simulator.url, TEST_X_BEARER_TOKEN, KAFKA_CONFIG),
        pools={"x_api": 2},
        schedule_runs=True,
        settings={
            "PYTHONPATH": os.pathsep.join(map(str, (deployment, deployment / "plugins", ROOT))),
            "AIRFLOW__CORE__DAGS_FOLDER": str(deployment / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(deployment / "plugins"),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        },
    )
    with airflow:
        airflow.enabled_at = datetime.now(UTC)
        yield airflow


def start_of(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"])


def scheduled(stack: AirflowStack) -> list[dict]:
    return sorted((run for run in stack.dag_runs() if run["run_type"] == "scheduled"), key=start_of)


def wait_for_successes_after(stack: AirflowStack, moment: datetime, count: int) -> list[dict]:
    """Wait until `count` scheduled runs due after `moment` succeeded, and every run before them settled; return
    those `count` runs."""
    found: list[dict] = []

    def done(runs: list[dict]) -> bool:
        mine = sorted((run for run in runs if run["run_type"] == "scheduled"), key=start_of)
        later = [n for n, run in enumerate(mine) if due(run) > moment and run["state"] == "success"][:count]
        found[:] = [mine[n] for n in later]
        return len(later) == count and all(run["state"] in SETTLED for run in mine[: later[-1] + 1])

    stack.wait_for_runs(done, 420, f"{count} scheduled runs due after {moment:%H:%M:%S} to succeed")
    return found


def due(run: dict) -> datetime:
    return datetime.fromisoformat(run["run_after"])


def wait_for_import_error(stack: AirflowStack, text: str | None) -> str:
    """Wait until the import error of dags/stream_file.py holds `text` (None: until there is none); return it."""

    def error() -> str:
        errors = stack.api("GET", "/api/v2/importErrors")["import_errors"]
        return "\n".join(e["stack_trace"] for e in errors if e["filename"].endswith("stream_file.py"))

    def reached() -> bool:
        return text in error() if text else error() == ""

    stack.wait_until(
        reached, 120, f"the stream file's import error to {f'say {text!r}' if text else 'clear'}"
    )
    return error()


def check_every_minute_delivered(stack: AirflowStack, simulator) -> None:
    """Every minute from the first scheduled run to the last settled one has one successful run, and the topic
    holds exactly the query's tweets of those minutes."""
    runs = [run for run in scheduled(stack) if run["state"] in SETTLED]
    starts = [start_of(run) for run in runs]
    assert starts == [starts[0] + n * MINUTE for n in range(len(starts))], "a minute got no run, or two"
    assert {run["state"] for run in runs} == {"success"}
    expected = {
        tweet["id"].encode()
        for start in starts
        for tweet in simulator.tweets_between(start, start + MINUTE, query=DAG_QUERY)
    }
    delivered = {key for key, _ in read_topic(TOPIC)}
    assert expected <= delivered, f"{len(expected - delivered)} tweets lost"


def test_a_renamed_stream_and_a_stream_file_broken_for_minutes_lose_no_minute(stack, deployment, simulator):
    """Expected: a display_name renames the stream in the UI, its DAG and minutes unchanged; a new name on the
    stream's topic is refused in the import errors and the stream runs on; while the file is not YAML the import
    errors say why and the last good streams keep running; once fixed, the errors are gone. Meanwhile every minute
    is delivered."""
    stream_file = deployment / "include" / "streams.yaml"
    wait_for_successes_after(stack, stack.enabled_at - 2 * MINUTE, 1)

    write_stream_file(stream_file, {**STREAM, "display_name": "Apple and iPhone"})
    stack.wait_until(
        lambda: stack.api("GET", "/api/v2/dags/tweets_to_kafka")["dag_display_name"] == "Apple and iPhone",
        120,
        "the new display name in the UI",
    )

    write_stream_file(stream_file, {**STREAM, "name": "apple_and_iphone"})
    refused = wait_for_import_error(stack, "stream 'apple_and_iphone': topic:")
    assert "A stream's name is its DAG id" in refused and "set display_name: apple_and_iphone" in refused
    wait_for_successes_after(stack, datetime.now(UTC), 1)
    assert not stack.dag_is_parsed("apple_and_iphone")

    stream_file.write_text("streams: [\n  - {name: tweets_to_kafka\n")
    broken = wait_for_import_error(
        stack, "its last good streams keep running until it is fixed: tweets_to_kafka"
    )
    assert f"Stream file {stream_file}: " in broken
    wait_for_successes_after(stack, datetime.now(UTC), 2)
    assert stack.api("GET", "/api/v2/dags/tweets_to_kafka")["is_stale"] is False

    write_stream_file(stream_file, {**STREAM, "display_name": "Apple and iPhone"})
    wait_for_import_error(stack, None)
    wait_for_successes_after(stack, datetime.now(UTC), 1)
    check_every_minute_delivered(stack, simulator)


def test_a_deploy_of_include_and_the_hook_reaches_the_next_task_without_a_restart(
    stack, deployment, simulator
):
    """Expected: once include/records.py and the hook are replaced under the running scheduler, the next run's
    records carry the new field and its fetch log the hook's new line; no component restarted."""
    marker = uuid.uuid4().hex[:8]
    components = {name: process.pid for name, process in stack.processes.items()}
    edit(
        deployment / "include" / "records.py",
        '"lang": tweet.get("lang"),',
        f'"lang": tweet.get("lang"), "deployed": "{marker}",',
    )
    edit(
        deployment / "plugins" / "twitter_provider" / "hooks.py",
        '"Window [%s, %s)',
        f'"Deploy {marker}: window [%s, %s)',
    )

    [run] = wait_for_successes_after(stack, datetime.now(UTC), 1)

    assert f"Deploy {marker}: window" in stack.task_log(run["dag_run_id"], "fetch_tweets", 1)
    window = f"{start_of(run):%Y-%m-%dT%H:%M}"
    records = [json.loads(value) for _, value in read_topic(TOPIC)]
    deployed = [record for record in records if record["created_at"].startswith(window)]
    assert deployed and {record.get("deployed") for record in deployed} == {marker}
    assert {name: process.pid for name, process in stack.processes.items()} == components, "no restart"
    check_every_minute_delivered(stack, simulator)


def edit(path: Path, old: str, new: str) -> None:
    """Replace a deployed module, as a deploy does."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
