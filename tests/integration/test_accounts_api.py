"""The account API against real Redis and ClickHouse: coverage, cards, PINs, ANI, ledger, lookup."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from rater.accounts.api import Accounts
from rater.accounts.ledger import PENDING
from rater.accounts.lookup import AccountLookup
from rater.accounts.luhn import luhn_valid
from rater.accounts.pinkeys import PinKey, PinKeys
from rater.errors import AccountError, CoverageError, DisposableCardError, NotFound
from rater.reasons import Kind, Reason
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.model import TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration


@pytest.fixture
def accounts(settings: Settings, redis: Any) -> Accounts:
    found = Accounts(settings, redis, actor="test")
    found.create_reseller("R1", "Reseller one", credit="100", buy_tariff="wholesale")
    return found


def test_reseller_and_customer_created_once(accounts: Accounts) -> None:
    reseller = accounts.get_reseller("R1")
    assert (reseller.credit, reseller.currency, reseller.ani_threshold) == (
        100_000_000,
        "EUR",
        1_000_000,
    )
    assert reseller.status == "active"
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_reseller("R1", "again", credit="1", buy_tariff="wholesale")
    accounts.create_customer("C1", "Customer", reseller_id="R1", tariff="retail", balance="5")
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_customer("C1", "again", reseller_id="R1", tariff="retail")
    with pytest.raises(NotFound, match="reseller 'nope'"):
        accounts.create_customer("C2", "x", reseller_id="nope", tariff="retail")
    assert accounts.get_customer("C1").balance_str == "5.000000"
    assert [c.customer_id for c in accounts.list_customers("R1")] == ["C1"]


def test_coverage_refuses_credit_the_reseller_cannot_hold(accounts: Accounts) -> None:
    accounts.create_customer("A", "A", reseller_id="R1", tariff="retail", balance="60")
    accounts.create_customer("B", "B", reseller_id="R1", tariff="retail", balance="30")
    with pytest.raises(CoverageError, match=r"shortfall 10\.00 EUR") as error:
        accounts.topup_customer("B", "20", "customer paid")
    assert error.value.shortfall_micro == 10_000_000
    assert accounts.get_customer("B").balance == 30_000_000  # nothing applied
    # a refused opening balance leaves no customer behind
    with pytest.raises(CoverageError):
        accounts.create_customer("C", "C", reseller_id="R1", tariff="retail", balance="10.01")
    with pytest.raises(NotFound):
        accounts.get_customer("C")
    accounts.topup_customer("B", "10", "customer paid")
    cover = accounts.coverage("R1")
    assert (cover.credit, cover.customers_total, cover.covered, cover.shortfall) == (
        100_000_000,
        100_000_000,
        True,
        0,
    )
    # lowering the reseller's credit under what it issued is refused the same way
    with pytest.raises(CoverageError, match=r"shortfall 0\.50 EUR"):
        accounts.credit_reseller("R1", "-0.50", "chargeback")
    accounts.credit_reseller("R1", "50", "wire transfer")
    assert accounts.get_reseller("R1").credit == 150_000_000
    with pytest.raises(AccountError, match="reason is required"):
        accounts.topup_customer("B", "1", "  ")


def test_disposable_batch_funds_its_customer_within_coverage(accounts: Accounts) -> None:
    """Tip 3: a card-batch customer, a batch of disposable cards, never topped up."""
    accounts.create_customer(
        "batch1",
        "Calling card user batch 1",
        reseller_id="R1",
        tariff="cards-40",
        kind="card_batch",
    )
    with pytest.raises(CoverageError, match=r"shortfall 5\.00 EUR") as error:
        accounts.create_cards("batch1", count=21, value="5", disposable=True)
    assert error.value.shortfall_micro == 5_000_000
    assert accounts.list_cards("batch1") == []  # nothing of a refused batch exists
    batch = accounts.create_cards("batch1", count=20, value="5", disposable=True)
    assert batch.funded == 100_000_000
    assert accounts.get_customer("batch1").balance == 100_000_000
    assert len({c.number for c in batch.cards}) == 20
    assert all(luhn_valid(c.number) and len(c.pin) == 4 for c in batch.cards)
    card = accounts.get_card(batch.cards[0].number)
    assert (card.disposable, card.balance, card.status, card.batch_id) == (
        True,
        5_000_000,
        "active",
        batch.batch_id,
    )
    # the clear PIN is not stored anywhere: only its HMAC, and no field holds the PIN itself
    # (compared field by field: a 4-digit PIN can occur inside a date or a batch id)
    raw = accounts.redis.hgetall(keys.card("R1", card.number))
    pin = batch.cards[0].pin
    key = PinKeys.from_settings(accounts.settings).current
    assert raw[b"pin"].decode() == key.hmac(card.number, pin)
    assert raw[b"pinkey"].decode() == key.key_id
    assert all(value != pin.encode() for value in raw.values())
    with pytest.raises(DisposableCardError, match="never topped up"):
        accounts.topup_card(card.number, "5", "customer asked")
    assert [c.number for c in accounts.list_cards(batch_id=batch.batch_id)] == sorted(
        c.number for c in batch.cards
    )
    accounts.create_customer("sip", "SIP", reseller_id="R1", tariff="retail")
    with pytest.raises(AccountError, match="card-batch customer"):
        accounts.create_cards("sip", count=1, value="5", disposable=True)


def test_normal_cards_are_limits_inside_the_customer_balance(accounts: Accounts) -> None:
    """Tip 2: card value is shown, not added to what the reseller must cover."""
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="5")
    batch = accounts.create_cards("C1", count=3, value="10")
    assert batch.funded == 0
    assert accounts.get_customer("C1").balance == 5_000_000
    cover = accounts.coverage("R1")
    assert (cover.customers_total, cover.card_value_issued) == (5_000_000, 30_000_000)
    card = accounts.topup_card(batch.cards[0].number, "90", "put 100 on the card")
    assert card.balance == 100_000_000


def test_ledger_records_every_change_with_its_reason(
    settings: Settings, redis: Any, ch: Any
) -> None:
    accounts = Accounts(settings, redis, actor="test")
    reseller = f"L{uuid.uuid4().hex[:8]}"  # the ClickHouse database lives for the whole session
    accounts.create_reseller(reseller, "R", credit="100", buy_tariff="wholesale")
    accounts.create_customer("C1", "SIP", reseller_id=reseller, tariff="retail", balance="5")
    accounts.topup_customer("C1", "2.50", "paid by card")
    accounts.adjust("customer", "C1", "-0.25", "goodwill reversal")
    accounts.credit_reseller(reseller, "10", "wire 123")
    rows = ch.execute(
        "SELECT level, customer, kind, amount, currency, reason, actor FROM ledger "
        "WHERE reseller = %(r)s",
        {"r": reseller},
    )
    assert sorted(rows) == sorted(
        [
            ("reseller", "", "initial", 100_000_000, "EUR", "initial credit", "test"),
            ("customer", "C1", "topup", 5_000_000, "EUR", "opening balance", "test"),
            ("customer", "C1", "topup", 2_500_000, "EUR", "paid by card", "test"),
            ("customer", "C1", "adjustment", -250_000, "EUR", "goodwill reversal", "test"),
            ("reseller", "", "credit", 10_000_000, "EUR", "wire 123", "test"),
        ]
    )


def test_pin_lockout(settings: Settings, redis: Any) -> None:
    accounts = Accounts(settings.replace(pin_max_failures=3, pin_lock_schedule_s="1"), redis)
    accounts.create_reseller("R1", "R", credit="100", buy_tariff="w")
    accounts.create_customer("C1", "C", reseller_id="R1", tariff="s", balance="5")
    issued = accounts.create_cards("C1", count=1, value="5").cards[0]
    wrong = "0000" if issued.pin != "0000" else "1111"
    assert accounts.verify_pin(issued.number, issued.pin).ok
    assert accounts.verify_pin(issued.number, wrong).failures == 1
    assert accounts.verify_pin(issued.number, wrong).failures == 2
    locked = accounts.verify_pin(issued.number, wrong)
    assert not locked.ok
    assert locked.locked_until is not None
    # while locked even the right PIN is refused
    assert accounts.verify_pin(issued.number, issued.pin).locked_until is not None
    time.sleep(1.1)
    assert accounts.verify_pin(issued.number, issued.pin).ok


def _lock_passes(redis: Any, number: str) -> None:
    """The lock's time is over (instead of waiting 15 minutes)."""
    redis.hset(keys.card("R1", number), "pinlock", 1)


