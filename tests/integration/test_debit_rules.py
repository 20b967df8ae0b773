"""The debit script against real Redis: replays, duplicates, the seed's rules, corrections."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from rater.accounts.api import Accounts
from rater.errors import AccountError, DebitError, DisposableCardError
from rater.pipeline.debit import Correction, DebitBatch, Debiter, Outcome, topic_token
from rater.redis import keys
from rater.settings import Settings

pytestmark = pytest.mark.integration

EUR = 1_000_000


def make_batch(
    rows: Sequence[tuple[Any, ...]], *, topic: str = "topic-1", partition: int = 0
) -> DebitBatch:
    """rows: (offset, cdr_id, customer, card, reseller, price, cost[, auth_id]) on switch sw1."""
    return DebitBatch(
        topic_id=topic,
        partition=partition,
        offsets=np.array([r[0] for r in rows], dtype=np.int64),
        switches=["sw1"] * len(rows),
        cdr_ids=[r[1] for r in rows],
        customers=[r[2] for r in rows],
        cards=[r[3] for r in rows],
        resellers=[r[4] for r in rows],
        prices=np.array([r[5] for r in rows], dtype=np.int64),
        costs=np.array([r[6] for r in rows], dtype=np.int64),
        auth_ids=[r[7] if len(r) > 7 else "" for r in rows],
    )


@pytest.fixture
def world(settings: Settings, redis: Any) -> tuple[Accounts, Debiter, str]:
    """Reseller R1 (100 EUR), SIP customer C1 (5 EUR) with a 10 EUR card with an ANI."""
    accounts = Accounts(settings, redis, actor="test")
    accounts.create_reseller("R1", "Reseller", credit="100", buy_tariff="wholesale")
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="5")
    card = accounts.create_cards("C1", count=1, value="10").cards[0].number
    accounts.add_ani(card, "31201234567")
    return accounts, Debiter(redis, settings=settings), card


def test_applies_three_levels_and_replays_change_nothing(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, card = world
    rows = [
        (100, "a", "C1", card, "R1", 1_200_000, 700_000),
        (101, "b", "C1", "", "R1", 300_000, 100_000),
        (103, "c", "C1", "", "R1", 0, 0),  # unanswered: recorded for duplicates only
    ]
    first = debiter.apply(make_batch(rows))
    assert first.outcome.tolist() == [Outcome.APPLIED] * 3
    assert not first.replayed.any()
    assert first.customer_balances == {"C1": 3_500_000}
    assert first.card_balances == {card: 8_800_000}
    assert first.reseller_balances == {"R1": 99_200_000}
    assert debiter.watermark("topic-1", 0) == 103
    # the same batch again (a crash before the offsets were committed)
    again = debiter.apply(make_batch(rows))
    assert again.outcome.tolist() == first.outcome.tolist()
    assert again.replayed.all()
    assert accounts.get_customer("C1").balance == 3_500_000
    assert accounts.get_card(card).balance == 8_800_000
    assert accounts.get_reseller("R1").credit == 99_200_000
    # a replay that runs past the watermark applies only the new part
    more = debiter.apply(make_batch([*rows, (104, "d", "C1", "", "R1", 500_000, 0)]))
    assert more.replayed.tolist() == [True, True, True, False]
    assert accounts.get_customer("C1").balance == 3_000_000
    # another topic incarnation (the broker lost its log): offsets start again, CDRs are new
    other = debiter.apply(make_batch([(0, "e", "C1", "", "R1", 100_000, 0)], topic="topic-2"))
    assert other.outcome.tolist() == [Outcome.APPLIED]
    assert accounts.get_customer("C1").balance == 2_900_000


def test_duplicates_change_nothing_and_keep_their_outcome_on_replay(
    world: tuple[Accounts, Debiter, str], settings: Settings, redis: Any
) -> None:
    accounts, debiter, _ = world
    debiter.apply(
        make_batch([(10, "x", "C1", "", "R1", 1_000_000, 500_000), (11, "z", "", "", "", 0, 0)])
    )
    # the switch resent both (one rated, one unrated and unknown) at later offsets
    resent = make_batch(
        [
            (20, "x", "C1", "", "R1", 1_000_000, 500_000),
            (21, "z", "", "", "", 0, 0),
            (22, "y", "C1", "", "R1", 1_000_000, 500_000),
            (23, "y", "C1", "", "R1", 1_000_000, 500_000),
        ],
    )
    result = debiter.apply(resent)
    assert result.outcome.tolist() == [
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
        Outcome.APPLIED,
        Outcome.DUPLICATE,
    ]
    assert accounts.get_customer("C1").balance == 3_000_000
    assert accounts.get_reseller("R1").credit == 99_000_000
    replay = debiter.apply(resent)
    assert replay.outcome.tolist() == result.outcome.tolist()
    assert replay.replayed.tolist() == [True, True, True, True]
    # the record is kept at least one de-duplication window, at most two
    bucket = int(redis.time()[0]) // settings.dedup_window_s
    record_key = debiter.topology.record_bucket("R1", bucket)
    assert redis.hexists(record_key, keys.dedup_field("sw1", "x"))
    ttl = redis.ttl(record_key)
    assert settings.dedup_window_s - 5 <= ttl <= 2 * settings.dedup_window_s


def test_records_of_the_previous_time_bucket_still_count(
    world: tuple[Accounts, Debiter, str], settings: Settings, redis: Any
) -> None:
    accounts, debiter, _ = world
    bucket = int(redis.time()[0]) // settings.dedup_window_s
    # a record written in the previous bucket by another message (partition 7, offset 5)
    old = topic_token("topic-1") + struct.pack("<Hq", 7, 5) + bytes([0, 0]) + bytes(8)
    records = debiter.topology.record_bucket
    redis.hset(records("R1", bucket - 1), keys.dedup_field("sw1", "old"), old)
    # two buckets back is beyond the window: forgotten (the key would have expired anyway)
    redis.hset(records("R1", bucket - 2), keys.dedup_field("sw1", "older"), old)
    result = debiter.apply(
        make_batch([(1, "old", "C1", "", "R1", EUR, EUR), (2, "older", "C1", "", "R1", EUR, EUR)])
    )
    assert result.outcome.tolist() == [Outcome.DUPLICATE, Outcome.APPLIED]
    assert accounts.get_customer("C1").balance == 4 * EUR


def test_copy_first_seen_with_an_unknown_account_is_a_duplicate_later(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, _ = world
    first = debiter.apply(make_batch([(1, "late", "", "", "", 0, 0)]))
    assert first.outcome.tolist() == [Outcome.APPLIED]
    second = debiter.apply(make_batch([(2, "late", "C1", "", "R1", 2_000_000, 1_000_000)]))
    assert second.outcome.tolist() == [Outcome.DUPLICATE]
    assert accounts.get_customer("C1").balance == 5_000_000


def test_unknown_accounts_are_not_debited(world: tuple[Accounts, Debiter, str]) -> None:
    _, debiter, _ = world
    result = debiter.apply(make_batch([(1, "u", "ghost", "", "R1", 1_000_000, 500_000)]))
    assert result.outcome.tolist() == [Outcome.UNKNOWN_ACCOUNT]
    assert result.reseller_balances == {}
    assert debiter.apply(make_batch([(2, "u", "ghost", "", "R1", 1, 1)])).outcome.tolist() == [
        Outcome.DUPLICATE
    ]


def test_tip1_ani_off_below_threshold_and_back_after_topup(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, card = world
    accounts.topup_customer("C1", "20", "enough SIP credit")
    result = debiter.apply(make_batch([(1, "a", "C1", card, "R1", 9_100_000, 5_000_000)]))
    assert [(e.kind, e.account, e.balance) for e in result.events] == [("ani_off", card, 900_000)]
    assert accounts.card_of_ani("31201234567") is None
    assert not accounts.get_card(card).ani_on
    events = accounts.redis.xrange(keys.events("R1"))
    assert events[-1][1][b"type"] == b"ani_off"
    accounts.topup_card(card, "0.09", "not quite")  # 0.99: still under 1.00
    assert accounts.card_of_ani("31201234567") is None
    accounts.topup_card(card, "0.01", "now exactly 1.00")
    assert accounts.card_of_ani("31201234567") == card
    assert accounts.get_card(card).ani_on


def test_tip2_customer_below_zero_blocks_its_card(world: tuple[Accounts, Debiter, str]) -> None:
    accounts, debiter, card = world  # customer 5 EUR, card 10 EUR
    result = debiter.apply(
        make_batch(
            [
                (1, "a", "C1", card, "R1", 3 * EUR, EUR),
                (2, "b", "C1", card, "R1", 3 * EUR, EUR),
                (3, "c", "C1", card, "R1", EUR, EUR),
            ]
        )
    )
    # the second call started with the customer at 2.00; the third with it at -1.00
    assert result.blocked.tolist() == [False, False, True]
    assert result.customer_balances == {"C1": -2 * EUR}
    assert result.card_balances == {card: 3 * EUR}  # the card still shows money
    assert [e.kind for e in result.events] == ["customer_negative"]
    customer = accounts.get_customer("C1")
    assert customer.status == "negative"
    accounts.topup_customer("C1", "2", "settles the debt")
    assert accounts.get_customer("C1").status == "active"


def test_tip3_disposable_card_exhausted_for_good(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, _ = world
    accounts.create_customer(
        "batch1",
        "Calling card user batch 1",
        reseller_id="R1",
        tariff="cards-40",
        kind="card_batch",
    )
    cards = accounts.create_cards("batch1", count=2, value="5", disposable=True).cards
    number = cards[0].number
    result = debiter.apply(make_batch([(1, "a", "batch1", number, "R1", 5_200_000, 3_000_000)]))
    assert {e.kind for e in result.events} == {"card_exhausted"}
    card = accounts.get_card(number)
    assert (card.status, card.balance) == ("exhausted", -200_000)
    with pytest.raises(DisposableCardError):
        accounts.topup_card(number, "5", "refill")
    with pytest.raises(AccountError, match="exhausted"):
        accounts.adjust("card", number, "1", "goodwill")
    # a later call on it is still debited (it happened) and flagged
    late = debiter.apply(make_batch([(2, "b", "batch1", number, "R1", 100_000, 50_000)]))
    assert late.blocked.tolist() == [True]
    assert accounts.get_card(cards[1].number).status == "active"  # its neighbour is untouched


def test_normal_card_empty_then_active_after_topup(world: tuple[Accounts, Debiter, str]) -> None:
    accounts, debiter, card = world
    accounts.topup_customer("C1", "50", "credit")
    result = debiter.apply(make_batch([(1, "a", "C1", card, "R1", 10 * EUR, EUR)]))
    assert [e.kind for e in result.events] == ["card_empty", "ani_off"]
    assert accounts.get_card(card).status == "empty"
    assert accounts.topup_card(card, "5", "refill").status == "active"


def test_reseller_below_zero_is_blocked_with_everything_under_it(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, _ = world
    result = debiter.apply(
        make_batch(
            [(1, "a", "C1", "", "R1", 2 * EUR, 101 * EUR), (2, "b", "C1", "", "R1", EUR, EUR)]
        )
    )
    assert result.blocked.tolist() == [False, True]
    assert [e.kind for e in result.events] == ["reseller_negative"]
    assert accounts.get_reseller("R1").status == "negative"


def test_debit_releases_the_authorization(world: tuple[Accounts, Debiter, str], redis: Any) -> None:
    _, debiter, card = world
    for level, account in (("r", "R1"), ("c", "C1"), ("k", card)):
        redis.hset(keys.reservations("R1", level, account), "auth1", "500000:9999999999")
    debiter.apply(make_batch([(1, "a", "C1", card, "R1", EUR, EUR, "auth1")]))
    for level, account in (("r", "R1"), ("c", "C1"), ("k", card)):
        assert not redis.hexists(keys.reservations("R1", level, account), "auth1")


def test_corrections_apply_once_per_key(world: tuple[Accounts, Debiter, str]) -> None:
    accounts, debiter, card = world
    items = [
        Correction("sw1:a:1", "R1", "C1", card, 250_000, 100_000),
        Correction("sw1:b:1", "R1", "C1", "", -1_000_000, -500_000),
    ]
    assert debiter.apply_corrections(items).tolist() == [True, True]
    assert debiter.apply_corrections(items).tolist() == [False, False]
    assert accounts.get_customer("C1").balance == 5_750_000
    assert accounts.get_card(card).balance == 9_750_000
    assert accounts.get_reseller("R1").credit == 100_400_000


def test_malformed_batches_are_refused(world: tuple[Accounts, Debiter, str]) -> None:
    _, debiter, _ = world
    with pytest.raises(DebitError, match="ascending"):
        debiter.apply(make_batch([(2, "a", "C1", "", "R1", 1, 1), (1, "b", "C1", "", "R1", 1, 1)]))
    with pytest.raises(DebitError, match=">= 0"):
        debiter.apply(make_batch([(1, "a", "C1", "", "R1", -1, 0)]))
    with pytest.raises(DebitError, match="no customer"):
        debiter.apply(make_batch([(1, "a", "", "", "R1", 5, 0)]))


# ------------------------------------------------------------------ defects found in review
def _second_reseller(accounts: Accounts) -> None:
    accounts.create_reseller("R2", "Other reseller", credit="100", buy_tariff="wholesale")
    accounts.create_customer("C2", "SIP", reseller_id="R2", tariff="retail", balance="5")


def test_a_resent_cdr_for_another_resellers_account_is_charged_once(
    world: tuple[Accounts, Debiter, str],
) -> None:
    """(switch, cdr_id) identifies the CDR whatever account it names (docs/DESIGN.md section 4)."""
    accounts, debiter, _ = world
    _second_reseller(accounts)
    first = debiter.apply(make_batch([(1, "x", "C1", "", "R1", EUR, EUR // 2)]))
    assert first.outcome.tolist() == [Outcome.APPLIED]
    # the switch re-sends it in a later batch, now naming a customer of another reseller
    again = debiter.apply(make_batch([(2, "x", "C2", "", "R2", EUR, EUR // 2)]))
    assert again.outcome.tolist() != [Outcome.APPLIED]
    assert accounts.get_customer("C2").balance == 5 * EUR
    assert accounts.get_reseller("R2").credit == 100 * EUR
    # and within one batch, across resellers
    both = debiter.apply(
        make_batch([(3, "y", "C2", "", "R2", EUR, 0), (4, "y", "C1", "", "R1", EUR, 0)])
    )
    assert both.outcome.tolist()[0] == Outcome.APPLIED
    assert both.outcome.tolist()[1] != Outcome.APPLIED
    assert accounts.get_customer("C1").balance == 4 * EUR


def test_huge_amounts_never_wrap_a_balance(world: tuple[Accounts, Debiter, str]) -> None:
    """Three CDRs of 2^62 micro-units in one batch once wrapped a balance to -9.2e18."""
    accounts, debiter, _ = world
    huge = 2**62
    debiter.apply(make_batch([(i, f"h{i}", "C1", "", "R1", huge, huge) for i in range(1, 4)]))
    limit = 2**53
    assert abs(accounts.get_customer("C1").balance) <= limit
    assert abs(accounts.get_reseller("R1").credit) <= limit


def test_large_amounts_are_summed_exactly(world: tuple[Accounts, Debiter, str]) -> None:
    """Sums beyond 2^53 are not exact in doubles (Lua numbers): the balance must still be."""
    accounts, debiter, _ = world
    price = 2**52 + 1  # odd: three of them need 54 bits
    rows = [(i, f"e{i}", "C1", "", "R1", price, 1) for i in range(1, 4)]
    result = debiter.apply(make_batch(rows))
    applied = result.count(Outcome.APPLIED)
    assert applied >= 1
    assert accounts.get_customer("C1").balance == 5 * EUR - applied * price
    assert accounts.get_reseller("R1").credit == 100 * EUR - applied


def test_an_auth_id_with_a_newline_releases_only_its_own_reservation(
    world: tuple[Accounts, Debiter, str], redis: Any
) -> None:
    _, debiter, _ = world
    reservations = keys.reservations("R1", "c", "C1")
    redis.hset(reservations, "x", "500000:9999999999")  # another call, still going on
    redis.hset(reservations, "x\ny", "500000:9999999999")
    debiter.apply(make_batch([(1, "a", "C1", "", "R1", EUR, EUR, "x\ny")]))
    assert redis.hexists(reservations, "x")


# ------------------------------------------------------------------ amounts at the bounds
MAX = 2**53 - 1  # rater/redis/contract.py MAX_AMOUNT


def test_amounts_at_the_bound_apply_and_beyond_it_are_out_of_range(
    world: tuple[Accounts, Debiter, str],
) -> None:
    """A price of MAX_AMOUNT still applies; one more micro-unit, or a balance it would take
    below -MAX_AMOUNT, is OUT_OF_RANGE: recorded (a re-send is a duplicate), nothing changed."""
    accounts, debiter, _ = world
    balance = 5 * EUR
    # the customer can go down to -MAX exactly: a price of balance + MAX fits, one more does not
    rows = [
        (1, "over", "C1", "", "R1", MAX + 1, 0),
        (2, "huge", "C1", "", "R1", 2**63 - 1, 0),
        (3, "cost", "C1", "", "R1", 0, MAX + 1),
        (4, "below", "C1", "", "R1", MAX, 0),  # 5 EUR - MAX: fits
        (5, "more", "C1", "", "R1", balance + 1, 0),  # would reach -MAX - 1
        (6, "last", "C1", "", "R1", balance, 0),  # reaches -MAX exactly
    ]
    result = debiter.apply(make_batch(rows))
    assert result.outcome.tolist() == [
        Outcome.OUT_OF_RANGE, Outcome.OUT_OF_RANGE, Outcome.OUT_OF_RANGE, Outcome.APPLIED,
        Outcome.OUT_OF_RANGE, Outcome.APPLIED,
    ]  # fmt: skip
    assert accounts.get_customer("C1").balance == -MAX
    assert result.customer_balances == {"C1": -MAX}
    assert accounts.get_reseller("R1").credit == 100 * EUR
    again = debiter.apply(make_batch([(7, "over", "C1", "", "R1", 1, 0)]))
    assert again.outcome.tolist() == [Outcome.DUPLICATE]
    replay = debiter.apply(make_batch(rows))
    assert replay.outcome.tolist() == result.outcome.tolist()
    assert replay.replayed.all()
    assert accounts.get_customer("C1").balance == -MAX


def test_many_large_debits_of_one_account_in_one_batch_are_exact(
    world: tuple[Accounts, Debiter, str],
) -> None:
    """The per-account sum is written before it would pass MAX_AMOUNT (a double's exact range):
    these three sum to 2^53 + 4,999,999, which a double cannot hold."""
    accounts, debiter, _ = world
    rows = [
        (1, "m1", "C1", "", "R1", MAX - 10, 1),
        (2, "m2", "C1", "", "R1", 20, 1),
        (3, "m3", "C1", "", "R1", 5 * EUR - 10, 1),  # the balance reaches -MAX exactly
    ]
    result = debiter.apply(make_batch(rows))
    assert result.outcome.tolist() == [Outcome.APPLIED] * 3
    assert accounts.get_customer("C1").balance == -MAX
    assert result.customer_balances == {"C1": -MAX}
    assert accounts.get_reseller("R1").credit == 100 * EUR - 3


def test_corrections_beyond_the_bound_are_refused_and_change_nothing(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, _ = world
    with pytest.raises(DebitError, match="beyond"):
        debiter.apply_corrections([Correction("k-big", "R1", "C1", "", MAX + 1, 0)])
    with pytest.raises(DebitError, match="k-far"):
        debiter.apply_corrections(
            [Correction("k-ok", "R1", "C1", "", 1, 0), Correction("k-far", "R1", "C1", "", -MAX, 0)]
        )
    assert accounts.get_customer("C1").balance == 5 * EUR - 1  # k-ok applied, k-far not
    # k-far was not marked applied: with a smaller balance change it is not a no-op later
    assert debiter.apply_corrections([Correction("k-ok", "R1", "C1", "", 1, 0)]).tolist() == [False]


def test_a_replay_resolving_to_another_reseller_reads_back_its_first_outcome(
    world: tuple[Accounts, Debiter, str],
) -> None:
    """First seen with an unknown account (recorded under no reseller), replayed after the
    account was created: the replay reads back what happened, it charges nothing."""
    accounts, debiter, _ = world
    first = debiter.apply(make_batch([(1, "early", "", "", "", 0, 0)]))
    assert first.outcome.tolist() == [Outcome.APPLIED]
    replay = debiter.apply(make_batch([(1, "early", "C1", "", "R1", EUR, EUR)]))
    assert replay.outcome.tolist() == [Outcome.APPLIED]
    assert replay.replayed.tolist() == [True]
    assert accounts.get_customer("C1").balance == 5 * EUR


def test_a_resend_with_other_rating_fields_is_a_conflict_across_resellers(
    world: tuple[Accounts, Debiter, str],
) -> None:
    accounts, debiter, _ = world
    _second_reseller(accounts)
    prints = np.array([11, 11, 12, 0], dtype=np.uint64)
    batch = make_batch(
        [
            (1, "f", "C1", "", "R1", EUR, 0),
            (2, "f", "C2", "", "R2", EUR, 0),  # same fields: a duplicate
            (3, "f", "C2", "", "R2", 2 * EUR, 0),  # other fields: a conflict
            (4, "f", "C2", "", "R2", 3 * EUR, 0),  # no fingerprint: never a conflict
        ]
    )
    result = debiter.apply(dataclasses.replace(batch, fingerprints=prints))
    assert result.outcome.tolist() == [
        Outcome.APPLIED, Outcome.DUPLICATE, Outcome.CONFLICT, Outcome.DUPLICATE,
    ]  # fmt: skip
    assert result.first is not None
    assert result.first.tolist()[2] == [0, 1]  # (partition, offset) of the charged copy
    assert accounts.get_customer("C2").balance == 5 * EUR
    assert accounts.get_customer("C1").balance == 4 * EUR


def test_records_of_the_per_reseller_layout_still_count_on_one_server(
    world: tuple[Accounts, Debiter, str], settings: Settings, redis: Any
) -> None:
    """Records written per reseller ({r:R}:d:<bucket>, 20 bytes: before the fingerprint) are
    read until they expire, so an upgrade does not charge a re-send twice."""
    accounts, debiter, _ = world
    bucket = int(redis.time()[0]) // settings.dedup_window_s
    old = topic_token("topic-1") + struct.pack("<Hq", 7, 5) + bytes([0, 0])
    redis.hset(keys.reseller_records("R1", bucket), keys.dedup_field("sw1", "before"), old)
    result = debiter.apply(make_batch([(1, "before", "C1", "", "R1", EUR, EUR)]))
    assert result.outcome.tolist() == [Outcome.DUPLICATE]
    assert accounts.get_customer("C1").balance == 5 * EUR
