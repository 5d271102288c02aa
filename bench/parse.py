"""DAG parse time: dags/tweets_to_kafka.py against a DAG file with one empty DAG, each parse in a fresh
interpreter, interleaved, medians."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

from bench.parse_probe import RESULT_PREFIX
from bench.services import ROOT, run_probe

DAG_FILES = {
    "tweets_to_kafka": ROOT / "dags" / "tweets_to_kafka.py",
    "empty": ROOT / "bench" / "dags" / "empty.py",
}
MODES = ("cold", "dag-processor")
CLOCKS = {"wall": "parse_s", "cpu": "parse_cpu_s"}  # bench.parse_probe's fields


def run(env: dict[str, str], repetitions: int, log_file: Path) -> dict[str, Any]:
    """`repetitions` parses of each file in each mode (see bench.parse_probe), alternating the files."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        mode: {name: [] for name in DAG_FILES} for mode in MODES
    }
    for repetition in range(repetitions):
        names = list(DAG_FILES) if repetition % 2 == 0 else list(DAG_FILES)[::-1]
        for mode in MODES:
            for name in names:
                arguments = [mode, str(DAG_FILES[name])]
                runs[mode][name].append(
                    run_probe("bench.parse_probe", arguments, env, RESULT_PREFIX, log_file)
                )
    result: dict[str, Any] = {"repetitions": repetitions}
    for mode in MODES:
        key = mode.replace("-", "_")
        result[key] = {name: {"runs": runs[mode][name]} for name in DAG_FILES}
        for clock, field in CLOCKS.items():
            medians = {name: median(run[field] for run in runs[mode][name]) for name in DAG_FILES}
            for name in DAG_FILES:
                result[key][name][f"{field}_median"] = medians[name]
            result[key][f"ratio_{clock}"] = medians["tweets_to_kafka"] / medians["empty"]
        figures = {name: result[key][name] for name in DAG_FILES}
        print(
            f"  parse ({mode}): tweets_to_kafka {figures['tweets_to_kafka']['parse_cpu_s_median'] * 1000:.0f} ms CPU "
            f"({figures['tweets_to_kafka']['parse_s_median'] * 1000:.0f} ms wall), empty "
            f"{figures['empty']['parse_cpu_s_median'] * 1000:.0f} ms CPU ({figures['empty']['parse_s_median'] * 1000:.0f} ms wall)"
        )
    # CPU time: on a shared machine the wall time of a 3 s interpreter start swings by seconds with other load.
    result["parse_vs_empty_dag"] = result["cold"]["ratio_cpu"]
    result["parse_in_dag_processor_vs_empty_dag"] = result["dag_processor"]["ratio_cpu"]
    result["pre_import_once_per_dag_processor_cpu_s"] = median(
        run["pre_import_cpu_s"] for run in runs["dag-processor"]["tweets_to_kafka"]
    )
    return result