def test_failures_never_reset_on_lock_and_locks_escalate_to_a_block(
    settings: Settings, redis: Any
) -> None:
    """A lock that reset the count gave 5 guesses every 15 minutes for ever (480 a day)."""
    accounts = Accounts(settings.replace(pin_max_failures=2, pin_lock_schedule_s="60,600"), redis)
    accounts.create_reseller("R1", "R", credit="100", buy_tariff="w")
    accounts.create_customer("C1", "C", reseller_id="R1", tariff="s", balance="5")
    issued = accounts.create_cards("C1", count=1, value="5").cards[0]
    number, wrong = issued.number, ("0000" if issued.pin != "0000" else "1111")
    lengths = []
    for _round in range(2):
        assert accounts.verify_pin(number, wrong).failures == 2 * _round + 1
        locked = accounts.verify_pin(number, wrong)
        assert locked.locked_until is not None
        lengths.append((locked.locked_until - datetime.now(UTC)).total_seconds())
        assert accounts.get_card(number).pin_failures == 2 * _round + 2  # kept through the lock
        _lock_passes(redis, number)
    assert 50 < lengths[0] <= 60
    assert 590 < lengths[1] <= 600  # the second lock is longer
    # the schedule is used up: one round more blocks the card's PIN, the right PIN too
    assert accounts.verify_pin(number, wrong).failures == 5
    blocked = accounts.verify_pin(number, wrong)
    assert blocked.blocked
    assert accounts.verify_pin(number, issued.pin).blocked
    assert accounts.get_card(number).pin_blocked
    # only the reseller lifts it
    unblocked = accounts.unblock_card(number)
    assert (unblocked.pin_blocked, unblocked.pin_failures, unblocked.locked_until) == (
        False,
        0,
        None,
    )
    assert accounts.verify_pin(number, issued.pin).ok


