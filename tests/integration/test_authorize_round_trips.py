"""How many times an authorization waits for Redis, on one server and on Redis Cluster.

A round trip is one command sent and answered, or one pipeline (on Redis Cluster a pipeline's
commands go to their nodes at once: one wait). The service answers within its latency budget
only when an authorization waits at most three times (docs/SERVE.md, "Speed"); each wait is
about 60 us of redis-py CPU plus a context switch to Redis and back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis_targets import Target, target  # noqa: F401 - the fixture

from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer
from rater.serve.domain import polled_rates
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

MOBILE = "31612345678"
SELL = TariffTable(
    name="retail", decimals=4, steps=Steps(60, 60), rows=(TariffRow("31", "NL", rate=100_000),)
)
BUY = TariffTable(
    name="wholesale", decimals=6, steps=Steps(1, 1), rows=(TariffRow("31", "NL", rate=40_000),)
)


class Counted:
    """Counts the waits of one client: every command sent alone and every pipeline executed.
    redis-py's command methods call `self.execute_command`, so wrapping it on the instance
    counts them all (GET, HGETALL, EVALSHA, ...)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.waits = 0
        send: Callable[..., Any] = client.execute_command
        make_pipeline: Callable[..., Any] = client.pipeline

        def execute_command(*args: Any, **options: Any) -> Any:
            self.waits += 1
            return send(*args, **options)

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = make_pipeline(*args, **kwargs)
            execute: Callable[..., Any] = pipe.execute

            def counted(*a: Any, **k: Any) -> Any:
                self.waits += 1
                return execute(*a, **k)

            pipe.execute = counted
            return pipe

        client.execute_command = execute_command
        client.pipeline = pipeline


@pytest.fixture
def world(target: Target) -> tuple[Target, Accounts, str, str]:  # noqa: F811
    store = TariffStore(target.client, target.settings, clickhouse=False)
    store.save(SELL, owner="R1")
    store.save(BUY)
    accounts = Accounts(target.settings, target.client)
    accounts.create_reseller("R1", "Reseller", credit="100", buy_tariff="wholesale")
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="50")
    issued = accounts.create_cards("C1", count=1, value="10").cards[0]
    accounts.add_ani(issued.number, "+31201234567")
    return target, accounts, issued.number, issued.pin


def _authorizer(t: Target) -> tuple[Authorizer, Counted]:
    settings = t.settings.replace(max_calls_per_card=50)
    authorizer = Authorizer(settings, t.client, rates=polled_rates(t.client, settings))
    return authorizer, Counted(t.client)


def _waits(client: Counted, ask: Callable[[], Any]) -> int:
    client.waits = 0
    answer = ask()
    assert answer.allowed, answer
    return client.waits


def test_an_account_authorization_waits_for_redis_at_most_twice(
    world: tuple[Target, Accounts, str, str],
) -> None:
    t, _, _, _ = world
    authorizer, client = _authorizer(t)
    ask = lambda: authorizer.authorize(account="C1", callee=MOBILE, max_seconds=60)  # noqa: E731
    ask()  # the first call of a process loads scripts and learns the customer's reseller
    assert _waits(client, ask) <= 2


def test_card_and_ani_authorizations_wait_at_most_three_times(
    world: tuple[Target, Accounts, str, str],
) -> None:
    t, _, card, pin = world
    authorizer, client = _authorizer(t)

    def by_pin() -> Any:
        return authorizer.authorize(
            card=card, pin=pin, caller="+31205550101", callee=MOBILE, max_seconds=60
        )

    def by_ani() -> Any:
        return authorizer.authorize(ani="+31201234567", callee=MOBILE, max_seconds=60)

    by_pin()
    by_ani()
    assert _waits(client, by_pin) <= 3
    assert _waits(client, by_ani) <= 3
