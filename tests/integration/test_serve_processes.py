"""`rater serve --workers 2`: concurrent authorizations racing to overdraw one card end with
exact reservations; revocation reaches every worker; SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_support import Served, call, serve, token, world

from rater.pipeline.debit import DebitBatch, Debiter
from rater.serve.credentials import Credentials
from rater.settings import Settings

pytestmark = pytest.mark.integration

CALLEE = "+31612345678"


@pytest.fixture(scope="module")
def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # several calls at once on one card (the default allows one)
    racing = settings.replace(max_calls_per_card=50)
    with serve(racing, tmp_path_factory.mktemp("serve-w2"), workers=2) as running:
        yield running


def test_racing_authorizations_never_promise_the_same_money_twice(
    served: Served, settings: Settings, redis: Any
) -> None:
    w = world(settings, redis)
    # the card may spend 1.00 of its customer's 5.00: five 2-minute calls at 0.10 a minute
    w.accounts.adjust("card", w.card, "-9", "test: leave 1.00 on the card")
    tok = token(redis, f"sw-{uuid.uuid4().hex[:8]}", "R1")
    body = {"card": w.card, "pin": w.pin, "callee": CALLEE, "max_seconds": 120}
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(24)

    def ask() -> None:
        start.wait()
        status, answer, _ = call(served, "POST", "/v1/authorize", body, token=tok)
        assert status == 200, answer
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=ask) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 24
    allowed = [a for a in answers if a["allowed"]]
    granted = sorted(a["max_seconds"] for a in allowed)
    # each call is granted at most what is left; together never more than the card's 1.00
    assert sum(granted) <= 600
    assert granted == [120] * 5, granted
    assert {a["reason"] for a in answers if not a["allowed"]} == {"insufficient_credit"}
    card_holds = redis.hgetall(f"{{r:R1}}:rsv:k:{w.card}")
    customer_holds = redis.hgetall("{r:R1}:rsv:c:C1")
    held = sum(int(v.split(b":")[0]) for v in card_holds.values())
    assert held == 1_000_000  # exactly the card's balance, to the micro-unit
    assert sum(int(v.split(b":")[0]) for v in customer_holds.values()) == 1_000_000
    assert {k.decode() for k in card_holds} == {a["auth_id"] for a in allowed}
    status, view, _ = call(
        served, "GET", f"/v1/cards/{w.card}/balance", token=tok, headers={"X-Card-PIN": w.pin}
    )
    assert (status, view["balance"], view["available"]) == (200, "1.00", "0.00")
    # the five calls happen, 2 minutes each, and are debited with their auth ids: the card ends
    # at exactly 0.00, its customer at 4.00, the reseller 5 x 0.08 down, nothing left held
    ids = [a["auth_id"] for a in allowed]
    Debiter(redis, settings=settings).apply(
        DebitBatch(
            "serve-race", 0, np.arange(1, 6), ["sw"] * 5, [f"race-{i}" for i in range(5)],
            ["C1"] * 5, [w.card] * 5, ["R1"] * 5, np.full(5, 200_000), np.full(5, 80_000), ids,
        )
    )  # fmt: skip
    assert w.accounts.get_card(w.card).balance == 0
    assert w.accounts.get_customer("C1").balance == 4_000_000
    assert w.accounts.get_reseller("R1").credit == 100_000_000 - 400_000
    assert redis.hgetall(f"{{r:R1}}:rsv:k:{w.card}") == {}
    status, account, _ = call(served, "GET", "/v1/accounts/C1", token=tok)
    assert (account["balance"], account["available"], account["reservations"]) == (
        "4.00",
        "4.00",
        [],
    )


def test_revocation_reaches_every_worker(served: Served, settings: Settings, redis: Any) -> None:
    world(settings, redis)
    name = f"sw-{uuid.uuid4().hex[:8]}"
    tok = token(redis, name, "R1")
    for _ in range(20):  # new connections: both workers see (and cache) the token
        assert call(served, "GET", "/v1/accounts/C1", token=tok)[0] == 200
    Credentials(redis).revoke(name)
    time.sleep(5)
    statuses = {call(served, "GET", "/v1/accounts/C1", token=tok)[0] for _ in range(20)}
    assert statuses == {401}


def test_sigterm_lets_in_flight_requests_finish(
    settings: Settings, redis: Any, tmp_path: Path
) -> None:
    world(settings, redis)
    tok = token(redis, f"sw-{uuid.uuid4().hex[:8]}", "R1")
    body = json.dumps({"account": "C1", "callee": CALLEE, "max_seconds": 60}).encode()
    with serve(settings, tmp_path, workers=2) as running:
        sock = socket.create_connection(running.base, timeout=20)
        head = (
            "POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:10])  # in flight: the body is not complete
        time.sleep(0.5)
        running.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert running.process.poll() is None  # waiting for the request in flight
        # no new request is served meanwhile (refused, or left in the closed backlog)
        with pytest.raises((ConnectionRefusedError, ConnectionResetError, TimeoutError)):
            call(running, "GET", "/healthz", timeout_s=2)
        sock.sendall(body[10:])
        reply = b""
        while chunk := sock.recv(65_536):
            reply += chunk
        sock.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert b'"allowed":true' in reply
        assert running.process.wait(20) == 0
    held = redis.hgetall("{r:R1}:rsv:c:C1")
    assert len(held) == 1  # the request that was in flight reserved its credit
