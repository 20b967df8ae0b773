"""PNG plots for RESULTS.md (matplotlib, Agg backend: no display needed).

Module plots (called from a benchmark's run, returned in BenchReport.plots):
    workers_plot    end-to-end throughput against worker processes
    latency_plot    latency distribution (histogram and percentiles) of a paced run
    stage_share_plot  share of a batch's time per pipeline stage
Runner plot (after every module ran, from their reports):
    stage_baselines_plot  each stage's throughput beside its baseline, from the modules that
                          measure them (decode, kernel, debit, ClickHouse insert)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from benchmarks.harness import BenchReport, Measurement

#: module -> stage label, for the runner plot (first measurement with a baseline in CDRs/s
#: or rows/s)
STAGE_MODULES = {
    "bench_decode": "decode",
    "bench_kernel": "rate",
    "bench_debit": "debit",
    "bench_clickhouse_insert": "store",
}


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def workers_plot(out_dir: Path, points: Sequence[tuple[int, float]]) -> Path:
    """Throughput (CDRs/s) against worker processes (= partitions)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    workers = [w for w, _ in points]
    rates = [r for _, r in points]
    ax.plot(workers, rates, marker="o", label="measured")
    if points:
        ideal = [rates[0] * w / workers[0] for w in workers]
        ax.plot(workers, ideal, linestyle="--", color="grey", label="linear from 1 worker")
    for w, r in points:
        ax.annotate(f"{r:,.0f}", (w, r), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel("partitions = worker processes")
    ax.set_ylabel("CDRs/s (end to end)")
    ax.set_xticks(workers)
    ax.set_ylim(bottom=0)
    ax.set_title("rater run --workers N")
    ax.legend()
    return _save(fig, out_dir / "scaling_workers.png")


def latency_plot(out_dir: Path, latencies_ms: npt.NDArray[np.float64], rate: float) -> Path:
    """Histogram of publish -> committed latency with p50/p90/p99 marked."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(latencies_ms, bins=50, color="tab:blue", alpha=0.8)
    for q, style in ((50, "-"), (90, "--"), (99, ":")):
        value = float(np.percentile(latencies_ms, q))
        ax.axvline(value, color="black", linestyle=style, label=f"p{q} {value:,.0f} ms")
    ax.set_xlabel("publish -> offsets committed (ms)")
    ax.set_ylabel("sampled CDRs")
    ax.set_title(f"latency, one worker at {rate:,.0f} CDRs/s")
    ax.legend()
    return _save(fig, out_dir / "latency.png")


def stage_share_plot(out_dir: Path, stage_seconds: dict[str, float], records: int) -> Path:
    """Share of batch time per stage (bar) with each stage's own throughput as a label."""
    stages = [s for s, v in stage_seconds.items() if v > 0]
    total = sum(stage_seconds[s] for s in stages) or 1.0
    fig, ax = plt.subplots(figsize=(7, 3.6))
    shares = [stage_seconds[s] / total for s in stages]
    bars = ax.barh(stages, shares, color="tab:green")
    for bar, stage in zip(bars, stages, strict=True):
        rate = records / stage_seconds[stage]
        ax.annotate(
            f"{bar.get_width():.0%}  ({rate:,.0f} CDRs/s alone)",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            textcoords="offset points",
            xytext=(4, -3),
        )
    ax.set_xlim(0, max(shares, default=1) * 1.6)
    ax.invert_yaxis()
    ax.set_xlabel("share of the time per batch")
    ax.set_title("pipeline stages (one worker)")
    return _save(fig, out_dir / "stage_shares.png")


def stage_baselines_plot(out_dir: Path, reports: dict[str, Any]) -> Path | None:
    """Per stage: throughput beside its baseline (log scale), from module reports.

    reports maps module name -> BenchReport; modules missing or failed are left out.
    """
    rows = []
    for module, stage in STAGE_MODULES.items():
        report = reports.get(module)
        if report is None:
            continue
        for m in report.measurements:
            if m.baseline_value and m.unit in ("CDRs/s", "rows/s") and m.higher_is_better:
                rows.append(
                    (stage, m.name, m.value, m.baseline_name or "baseline", m.baseline_value)
                )
                break
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[2] for r in rows], height=0.4, label="rater", color="tab:blue")
    ax.barh(y + 0.2, [r[4] for r in rows], height=0.4, label="baseline", color="tab:grey")
    for i, (_stage, _name, value, base_name, base) in enumerate(rows):
        ax.annotate(f"{value:,.0f} ({value / base:.1f}x)", (value, i - 0.2),
                    textcoords="offset points", xytext=(3, -3), fontsize=8)  # fmt: skip
        ax.annotate(f"{base:,.0f} {base_name}", (base, i + 0.2),
                    textcoords="offset points", xytext=(3, -3), fontsize=7)  # fmt: skip
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_xscale("log")
    ax.set_xlim(right=max(r[2] for r in rows) * 20)  # room for the labels right of the bars
    ax.invert_yaxis()
    ax.set_xlabel("records/s (log scale)")
    ax.set_title("throughput per stage beside its baseline")
    ax.legend(loc="upper right")
    return _save(fig, out_dir / "stage_baselines.png")


def stage_summary(reports: dict[str, Any], out_dir: Path) -> BenchReport | None:
    """A BenchReport for RESULTS.md: each stage's headline number beside its baseline, from the
    modules that measure them, with stage_baselines_plot; None when none of them ran."""
    measurements = []
    for module, stage in STAGE_MODULES.items():
        report = reports.get(module)
        if report is None:
            continue
        for m in report.measurements:
            if m.baseline_value and m.unit in ("CDRs/s", "rows/s") and m.higher_is_better:
                name = f"{stage}: {m.name} (`{module}`)"
                measurements.append(
                    Measurement(name, m.value, m.unit, m.baseline_name, m.baseline_value)
                )
                break
    if not measurements:
        return None
    plot = stage_baselines_plot(out_dir, reports)
    return BenchReport(
        title="Summary: throughput per stage beside its baseline",
        measurements=measurements,
        notes=[
            "Copied from the modules above (same run); each stage's first measurement that "
            "has a baseline."
        ],
        plots=[plot] if plot is not None else [],
    )
