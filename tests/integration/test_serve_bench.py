"""benchmarks/bench_serve.py end to end at quick sizes: the service answers every offered
authorization and the report carries the baseline and the CPU split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import bench_serve
from benchmarks.harness import BenchContext
from rater.settings import Settings

pytestmark = pytest.mark.integration


def test_quick_run_reports_loads_and_baselines(kafka_topics: Settings, tmp_path: Path) -> None:
    report = bench_serve.run(BenchContext(settings=kafka_topics, out_dir=tmp_path, quick=True))
    found = {m.name: m for m in report.measurements}
    achieved = found["offered 100/s: achieved"]
    assert achieved.value > 80  # open loop at 100/s for 2 s: (nearly) all answered
    assert achieved.baseline_name == "rater authorize (a process per call)"
    assert achieved.baseline_value is not None
    assert achieved.baseline_value < 10
    assert "offered 300/s: p50 / p99 latency" in found
    assert "in-process Authorizer, one thread (no HTTP)" in found
    if shutil.which("wrk"):
        assert found["saturation (wrk, 32 connections)"].value > 0
        assert found["CPU per authorization: serve workers"].value > 0
