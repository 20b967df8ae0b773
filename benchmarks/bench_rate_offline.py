"""`rater rate`, the offline rater: CDRs per second of the whole process, start-up included.

A JSONL file of CDR messages (5,000,000 lines; 300,000 quick) and a deck of 20,000 prefixes
(three step kinds, 4 decimals) are written in the run; `rater rate` runs as a child process
over them, as a user would run it: `--jobs 0` (one job per core) beside `--jobs 1` in the same
run. Both outputs must be the same bytes, and the first lines' output must equal the
reference engine's (`--engine reference`, the plain-Python Decimal rater) or the run fails.
CPU seconds are the children's (getrusage), so they count every job.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import BenchContext, BenchReport, Measurement

TITLE = "rater rate: a JSONL file rated offline, whole process"
NEEDS_STACK = False

PREFIXES = 20_000
#: lines checked against the reference engine (about 20 us a line there)
REFERENCE_LINES = 20_000


def write_inputs(folder: Path, lines: int, prefixes: int = PREFIXES, seed: int = 3) -> None:
    """deck.csv (prefixes of 2-6 digits) and cdrs.jsonl (a third unanswered, 1% to no prefix)."""
    rng = np.random.default_rng(seed)
    codes: set[str] = set()
    while len(codes) < prefixes:
        digits = rng.integers(0, 10, int(rng.integers(1, 6))).tolist()
        codes.add(str(int(rng.integers(1, 10))) + "".join(map(str, digits)))
    deck = sorted(codes)
    steps = ("60/60", "30/6", "1/1")
    with (folder / "deck.csv").open("w") as out:
        out.write("prefix,destination,rate,connect_fee,steps,first_rate,effective_from\n")
        for i, code in enumerate(deck):
            out.write(f"{code},Dest {i},0.{int(rng.integers(1, 9999)):04d},,{steps[i % 3]},,\n")
    chunk = 500_000
    with (folder / "cdrs.jsonl").open("wb") as out:
        for first in range(0, lines, chunk):
            n = min(chunk, lines - first)
            pick = rng.integers(0, len(deck), n).tolist()
            tails = rng.integers(10**6, 10**8, n).tolist()
            bills = np.where(rng.random(n) < 0.33, 0, rng.geometric(1 / 120, n)).tolist()
            starts = (1_790_000_000 + rng.integers(0, 86_400, n)).tolist()
            nowhere = (rng.random(n) < 0.01).tolist()
            text = []
            for i in range(n):
                start, billsec = starts[i], bills[i]
                callee = f"+999{tails[i]}" if nowhere[i] else f"+{deck[pick[i]]}{tails[i]}"
                answer = str(start + 5) if billsec else '""'
                disposition = "ANSWERED" if billsec else "NO ANSWER"
                text.append(
                    f'{{"cdr_id":"c{first + i}","switch":"sw1","account":"a{i % 500}",'
                    f'"caller":"+3120555{i % 10_000:04d}","callee":"{callee}",'
                    f'"start_time":{start},"answer_time":{answer},'
                    f'"end_time":{start + 5 + billsec},"billsec":{billsec},'
                    f'"disposition":"{disposition}"}}\n'
                )
            out.write("".join(text).encode())


def _rate(
    folder: Path, output: Path, *args: str, source: str = "cdrs.jsonl"
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its jobs) of one `rater rate`."""
    command = [
        sys.executable, "-c", "from rater.cli.main import main; main()", "rate",
        "--tariff", str(folder / "deck.csv"),
        "--input", str(folder / source), "--output", str(output), *args,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(ctx: BenchContext) -> BenchReport:
    lines = 300_000 if ctx.quick else 5_000_000
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, lines)
        size = (folder / "cdrs.jsonl").stat().st_size
        # the reference engine on the first lines: the kernel's output must be the same bytes
        head = folder / "head.jsonl"
        with (folder / "cdrs.jsonl").open("rb") as source, head.open("wb") as out:
            for _ in range(REFERENCE_LINES):
                out.write(source.readline())
        _rate(folder, folder / "head-ref.jsonl", "--engine", "reference", source="head.jsonl")
        _rate(folder, folder / "head-kernel.jsonl", "--jobs", "0", source="head.jsonl")
        if (folder / "head-ref.jsonl").read_bytes() != (folder / "head-kernel.jsonl").read_bytes():
            raise AssertionError("the kernel's output differs from the reference engine's")
        one_wall, one_cpu = _rate(folder, folder / "one.jsonl", "--jobs", "1")
        all_wall, all_cpu = _rate(folder, folder / "all.jsonl", "--jobs", "0")
        if (folder / "one.jsonl").read_bytes() != (folder / "all.jsonl").read_bytes():
            raise AssertionError("--jobs 0 and --jobs 1 wrote different bytes")
    return BenchReport(
        title=TITLE,
        measurements=[
            Measurement(
                f"rater rate --jobs 0 ({cores} jobs), whole process",
                lines / all_wall,
                "CDRs/s",
                "--jobs 1",
                lines / one_wall,
                target=">= 500,000 CDRs/s on 5M lines",
            ),
            Measurement(
                "CPU per CDR, all jobs, start-up included",
                1e6 * all_cpu / lines,
                "us",
                "--jobs 1",
                1e6 * one_cpu / lines,
                higher_is_better=False,
            ),
            Measurement("input read", size / all_wall / 1e6, "MB/s"),
        ],
        notes=[
            "Wall time of the whole command, from start to exit: imports, reading and compiling "
            "the deck, loading the kernel, every line decoded by the stream's decoder "
            "(rater.pipeline.decode), normalised, rated and written. With --jobs the parent "
            "reads blocks of whole lines (4 MiB) and writes each block's output in input "
            "order; forked jobs decode and rate. On a machine shared with other work the wall "
            "figures move by tens of percent between runs; CPU per CDR moves less.",
            f"The first {REFERENCE_LINES:,} lines were rated by both engines: same bytes.",
        ],
        params={"lines": lines, "prefixes": PREFIXES, "cores": cores, "file MB": size // 10**6},
    )
