"""`rater serve`: authorizations per second and latency over HTTP, beside the CLI's cost.

What it does, on a Redis database of its own (flushed before and after):

- lays out 100 resellers with one SIP account each on a one-prefix tariff, and a switch token
  acting for all of them;
- starts `rater serve --workers 2` (uvicorn, the production settings) on a free port;
- offers fixed loads in open loop with an async HTTP client (aiohttp on uvloop, in a process
  of its own): request i is sent at t0 + i / rate whether or not earlier ones came back, and
  its latency runs from that scheduled time, so a server falling behind shows as latency
  instead of quietly lowering the load (no coordinated omission). Each authorization names a
  random account of the 100;
- measures the most authorizations per second with Debian's `wrk` (closed loop, 32
  connections; C, so the load tool takes little of the two cores), when installed;
- baselines: one `rater authorize` process per call (what a switch had before), and the
  Authorizer called in-process without HTTP (what the service cannot beat).

Reservations are dropped every 100 ms by a helper thread (their entries, expiry index and
totals deleted together), as the debits of ended calls would: without that, each account
reaches its most calls at once (RATER_MAX_CALLS_PER_ACCOUNT) and is refused. What a call costs
no longer depends on how many are up (reserve.lua keeps running totals), so the thread only
keeps the accounts under that limit.

Redis waits: the in-process baseline also counts how often one account authorization waits for
Redis (a command, or a pipeline of them); docs/SERVE.md explains why that number decides
the speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer
from rater.redis import connection as redis_client
from rater.serve.credentials import Credentials
from rater.serve.domain import polled_rates
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

TITLE = "HTTP service: authorizations per second and latency"
NEEDS_STACK = True

RATER = Path(sys.executable).with_name("rater")
ACCOUNTS = 100
CALLEE = "31612345678"
TARGET_RATE = 2_000.0
TARGET_P99_MS = 10.0
TARGET_P99_AT = 500
WAITS = "Redis waits per account authorization (in-process)"


def run(ctx: BenchContext) -> BenchReport:
    settings = _isolated(ctx.settings)
    client: Any = redis_client.connect(settings)
    client.flushdb()
    loads = [100, 300] if ctx.quick else [250, 500, 1000, 2000]
    seconds = 2.0 if ctx.quick else 5.0
    report = BenchReport(
        title=TITLE,
        params={
            "accounts (one per reseller)": ACCOUNTS,
            "serve workers": 2,
            "seconds per offered load": seconds,
            "load tool": "aiohttp open loop; wrk for saturation",
        },
    )
    try:
        token = _world(settings, client)
        cli_s = _cli_baseline(settings, 2 if ctx.quick else 5)
        direct_s, direct_cpu = _in_process(settings, client, 200 if ctx.quick else 2_000)
        report.params[WAITS] = _waits(settings)
        port = _free_port()
        process = _serve(settings, port)
        stop = threading.Event()
        cleaner = threading.Thread(target=_drop_reservations, args=(client, stop), daemon=True)
        cleaner.start()
        try:
            _wait_up(port, process)
            _open_loop(port, token, 100, 1.0)  # warm-up: connections, caches, scripts
            points = [
                _measured(port, token, rate, seconds, pid=process.pid, client=client)
                for rate in loads
            ]
            before = _cpu(process.pid, client)
            saturated, answered = _wrk(port, token, 2.0 if ctx.quick else 8.0)
            after = _cpu(process.pid, client)
            _, refused = _wrk(port, token, 2.0 if ctx.quick else 4.0, refused=True)
            http_cpu = (_cpu(process.pid, client)[0] - after[0]) / max(refused, 1)
        finally:
            stop.set()
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        cleaner.join(5)
        _report(report, points, saturated, cli_s, direct_s)
        if answered:
            _cpu_report(report, before, after, answered, direct_cpu=direct_cpu, http_cpu=http_cpu)
        report.params["load average (1 min) after the run"] = os.getloadavg()[0]
    finally:
        client.flushdb()
        client.close()
    return report


def _report(
    report: BenchReport,
    points: list[tuple[int, dict[str, float]]],
    saturated: float | None,
    cli_s: float,
    direct_s: float,
) -> None:
    cli_rate = 1 / cli_s
    for rate, point in points:
        target = f"p99 <= {TARGET_P99_MS:g} ms" if rate == TARGET_P99_AT else None
        report.measurements.append(
            Measurement(
                f"offered {rate}/s: achieved",
                point["achieved"],
                "authorizations/s",
                "rater authorize (a process per call)",
                cli_rate,
            )
        )
        report.measurements.append(
            Measurement(
                f"offered {rate}/s: p50 / p99 latency",
                point["p99_ms"],
                f"ms p99 (p50 {point['p50_ms']:.2f} ms, {point['errors']:.0f} failed, "
                f"{point['cpu_us']:.0f} us serve CPU each)",
                "rater authorize, one call",
                cli_s * 1000,
                target=target,
                higher_is_better=False,
            )
        )
    best = max([p["achieved"] for _, p in points if p["p99_ms"] < 100] or [0.0])
    if saturated is not None:
        best = max(best, saturated)
        report.measurements.append(
            Measurement(
                "saturation (wrk, 32 connections)",
                saturated,
                "authorizations/s",
                "rater authorize (a process per call)",
                cli_rate,
                target=f">= {TARGET_RATE:,.0f}/s",
            )
        )
    report.measurements.append(
        Measurement(
            "in-process Authorizer, one thread (no HTTP)",
            1 / direct_s,
            "authorizations/s",
            "rater authorize (a process per call)",
            cli_rate,
        )
    )
    report.notes.append(
        f"Most authorizations per second seen: {best:,.0f} (target {TARGET_RATE:,.0f}). "
        f"One authorization in-process costs {direct_s * 1e6:,.0f} us of one thread, nearly "
        f"all of it redis-py round trips ({report.params[WAITS]} waits for Redis for an "
        "account with the service's rates); the "
        f"CLI costs {cli_s * 1000:,.0f} ms a call, mostly interpreter start and imports."
    )


# ------------------------------------------------------------------------------ set-up
def _isolated(base: Settings) -> Settings:
    db = (base.redis_db + 11) % 16
    return base.replace(redis_url=base.redis_url.rsplit("/", 1)[0] + f"/{db}", log_level="WARNING")


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATER_")}
    for field in dataclasses.fields(settings):
        env[f"RATER_{field.name.upper()}"] = str(getattr(settings, field.name))
    return env


def _world(settings: Settings, client: Any) -> str:
    store = TariffStore(client, settings, clickhouse=False)
    store.save(
        TariffTable(
            "bench-sell",
            decimals=4,
            steps=Steps(60, 60),
            rows=(TariffRow("31", "NL", rate=100_000),),
        ),
        owner="R0",
    )
    store.save(TariffTable("bench-buy", decimals=6, steps=Steps(1, 1),
                           rows=(TariffRow("31", "NL", rate=40_000),)))  # fmt: skip
    accounts = Accounts(settings, client)
    for i in range(ACCOUNTS):
        accounts.create_reseller(f"R{i}", "bench", credit="1000000", buy_tariff="bench-buy")
        # a reseller's customers get its own tables (docs/DESIGN.md section 1, "Tariff
        # owners"): one sell table for all is the operator's, so R0 owns it and the others
        # sell at their buy table, rated the same way
        accounts.create_customer(
            f"C{i}", "bench", reseller_id=f"R{i}", tariff="bench-sell" if i == 0 else "bench-buy",
            balance="100000",
        )  # fmt: skip
    credentials = Credentials(client)
    credentials.set_scope("bench", resellers=["*"])
    return credentials.create_token("bench").token


def _reservation_keys() -> list[str]:
    """Every reservation key of the bench's accounts: entries, expiry index, totals (the last
    two do not exist before docs/SERVE.md's rewrite of reserve.lua; deleting them is a no-op
    there, so the same bench measures both layouts)."""
    return [f"{{r:R{i}}}:rsv{kind}:{level}:{who}{i}" for i in range(ACCOUNTS)
            for level, who in (("r", "R"), ("c", "C")) for kind in ("", "exp", "sum")]  # fmt: skip


def _drop_reservations(client: Any, stop: threading.Event) -> None:
    names = _reservation_keys()
    while not stop.wait(0.1):
        client.delete(*names)


# ------------------------------------------------------------------------------ baselines
def _cli_baseline(settings: Settings, repeats: int) -> float:
    """Median wall seconds of one `rater authorize` process."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [str(RATER), "authorize", "--account", "C1", "--callee", CALLEE,
             "--max-seconds", "60", "--json"],
            env=_env(settings), check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _in_process(settings: Settings, client: Any, n: int) -> tuple[float, float]:
    """Wall and CPU seconds per authorization by the Authorizer itself (no HTTP), with rates
    read as the service reads them."""
    authorizer = Authorizer(settings, client, rates=polled_rates(client, settings))
    for i in range(50):
        authorizer.authorize(account=f"C{i % ACCOUNTS}", callee=CALLEE, max_seconds=60)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        if i % 100 == 0:
            _drop_now(client)
        authorizer.authorize(account=f"C{i % ACCOUNTS}", callee=CALLEE, max_seconds=60)
    elapsed, cpu = (time.perf_counter() - started) / n, (time.process_time() - cpu) / n
    _drop_now(client)
    return elapsed, cpu


