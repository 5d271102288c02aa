"""The chart of bench/results.json: produce throughput, and every ratio against its target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PRODUCE_LABELS = {
    "ours": "this project\n(operator, async, our callback)",
    "raw_confluent_kafka": "raw confluent-kafka\n(produce + poll(0) + flush)",
    "seed_kafka_python": "the seed\n(kafka-python send per record)",
    "operator_defaults": "operator defaults\n(flush per record)",
}


def ratios(results: dict[str, Any]) -> list[tuple[str, float, str | None]]:
    """(label, value, target) of each ratio the chart shows."""
    growth = results["memory"]["growth_vs_records"]
    return [
        ("produce_vs_raw", results["produce_vs_raw"], "≥ 0.8"),
        ("produce_vs_seed", results["produce_vs_seed"], "≥ 5"),
        ("requests_vs_minimum", results["requests_vs_minimum"], "= 1"),
        ("parse_vs_empty_dag", results["parse_vs_empty_dag"], "≤ 1.5"),
        (
            "parse in dag-processor\nvs empty DAG",
            results["parse"]["parse_in_dag_processor_vs_empty_dag"],
            None,
        ),
        ("fetch_vs_plain_requests", results["fetch_vs_plain_requests"], None),
        ("run_vs_empty_dag_run", results["run_vs_empty_dag_run"], None),
        ("fetch memory growth\nvs records", growth["fetch_tweets"], "≤ 1"),
        ("produce memory growth\nvs records", growth["produce_tweets"], "≤ 1"),
    ]


def draw(results: dict[str, Any], path: Path) -> None:
    """Write the chart as a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5), gridspec_kw={"width_ratios": [1, 1.1]})
    produce = results["produce"]["records_per_second"]
    names = list(PRODUCE_LABELS)[::-1]
    medians = [produce[name]["median"] for name in names]
    left.barh(range(len(names)), medians, color=["#9e9e9e", "#9e9e9e", "#9e9e9e", "#1f77b4"][::-1])
    for row, name in enumerate(names):
        left.plot(produce[name]["runs"], [row] * len(produce[name]["runs"]), "k|", markersize=14)
        left.text(medians[row], row, f"  {medians[row]:,.0f}/s", va="center")
    left.set_yticks(range(len(names)), [PRODUCE_LABELS[name] for name in names])
    left.set_xscale("log")
    left.set_xlim(right=max(max(run["runs"]) for run in produce.values()) * 4)
    left.set_xlabel("records per second (log scale; bar = median, | = each run)")
    left.set_title(
        f"Produce throughput, {results['produce']['records']:,} records of "
        f"~{results['produce']['record_bytes_mean']:.0f} B, acks=all"
    )
    shown = ratios(results)[::-1]
    values = [value for _, value, _ in shown]
    right.barh(range(len(shown)), values, color="#1f77b4")
    for row, (_, value, target) in enumerate(shown):
        right.text(value, row, f"  {value:.2f}" + (f"  (target {target})" if target else ""), va="center")
    right.axvline(1, color="k", linewidth=0.8)
    right.set_yticks(range(len(shown)), [label for label, _, _ in shown])
    right.set_xscale("log")
    right.set_xlim(min(values) / 2, max(values) * 12)
    right.set_xlabel("ratio (log scale)")
    right.set_title("Ratios (medians of interleaved runs)")
    figure.suptitle(
        f"tweets_to_kafka benchmarks, {results['machine']['cpus']} CPUs, {results['finished_at'][:10]}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
