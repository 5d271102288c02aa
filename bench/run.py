"""`make bench`: every benchmark against a fresh broker and the simulator; prints the table, writes
bench/results.json and bench/results.png.

    python -m bench.run [--quick] [--only SECTION ...]

--quick runs fewer records and repetitions and writes to .artifacts/bench/ instead (a smoke run).
--only runs the named sections and updates their figures in the existing results.
Ports: BENCH_KAFKA_PORT (19492, its controller the next port), BENCH_X_SIM_PORT (18499), and
BENCH_AIRFLOW_PORT (19580, and the next) for the Airflow of the schedule, streams and coverage sections.
BENCH_STREAM_COUNTS (1,5,10,20,30): the stream counts the streams section measures.
The healing section: BENCH_HEALING_AIRFLOW_PORT (19880), BENCH_HEALING_KAFKA_PORT (19892), and
BENCH_HEALING_OUTAGE_MINUTES (30) of Kafka down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.figures import FIGURES
from bench.services import KAFKA_CONFIG, ROOT, airflow_home, kafka_broker, subprocess_env, x_api_simulator

ARTIFACTS = ROOT / ".artifacts" / "bench"
FULL = {
    "records": 100_000,
    "produce": 7,
    "fetch": 9,
    "parse": 7,
    "dag_run": 3,
    "schedule": 12,
    "streams": 3,
    "compliance": 1_000_000,
    "coverage": 7,
}
QUICK = {
    "records": 10_000,
    "produce": 1,
    "fetch": 2,
    "parse": 2,
    "dag_run": 1,
    "schedule": 3,
    "streams": 2,
    "compliance": 100_000,
    "coverage": 3,
}
SECTIONS = (
    "requests",
    "fetch",
    "produce",
    "transactions",
    "parse",
    "memory",
    "dag_run",
    "schedule",
    "windows",
    "streams",
    "healing",
    "compliance",
    "coverage",
)
STREAM_COUNTS = [int(count) for count in os.environ.get("BENCH_STREAM_COUNTS", "1,5,10,20,30").split(",")]
# The figures results.json leads with, from each section's results.
HEADLINES = {
    "produce": ("produce_vs_raw", "produce_vs_seed", "produce_vs_operator_defaults"),
    "transactions": ("transactional_vs_idempotent_produce", "ledger_read_ms"),
    "requests": ("requests_vs_minimum",),
    "fetch": ("fetch_vs_plain_requests",),
    "parse": ("parse_vs_empty_dag", "parse_in_dag_processor_vs_empty_dag"),
    "dag_run": ("run_vs_empty_dag_run",),
    "schedule": (
        "freshness_median_s",
        "freshness_p95_s",
        "slot_seconds_vs_empty_dag",
        "catchup_vs_rate_limit",
        "transactional_ids_per_stream_day",
    ),
    "windows": ("metadata_bytes_per_window", "big_window_records_per_second"),
    "streams": ("streams_within_freshness", "streams_vs_empty_dag_streams"),
    "healing": ("healing_minutes_after_outage", "healing_vs_rate_limit"),
    "compliance": ("compliance_ids_per_second", "compliance_slot_seconds", "compliance_slot_vs_job_wall"),
    "coverage": ("coverage_page_ms", "coverage_page_vs_grid"),
}


def run_all(settings: dict[str, int], log_dir: Path, only: set[str]) -> dict[str, Any]:
    """Start the services, run each benchmark (of `only`), stop the services; return every figure."""
    from bench import (
        compliance,
        coverage,
        dag_run,
        fetch,
        healing,
        memory,
        parse,
        produce,
        schedule,
        streams,
        windows,
    )

    sections: dict[str, float] = {}
    results: dict[str, Any] = {}

    def section(name: str, benchmark, *arguments) -> None:
        if name not in only:
            return
        print(f"{name}:", flush=True)
        began = time.monotonic()
        results[name] = benchmark(*arguments)
        sections[name] = round(time.monotonic() - began, 1)

    with kafka_broker(), x_api_simulator() as simulator, airflow_home() as home:
        os.environ.update(subprocess_env(home))  # for the in-process hook and operator
        sys.path.insert(0, str(ROOT / "plugins"))
        env = subprocess_env(home)
        section("requests", fetch.request_efficiency, simulator)
        section("fetch", fetch.fetch_cost, simulator, settings["fetch"])
        section(
            "produce",
            produce.run,
            KAFKA_CONFIG,
            settings["records"],
            settings["produce"],
            log_dir / "produce.log",
        )
        section(
            "transactions",
            produce.run_transactions,
            KAFKA_CONFIG,
            settings["records"],
            settings["produce"],
            log_dir / "produce.log",
        )
        section("parse", parse.run, env, settings["parse"], log_dir / "parse.log")
        section("memory", memory.run, simulator, env, log_dir / "memory.log")
        section("dag_run", dag_run.run, simulator, home, settings["dag_run"], log_dir / "dag_run.log")
        section("schedule", schedule.run, settings["schedule"], log_dir)
        section("windows", windows.run, simulator, log_dir)
        section("streams", streams.run, STREAM_COUNTS, settings["streams"], log_dir)
        section("healing", healing.run, log_dir)
        section("compliance", compliance.run, settings["compliance"], log_dir)
        section("coverage", coverage.run, settings["coverage"], log_dir)
    headlines = {key: results[name][key] for name in results for key in HEADLINES.get(name, ())}
    if "memory" in results:
        growth = results["memory"]["growth_vs_records"]
        headlines["fetch_memory_growth_vs_records"] = growth["fetch_tweets"]
        headlines["produce_memory_growth_vs_records"] = growth["produce_tweets"]
    return {**headlines, **results, "section_seconds": sections}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    packages = (
        "apache-airflow",
        "apache-airflow-providers-apache-kafka",
        "confluent-kafka",
        "kafka-python",
        "tweepy",
    )
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {package: version(package) for package in packages},
    }


def table(results: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    produce = results["produce"]["records_per_second"]
    lines = ["| figure | value | target | met |", "| --- | --- | --- | --- |"]
    for name, figures in produce.items():
        records = results["produce"][
            "operator_defaults_records" if name == "operator_defaults" else "records"
        ]
        lines.append(f"| produce {name} ({records:,} records) | {figures['median']:,.0f} records/s | | |")
    for figure in FIGURES:
        if figure.key not in results:  # its section has not run since the figure was added
            lines.append(f"| {figure.label} (`{figure.key}`) | not measured | {figure.target} | |")
            continue
        value = results[figure.key]
        met = "" if figure.meets is None else ("yes" if figure.meets(value) else "**no**")
        lines.append(f"| {figure.label} (`{figure.key}`) | {value:,.2f} | {figure.target} | {met} |")
    compliance = results["compliance"]
    lines.append(
        f"| X compliance, {compliance['ids']:,} posts: ids checked per second (`compliance_ids_per_second`) | "
        f"{compliance['compliance_ids_per_second']:,} | >= 1,000 (a million in 17 minutes) | "
        f"{'yes' if compliance['compliance_ids_per_second'] >= 1000 else '**no**'} |"
    )
    lines.append(
        f"| X compliance: worker-slot seconds per job (`compliance_slot_seconds`) / the task's wall time | "
        f"{compliance['compliance_slot_seconds']} s / {compliance['task_wall_seconds']} s | | |"
    )
    memory = results["memory"]["tasks"]
    for task, sizes in memory.items():
        for size, figures in sizes.items():
            lines.append(
                f"| {task} peak RSS, {int(size):,} tweets | {figures['peak_kib'] / 1024:.0f} MiB "
                f"(+{figures['growth_kib'] / 1024:.1f} MiB, {figures['growth_bytes_per_record']:,.0f} B/record) | | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer records and repetitions")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="sections to run")
    args = parser.parse_args(argv)
    output_dir = ARTIFACTS if args.quick else ROOT / "bench"
    log_dir = ARTIFACTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for log in log_dir.glob("*.log"):
        log.unlink()
    started = datetime.now(UTC)
    info = machine()
    results = run_all(QUICK if args.quick else FULL, log_dir, set(args.only))
    finished = datetime.now(UTC)
    previous = output_dir / "results.json"
    if set(args.only) != set(SECTIONS) and previous.exists():  # update those sections' figures only
        earlier = json.loads(previous.read_text())
        sections = {**earlier["section_seconds"], **results.pop("section_seconds")}
        results = {**earlier, **results, "section_seconds": sections}
    results = {
        **results,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds()),
        "machine": {**info, "load_average_at_end": os.getloadavg()},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    wrote = [output_dir / "results.json"]
    if missing := [name for name in SECTIONS if name not in results]:  # a first --only run of --quick
        print(f"\nNo chart or table: no figures of {', '.join(missing)} yet")
    else:
        from bench.chart import draw

        draw(results, output_dir / "results.png")
        wrote.append(output_dir / "results.png")
        print()
        print(table(results))
    print(f"\nWrote {' and '.join(map(str, wrote))} in {results['duration_s']} s; logs in {log_dir}")


if __name__ == "__main__":
    main()
