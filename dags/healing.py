"""tweets_to_kafka_healing: every few minutes, every minute of every stream that reached no delivery runs again
while the X API can still serve it, and the minutes it no longer serves are reported (include/healing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, XComArg, get_parsing_context, task
from airflow.sdk.exceptions import AirflowFailException

from include.streams import StreamFileError, running_streams

HEALING_DAG_ID = "tweets_to_kafka_healing"
DOC = """### Minutes that heal themselves

Every `healing_interval_minutes` ({interval} here) of the stream file, for every unpaused stream:

- **plan_healing** finds the stream's minutes, since it began and before its schedule's next run, that have no
  delivery in the delivery ledger (`{ledger}`), and looks at their runs: a minute whose run is on its way waits;
  one whose run failed, or that the schedule passed by (a backfill ahead of it, a manual run that wrote
  elsewhere), runs again, oldest first, within the stream's share of its X app's rate budget; one that the X API
  can no longer serve is recorded in the ledger as `unreachable`.
- **rerun_minutes** clears each failed run, or triggers a `healing__<minute>` run (Airflow's TriggerDagRunOperator).
- **report** fails naming every minute newly beyond the X API's reach, by stream, and the streams whose Kafka
  could not be read (it is skipped when there is none).

The Variable `tweets_to_kafka_healing.<stream>` holds the first minute not yet resolved."""


def healing_dag(interval_minutes: int, ledger_topic: str) -> DAG:
    with DAG(
        dag_id=HEALING_DAG_ID,
        schedule=timedelta(minutes=interval_minutes),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
        tags=["x-api", "kafka", "healing"],
        doc_md=DOC.format(interval=interval_minutes, ledger=ledger_topic),
    ) as dag:

        @task
        def plan_healing(**context) -> list[dict]:
            """Find every minute to run again (returned) or report (its XCom `report`); see include/healing.py."""
            from include import healing
            from twitter_provider.timetables import search_horizon

            interval = timedelta(minutes=interval_minutes)
            ti = context["ti"]
            found = healing.heal(running_streams(), ti, datetime.now(UTC), search_horizon(), interval)
            ti.xcom_push(key="report", value={key: found[key] for key in ("unreachable", "problems")})
            return found["reruns"]

        @task(retries=0)
        def report(found: dict) -> None:
            """Fail naming the minutes newly beyond the X API's reach, and the streams that could not be healed,
            so that an operator sees them; skipped when there is none."""
            from airflow.sdk.exceptions import AirflowSkipException

            lines = [
                f"{stream}: [{start}, {end}) got no delivery, and the X API can no longer serve it (recorded in "
                "the ledger as unreachable)"
                for stream, spans in found["unreachable"].items()
                for start, end in spans
            ]
            lines += [f"Could not heal the {problem}" for problem in found["problems"]]
            if not lines:
                raise AirflowSkipException(
                    "no minute newly beyond the X API's reach, and every stream healed"
                )
            raise AirflowFailException("\n".join(lines))

        reruns = plan_healing()
        TriggerDagRunOperator.partial(
            task_id="rerun_minutes", reset_dag_run=True, wait_for_completion=False
        ).expand_kwargs(reruns)
        report(XComArg(reruns.operator, key="report"))
    return dag


# A task process of another DAG builds nothing here (Airflow names the DAG it runs in the parsing context).
if get_parsing_context().dag_id in (None, HEALING_DAG_ID):
    try:
        _streams = running_streams()
    except StreamFileError:
        _streams = None  # dags/stream_file.py reports why
    if _streams is not None:
        healing_dag(_streams.healing_interval_minutes, _streams.delivery_ledger_topic)
