"""PNG figures like the paper's: metric vs N per method, training curves, feature drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scale_scheduler.simulator.extras import require

from .evaluation import REGIMES


def pyplot() -> Any:  # matplotlib.pyplot, headless (CI and servers have no display)
    require("matplotlib", "plots").use("Agg")
    return require("matplotlib.pyplot", "plots")


def metric_vs_nodes(summary: list[dict[str, Any]], metric: str, ylabel: str, path: Path) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(REGIMES), figsize=(12, 4.5), sharey=True)
    methods = sorted({row["method"] for row in summary})
    for axis, regime in zip(axes, REGIMES, strict=True):
        for method in methods:
            rows = sorted(
                (r for r in summary if r["method"] == method and r["regime"] == regime), key=lambda r: r["nodes"]
            )
            if not rows:
                continue
            x = [r["nodes"] for r in rows]
            y = [r[metric] for r in rows]
            if metric == "avg_response_time":
                low = [r[metric] - r["avg_response_time_ci95"][0] for r in rows]
                high = [r["avg_response_time_ci95"][1] - r[metric] for r in rows]
                axis.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=method)
            else:
                axis.plot(x, y, marker="o", label=method)
        axis.set_title(f"load regime: {regime}")
        axis.set_xlabel("nodes (trained at 16)")
        axis.grid(alpha=0.3, which="both")
        if metric == "avg_response_time":
            # A log scale keeps the close contenders apart when a collapsed method is 10x slower.
            axis.set_yscale("log")
    axes[0].set_ylabel(ylabel + (" (log scale)" if metric == "avg_response_time" else ""))
    axes[-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def training_curves(runs: dict[str, Path], path: Path, key: str = "eval/normalised_vs_heft_n16") -> Path | None:
    """Validation response time relative to HEFT (>1 = better) over training steps, one line per run; for an
    expert-iteration run, its teacher's level on the same validation episodes as a dashed line of its colour."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    plotted = False
    nodes = key.rsplit("_n", 1)[-1]
    heft_key, teacher_key = f"eval/heft_avg_response_time_n{nodes}", f"eval/teacher_avg_response_time_n{nodes}"
    for name, metrics_file in runs.items():
        points, teacher = [], None
        for line in metrics_file.read_text().splitlines():
            record = json.loads(line)
            if key in record:
                points.append((record["global_step"], record[key]))
            if teacher_key in record and heft_key in record:  # the teacher is validated once per run
                teacher = record[heft_key] / record[teacher_key]
        if points:
            (curve,) = axis.plot(*zip(*points, strict=True), marker=".", label=name)
            if teacher is not None:
                axis.axhline(teacher, color=curve.get_color(), linestyle=":", linewidth=1.5, label=f"{name}'s teacher")
            plotted = True
    if not plotted:
        plt.close(figure)
        return None
    axis.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    axis.set_xlabel("training decisions")
    axis.set_ylabel("HEFT response time / policy response time (validation)")
    axis.set_title(key.removeprefix("eval/"))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def feature_drift(rows: list[dict[str, Any]], path: Path) -> Path:
    panels = [
        ("feature_abs_mean", "mean |per-dimension mean|"),
        ("feature_variance", "mean per-dimension variance"),
        ("mean_abs_offdiag_correlation", "mean |off-diagonal correlation|"),
    ]
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 4))
    for axis, (key, label) in zip(axes, panels, strict=True):
        for model in sorted({r["model"] for r in rows}):
            series = sorted((r for r in rows if r["model"] == model), key=lambda r: r["nodes"])
            axis.plot([r["nodes"] for r in series], [r[key] for r in series], marker="o", label=model)
        axis.set_xlabel("nodes (trained at 16)")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
