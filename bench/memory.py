"""Memory: peak resident set of the fetch and the produce task for windows of 1,000 and 10,000 tweets,
each task in a fresh interpreter (bench.memory_probe)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bench.fetch import Windows
from bench.memory_probe import RESULT_PREFIX
from bench.services import SimulatorClient, records_in, run_probe

WINDOW_SIZES = (1000, 10_000)


def run(simulator: SimulatorClient, env: dict[str, str], log_file: Path) -> dict[str, Any]:
    """Each task's growth of resident memory over its baseline, per window size, and how it scales."""
    windows = Windows(hours_ago=6)
    tasks: dict[str, dict[int, dict]] = {"fetch_tweets": {}, "produce_tweets": {}}
    for size in WINDOW_SIZES:
        start, end = windows.take(simulator, size)
        run_id = f"bench__memory_{uuid.uuid4().hex}"
        fetched = run_probe(
            "bench.memory_probe",
            ["fetch", start.isoformat(), end.isoformat(), run_id],
            env,
            RESULT_PREFIX,
            log_file,
        )
        topic = f"bench-memory-{uuid.uuid4().hex[:12]}"
        produced = run_probe(
            "bench.memory_probe", ["produce", start.isoformat(), run_id, topic], env, RESULT_PREFIX, log_file
        )
        if fetched["records"] != size or produced["records"] != size or records_in(topic) != size:
            raise RuntimeError(f"memory run of {size} tweets: fetched {fetched}, produced {produced}")
        for task, figures in (("fetch_tweets", fetched), ("produce_tweets", produced)):
            growth = figures["peak_kib"] - figures["baseline_kib"]
            tasks[task][size] = {
                **figures,
                "growth_kib": growth,
                "growth_bytes_per_record": growth * 1024 / size,
            }
            print(
                f"  memory {task:<15} {size:>6} tweets: peak {figures['peak_kib'] / 1024:.0f} MiB, "
                f"+{growth / 1024:.1f} MiB over its baseline ({growth * 1024 / size:,.0f} bytes/record)"
            )
    small, large = WINDOW_SIZES
    return {
        "window_sizes": list(WINDOW_SIZES),
        "tasks": {
            task: {str(size): figures for size, figures in sizes.items()} for task, sizes in tasks.items()
        },
        # Above 1: memory grows faster than the records do; 1 is linear.
        "growth_vs_records": {
            task: (sizes[large]["growth_kib"] / max(sizes[small]["growth_kib"], 1)) / (large / small)
            for task, sizes in tasks.items()
        },
    }
