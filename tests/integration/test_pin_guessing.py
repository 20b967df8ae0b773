"""PIN guessing against real Redis: one answer for every card-or-PIN problem, wrong PINs
counted per caller number over all cards, and switches slowed down but never locked out
(rater/accounts/pin_guard.py, rater/accounts/pins.py)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer, Reason
from rater.accounts.model import IssuedCard
from rater.accounts.pins import guess_budget
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

MOBILE = "31612345678"
TABLE = TariffTable(
    name="retail", decimals=4, steps=Steps(60, 60), rows=(TariffRow("31", "NL", rate=100_000),)
)


class Sleeps(list[float]):
    """Records the delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


@pytest.fixture
def cards(settings: Settings, redis: Any) -> tuple[Accounts, list[IssuedCard]]:
    TariffStore(redis, settings, clickhouse=False).save(TABLE)
    accounts = Accounts(settings, redis)
    accounts.create_reseller("R1", "Reseller", credit="1000", buy_tariff="retail")
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="500")
    return accounts, list(accounts.create_cards("C1", count=6, value="10").cards)


def _authorizer(accounts: Accounts, **changes: Any) -> tuple[Authorizer, Sleeps]:
    settings = accounts.settings.replace(**changes)
    sleeps = Sleeps()
    found = Authorizer(
        settings, accounts.redis, accounts=Accounts(settings, accounts.redis), sleep=sleeps
    )
    return found, sleeps


def _wrong(card: IssuedCard) -> str:
    return "0000" if card.pin != "0000" else "1111"


def _refusals(why: str) -> float:
    return REGISTRY.get_sample_value("rater_pin_refusals_total", {"why": why}) or 0.0


def test_unknown_card_wrong_pin_locked_and_blocked_get_one_answer(
    cards: tuple[Accounts, list[IssuedCard]],
) -> None:
    """ "unknown card" and "wrong PIN" differed, so they told which card numbers exist."""
    accounts, issued = cards
    authorizer, _ = _authorizer(accounts, pin_max_failures=2, pin_lock_schedule_s="900")
    first, second = issued[0], issued[1]
    before = _refusals("unknown_card")
    unknown = authorizer.authorize(card="899999999999", pin="1234", callee=MOBILE)
    wrong = authorizer.authorize(card=first.number, pin=_wrong(first), callee=MOBILE)
    locked = authorizer.authorize(card=first.number, pin=_wrong(first), callee=MOBILE)
    assert accounts.get_card(first.number).locked_until is not None
    right_but_locked = authorizer.authorize(card=first.number, pin=first.pin, callee=MOBILE)
    for _ in range(2):
        authorizer.authorize(card=second.number, pin=_wrong(second), callee=MOBILE)
    accounts.redis.hset(f"{{r:R1}}:k:{second.number}", "pinlock", 1)  # the lock is over
    for _ in range(2):
        authorizer.authorize(card=second.number, pin=_wrong(second), callee=MOBILE)
    assert accounts.get_card(second.number).pin_blocked
    blocked = authorizer.authorize(card=second.number, pin=second.pin, callee=MOBILE)

    answers = [unknown, wrong, locked, right_but_locked, blocked]
    assert {a.reason for a in answers} == {Reason.CARD_OR_PIN}
    shapes = [{k: v for k, v in a.as_dict().items() if k != "card"} for a in answers]
    assert all(shape == shapes[0] for shape in shapes), shapes
    # the real reason goes to the metric (and the log) only
    assert _refusals("unknown_card") == before + 1


def test_one_caller_cannot_sweep_many_cards(cards: tuple[Accounts, list[IssuedCard]]) -> None:
    accounts, issued = cards
    authorizer, _ = _authorizer(accounts, pin_caller_max_failures=3)
    sweeper = "+31 6 1111 2222"
    for card in issued[:2]:
        answer = authorizer.authorize(
            card=card.number, pin=_wrong(card), callee=MOBILE, caller=sweeper
        )
        assert answer.reason is Reason.CARD_OR_PIN
    unknown = authorizer.authorize(card="899999999999", pin="1234", callee=MOBILE, caller=sweeper)
    assert unknown.reason is Reason.CARD_OR_PIN  # unknown numbers count for the caller too
    # three wrong PINs on three numbers: no card is locked, but the caller is
    assert all(accounts.get_card(c.number).locked_until is None for c in issued[:2])
    target = issued[3]
    refused = authorizer.authorize(
        card=target.number, pin=target.pin, callee=MOBILE, caller=sweeper
    )
    assert refused.reason is Reason.CARD_OR_PIN  # even the right PIN, from this caller
    other = authorizer.authorize(
        card=target.number, pin=target.pin, callee=MOBILE, caller="31201234567"
    )
    assert other.allowed, other.message


def test_a_callers_own_right_pin_does_not_buy_more_guesses(
    cards: tuple[Accounts, list[IssuedCard]],
) -> None:
    accounts, issued = cards
    authorizer, _ = _authorizer(accounts, pin_caller_max_failures=3, max_calls_per_card=10)
    own, others = issued[0], issued[1:]
    caller = "31655500001"
    for victim in others[:3]:
        guess = authorizer.authorize(
            card=victim.number, pin=_wrong(victim), callee=MOBILE, caller=caller
        )
        assert not guess.allowed
        if victim is not others[2]:
            mine = authorizer.authorize(
                card=own.number, pin=own.pin, callee=MOBILE, caller=caller, max_seconds=60
            )
            assert mine.allowed, mine.message  # a right PIN is not counted, and resets nothing
    locked = authorizer.authorize(card=own.number, pin=own.pin, callee=MOBILE, caller=caller)
    assert locked.reason is Reason.CARD_OR_PIN


def test_failures_slow_a_switch_down_but_never_lock_it_out(
    cards: tuple[Accounts, list[IssuedCard]],
) -> None:
    accounts, issued = cards
    authorizer, sleeps = _authorizer(
        accounts, pin_switch_free_failures=2, pin_switch_delay_ms=100, pin_switch_max_delay_ms=250,
        max_calls_per_card=10,
    )  # fmt: skip
    authorizer.pin_gate.guard.clock = lambda: 1_800_000_000.0  # one minute for the whole test
    for card in issued[:5]:
        authorizer.authorize(card=card.number, pin=_wrong(card), callee=MOBILE, switch="sw-x")
    assert sleeps == [0.1, 0.2]  # before the 4th and 5th attempt: 1 and 2 failures too many
    right = authorizer.authorize(
        card=issued[5].number, pin=issued[5].pin, callee=MOBILE, switch="sw-x", max_seconds=60
    )
    assert right.allowed, right.message  # slowed down, not locked out
    assert sleeps[-1] == 0.25  # capped
    other = authorizer.authorize(
        card=issued[5].number, pin=issued[5].pin, callee=MOBILE, switch="sw-y"
    )
    assert other.allowed
    assert len(sleeps) == 3  # the other switch is not slowed


def test_the_guess_budget_follows_the_settings() -> None:
    assert guess_budget(Settings()) == (
        15,
        20,
    )  # 5 + 5 (15 min) + 5 (1 h), then 24 h; blocked at 20
    assert guess_budget(Settings(pin_max_failures=3, pin_lock_schedule_s="60")) == (6, 6)
    assert guess_budget(Settings(pin_max_failures=5, pin_lock_schedule_s="86400")) == (5, 10)
