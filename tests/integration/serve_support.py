"""Running `rater serve` as a subprocess on a free port, and talking to it over real HTTP.

Requests use the standard library's http.client (and raw sockets for slow clients), so the
tests need no HTTP client package. `world()` lays out two resellers with a customer, a card
and tariffs each; `token()` makes a switch token with a scope.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rater.accounts.api import Accounts
from rater.serve.credentials import Credentials, parse_networks
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

RATER = Path(sys.executable).with_name("rater")

SELL = TariffTable(
    name="serve-retail",
    decimals=4,
    steps=Steps(60, 60),
    rows=(TariffRow("31", "Netherlands", rate=100_000),),  # 0.10 a minute
)
BUY = TariffTable(
    name="serve-wholesale",
    decimals=6,
    steps=Steps(1, 1),
    rows=(TariffRow("31", "Netherlands", rate=40_000),),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATER_")}
    for field in dataclasses.fields(settings):
        env[f"RATER_{field.name.upper()}"] = str(getattr(settings, field.name))
    env["RATER_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


@dataclass
class Served:
    """A running `rater serve`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout_s)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve(
    settings: Settings, tmp: Path, *, workers: int = 1, healthz: bool = True, **extra_env: str
) -> Iterator[Served]:
    """A running `rater serve`; it is up when /healthz answers (or, with healthz=False, when
    its port accepts connections: a TLS port does not speak plain HTTP)."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(RATER), "serve", "--port", str(port), "--workers", str(workers)],
            env=env_of(settings, **extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rater serve exited: {served.output()}")
            try:
                if not healthz:
                    socket.create_connection(served.base, timeout=1).close()
                    break
                if call(served, "GET", "/healthz")[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rater serve did not answer: {served.output()}")
            time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def call(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout_s: float = 30.0,
) -> tuple[int, Any, http.client.HTTPResponse]:
    """(status, decoded JSON body or text, response) of one request on a new connection."""
    connection = http.client.HTTPConnection(*served.base, timeout=timeout_s)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    text = data.decode(errors="replace")
    try:
        decoded: Any = json.loads(text)
    except ValueError:
        decoded = text
    return response.status, decoded, response


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class World:
    accounts: Accounts
    card: str  # on C1 (reseller R1), 10 EUR, customer C1 holds 5 EUR
    pin: str
    other_card: str  # on C2 (reseller R2)
    other_pin: str
    ani: str  # caller number of `card`


def world(settings: Settings, redis: Any) -> World:
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(BUY)
    accounts = Accounts(settings, redis)
    for reseller, customer in (("R1", "C1"), ("R2", "C2")):
        accounts.create_reseller(reseller, reseller, credit="100", buy_tariff=BUY.name)
        # each reseller's customers get its own tables (docs/DESIGN.md section 1)
        sell = SELL if reseller == "R1" else replace(SELL, name=f"{SELL.name}-{reseller}")
        store.save(sell, owner=reseller)
        accounts.create_customer(
            customer, "SIP", reseller_id=reseller, tariff=sell.name, balance="5"
        )
    mine = accounts.create_cards("C1", count=1, value="10").cards[0]
    theirs = accounts.create_cards("C2", count=1, value="10").cards[0]
    accounts.add_ani(mine.number, "+31201234567")
    return World(accounts, mine.number, mine.pin, theirs.number, theirs.pin, "31201234567")


def token(redis: Any, switch: str, resellers: str = "R1", networks: str = "") -> str:
    credentials = Credentials(redis)
    credentials.set_scope(
        switch,
        resellers=resellers.split(",") if resellers else [],
        networks=parse_networks(networks),
    )
    return credentials.create_token(switch).token
