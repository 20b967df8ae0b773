"""Run every benchmarks/bench_*.py module and write benchmarks/RESULTS.md from their reports.

    python -m benchmarks                      every module, writes benchmarks/RESULTS.md
    python -m benchmarks --quick --only debit small sizes, one module, prints the markdown

Each module runs in a child process (a crash, a hang or a numba compile error in one module
cannot take the others down; a hang is cut at --timeout). A failing module is reported in
RESULTS.md with its error, never dropped. Modules with NEEDS_STACK get the settings of the
running stack (RATER_*); when it does not answer they fail with that reason.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse
from rater.errors import RaterError
from rater.redis import connection as redis_client
from rater.settings import Settings

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PLOTS = HERE / "plots"
PACKAGES = (
    "numpy",
    "numba",
    "aiokafka",
    "redis",
    "hiredis",
    "clickhouse-driver",
    "orjson",
    "cramjam",
    "chdb",
)


@dataclass
class Outcome:
    """What one module produced: a report, or the error that stopped it."""

    module: str
    title: str
    seconds: float
    report: BenchReport | None = None
    error: str = ""
    skipped_stack: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def discover() -> list[str]:
    """Module names (bench_*), sorted."""
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def select(modules: list[str], only: list[str]) -> list[str]:
    """Modules named by --only (with or without the bench_ prefix); all when none given."""
    if not only:
        return modules
    wanted = {name if name.startswith("bench_") else f"bench_{name}" for name in only}
    unknown = wanted - set(modules)
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {', '.join(modules)}"
        )
    return [m for m in modules if m in wanted]


# ---------------------------------------------------------------------------------- child side
def run_child(module_name: str, quick: bool, result_path: Path) -> int:
    """Run one module in this (child) process and pickle its report or error to result_path."""
    module = importlib.import_module(f"benchmarks.{module_name}")
    settings = Settings.from_env()
    # a quick run's plots go beside its pickled result: benchmarks/plots/ holds the full run's
    out_dir = result_path.parent / "plots" if quick else PLOTS
    out_dir.mkdir(exist_ok=True)
    ctx = BenchContext(settings=settings, out_dir=out_dir, quick=quick)
    payload: dict[str, object]
    try:
        report = module.run(ctx)
        if not isinstance(report, BenchReport):
            raise TypeError(f"run() returned {type(report).__name__}, not BenchReport")
        payload = {"report": report}
    except Exception:  # reported in RESULTS.md, with its traceback
        payload = {"error": traceback.format_exc(limit=8)}
    result_path.write_bytes(pickle.dumps(payload))
    return 0


# --------------------------------------------------------------------------------- parent side
def stack_problem(settings: Settings) -> str:
    """Why the stack cannot serve NEEDS_STACK modules ('' when it answers)."""
    from rater.stack import broker  # the probe lives with the stack's broker

    problems = []
    for probe in (broker.probe, redis_client.ping, clickhouse.ping):
        try:
            probe(settings)
        except RaterError as error:
            problems.append(str(error))
    return "; ".join(problems)


def needs_stack(module_name: str) -> tuple[str, bool]:
    """TITLE and NEEDS_STACK of a module, read by importing it (cheap: run() is not called)."""
    module = importlib.import_module(f"benchmarks.{module_name}")
    return str(getattr(module, "TITLE", module_name)), bool(getattr(module, "NEEDS_STACK", False))


def run_module(module_name: str, quick: bool, timeout_s: float, stack_down: str) -> Outcome:
    started = time.perf_counter()
    try:
        title, stack = needs_stack(module_name)
    except Exception:
        return Outcome(module_name, module_name, 0.0, error=traceback.format_exc(limit=6))
    if stack and stack_down:
        return Outcome(
            module_name, title, 0.0, error=f"needs the stack, which does not answer: {stack_down}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.pickle"
        command = [sys.executable, "-m", "benchmarks.runner", "--child", module_name, str(result)]
        if quick:
            command.append("--quick")
        try:
            proc = subprocess.run(command, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return Outcome(
                module_name, title, timeout_s, error=f"did not finish within {timeout_s:.0f} s"
            )
        seconds = time.perf_counter() - started
        if not result.exists():
            return Outcome(
                module_name,
                title,
                seconds,
                error=f"child process died (exit status {proc.returncode})",
            )
        payload = pickle.loads(result.read_bytes())
    if "error" in payload:
        return Outcome(module_name, title, seconds, error=str(payload["error"]))
    report = payload["report"]
    return Outcome(module_name, report.title or title, seconds, report=report)


# ------------------------------------------------------------------------------- the markdown
def fmt(value: float | None) -> str:
    """Readable numbers: thousands separators for big ones, 3 significant digits for small."""
    if value is None:
        return ""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def measurement_row(m: Measurement) -> str:
    ratio = m.ratio
    baseline = f"{m.baseline_name}: {fmt(m.baseline_value)}" if m.baseline_name else ""
    ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
    return (
        f"| {m.name} | {fmt(m.value)} | {m.unit} | {baseline} | {ratio_text} | {m.target or ''} |"
    )


def machine() -> list[str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return [
        f"- cores: {os.cpu_count()}, CPU: {cpu}, memory: {memory}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; " + ", ".join(versions),
    ]


def servers(settings: Settings) -> str:
    parts = []
    for name, probe in (("ClickHouse", clickhouse.ping), ("Redis", redis_client.ping)):
        try:
            parts.append(f"{name} {probe(settings)}")
        except RaterError:
            parts.append(f"{name} not reachable")
    try:
        from rater.stack import broker

        out = subprocess.run(
            [str(broker.tansu_binary()), "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        parts.append(out.stdout.strip() or "tansu (version unknown)")
    except (RaterError, OSError, subprocess.SubprocessError):
        parts.append("broker version unknown")
    return (
        f"- servers: {', '.join(parts)} (Kafka at {settings.kafka_bootstrap}, "
        f"Redis at {settings.redis_url}, ClickHouse at {settings.clickhouse_host}:"
        f"{settings.clickhouse_port})"
    )


def render(outcomes: list[Outcome], command: str, quick: bool, settings: Settings) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        "Written by the benchmark runner (`make bench`); do not edit by hand.",
        "",
        f"- command: `{command}`" + (" (quick sizes)" if quick else ""),
        f"- date: {now}",
        *machine(),
        servers(settings),
        "",
        "| module | title | status | wall time |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        status = "ok" if o.report else "FAILED"
        lines.append(f"| `{o.module}` | {o.title} | {status} | {o.seconds:.1f} s |")
    for o in outcomes:
        lines += ["", f"## {o.title} (`{o.module}`)", ""]
        if o.report is None:
            lines += ["**Failed:**", "", "```", o.error.rstrip(), "```"]
            continue
        report = o.report
        if report.params:
            lines.append(
                "Parameters: " + ", ".join(f"{k} = `{v}`" for k, v in report.params.items())
            )
            lines.append("")
        lines += [
            "| measurement | value | unit | baseline | ratio | target |",
            "|---|---|---|---|---|---|",
            *(measurement_row(m) for m in report.measurements),
        ]
        for note in report.notes:
            lines += ["", note]
        for plot in report.plots:
            path = Path(plot)
            with contextlib.suppress(ValueError):
                path = path.resolve().relative_to(HERE)
            lines += ["", f"![{path.stem}]({path.as_posix()})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds per module)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this module (repeatable)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="write the markdown here (default: RESULTS.md for a full run, stdout otherwise)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per module (default 1800, quick 300)"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODULE", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child[0], args.quick, Path(args.child[1]))

    modules = select(discover(), args.only)
    settings = Settings.from_env()
    stack_down = stack_problem(settings)
    timeout_s = args.timeout or (300.0 if args.quick else 1800.0)
    outcomes = []
    for name in modules:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        outcome = run_module(name, args.quick, timeout_s, stack_down)
        state = "ok" if outcome.report else "FAILED: " + outcome.error.strip().splitlines()[-1]
        print(f"[bench] {name}: {state} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    partial = args.quick or bool(args.only)
    output = args.output or (None if partial else RESULTS)
    # only a full run rewrites benchmarks/plots/ (beside RESULTS.md); a partial one puts its
    # plot beside its own output, or nowhere when it prints
    plot_dir = PLOTS if not partial else (output.parent / "plots" if output else None)
    with contextlib.suppress(Exception):  # a plot must never cost RESULTS.md its numbers
        from benchmarks import plots  # matplotlib: imported only when a run is over

        reports = {o.module: o.report for o in outcomes if o.report}
        summary = plots.stage_summary(reports, plot_dir) if plot_dir else None
        if summary is not None:
            outcomes.append(Outcome("plots", summary.title, 0.0, report=summary))
    command = "python -m benchmarks" + (
        f" {' '.join(argv or sys.argv[1:])}" if (argv or sys.argv[1:]) else ""
    )
    text = render(outcomes, command, args.quick, settings)
    if output is None:
        print(text)
    else:
        output.write_text(text)
        print(f"[bench] wrote {output}", file=sys.stderr)
    return 0 if all(o.report for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
