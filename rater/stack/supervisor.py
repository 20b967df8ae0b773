"""Start and stop local service processes, remembered by PID files under the state folder.

A PID file holds the PID, the process start time (clock ticks since boot, from /proc) and the
command line. `down` signals a PID only when all three still match, so a PID that the kernel
reused for some other program after a reboot or a crash is never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rater.errors import StackError

#: Popen objects of children started by this process: kept so they can be reaped, and so
#: garbage collection does not warn that a (deliberately) still-running child was dropped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class PidRecord:
    """What a PID file says about a process this stack started."""

    pid: int
    start_ticks: int
    argv: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(
            {"pid": self.pid, "start_ticks": self.start_ticks, "argv": list(self.argv)}
        )

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        """The record in path, or None when the file is missing or unreadable."""
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["start_ticks"]), tuple(data["argv"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _proc_start_ticks(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot; None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the full line


def _proc_argv(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def alive(record: PidRecord) -> bool:
    """True when the recorded process still runs and is the program that was started."""
    _reap(record.pid)
    if _proc_start_ticks(record.pid) != record.start_ticks:
        return False
    argv = _proc_argv(record.pid)
    # a program may rewrite its own argv (redis-server does: "redis-server 127.0.0.1:16379"),
    # so compare the executable's base name only; the start time already pins the process
    if not argv:
        return False
    return Path(argv[0].split()[0]).name == Path(record.argv[0]).name


def running(pid_file: Path) -> PidRecord | None:
    """The record of a live process started by us, else None (a stale file is removed)."""
    record = PidRecord.read(pid_file)
    if record is None:
        return None
    if alive(record):
        return record
    pid_file.unlink(missing_ok=True)
    return None


def start(
    argv: list[str], *, pid_file: Path, log_file: Path, cwd: Path, env: dict[str, str] | None = None
) -> PidRecord:
    """Start argv detached from this process (own session: it survives the CLI exiting)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(
            f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode()
        )
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            raise StackError(f"cannot start {argv[0]}: {error}") from error
    _CHILDREN[proc.pid] = proc
    ticks = _proc_start_ticks(proc.pid)
    if ticks is None:
        proc.wait()
        raise StackError(f"{argv[0]} exited at once (status {proc.returncode}); see {log_file}")
    record = PidRecord(proc.pid, ticks, tuple(argv))
    pid_file.write_text(record.to_json())
    return record


def stop(pid_file: Path, *, timeout_s: float = 30.0) -> int | None:
    """SIGTERM the recorded process, SIGKILL it after timeout_s; returns the PID stopped."""
    record = running(pid_file)
    if record is None:
        pid_file.unlink(missing_ok=True)
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(record):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        while alive(record):
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return record.pid


def exited(record: PidRecord) -> bool:
    """True when a process we started has died (used while waiting for it to answer)."""
    return not alive(record)


def _reap(pid: int) -> None:
    """Collect the exit status of our own child so it does not linger as a zombie."""
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file (empty when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
