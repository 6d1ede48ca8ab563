"""bench/results.png: max throughput and p99 at the fixed rate, per screen and variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the chart is a file
import matplotlib.pyplot as plt

VARIANTS = ("B0", "B1", "G0", "G1", "G2")
COLOURS = {"B0": "#9e9e9e", "B1": "#4e79a7", "G0": "#e15759", "G1": "#f28e2b", "G2": "#59a14f"}


def draw(results: dict[str, Any], path: Path) -> None:
    """Two bar charts, screens on the x axis, one bar per variant."""
    screens = list(results["screens"])
    labels = [results["screens"][s] for s in screens]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(13, 8.5), constrained_layout=True)
    width = 0.8 / len(VARIANTS)
    for i, variant in enumerate(VARIANTS):
        xs = [n + (i - (len(VARIANTS) - 1) / 2) * width for n in range(len(screens))]
        rps = [results["load"].get(f"{variant}/{s}", {}).get("rps", 0) for s in screens]
        p99 = [results["latency"].get(f"{variant}/{s}", {}).get("p99") or 0 for s in screens]
        top.bar(xs, rps, width, label=variant, color=COLOURS[variant])
        bottom.bar(xs, p99, width, label=variant, color=COLOURS[variant])
    for axis, title, unit in (
        (top, "Max throughput (wrk, 16 connections)", "requests/s"),
        (bottom, "p99 latency at 50% of B1's max rate (hey, 4 workers)", "ms"),
    ):
        axis.set_title(title)
        axis.set_ylabel(unit)
        axis.set_xticks(range(len(screens)))
        axis.set_xticklabels(labels, rotation=15)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(ncols=len(VARIANTS), fontsize=8)
    bottom.set_yscale("log")
    figure.suptitle("BFF benchmark: B0 bytes, B1 hand-written SQL, G0 naive, G1 shipped, G2 response cache")
    figure.savefig(path, dpi=110)
    plt.close(figure)
