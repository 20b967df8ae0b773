"""TariffStore against the real Redis and ClickHouse, and TariffLoader's recompilation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_driver import Client

from rater.errors import NotFound, ServiceUnavailable, TariffError
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.derive import derive
from rater.tariffs.loader import TariffLoader
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def table(name: str = "wholesale", rate: int = 10_000, currency: str = "EUR") -> TariffTable:
    return TariffTable(
        name=name,
        currency=currency,
        steps=Steps(60, 60),
        rows=(
            TariffRow("31", "Netherlands", rate, 0, line=2),
            TariffRow("316", "NL Mobile", rate * 4, 500, Steps(30, 6), rate * 5, None, None, 3),
            TariffRow("317", "NL Closed", rate, 0, None, None, None, T0 + timedelta(days=30), 4),
        ),
        source="deck.csv",
    )


@pytest.fixture
def store(redis: RedisLike, settings: Settings) -> TariffStore:
    return TariffStore(redis, settings)


def test_versions_and_effective_dates(store: TariffStore) -> None:
    first = store.save(table(), effective_from=T0 + timedelta(days=99), now=T0)
    assert (first.version, first.effective_from, first.created_at) == (1, None, T0)
    second = store.save(table(rate=12_000), now=T0 + timedelta(days=1))
    assert (second.version, second.effective_from) == (2, T0 + timedelta(days=1))
    later = T0 + timedelta(days=10)
    third = store.save(table(rate=13_000), effective_from=later, now=T0 + timedelta(days=2))
    assert (third.version, third.effective_from) == (3, later)

    assert store.get("wholesale") == third
    assert store.get("wholesale", 1) == first
    assert [t.version for t in store.versions("wholesale")] == [1, 2, 3]
    assert store.get("wholesale", 2).rows[1].rate == 48_000
    assert [(i.table.version, i.row_count) for i in store.infos("wholesale")] == [
        (1, 3), (2, 3), (3, 3),
    ]  # fmt: skip


def test_refusals_and_not_found(store: TariffStore) -> None:
    store.save(table(), now=T0)
    store.save(table(), effective_from=T0 + timedelta(days=5), now=T0)
    with pytest.raises(TariffError, match="in EUR; a version in USD is refused"):
        store.save(table(currency="USD"))
    with pytest.raises(TariffError, match="before version 2"):
        store.save(table(), effective_from=T0 + timedelta(days=4))
    with pytest.raises(NotFound, match="no tariff table named 'nope'"):
        store.get("nope")
    with pytest.raises(NotFound, match=r"has no version 7 \(versions: \[1, 2\]\)"):
        store.get("wholesale", 7)


def test_names_generation_and_delete(store: TariffStore) -> None:
    assert (store.names(), store.generation()) == ([], 0)
    store.save(table("b"))
    store.save(table("a"))
    assert store.names() == ["a", "b"]
    assert store.generation() == 2
    assert store.delete("a") == 1
    assert store.names() == ["b"]
    assert store.generation() == 3
    with pytest.raises(NotFound):
        store.get("a")


def test_seed_name_and_derived_snapshot(store: TariffStore) -> None:
    name = "Calling cards rates 40% - 60/60 billing - 29 sept 2008"
    base = store.save(table())
    sell = store.save(derive(base, name=name, markup=Decimal(40), steps=Steps(60, 60)))
    assert store.get(name) == sell
    assert store.get(name).rows[0].rate == 14_000
    assert name in store.names()


def test_clickhouse_copy(store: TariffStore, ch: Client) -> None:
    store.save(table("copy"), now=T0)
    store.save(table("copy", rate=20_000), effective_from=T0 + timedelta(days=1), now=T0)
    versions = ch.execute(
        "SELECT version, currency, steps, effective_from, row_count FROM tariff_versions "
        "WHERE name = 'copy' ORDER BY version"
    )
    assert versions == [
        (1, "EUR", "60/60", None, 3),
        (2, "EUR", "60/60", datetime(2026, 1, 2), 3),
    ]
    rows = ch.execute(
        "SELECT prefix, rate, connect_fee, first_rate, steps_minimum, steps_increment, "
        "effective_to FROM tariff_rows WHERE name = 'copy' AND version = 2 ORDER BY prefix"
    )
    assert rows == [
        ("31", 20_000, 0, 20_000, 60, 60, None),
        ("316", 80_000, 500, 100_000, 30, 6, None),
        ("317", 20_000, 0, 20_000, 60, 60, datetime(2026, 1, 31)),
    ]


def test_without_clickhouse(redis: RedisLike, settings: Settings) -> None:
    broken = settings.replace(clickhouse_port=1)  # nothing listens there
    saved = TariffStore(redis, broken, clickhouse=False).save(table("redis-only"))
    assert TariffStore(redis, broken, clickhouse=False).get("redis-only") == saved


def test_a_failed_clickhouse_copy_saves_nothing(redis: RedisLike, settings: Settings) -> None:
    store = TariffStore(redis, settings.replace(clickhouse_port=1))
    with pytest.raises(ServiceUnavailable, match="'half' not saved"):
        store.save(table("half"))
    assert store.names() == []
    assert store.generation() == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_loader_recompiles_only_on_change(store: TariffStore) -> None:
    calls: list[dict[str, list[TariffTable]]] = []

    def fake_compile(tables: dict[str, list[TariffTable]]) -> Any:
        calls.append(tables)
        return {name: [t.key for t in versions] for name, versions in tables.items()}

    clock = FakeClock()
    loader = TariffLoader(store, check_interval_ms=500, compile_fn=fake_compile, clock=clock)
    assert loader.compiled() == {}
    store.save(table("x"))
    clock.now = 0.1
    assert loader.compiled() == {}  # within the check interval: no Redis read at all
    clock.now = 0.6
    assert loader.compiled() == {"x": ["x@1"]}
    clock.now = 1.2
    assert loader.compiled() == {"x": ["x@1"]}
    assert loader.compiles == 2  # nothing changed: no recompile
    store.save(table("x", rate=1))
    store.save(table("y"))
    clock.now = 1.8
    assert loader.compiled() == {"x": ["x@1", "x@2"], "y": ["y@1"]}
    assert calls[-1]["x"][0] is calls[-2]["x"][0]  # saved versions are decoded once
    store.delete("y")
    clock.now = 2.4
    assert loader.compiled() == {"x": ["x@1", "x@2"]}
    assert loader.compiles == 4


def test_loader_keeps_the_last_good_compile(store: TariffStore) -> None:
    def picky_compile(tables: dict[str, list[TariffTable]]) -> Any:
        if "bad" in tables:
            raise TariffError("table 'bad' cannot be compiled")
        return sorted(tables)

    clock = FakeClock()
    store.save(table("bad"))
    loader = TariffLoader(store, check_interval_ms=100, compile_fn=picky_compile, clock=clock)
    with pytest.raises(TariffError, match="cannot be compiled"):
        loader.compiled()  # nothing to fall back on
    store.delete("bad")
    store.save(table("good"))
    clock.now = 1
    assert loader.compiled() == ["good"]
    store.save(table("bad"))
    clock.now = 2
    assert loader.compiled() == ["good"]  # the error is logged, rating goes on
    clock.now = 3
    assert loader.compiled() == ["good"]
    assert loader.compiles == 1  # no retry until the store changes again


def test_loader_with_the_real_compiler(store: TariffStore) -> None:
    pytest.importorskip("rater.tariffs.compile")
    store.save(table("sell"))
    store.save(replace(table("sell"), rows=table().rows[:1]), effective_from=T0)
    compiled = TariffLoader(store).compiled()
    assert compiled.table_names == ("sell",)
    assert list(compiled.ver_keys) == ["sell@1", "sell@2"]
