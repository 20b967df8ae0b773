"""The benchmark runner: a real module end to end on the stack, and how failures are shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import runner
from benchmarks.harness import BenchReport, Measurement
from rater.settings import Settings


@pytest.mark.integration
def test_quick_run_of_one_module_writes_markdown(kafka_topics: Settings, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    status = runner.main(["--quick", "--only", "clickhouse_insert", "--output", str(out)])
    text = out.read_text()
    assert status == 0, text
    assert "| `bench_clickhouse_insert` |" in text
    assert "| rated_cdrs copy, columnar numpy |" in text
    assert "row tuples:" in text
    assert "cores: " in text
    assert "ClickHouse 18.16" in text or "ClickHouse " in text


def test_failed_module_is_reported_with_its_error() -> None:
    good = BenchReport(
        title="Good",
        measurements=[Measurement("fast", 2_000_000.0, "rows/s", "slow", 500_000.0, ">= 1")],
        params={"rows": 10},
        notes=["why it is fast"],
    )
    outcomes = [
        runner.Outcome("bench_good", "Good", 1.0, report=good),
        runner.Outcome("bench_bad", "Bad", 0.5, error="Traceback ...\nValueError: broken input"),
    ]
    text = runner.render(outcomes, "python -m benchmarks", quick=False, settings=Settings())
    assert "| `bench_bad` | Bad | FAILED | 0.5 s |" in text
    assert "ValueError: broken input" in text
    assert "| fast | 2,000,000 | rows/s | slow: 500,000 | 4.00x | >= 1 |" in text
    assert "why it is fast" in text


def test_only_accepts_names_with_or_without_prefix() -> None:
    modules = ["bench_a", "bench_b"]
    assert runner.select(modules, ["a"]) == ["bench_a"]
    assert runner.select(modules, ["bench_b"]) == ["bench_b"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        runner.select(modules, ["c"])
