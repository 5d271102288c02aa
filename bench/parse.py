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
        medians = {name: median(run["parse_s"] for run in runs[mode][name]) for name in DAG_FILES}
        result[key] = {
            name: {"parse_s_median": medians[name], "runs": runs[mode][name]} for name in DAG_FILES
        }
        result[key]["ratio"] = medians["tweets_to_kafka"] / medians["empty"]
        print(
            f"  parse ({mode}): tweets_to_kafka {medians['tweets_to_kafka'] * 1000:.0f} ms, "
            f"empty {medians['empty'] * 1000:.0f} ms"
        )
    result["parse_vs_empty_dag"] = result["cold"]["ratio"]
    result["parse_in_dag_processor_vs_empty_dag"] = result["dag_processor"]["ratio"]
    result["pre_import_once_per_dag_processor_s"] = median(
        run["pre_import_s"] for run in runs["dag-processor"]["tweets_to_kafka"]
    )
    return result