def test_a_right_pin_resets_the_count(settings: Settings, redis: Any) -> None:
    accounts = Accounts(settings.replace(pin_max_failures=3), redis)
    accounts.create_reseller("R1", "R", credit="100", buy_tariff="w")
    accounts.create_customer("C1", "C", reseller_id="R1", tariff="s", balance="5")
    issued = accounts.create_cards("C1", count=1, value="5").cards[0]
    wrong = "0000" if issued.pin != "0000" else "1111"
    accounts.verify_pin(issued.number, wrong)
    accounts.verify_pin(issued.number, wrong)
    assert accounts.verify_pin(issued.number, issued.pin).ok
    assert accounts.verify_pin(issued.number, wrong).failures == 1


def test_ani_numbers_belong_to_one_card(accounts: Accounts) -> None:
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="5")
    first, second = (c.number for c in accounts.create_cards("C1", count=2, value="10").cards)
    accounts.add_ani(first, "+31 20 123 4567")
    assert accounts.card_of_ani("0031201234567") == first
    with pytest.raises(AccountError, match=f"belongs to card {first}"):
        accounts.add_ani(second, "31201234567")
    assert accounts.get_card(first).anis == ("31201234567",)
    accounts.remove_ani(first, "31201234567")
    assert accounts.card_of_ani("31201234567") is None
    accounts.add_ani(second, "31201234567")
    assert accounts.card_of_ani("31201234567") == second


def test_lookup_resolves_and_sees_new_accounts(accounts: Accounts, redis: Any) -> None:
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="5")
    card = accounts.create_cards("C1", count=1, value="10").cards[0].number
    lookup = AccountLookup(redis)
    first = lookup.resolve(["C1", "C2", "C1", "", "C1"], ["", "", card, card, "899999999999"])
    assert first.known.tolist() == [True, False, True, True, False]
    assert first.reseller_id == ["R1", "", "R1", "R1", ""]
    assert first.sell_tariff[0] == "retail"
    assert first.buy_tariff[0] == "wholesale"
    assert first.currency[0] == "EUR"
    assert first.customer_id[3] == "C1"  # a card call names its customer through the card
    assert first.card_number[2] == card
    assert first.reason[1] == Reason(Kind.UNKNOWN_ACCOUNT, "'C2'")
    assert first.reason[4] == Reason(Kind.UNKNOWN_CARD, "'899999999999'")
    assert first.reason[0] is None
    accounts.create_customer("C2", "other", reseller_id="R1", tariff="retail")
    other = lookup.resolve(["C2", "C2"], ["", card])
    assert other.known.tolist() == [True, False]
    foreign = other.reason[1]
    assert foreign is not None
    assert foreign.kind == Kind.FOREIGN_CARD
    assert "of customer 'C1', not 'C2'" in foreign.detail


