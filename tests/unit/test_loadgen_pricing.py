"""The manifest's memoised pricing gives, for every call, exactly what `reference.rate` gives
when called on that call alone: across version changes, scheduled and closed rows, steps,
first-step rates, connect fees and unmatched numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from rater import reference
from rater.loadgen.generate import Chunk, GenerationOptions, Generator
from rater.loadgen.manifest import Manifest, ManifestBuilder
from rater.loadgen.numbers import NumberBook
from rater.loadgen.population import CustomerPlan, ResellerPlan, Scenario
from rater.loadgen.pricing import (
    BAD_NUMBER,
    RATED,
    UNANSWERED,
    UNRATED,
    BackgroundPricer,
    ReferencePricer,
)
from rater.money import Rounding, from_micro
from rater.switches.numbers import normalise_number
from rater.tariffs.model import Steps, TariffRow, TariffTable

NOW = 1_790_000_000


def _at(offset: int) -> datetime:
    return datetime.fromtimestamp(NOW + offset, UTC)


def _tariffs() -> dict[str, list[TariffTable]]:
    sell_v1 = TariffTable(
        name="sell",
        decimals=4,
        steps=Steps(30, 6),
        rows=(
            TariffRow("31", "Netherlands", rate=50_000),
            TariffRow("3161", "Netherlands Mobile", rate=200_000, first_rate=300_000),
            TariffRow("44", "United Kingdom", rate=30_000, connect_fee=10_000),
            TariffRow("49", "Germany", rate=40_000, steps=Steps(60, 60)),
            TariffRow("1", "NANP", rate=10_000),
        ),
    )
    sell_v2 = TariffTable(
        name="sell",
        version=2,
        effective_from=_at(-1800),
        decimals=2,
        rounding=Rounding.HALF_UP,
        steps=Steps(1, 1),
        rows=(
            TariffRow("31", "Netherlands", rate=60_000),
            # closed 15 minutes before the end of the window: calls fall back to 31
            TariffRow("3161", "Netherlands Mobile", rate=250_000, effective_to=_at(-900)),
            TariffRow("44", "United Kingdom", rate=35_000),
            # scheduled change inside the version
            TariffRow("44", "United Kingdom", rate=45_000, effective_from=_at(-600)),
            TariffRow("49", "Germany", rate=40_000),
            TariffRow("1", "NANP", rate=12_000),
        ),
    )
    buy = TariffTable(
        name="buy",
        steps=Steps(1, 1),
        rows=(
            TariffRow("31", "Netherlands", rate=20_000),
            TariffRow("3161", "Netherlands Mobile", rate=90_000),
            TariffRow("44", "United Kingdom", rate=15_000),
            TariffRow("1", "NANP", rate=5_000),  # no 49: German calls stay unrated
        ),
    )
    return {"sell": [sell_v1, sell_v2], "buy": [buy]}


def _scenario() -> Scenario:
    customers = tuple(
        CustomerPlan(f"c{i}", "r1", "sell", cards=(f"80000{i}",) if i % 3 == 0 else ())
        for i in range(12)
    )
    return Scenario("t", (ResellerPlan("r1", "buy"),), customers)


def test_memoised_prices_equal_the_reference_call_by_call() -> None:
    scenario = _scenario()
    tariffs = _tariffs()
    book = NumberBook.from_prefixes(["31", "3161", "44", "49", "1"], seed=4)
    gen = Generator(scenario, book, GenerationOptions(seed=3, unrated_fraction=0.05), "r", now=NOW)
    pricer = ReferencePricer(scenario, tariffs)
    settings = [s.settings() for s in scenario.switches]
    seen: set[int] = set()
    for _ in range(3):  # memos carry over between chunks
        chunk = gen.chunk(1500)
        calls = chunk.calls
        priced = pricer.price(calls)
        for i in range(len(calls)):
            number = normalise_number(str(calls.callee[i]), settings[int(calls.switch[i])])
            at = datetime.fromtimestamp(int(calls.start[i]), UTC)
            billsec = int(calls.billsec[i])
            sell = reference.rate(tariffs["sell"], number, billsec, at)
            buy = reference.rate(tariffs["buy"], number, billsec, at)
            if billsec == 0:
                expected = (UNANSWERED, 0, 0)
            elif sell is None or buy is None:
                expected = (UNRATED, 0, 0)
            else:
                expected = (RATED, sell.price_micro, buy.price_micro)
            got = (int(priced.status[i]), int(priced.price[i]), int(priced.cost[i]))
            assert got == expected, (number, billsec, at, got, expected)
            seen.add(got[0])
    assert seen == {RATED, UNRATED, UNANSWERED}
    assert pricer.reference_calls < 3 * 1500  # memoised: far fewer pricings than calls


def test_a_callee_that_does_not_normalise_is_counted_invalid() -> None:
    scenario = _scenario()
    book = NumberBook.from_prefixes(["31", "44"], seed=4)
    gen = Generator(scenario, book, GenerationOptions(seed=3), "r", now=NOW)
    chunk = gen.chunk(200)
    refuse_first = str(chunk.calls.callee[0])

    def picky(raw: str, switch: object) -> str:
        from rater.errors import NormalisationError

        if raw == refuse_first:
            raise NormalisationError("refused for the test")
        return normalise_number(raw, switch)  # type: ignore[arg-type]

    pricer = ReferencePricer(scenario, _tariffs(), normalise=picky)
    priced = pricer.price(chunk.calls)
    assert priced.status[0] == BAD_NUMBER
    builder = ManifestBuilder(scenario, gen.cards, gen.card_customer)
    builder.add(chunk, priced)
    manifest = builder.build(run_id="r", topic="t", seed=3, created_at="", options={})
    bad = int((priced.status == BAD_NUMBER).sum())
    assert manifest.invalid["bad_number"] == bad
    assert manifest.valid == 200 - bad


def test_manifest_sums_and_json_round_trip() -> None:
    scenario = _scenario()
    tariffs = _tariffs()
    book = NumberBook.from_prefixes(["31", "3161", "44", "49", "1"], seed=4)
    gen = Generator(
        scenario,
        book,
        GenerationOptions(seed=8, invalid_fraction=0.05, duplicate_fraction=0.05),
        "r",
        now=NOW,
    )
    pricer = ReferencePricer(scenario, tariffs)
    builder = ManifestBuilder(scenario, gen.cards, gen.card_customer)
    chunks = [gen.chunk(700), gen.chunk(300)]
    priced = [pricer.price(c.calls) for c in chunks]
    for chunk, p in zip(chunks, priced, strict=True):
        builder.add(chunk, p)
    manifest = builder.build(run_id="r", topic="t", seed=8, created_at="", options={})
    price = sum(int(p.price.sum()) for p in priced)
    cost = sum(int(p.cost.sum()) for p in priced)
    assert manifest.published == 1000
    assert manifest.duplicates == 50
    assert manifest.invalid_total == 50
    assert manifest.valid == 900 == manifest.answered + manifest.unanswered
    assert manifest.answered == manifest.rated + manifest.unrated
    assert manifest.price_micro == price == sum(c.price_micro for c in manifest.customers.values())
    assert manifest.cost_micro == cost == sum(r.cost_micro for r in manifest.resellers.values())
    card_price = sum(
        int(p.price[c.calls.card >= 0].sum()) for c, p in zip(chunks, priced, strict=True)
    )
    assert sum(c.price_micro for c in manifest.cards.values()) == card_price
    data = orjson.loads(manifest.dumps())
    assert data["totals"]["price"] == from_micro(price)
    again = Manifest.from_json(data)
    assert again.to_json() == manifest.to_json()
    assert data["resellers"]["r1"]["margin"] == from_micro(price - cost)


def test_background_pricer_agrees_with_the_direct_one_in_both_modes() -> None:
    scenario = _scenario()
    tariffs = _tariffs()
    book = NumberBook.from_prefixes(["31", "3161", "44", "49", "1"], seed=4)
    gen = Generator(scenario, book, GenerationOptions(seed=6), "r", now=NOW)
    chunks = [gen.chunk(400), gen.chunk(400)]
    direct = ReferencePricer(scenario, tariffs)
    expected = [direct.price(c.calls) for c in chunks]
    for inline in (True, False):
        with BackgroundPricer(scenario, tariffs, book, inline=inline) as pricer:
            for chunk in chunks:
                pricer.submit(Chunk(chunk.keys, chunk.values, chunk.calls, chunk.invalid))
            got = [priced for _, priced in pricer.results()]
        for want, have in zip(expected, got, strict=True):
            assert (want.status == have.status).all()
            assert (want.price == have.price).all()
            assert (want.cost == have.cost).all()
        assert pricer.reference_calls == direct.reference_calls
