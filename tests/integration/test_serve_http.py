"""`rater serve` over real HTTP: authorization by account, card + PIN and ANI with the same
answers as `rater authorize`; bad requests (400 with the field, never 422), body caps, slow
clients; card balances for an IVR; account balances and holds; health, metrics, OpenAPI."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_support import Served, World, call, serve, token, world

from rater.accounts.authorize import Authorizer
from rater.redis import keys
from rater.serve import openapi
from rater.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration

CALLEE = "+31612345678"


@pytest.fixture(scope="module")
def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    quick = settings.replace(http_body_timeout_s=1, http_header_timeout_s=1, pin_max_failures=3)
    with serve(quick, tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture
def ours(settings: Settings, redis: Any) -> tuple[World, str]:
    """A world and a token of a switch (a name of its own: no other test's cache) for R1."""
    return world(settings, redis), token(redis, f"sw-{uuid.uuid4().hex[:8]}", "R1")


def _authorize(served: Served, tok: str, **body: Any) -> tuple[int, Any]:
    status, answer, _ = call(served, "POST", "/v1/authorize", body, token=tok)
    return status, answer


# ------------------------------------------------------------------------------ authorize
def test_account_card_and_ani_authorizations_answer_like_the_cli(
    served: Served, ours: tuple[World, str], settings: Settings, redis: Any
) -> None:
    w, tok = ours
    status, answer = _authorize(served, tok, account="C1", callee=CALLEE, max_seconds=600)
    assert status == 200, answer
    assert answer["allowed"] is True
    assert answer["reason"] == "ok"
    assert answer["max_seconds"] == 600
    assert answer["auth_id"].startswith("a")
    assert answer["expires_at"].endswith("+00:00")
    held = redis.hget("{r:R1}:rsv:c:C1", answer["auth_id"]).decode()
    assert held.startswith("1000000:")  # 10 minutes at 0.10

    # a card call: the same answer as the CLI's Authorizer gives on the same balances
    _drop_holds(redis, w.card)
    direct = Authorizer(settings, redis).authorize(card=w.card, pin=w.pin, callee=CALLEE)
    Authorizer(settings, redis).release(direct.auth_id)
    _drop_holds(redis, w.card)
    status, answer = _authorize(served, tok, card=w.card, pin=w.pin, callee=CALLEE)
    assert (status, answer["allowed"], answer["reason"]) == (200, True, direct.reason.value)
    assert answer["max_seconds"] == direct.max_seconds == 3000  # the customer's 5 EUR
    _release(served, tok, answer["auth_id"])

    status, answer = _authorize(served, tok, ani="+31 20 123 4567", callee=CALLEE, max_seconds=60)
    assert (status, answer["allowed"], answer["max_seconds"]) == (200, True, 60)
    _release(served, tok, answer["auth_id"])

    # the PIN may come in the X-Card-PIN header instead of the body
    status, answer, _ = call(
        served,
        "POST",
        "/v1/authorize",
        {"card": w.card, "callee": CALLEE, "max_seconds": 60, "caller": "+31201234567"},
        token=tok,
        headers={"X-Card-PIN": w.pin},
    )
    assert (status, answer["allowed"]) == (200, True)


def test_refusals_are_200_with_the_reason(served: Served, ours: tuple[World, str]) -> None:
    w, tok = ours
    cases = [
        ({"account": "nobody", "callee": CALLEE}, "unknown_account"),
        ({"card": w.card, "pin": "0000" if w.pin != "0000" else "1111", "callee": CALLEE},
         "card_or_pin"),
        ({"card": "80000000", "pin": "1234", "callee": CALLEE}, "card_or_pin"),
        ({"account": "C1", "callee": "+4420000000"}, "no_rate"),
        ({"ani": "+999123456", "callee": CALLEE}, "unknown_ani"),
    ]  # fmt: skip
    for body, reason in cases:
        status, answer = _authorize(served, tok, **body)
        assert status == 200, answer
        assert (answer["allowed"], answer["reason"]) == (False, reason), answer
        assert answer["auth_id"] is None
        assert answer["max_seconds"] == 0
        assert answer["message"]


def test_a_form_body_authorizes_like_json(served: Served, ours: tuple[World, str]) -> None:
    """What a dialplan can send (docs/SWITCHES_CALL_CONTROL.md): the same answer as JSON."""
    w, tok = ours
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    raw = f"card={w.card}&pin={w.pin}&caller=%2B31205550101&callee=%2B31612345678&max_seconds=90"
    status, answer, _ = call(served, "POST", "/v1/authorize", raw=raw.encode(), token=tok,
                             headers=form)  # fmt: skip
    assert (status, answer["allowed"], answer["max_seconds"]) == (200, True, 90)
    status, released, _ = call(served, "POST", f"/v1/authorize/{answer['auth_id']}/release",
                               raw=b"", token=tok, headers=form)  # fmt: skip
    assert (status, released["released"]) == (200, True)
    wrong = b"account=C1&callee=316&max_seconds=1m"
    status, bad, _ = call(served, "POST", "/v1/authorize", raw=wrong, token=tok, headers=form)
    assert (status, bad["error"]["field"], bad["error"]["code"]) == (400, "max_seconds", "bad_type")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"callee": CALLEE}, "missing_field", "account"),
        ({"account": "C1"}, "missing_field", "callee"),
        ({"account": "C1", "card": "8123", "callee": CALLEE}, "conflicting_fields", "card"),
        ({"card": "812345678901", "callee": CALLEE}, "missing_field", "pin"),
        ({"account": "C1", "pin": "1234", "callee": CALLEE}, "conflicting_fields", "pin"),
        ({"account": "C1", "callee": 31612345678}, "bad_type", "callee"),
        ({"account": "C1", "callee": CALLEE, "max_seconds": "60"}, "bad_type", "max_seconds"),
        ({"account": "C1", "callee": CALLEE, "max_seconds": 1.5}, "bad_type", "max_seconds"),
        ({"account": "C1", "callee": CALLEE, "max_seconds": 0}, "bad_value", "max_seconds"),
        ({"account": "C1", "callee": CALLEE, "max_seconds": True}, "bad_type", "max_seconds"),
        ({"account": "C:1", "callee": CALLEE}, "bad_value", "account"),
        ({"card": "81x", "pin": "1", "callee": CALLEE}, "bad_value", "card"),
        ({"card": "81234567", "pin": 1234, "callee": CALLEE}, "bad_type", "pin"),
        ({"account": "", "callee": CALLEE}, "bad_value", "account"),
        ({"account": "C1", "callee": "x" * 65}, "bad_value", "callee"),
        ({"ani": "not a number", "callee": CALLEE}, "bad_value", "ani"),
    ],
)
def test_bad_requests_name_the_field(
    served: Served, ours: tuple[World, str], body: dict[str, Any], code: str, field: str
) -> None:
    _, tok = ours
    status, answer = _authorize(served, tok, **body)
    assert status == 400, answer
    assert answer["error"]["code"] == code
    assert answer["error"]["field"] == field
    assert answer["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"", "empty"),
     (b"\xff\xfe", "not valid JSON")],
)  # fmt: skip
def test_bad_json_is_400(served: Served, ours: tuple[World, str], raw: bytes, message: str) -> None:
    _, tok = ours
    status, answer, _ = call(served, "POST", "/v1/authorize", token=tok, raw=raw)
    assert status == 400
    assert (answer["error"]["code"], answer["error"]["field"]) == ("bad_json", "body")
    assert message in answer["error"]["message"]


