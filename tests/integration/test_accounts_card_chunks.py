"""Card batches made in chunks (funding first, then a script call per chunk): progress, number
clashes redrawn, a batch that fails half-way blocked and unfunded, and the ledger reconciling."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from rater.accounts import batches
from rater.accounts.api import Accounts
from rater.accounts.batches import CardBatches
from rater.billing.reconcile import reconcile
from rater.errors import AccountError
from rater.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def accounts(settings: Settings, redis: Any, monkeypatch: pytest.MonkeyPatch) -> Accounts:
    monkeypatch.setattr(batches, "CARD_CHUNK", 7)  # 20 cards: chunks of 7, 7 and 6
    found = Accounts(settings, redis, actor="test")
    # the ClickHouse database lives for the whole session: a reseller of this test's own
    reseller = f"K{uuid.uuid4().hex[:8]}"
    found.create_reseller(reseller, "Reseller", credit="1000", buy_tariff="wholesale")
    # so is the customer id (the ledger keys customers by id alone)
    found.create_customer(
        f"C{reseller}", "Calling card user batch 1", reseller_id=reseller, tariff="cards",
        kind="card_batch",
    )  # fmt: skip
    return found


def _reseller(accounts: Accounts) -> str:
    return next(r.reseller_id for r in accounts.list_resellers())


def _customer(accounts: Accounts) -> str:
    return "C" + _reseller(accounts)


def test_chunks_report_progress_and_reconcile(accounts: Accounts, ch: Any) -> None:
    done: list[int] = []
    batch = accounts.create_cards(
        _customer(accounts), count=20, value="5", disposable=True, progress=done.append
    )
    assert done == [7, 7, 6]
    assert accounts.get_customer(_customer(accounts)).balance == 100_000_000
    listed = accounts.list_cards(batch_id=batch.batch_id)
    assert sorted(c.number for c in listed) == sorted(c.number for c in batch.cards)
    assert all(c.balance == 5_000_000 and c.status == "active" for c in listed)
    assert accounts.verify_pin(batch.cards[13].number, batch.cards[13].pin).ok
    rows = ch.execute(
        "SELECT kind, count(), sum(amount) FROM ledger WHERE ref = %(b)s GROUP BY kind",
        {"b": batch.batch_id},
    )
    assert sorted(rows) == [("batch_funding", 1, 100_000_000), ("card_issue", 20, 100_000_000)]
    checks = reconcile(accounts.settings, accounts.redis, resellers=[_reseller(accounts)])
    assert len(checks) == 1 + 1 + 20
    assert all(check.ok for check in checks), [c.row() for c in checks if not c.ok]


def test_a_number_already_issued_is_drawn_again(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = accounts.create_cards(_customer(accounts), count=3, value="5", disposable=True)
    taken = first.cards[1].number
    real = batches.new_card_numbers

    def with_a_clash(settings: Settings, count: int, **kwargs: Any) -> list[str]:
        numbers = real(settings, count, **kwargs)
        if count > 1:
            numbers[9] = taken  # in the second chunk
        return numbers

    monkeypatch.setattr(batches, "new_card_numbers", with_a_clash)
    second = accounts.create_cards(_customer(accounts), count=20, value="5", disposable=True)
    numbers = {c.number for c in second.cards}
    assert len(numbers) == 20
    assert taken not in numbers
    assert len(accounts.list_cards(batch_id=second.batch_id)) == 20
    assert accounts.get_card(taken).batch_id == first.batch_id  # the old card untouched
    redrawn = second.cards[9]
    assert accounts.verify_pin(redrawn.number, redrawn.pin).ok  # its hash follows the number


def test_a_batch_failing_half_way_is_blocked_and_unfunded(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = CardBatches._create_chunk
    calls: list[int] = []

    def failing(self: CardBatches, made: Any, first: int, last: int) -> None:
        calls.append(first)
        if len(calls) == 2:
            raise ConnectionError("Redis went away")
        real(self, made, first, last)

    monkeypatch.setattr(CardBatches, "_create_chunk", failing)
    done: list[int] = []
    with pytest.raises(AccountError) as error:
        accounts.create_cards(
            _customer(accounts),
            count=20,
            value="5",
            disposable=True,
            batch_id="half",
            progress=done.append,
        )
    message = str(error.value)
    assert "failed after 7 of 20" in message
    assert "Redis went away" in message
    assert "7 cards created are blocked" in message
    assert "funding of 100.00 was taken back" in message
    assert done == [7]
    cards = accounts.list_cards(batch_id="half")
    assert len(cards) == 7
    assert all(card.blocked for card in cards)
    assert accounts.get_customer(_customer(accounts)).balance == 0
    checks = reconcile(accounts.settings, accounts.redis, resellers=[_reseller(accounts)])
    assert all(check.ok for check in checks), [c.row() for c in checks if not c.ok]
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_cards(
            _customer(accounts), count=1, value="5", disposable=True, batch_id="half"
        )