def test_ledger_entries_wait_in_redis_while_clickhouse_is_away(
    settings: Settings, redis: Any, ch: Any
) -> None:
    away = settings.replace(clickhouse_port=1)  # nothing listens there
    reseller = f"P{uuid.uuid4().hex[:8]}"
    Accounts(away, redis).create_reseller(reseller, "R", credit="7", buy_tariff="wholesale")
    assert redis.llen(PENDING) == 1
    accounts = Accounts(settings, redis)
    accounts.credit_reseller(reseller, "3", "second")  # writes the pending entry first
    assert redis.llen(PENDING) == 0
    rows = ch.execute(
        "SELECT amount, reason FROM ledger WHERE reseller = %(r)s ORDER BY amount", {"r": reseller}
    )
    assert rows == [(3_000_000, "second"), (7_000_000, "initial credit")]


def test_a_tariff_in_another_currency_is_refused(settings: Settings, redis: Any) -> None:
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(TariffTable(name="usd-buy", currency="USD", rows=(TariffRow("1", "US", 10_000),)))
    accounts = Accounts(settings, redis)
    with pytest.raises(AccountError, match="in USD"):
        accounts.create_reseller("R9", "R", credit="1", buy_tariff="usd-buy", currency="EUR")
    accounts.create_reseller("R9", "R", credit="1", buy_tariff="usd-buy", currency="USD")


OLD_SECRET = "old-test-pin-secret-0123456789abcdef-retired"
NEW_SECRET = "new-test-pin-secret-fedcba9876543210-current"


def test_rotation_keeps_old_pins_working_and_rehashes_them_on_use(
    settings: Settings, redis: Any
) -> None:
    before = settings.replace(pin_secret=OLD_SECRET, pin_secret_file="")
    accounts = Accounts(before, redis)
    accounts.create_reseller("R1", "R", credit="100", buy_tariff="w")
    accounts.create_customer("C1", "C", reseller_id="R1", tariff="s", balance="5")
    used, unused = accounts.create_cards("C1", count=2, value="5").cards
    old_id = PinKeys.from_settings(before).current.key_id
    assert accounts.get_card(used.number).pin_key == old_id

    rotated = Accounts(before.replace(pin_secret=NEW_SECRET, pin_secrets_old=OLD_SECRET), redis)
    new_id = rotated.pins.keys.current.key_id
    check = rotated.verify_pin(used.number, used.pin)
    assert (check.ok, check.rehashed) == (True, True)
    assert rotated.get_card(used.number).pin_key == new_id
    assert not rotated.verify_pin(unused.number, "x").ok  # wrong PINs stay wrong
    # once the old secret is dropped, a card re-hashed on use still works; one never used since
    # the rotation does not (keep old secrets until every card was used or has expired)
    after = Accounts(before.replace(pin_secret=NEW_SECRET), redis)
    assert after.verify_pin(used.number, used.pin).ok
    assert not after.verify_pin(unused.number, unused.pin).ok


def test_cards_hashed_before_key_ids_verify_under_a_listed_old_secret(
    settings: Settings, redis: Any
) -> None:
    """Cards made with the former fixed default have no key id: list that secret as an old one."""
    accounts = Accounts(settings.replace(pin_secret=NEW_SECRET, pin_secret_file=""), redis)
    accounts.create_reseller("R1", "R", credit="100", buy_tariff="w")
    accounts.create_customer("C1", "C", reseller_id="R1", tariff="s", balance="5")
    issued = accounts.create_cards("C1", count=1, value="5").cards[0]
    legacy = PinKey.of("change-me-in-production")  # 23 bytes: accepted as an old secret only
    redis.hset(keys.card("R1", issued.number), "pin", legacy.hmac(issued.number, issued.pin))
    redis.hdel(keys.card("R1", issued.number), "pinkey")
    assert not accounts.verify_pin(issued.number, issued.pin).ok
    migrating = Accounts(accounts.settings.replace(pin_secrets_old=legacy.secret), redis)
    assert migrating.verify_pin(issued.number, issued.pin).rehashed
    assert accounts.verify_pin(issued.number, issued.pin).ok  # now under the current key
