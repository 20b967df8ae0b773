"""Names that arrive from outside (switch, account, card, tariff) never collide with rater's
own keys nor split a multi-key call over Redis Cluster slots (docs/REDIS_KEYS.md)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rater.accounts.lookup import AccountLookup
from rater.pipeline.debit import DebitBatch, Debiter, Outcome
from rater.redis import keys
from rater.switches.registry import SwitchRegistry
from rater.tariffs import codec
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable
from rater.tariffs.store import TariffStore
from tests.integration.redis_targets import Target, target

__all__ = ["target"]

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _table(name: str) -> TariffTable:
    return TariffTable(
        name=name, currency="EUR", steps=Steps(60, 60),
        rows=(TariffRow("31", "Netherlands", 10_000, 0, line=2),), source="deck.csv",
    )  # fmt: skip


def test_a_switch_named_like_the_registrys_own_keys(target: Target) -> None:
    """A CDR's switch `names` once read `switch:names` (a set): WRONGTYPE on every restart."""
    registry = SwitchRegistry(target.client)
    registry.set(SwitchSettings(name="ams", country_code="31"))
    for name in ("names", "generation", "ams:x", "{ams}", "a\nb"):
        assert registry.get(name) == SwitchSettings(name=name)
    registry.set(SwitchSettings(name="names", country_code="44"))
    registry.set(SwitchSettings(name="generation", country_code="1"))
    assert [s.name for s in registry.list()] == ["ams", "generation", "names"]
    assert registry.get("names").country_code == "44"
    assert registry.generation() == 3


@pytest.mark.parametrize(
    "name",
    [
        "}x",
        "a{b}c",
        "{retail}",
        "Calling cards rates 40% - 60/60 billing - 29 sept 2008",
        "names",
        "x:v:1",
    ],
)
def test_tariff_names_with_braces_keep_a_table_in_one_slot(target: Target, name: str) -> None:
    store = TariffStore(target.client, target.settings, clickhouse=False)
    saved = store.save(_table(name), now=T0)
    again = store.save(_table(name), now=T0)
    assert (saved.version, again.version) == (1, 2)
    assert store.get(name, 1) == saved
    assert name in store.names()
    assert store.delete(name) == 2
    assert name not in store.names()


AWKWARD = [
    "names", "generation", "switches", "switch:names", "tariff:names", "accounts:generation",
    "{r:R1}", "}x", "a{b}c", "{}", ":", "a:b", "\x00", "a\nb", "%41", "r:", "d:1", "{dc:3}",
    "Calling cards rates 40% - 60/60 billing - 29 sept 2008",
]  # fmt: skip
names = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(alphabet=st.sampled_from("{}:%\x00\n aZ9_.-"), min_size=1, max_size=10),
    st.text(min_size=1, max_size=10),
).filter(lambda s: s.strip() != "")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=names)
def test_any_name_keeps_every_call_in_one_slot(target: Target, name: str) -> None:
    """Switch, account, card, reseller and tariff names with braces, ':', NUL, newlines or the
    internal key names themselves: no WRONGTYPE, no cross-slot call, no shifted list."""
    registry = SwitchRegistry(target.client)
    registry.set(SwitchSettings(name=name, country_code="31"))
    assert registry.get(name).country_code == "31"
    assert name in [s.name for s in registry.list()]

    store = TariffStore(target.client, target.settings, clickhouse=False)
    store.save(_table(name), now=T0)
    assert store.get(name).name == name
    assert store.delete(name) == 1

    resolved = AccountLookup(target.client).resolve([name, name], ["", name])
    assert not resolved.known.any()

    debiter = Debiter(target.client, settings=target.settings)
    topic = uuid.uuid4().hex
    cdr = name + topic  # records outlive an example: one CDR identity per example
    unknown = DebitBatch(
        topic_id=topic, partition=0, offsets=np.array([1, 2, 3], dtype=np.int64),
        switches=[name, name, name], cdr_ids=[cdr, "2" + topic, cdr], customers=[name, name, ""],
        cards=[name, "", ""], resellers=[name, name, ""], prices=np.array([0, 5, 0]),
        costs=np.array([0, 5, 0]), auth_ids=[name, name, ""],
    )  # fmt: skip
    first = debiter.apply(unknown)
    assert first.outcome.tolist() == [
        Outcome.UNKNOWN_ACCOUNT, Outcome.UNKNOWN_ACCOUNT, Outcome.DUPLICATE,
    ]  # fmt: skip
    assert debiter.apply(unknown).outcome.tolist() == first.outcome.tolist()  # a replay
    assert debiter.watermark(topic, 0) == 3


def test_keys_of_the_layout_before_encoding_are_moved_once(target: Target) -> None:
    """A deployment that ran before names were encoded: its switch list and the tables with
    non-plain names are found again, and a switch named `names` no longer meets a set."""
    redis = target.client
    redis.sadd(keys.LEGACY_SWITCH_NAMES, "ams")
    redis.set(keys.LEGACY_SWITCH_GENERATION, 7)
    redis.hset(keys.switch("ams"), mapping={"country_code": "31"})
    name = "Calling cards rates 40% - 60/60 billing"
    saved = replace(_table(name), version=1, created_at=T0)
    old_index, (old_version,) = keys.legacy_tariff_keys(name, [1])
    redis.set(old_version, codec.encode(saved))
    redis.hset(old_index, "1", orjson.dumps(codec.meta_of(saved)))
    redis.sadd(keys.TARIFFS, name)

    registry = SwitchRegistry(redis)
    assert [s.name for s in registry.list()] == ["ams"]
    assert registry.get("names") == SwitchSettings(name="names")
    assert registry.generation() == 1  # moved: every cache reloads
    assert not redis.exists(keys.LEGACY_SWITCH_NAMES, keys.LEGACY_SWITCH_GENERATION)

    store = TariffStore(redis, target.settings, clickhouse=False)
    assert store.get(name) == saved
    assert not redis.exists(old_index)
    assert not redis.exists(old_version)
    assert TariffStore(redis, target.settings, clickhouse=False).get(name) == saved  # once
