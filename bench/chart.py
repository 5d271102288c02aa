"""The chart of bench/results.json: produce throughput, every ratio against its target, and the freshness of
many streams on one machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.figures import FIGURES

PRODUCE_LABELS = {
    "ours": "this project\n(operator, async, our callback)",
    "raw_confluent_kafka": "raw confluent-kafka\n(produce + poll(0) + flush)",
    "seed_kafka_python": "the seed\n(kafka-python send per record)",
    "operator_defaults": "operator defaults\n(flush per record)",
}
OURS, OTHER, MET, MISSED = "#1f77b4", "#9e9e9e", "#2ca02c", "#d62728"


def draw(results: dict[str, Any], path: Path) -> None:
    """Write the chart as a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right, streams) = plt.subplots(
        1, 3, figsize=(24, 7), gridspec_kw={"width_ratios": [1, 1.2, 0.7]}
    )
    produce = results["produce"]["records_per_second"]
    names = list(PRODUCE_LABELS)[::-1]
    medians = [produce[name]["median"] for name in names]
    left.barh(range(len(names)), medians, color=[OURS if name == "ours" else OTHER for name in names])
    for row, name in enumerate(names):
        left.plot(produce[name]["runs"], [row] * len(produce[name]["runs"]), "k|", markersize=14)
        left.text(max(produce[name]["runs"]), row, f"  {medians[row]:,.0f}/s", va="center")
    left.set_yticks(range(len(names)), [PRODUCE_LABELS[name] for name in names])
    left.set_xscale("log")
    left.set_xlim(right=max(max(run["runs"]) for run in produce.values()) * 4)
    left.set_xlabel("records per second (log scale; bar: median, |: each run)")
    left.set_title(
        f"Produce throughput, {results['produce']['records']:,} records of "
        f"~{results['produce']['record_bytes_mean']:.0f} B, acks=all"
    )
    # A figure of a section not run since it was added (`--only`) has no value yet.
    shown = [figure for figure in FIGURES if figure.charted and figure.key in results][::-1]
    values = [results[figure.key] for figure in shown]
    colours = [
        OURS if f.meets is None else MET if f.meets(v) else MISSED for f, v in zip(shown, values, strict=True)
    ]
    right.barh(range(len(shown)), values, color=colours)
    for row, (ratio, value) in enumerate(zip(shown, values, strict=True)):
        target = f"  (target {ratio.target})" if ratio.target else ""
        right.text(value, row, f"  {value:.2f}{target}", va="center")
    right.axvline(1, color="k", linewidth=0.8)
    right.set_yticks(range(len(shown)), [f"{ratio.label}\n{ratio.key}" for ratio in shown], fontsize=8)
    right.set_xscale("log")
    right.set_xlim(min(values) / 2, max(values) * 15)
    right.set_xlabel("ratio (log scale); green: target met, red: missed, blue: no target")
    right.set_title("Ratios (medians of interleaved runs)")
    _draw_streams(streams, results["streams"])
    figure.suptitle(
        f"tweets_to_kafka benchmarks, {results['machine']['cpus']} CPUs, {results['finished_at'][:10]}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _draw_streams(axes, streams: dict[str, Any]) -> None:
    """Freshness against the number of streams, with the target; each stream count's CPU per stream-minute."""
    by_count = streams["by_count"]
    counts = [int(count) for count in by_count]
    for key, label, style in (
        ("freshness_median_s", "median, all streams", "o-"),
        ("freshness_p95_s", "p95, all streams", "s--"),
        ("worst_stream_median_s", "worst stream's median", "^-"),
    ):
        axes.plot(counts, [figures[key] for figures in by_count.values()], style, label=label)
    if all("empty" in figures for figures in by_count.values()):
        floor = [figures["empty"]["worst_stream_median_s"] for figures in by_count.values()]
        axes.plot(counts, floor, "v:", color=OTHER, label="worst median, two empty tasks (Airflow's floor)")
    axes.axhline(
        streams["target_median_s"], color=MISSED, linewidth=0.8, label="target (every stream's median)"
    )
    for count, figures in zip(counts, by_count.values(), strict=True):
        axes.annotate(
            f"{figures['cpu_seconds_per_stream_minute']:.2f} CPU s\nper stream-min",
            (count, figures["worst_stream_median_s"]),
            textcoords="offset points",
            xytext=(0, 10),
            ha="center",
            fontsize=7,
        )
    axes.set_xticks(counts)
    axes.set_xlabel("streams (each its own DAG and topic)")
    axes.set_ylabel("seconds from window searchable to its last record appended")
    axes.set_ylim(bottom=0)
    floor = streams.get("empty_dag_streams_within_freshness")
    within = f"{streams['streams_within_freshness']} kept within target" + (
        f", empty DAGs {floor}" if floor is not None else ""
    )
    axes.set_title(f"Freshness of N streams\n({within})")
    axes.legend(fontsize=8, loc="upper left")