def _waits(settings: Settings) -> int:
    """How often one account authorization (after the first of its process) waits for Redis:
    commands sent alone and pipelines, counted on a client of its own."""
    client: Any = redis_client.connect(settings)
    authorizer = Authorizer(settings, client, rates=polled_rates(client, settings))
    authorizer.authorize(account="C1", callee=CALLEE, max_seconds=60)
    waits = 0
    send, make_pipeline = client.execute_command, client.pipeline

    def execute_command(*args: Any, **options: Any) -> Any:
        nonlocal waits
        waits += 1
        return send(*args, **options)

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted(*a: Any, **k: Any) -> Any:
            nonlocal waits
            waits += 1
            return execute(*a, **k)

        pipe.execute = counted
        return pipe

    client.execute_command, client.pipeline = execute_command, pipeline
    authorizer.authorize(account="C2", callee=CALLEE, max_seconds=60)  # its reseller looked up
    waits = 0
    authorizer.authorize(account="C2", callee=CALLEE, max_seconds=60)
    client.close()
    _drop_now(redis_client.connect(settings))
    return waits


def _drop_now(client: Any) -> None:
    client.delete(*_reservation_keys())


# ------------------------------------------------------------------------------ the service
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(RATER), "serve", "--port", str(port), "--workers", "2"],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("rater serve exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("rater serve did not start within 60 s")


def _measured(
    port: int, token: str, rate: int, seconds: float, *, pid: int, client: Any
) -> tuple[int, dict[str, float]]:
    """One offered load, with the serve workers' CPU per answered request."""
    before = _cpu(pid, client)[0]
    point = _open_loop(port, token, rate, seconds)
    point["cpu_us"] = (_cpu(pid, client)[0] - before) / max(point["answered"], 1) * 1e6
    return rate, point


def _open_loop(port: int, token: str, rate: int, seconds: float) -> dict[str, float]:
    """One offered load, driven from a child process (its CPU is not this one's)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, float] = pool.apply(_drive, (port, token, rate, seconds))
    return result


def _drive(port: int, token: str, rate: int, seconds: float) -> dict[str, float]:
    import aiohttp
    import uvloop

    async def main() -> dict[str, float]:
        url = f"http://127.0.0.1:{port}/v1/authorize"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        total = int(rate * seconds)
        latencies = np.full(total, np.nan)
        allowed = 0
        errors = 0
        connector = aiohttp.TCPConnector(limit=512)
        async with aiohttp.ClientSession(connector=connector) as session:
            # perf_counter, not loop.time(): uvloop's clock has millisecond steps
            t0 = time.perf_counter() + 0.05

            async def one(i: int) -> None:
                nonlocal allowed, errors
                at = t0 + i / rate
                body = f'{{"account":"C{random.randrange(ACCOUNTS)}","callee":"{CALLEE}"}}'
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        answer = await response.json()
                        if response.status == 200 and answer["allowed"]:
                            allowed += 1
                        else:
                            errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    return
                latencies[i] = time.perf_counter() - at

            tasks = []
            for i in range(total):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - t0
        done = latencies[~np.isnan(latencies)]
        return {
            "achieved": allowed / elapsed,
            "p50_ms": float(np.percentile(done, 50) * 1000) if done.size else float("nan"),
            "p99_ms": float(np.percentile(done, 99) * 1000) if done.size else float("nan"),
            "errors": float(errors),
            "answered": float(done.size),
        }

    uvloop.install()
    return asyncio.run(main())


def _wrk(
    port: int, token: str, seconds: float, *, refused: bool = False
) -> tuple[float | None, int]:
    """Requests per second at saturation by wrk, and how many it sent (None, 0 without wrk).
    refused: bodies without a callee, answered 400 after the token check and the body's
    fields (what the HTTP layer costs without an account call)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None, 0
    callee = "" if refused else f',"callee":"{CALLEE}"'
    script = (
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        f'  return wrk.format(nil, nil, nil, \'{{"account":"C\' .. (n % {ACCOUNTS}) .. '
        f"'\"{callee}}}')\n"
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            [wrk, "-t1", "-c32", f"-d{seconds:g}s", "-s", handle.name,
             f"http://127.0.0.1:{port}/v1/authorize"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(handle.name)
    if "Non-2xx" in out and not refused:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    return (float(rate.group(1)) if rate else None), (int(count.group(1)) if count else 0)


# ------------------------------------------------------------------------------ CPU
def _cpu(parent: int, client: Any) -> tuple[float, float]:
    """CPU seconds used so far by the serve worker processes and by Redis."""
    tick = os.sysconf("SC_CLK_TCK")
    workers = 0.0
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in [parent, *map(int, children)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        workers += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    info = client.info("cpu")
    return workers, float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _cpu_report(
    report: BenchReport,
    before: tuple[float, float],
    after: tuple[float, float],
    n: int,
    *,
    direct_cpu: float,
    http_cpu: float,
) -> None:
    """CPU per authorization does not depend on what else shares the cores; wall rates do."""
    serve_us = (after[0] - before[0]) / n * 1e6
    redis_us = (after[1] - before[1]) / n * 1e6
    capacity = 2 / ((serve_us + redis_us) / 1e6)
    report.measurements.append(
        Measurement(
            "CPU per authorization: serve workers",
            serve_us,
            "us",
            "the Authorizer alone, in-process",
            direct_cpu * 1e6,
            higher_is_better=False,
        )
    )
    report.measurements.append(
        Measurement("CPU per authorization: Redis", redis_us, "us", higher_is_better=False)
    )
    report.measurements.append(
        Measurement(
            "CPU per request answered 400 after the token check (the HTTP layer alone)",
            http_cpu * 1e6,
            "us",
            higher_is_better=False,
        )
    )
    report.measurements.append(
        Measurement(
            "capacity of two dedicated cores (2 / CPU per authorization)",
            capacity,
            "authorizations/s",
            target=f">= {TARGET_RATE:,.0f}/s",
        )
    )
    report.notes.append(
        f"Under saturation each authorization took {serve_us:,.0f} us of the serve workers' "
        f"CPU and {redis_us:,.0f} us of Redis' ({n:,} requests by wrk); the Authorizer alone "
        f"takes {direct_cpu * 1e6:,.0f} us of CPU in-process, so HTTP, JSON and the token check "
        f"are the other {max(serve_us - direct_cpu * 1e6, 0):,.0f} us. Two cores given to "
        f"nothing else would answer about {capacity:,.0f} a second; the wall rates above are "
        "lower when other processes share the cores (see the load average)."
    )