def test_oversized_bodies_are_413_declared_or_chunked(
    served: Served, ours: tuple[World, str], settings: Settings
) -> None:
    _, tok = ours
    big = b'{"account": "C1", "callee": "31612345678", "pad": "' + b"x" * 70_000 + b'"}'
    status, answer, _ = call(served, "POST", "/v1/authorize", token=tok, raw=big)
    assert status == 413
    assert answer["error"]["code"] == "body_too_large"
    # chunked: no Content-Length, the cap applies while it streams in
    with socket.create_connection(served.base, timeout=10) as sock:
        head = (
            "POST /v1/authorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Authorization: Bearer {tok}\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"x" * 16_384
        try:
            for _ in range(8):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass  # the server may close before all of it was sent
        reply = _read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"body_too_large"' in reply


def test_a_slow_body_is_408_and_a_slow_head_is_dropped(
    served: Served, ours: tuple[World, str]
) -> None:
    _, tok = ours
    body = json.dumps({"account": "C1", "callee": CALLEE}).encode()
    with socket.create_connection(served.base, timeout=10) as sock:
        head = (
            "POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:5])  # and then nothing: the server waits 1 s
        started = time.monotonic()
        reply = _read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"request_timeout"' in reply
    assert time.monotonic() - started < 5
    # a client that never finishes its request head is disconnected after the head timeout
    with socket.create_connection(served.base, timeout=10) as sock:
        sock.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server
    assert time.monotonic() - started < 5
    # an idle connection that sends nothing at all, too
    with socket.create_connection(served.base, timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
    assert time.monotonic() - started < 5


def test_unknown_paths_and_methods_use_the_error_shape(
    served: Served, ours: tuple[World, str]
) -> None:
    _, tok = ours
    status, answer, _ = call(served, "GET", "/v1/nothing", token=tok)
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer, _ = call(served, "GET", "/v1/authorize", token=tok)
    assert (status, answer["error"]["code"]) == (405, "method_not_allowed")


# ------------------------------------------------------------------------------ renew, release
def test_release_is_idempotent_and_frees_the_credit(
    served: Served, ours: tuple[World, str], redis: Any
) -> None:
    _, tok = ours
    _, answer = _authorize(served, tok, account="C1", callee=CALLEE, max_seconds=600)
    auth_id = answer["auth_id"]
    assert redis.hget("{r:R1}:rsv:c:C1", auth_id) is not None
    first = call(served, "POST", f"/v1/authorize/{auth_id}/release", token=tok)
    second = call(served, "POST", f"/v1/authorize/{auth_id}/release", token=tok)
    assert (first[0], second[0]) == (200, 200)
    assert first[1] == second[1] == {"auth_id": auth_id, "released": True}
    assert redis.hget("{r:R1}:rsv:c:C1", auth_id) is None
    _status, view, _ = call(served, "GET", "/v1/accounts/C1", token=tok)
    assert (view["available"], view["reservations"]) == ("5.00", [])
    # an auth_id nobody issued: nothing to release, the same answer
    assert call(served, "POST", "/v1/authorize/a0000000000000000/release", token=tok)[:2] == (
        200,
        {"auth_id": "a0000000000000000", "released": True},
    )


def test_renew_moves_the_expiry_and_refuses_unknown_ids(
    served: Served, ours: tuple[World, str]
) -> None:
    _, tok = ours
    _, answer = _authorize(served, tok, account="C1", callee=CALLEE, max_seconds=60)
    time.sleep(1.1)
    path = f"/v1/authorize/{answer['auth_id']}/renew"
    status, renewed, _ = call(served, "POST", path, token=tok)
    assert status == 200, renewed
    assert (renewed["allowed"], renewed["reason"], renewed["auth_id"]) == (
        True,
        "ok",
        answer["auth_id"],
    )
    assert renewed["expires_at"] > answer["expires_at"]
    assert renewed["max_seconds"] >= answer["max_seconds"]
    status, unknown, _ = call(served, "POST", "/v1/authorize/a0000000000000000/renew", token=tok)
    assert (status, unknown["allowed"], unknown["reason"]) == (200, False, "unknown_auth")
    assert unknown["auth_id"] is None
    status, answer, _ = call(served, "POST", "/v1/authorize/a:b/release", token=tok)
    assert (status, answer["error"]["field"]) == (400, "auth_id")
    status, _, _ = call(served, "POST", "/v1/authorize/a0123/release")
    assert status == 401


# ------------------------------------------------------------------------------ cards, accounts
def test_card_balance_needs_the_pin_header_and_shares_the_lockout(
    served: Served, ours: tuple[World, str]
) -> None:
    w, tok = ours
    path = f"/v1/cards/{w.card}/balance"
    status, answer, _ = call(served, "GET", path, token=tok, headers={"X-Card-PIN": w.pin})
    assert status == 200, answer
    assert answer == {
        "ok": True, "reason": "ok", "message": f"card {w.card}", "card": w.card,
        "status": "active", "currency": "EUR", "balance": "10.00", "available": "10.00",
        "expires_at": None,
    }  # fmt: skip
    status, answer, _ = call(served, "GET", path, token=tok)
    assert (status, answer["error"]["field"]) == (400, "X-Card-PIN")
    status, answer, _ = call(served, "GET", f"{path}?pin={w.pin}", token=tok)
    assert (status, answer["error"]["field"]) == (400, "pin")
    wrong = "0000" if w.pin != "0000" else "1111"
    refused = {"ok": False, "reason": "card_or_pin", "card": w.card}
    # the service runs with 3 wrong PINs before a lock; balance and authorize count together
    status, answer, _ = call(served, "GET", path, token=tok, headers={"X-Card-PIN": wrong})
    assert (status, {k: answer[k] for k in refused}) == (200, refused)
    assert _authorize(served, tok, card=w.card, pin=wrong, callee=CALLEE)[1]["reason"] == (
        "card_or_pin"
    )
    call(served, "GET", path, token=tok, headers={"X-Card-PIN": wrong})
    assert w.accounts.get_card(w.card).locked_until is not None
    # locked: the right PIN is refused too, with the same answer, in both places
    status, answer, _ = call(served, "GET", path, token=tok, headers={"X-Card-PIN": w.pin})
    assert {k: answer[k] for k in refused} == refused
    assert _authorize(served, tok, card=w.card, pin=w.pin, callee=CALLEE)[1]["reason"] == (
        "card_or_pin"
    )
    status, answer, _ = call(
        served, "GET", "/v1/cards/80000000/balance", token=tok, headers={"X-Card-PIN": "1"}
    )
    assert (status, answer["ok"], answer["reason"]) == (200, False, "card_or_pin")


def test_account_shows_booked_available_and_holds(served: Served, ours: tuple[World, str]) -> None:
    _, tok = ours
    _, first = _authorize(served, tok, account="C1", callee=CALLEE, max_seconds=600)
    _, second = _authorize(served, tok, account="C1", callee=CALLEE, max_seconds=60)
    status, answer, _ = call(served, "GET", "/v1/accounts/C1", token=tok)
    assert status == 200, answer
    assert (answer["balance"], answer["held"], answer["available"]) == ("5.00", "1.10", "3.90")
    assert (answer["currency"], answer["status"], answer["reseller"]) == ("EUR", "active", "R1")
    held = {r["auth_id"]: r["amount"] for r in answer["reservations"]}
    assert held == {first["auth_id"]: "1.00", second["auth_id"]: "0.10"}
    status, answer, _ = call(served, "GET", "/v1/accounts/nobody", token=tok)
    assert (status, answer["error"]["code"]) == (404, "not_found")


# ------------------------------------------------------------------------------ service
def test_health_readiness_metrics_and_openapi(served: Served, ours: tuple[World, str]) -> None:
    _, tok = ours
    assert call(served, "GET", "/healthz")[:2] == (200, {"status": "ok"})
    status, answer, _ = call(served, "GET", "/readyz")
    assert (status, answer) == (200, {"status": "ready", "redis": "ok", "kafka": "ok"})
    _authorize(served, tok, account="C1", callee=CALLEE, max_seconds=60)
    status, text, _ = call(served, "GET", "/metrics", token=tok)
    assert status == 200
    assert 'rater_authorizations_total{reason="ok"}' in text
    assert 'rater_http_requests_total{route="/v1/authorize",status="200"}' in text
    status, document, _ = call(served, "GET", "/openapi.json")
    assert status == 200
    checked_in = json.loads((PROJECT_ROOT / "docs" / "openapi.json").read_text())
    assert document == checked_in == json.loads(openapi.text())


def test_metrics_need_a_switch_token_unless_the_address_is_allowed(
    served: Served, ours: tuple[World, str], settings: Settings, tmp_path: Path
) -> None:
    """/metrics tells call volumes and refusal reasons per route: not for anyone who can
    reach the port. A token of any switch reads it (Prometheus sends it as a bearer token),
    or RATER_HTTP_METRICS_ALLOW names addresses that need none."""
    _, tok = ours
    status, answer, response = call(served, "GET", "/metrics")
    assert (status, answer["error"]["code"]) == (401, "unauthorized")
    assert "Bearer" in response.getheader("WWW-Authenticate", "")
    assert call(served, "GET", "/metrics", token="0123456789ab." + "A" * 43)[0] == 401
    assert call(served, "GET", "/metrics", token=tok)[0] == 200
    assert call(served, "GET", "/healthz")[0] == 200  # health and readiness stay open
    with serve(settings.replace(http_metrics_allow="127.0.0.0/8"), tmp_path) as allowed:
        status, text, _ = call(allowed, "GET", "/metrics")
    assert status == 200
    assert "rater_http_requests_total" in text
    with serve(settings.replace(http_metrics_allow="192.0.2.0/24"), tmp_path) as elsewhere:
        assert call(elsewhere, "GET", "/metrics")[0] == 401


def test_readiness_names_what_is_down(settings: Settings, tmp_path: Path) -> None:
    """Also on Redis Cluster, whose client connects to its nodes when it is made."""
    broken = settings.replace(
        kafka_bootstrap="127.0.0.1:1",
        redis_url="redis://127.0.0.1:1/0",
        redis_cluster_nodes="127.0.0.1:1" if settings.redis_cluster_nodes else "",
    )
    with serve(broken, tmp_path) as running:  # it starts all the same
        status, answer, _ = call(running, "GET", "/readyz")
        money = call(
            running, "POST", "/v1/authorize", {"account": "C1", "callee": CALLEE},
            token="0123456789ab." + "A" * 43,
        )  # fmt: skip
    assert (money[0], money[1]["error"]["code"]) == (503, "unavailable")
    assert status == 503
    assert answer["status"] == "not ready"
    assert answer["redis"].startswith("unreachable")
    assert answer["kafka"].startswith("unreachable")


def _release(served: Served, tok: str, auth_id: str) -> None:
    status, _, _ = call(served, "POST", f"/v1/authorize/{auth_id}/release", token=tok)
    assert status == 200


def _drop_holds(redis: Any, card: str) -> None:
    """Every reservation of R1, C1 and the card gone: entries, expiry index and totals."""
    for level, account in (("r", "R1"), ("c", "C1"), ("k", card)):
        redis.delete(
            keys.reservations("R1", level, account),
            keys.reservation_expiry("R1", level, account),
            keys.reservation_totals("R1", level, account),
        )


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65_536):
            data += chunk
    except OSError:
        pass
    return data
