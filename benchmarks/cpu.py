"""CPU seconds of the processes a benchmark runs on: the stack's servers (from their pid files
in the stack folder) and the benchmark's own finished children, read from /proc and getrusage.

CPU time is the steadier figure on a shared machine: other work slows a run's wall clock, not
the CPU seconds the run itself spends."""

from __future__ import annotations

import json
import os
import resource
from dataclasses import dataclass
from pathlib import Path

#: the stack's services and their pid files under the stack folder (rater/stack/)
SERVICES = {"clickhouse": "clickhouse/clickhouse.pid", "redis": "redis/redis.pid",
            "broker": "broker/broker.pid"}  # fmt: skip


def process_cpu_s(pid: int) -> float:
    """utime + stime of a running process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """utime + stime of this process's finished and waited-for children, seconds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stack_pids(stack_dir: Path) -> dict[str, int]:
    """Service name -> pid of the stack's running servers (those with a pid file)."""
    found: dict[str, int] = {}
    for name, relative in SERVICES.items():
        path = stack_dir / relative
        if path.exists():
            found[name] = int(json.loads(path.read_text())["pid"])
    return found


@dataclass
class CpuMeter:
    """CPU seconds spent by named running processes since `start`."""

    pids: dict[str, int]

    def start(self) -> CpuMeter:
        self.before = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        return self

    def read(self, names: list[str] | None = None) -> dict[str, float]:
        """Seconds spent since `start` by the named processes (all when None)."""
        chosen = self.pids if names is None else {n: self.pids[n] for n in names}
        return {name: process_cpu_s(pid) - self.before[name] for name, pid in chosen.items()}
