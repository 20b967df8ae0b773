"""A simulated switch against `rater serve --workers 2` and the real pipeline: many calls at
once authorize (account, card + PIN, caller number), ring, go unanswered (released) or are
answered for at most what was granted (renewing when longer), and send their CDRs with the
auth_id through the real topic to a `rater run` worker as they end. No level ever holds more
than it has, while calls are set up and debited; afterwards nothing is held and every balance
is its opening balance less the reference prices of the answered calls
(tests/integration/switch_simulator.py)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pipeline_world import own_topics, spawn
from serve_support import serve, token
from switch_simulator import (
    BUY,
    RESELLER,
    SELL,
    SWITCH,
    CdrSender,
    SimWorld,
    Switch,
    Watch,
    build,
    plan,
)  # fmt: skip

from rater.redis import keys
from rater.settings import Settings

pytestmark = pytest.mark.integration

CALLS = 240
#: an unanswered call of nobody's: stored (unrated) once the worker consumes
_PROBE = {
    "cdr_id": "probe", "switch": "simsw-probe", "account": "nobody", "caller": "+31205550199",
    "callee": "+31201234567", "start_time": 1_790_000_000, "end_time": 1_790_000_010,
    "billsec": 0, "disposition": "NO ANSWER",
}  # fmt: skip


def _balances(world: SimWorld) -> dict[str, int]:
    accounts = world.accounts
    out = {"reseller": accounts.get_reseller(RESELLER).credit}
    out |= {c: accounts.get_customer(c).balance for c in world.customers}
    out |= {k: accounts.get_card(k).balance for k in world.cards}
    return out


def test_simulated_calls_hold_no_more_than_there_is_and_end_with_exact_balances(
    kafka_topics: Settings, redis: Any, ch: Any, tmp_path: Path
) -> None:
    # topics and a group of its own (other tests leave CDRs in the session's topic), and the
    # pipeline on the real clock: the calls are made now
    settings = own_topics(kafka_topics, "sim").replace(clock_start=str(int(time.time())))
    world = build(settings, redis)
    tok = token(redis, SWITCH, RESELLER)
    opening = _balances(world)
    calls = plan(world, CALLS, seed=20261202)

    fast = settings.replace(session_timeout_ms=3000, heartbeat_interval_ms=500)
    worker = spawn(fast, log=tmp_path / "worker.log")
    try:
        with (
            serve(settings, tmp_path, workers=2) as served,
            Watch(redis, world, settings) as watch,
            CdrSender(settings) as cdrs,
        ):
            cdrs.send(_PROBE)  # the worker has joined once it stored this one
            _wait_stored(ch, _PROBE["switch"], 1, worker, tmp_path)
            Switch(served, tok, cdrs).run(calls)
            cdrs.close()
            allowed = [c for c in calls if c.allowed]
            stored = _wait_stored(ch, SWITCH, len(allowed), worker, tmp_path)
    finally:
        worker.terminate()
        worker.wait(30)
    assert watch.violations == []
    assert watch.samples >= 10

    # the mix of a busy switch happened: refusals for money and for calls at once, no answers,
    # renewals granted and refused
    reasons = Counter(c.reason for c in calls)
    assert reasons["insufficient_credit"] + reasons["card_empty"] > 0, reasons
    assert reasons["too_many_calls"] > 0, reasons
    assert reasons["ok"] >= CALLS // 5, reasons
    assert any(not c.answers for c in allowed)
    assert any(c.renewals and c.granted_s > Switch.FIRST_ASK_S for c in allowed)
    assert any(c.refused_renewal for c in allowed)
    assert all(c.billsec <= c.granted_s for c in allowed)

    # every reservation released by its CDR's debit (or by the release of an unanswered call)
    for level, account in (("r", RESELLER), *(("c", c) for c in world.customers),
                           *(("k", k) for k in world.cards)):  # fmt: skip
        assert redis.hgetall(keys.reservations(RESELLER, level, account)) == {}, account
        assert redis.hgetall(keys.reservation_totals(RESELLER, level, account)) == {}, account

    # balances: opening less the reference prices of the answered calls, never below zero
    expected = dict(opening)
    sold = 0
    for c in allowed:
        if not c.billsec:
            continue
        price = world.price(SELL, c.callee, c.billsec, c.start)
        sold += price
        expected[c.payer.customer] -= price
        if c.payer.kind != "account":
            expected[c.payer.card] -= price
        expected["reseller"] -= world.price(BUY, c.callee, c.billsec, c.start)
    final = _balances(world)
    assert final == expected
    assert min(final.values()) >= 0
    assert stored[1] == sold


def _wait_stored(ch: Any, switch: str, count: int, worker: Any, tmp_path: Path) -> tuple[int, int]:
    """(rows, sum of prices) of a switch's CDRs once the worker stored `count` of them."""
    deadline = time.monotonic() + 120
    while True:
        rows, price = ch.execute(
            "SELECT count(), sum(price * sign) FROM rated_cdrs WHERE switch = %(s)s",
            {"s": switch},
        )[0]
        if rows >= count:
            return int(rows), int(price)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, f"{rows} of {count} CDRs stored"
        time.sleep(0.5)
