"""Reservations against real Redis: their lifetime starts at the server's now, granted seconds
fit inside it, long calls renew, release frees, and calls at once are limited
(rater/accounts/authorize.py, rater/redis/lua/reserve.lua)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer, Reason
from rater.accounts.reservations import auth_record
from rater.errors import AuthorizationError
from rater.pipeline.debit import DebitBatch, Debiter
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

MOBILE = "31612345678"
#: 0.10 a minute, 60/60: 600 s cost 1.00
SELL = TariffTable(
    name="retail", decimals=4, steps=Steps(60, 60), rows=(TariffRow("31", "NL", rate=100_000),)
)
BUY = TariffTable(
    name="wholesale", decimals=6, steps=Steps(1, 1), rows=(TariffRow("31", "NL", rate=40_000),)
)


@pytest.fixture
def accounts(settings: Settings, redis: Any) -> Accounts:
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(BUY)
    found = Accounts(settings, redis)
    found.create_reseller("R1", "Reseller", credit="100", buy_tariff="wholesale")
    store.save(SELL, owner="R1")
    found.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="10")
    return found


def _authorizer(accounts: Accounts, **changes: Any) -> Authorizer:
    settings = accounts.settings.replace(**changes)
    return Authorizer(settings, accounts.redis, accounts=Accounts(settings, accounts.redis))


def test_the_lifetime_counts_from_the_server_now_not_from_at(accounts: Accounts) -> None:
    """`--at` three hours back made reservations that were expired at birth: three 600 s calls
    were allowed on 1.00 EUR."""
    accounts.adjust("customer", "C1", "-9", "leave 1.00: one 600 s call")
    authorizer = _authorizer(accounts)
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
    answers = [
        authorizer.authorize(account="C1", callee=MOBILE, at=three_hours_ago, max_seconds=600)
        for _ in range(3)
    ]
    assert [a.allowed for a in answers] == [True, False, False]
    assert answers[1].reason is Reason.INSUFFICIENT_CREDIT
    expires = answers[0].expires_at
    assert expires is not None
    lifetime = (expires - datetime.now(UTC)).total_seconds()
    assert (
        accounts.settings.reservation_ttl_s - 60 < lifetime <= accounts.settings.reservation_ttl_s
    )


def test_granted_seconds_never_outlive_the_reservation(accounts: Accounts) -> None:
    """With a 10 s lifetime two 6,000 s calls were granted 11 s apart on 10 EUR."""
    short = _authorizer(accounts, reservation_ttl_s=10, reservation_ring_s=2)
    first = short.authorize(account="C1", callee=MOBILE, max_seconds=6000)
    assert first.allowed
    assert first.max_seconds == 8  # 10 s of life, 2 s of ringing
    assert first.expires_at is not None
    assert first.expires_at <= datetime.now(UTC) + timedelta(seconds=10)
    assert first.reserved["customer"] == 100_000  # one 60 s step, not 6,000 s
    # with the defaults a call longer than the lifetime is cut to lifetime - ring
    accounts.topup_customer("C1", "10", "enough for more than two hours")
    default = _authorizer(accounts)
    settings = accounts.settings
    long = default.authorize(account="C1", callee=MOBILE, max_seconds=100_000)
    assert long.max_seconds == settings.reservation_ttl_s - settings.reservation_ring_s
    unasked = default.authorize(account="C1", callee=MOBILE)
    assert unasked.max_seconds <= settings.reservation_ttl_s - settings.reservation_ring_s


def test_a_long_call_renews_while_the_credit_covers_it(accounts: Accounts, redis: Any) -> None:
    authorizer = _authorizer(accounts, reservation_ttl_s=300, reservation_ring_s=60)
    first = authorizer.authorize(account="C1", callee=MOBILE)
    assert (first.allowed, first.max_seconds) == (True, 240)
    assert first.expires_at is not None
    # 200 s later (the record's start moved back instead of waiting)
    record = auth_record("R1", first.auth_id)
    redis.hincrby(record, "start", -200)
    renewed = authorizer.renew(first.auth_id)
    assert renewed.allowed, renewed.message
    assert renewed.max_seconds == 200 + 240  # what is left of the ring allowance past now
    assert renewed.reserved["customer"] == 800_000  # 440 s on 60/60: 8 minutes at 0.10
    assert renewed.expires_at is not None
    assert renewed.expires_at >= first.expires_at
    held = accounts.redis.hget(keys.reservations("R1", "c", "C1"), first.auth_id)
    assert held.split(b":")[0] == b"800000"
    # another call takes most of the money; the credit no longer covers 440 s
    accounts.adjust("customer", "C1", "-9.50", "spent elsewhere")  # 0.50 left
    redis.hincrby(record, "start", -100)
    refused = authorizer.renew(first.auth_id)
    assert refused.reason is Reason.INSUFFICIENT_CREDIT
    assert "no longer covers the 440 s" in refused.message
    assert accounts.redis.hget(keys.reservations("R1", "c", "C1"), first.auth_id) == held


def test_renew_refuses_unknown_expired_and_ended_reservations(
    accounts: Accounts, settings: Settings, redis: Any
) -> None:
    authorizer = _authorizer(accounts)
    assert authorizer.renew("a0000000000000000").reason is Reason.UNKNOWN_AUTH
    expired = authorizer.authorize(account="C1", callee=MOBILE, max_seconds=60)
    redis.hset(auth_record("R1", expired.auth_id), "exp", 1)
    answer = authorizer.renew(expired.auth_id)
    assert answer.reason is Reason.UNKNOWN_AUTH
    assert "expired" in answer.message
    debited = authorizer.authorize(account="C1", callee=MOBILE, max_seconds=60)
    Debiter(redis, settings=settings).apply(
        DebitBatch(
            "t", 0, np.array([1]), ["sw"], ["c1"], ["C1"], [""], ["R1"],
            np.array([100_000]), np.array([40_000]), [debited.auth_id],
        )
    )  # fmt: skip
    ended = authorizer.renew(debited.auth_id)
    assert ended.reason is Reason.UNKNOWN_AUTH
    assert "ended" in ended.message
    with pytest.raises(AuthorizationError, match=r"auth_id 'a\\nb' has the character '\\n'"):
        authorizer.renew("a\nb")
    with pytest.raises(AuthorizationError, match="auth_id"):
        authorizer.release("{r:R1}")


def test_release_frees_the_credit_and_answers_the_same_twice(accounts: Accounts) -> None:
    accounts.adjust("customer", "C1", "-9", "leave 1.00")
    authorizer = _authorizer(accounts)
    held = authorizer.authorize(account="C1", callee=MOBILE, max_seconds=600)
    assert not authorizer.authorize(account="C1", callee=MOBILE, max_seconds=600).allowed
    first = authorizer.release(held.auth_id)
    second = authorizer.release(held.auth_id)
    assert first == second
    assert first.message == f"auth_id {held.auth_id} released: it holds no credit"
    assert accounts.redis.hlen(keys.reservations("R1", "c", "C1")) == 0
    assert authorizer.authorize(account="C1", callee=MOBILE, max_seconds=600).allowed
    assert authorizer.renew(held.auth_id).reason is Reason.UNKNOWN_AUTH


def test_calls_at_once_are_limited_per_card_and_per_account(accounts: Accounts) -> None:
    authorizer = _authorizer(accounts, max_calls_per_card=1, max_calls_per_account=2)
    issued = accounts.create_cards("C1", count=1, value="5").cards[0]
    on_card = authorizer.authorize(card=issued.number, pin=issued.pin, callee=MOBILE)
    assert on_card.allowed
    second = authorizer.authorize(card=issued.number, pin=issued.pin, callee=MOBILE)
    assert second.reason is Reason.TOO_MANY_CALLS
    assert second.message.startswith(f"too many calls: card {issued.number} already has 1")
    plain = authorizer.authorize(account="C1", callee=MOBILE, max_seconds=60)
    assert plain.allowed  # the customer's second call
    third = authorizer.authorize(account="C1", callee=MOBILE, max_seconds=60)
    assert third.reason is Reason.TOO_MANY_CALLS
    assert "customer C1 already has 2" in third.message
    authorizer.release(on_card.auth_id)
    again = authorizer.authorize(card=issued.number, pin=issued.pin, callee=MOBILE)
    assert again.allowed
