"""A switch simulator for `rater serve`: many calls at once, each as a switch makes it.

One call: authorize over HTTP (an account, a card with its PIN, or the caller's number); when
allowed, ring, then either no answer (release the reservation, and send the CDR with billsec 0
and the auth_id, as switches send every CDR) or an answer that lasts at most the seconds
granted, renewing first when the call wants to go on longer (docs/SWITCHES_CALL_CONTROL.md
describes the same on FreeSWITCH, Kamailio and Asterisk). When the call ends its CDR, with
the auth_id, goes to the real topic at once (`CdrSender`), and a `rater run` worker running
meanwhile debits it and so releases the reservation, while other calls are still being set
up. Call durations are simulated: ringing and talking take milliseconds of real time, the
CDR says how many seconds.

`Watch` samples, while calls are set up, every account's balance and the credit held for it
in one atomic read (a Lua snapshot in the reseller's slot): no level may ever hold more than
it has, and no card or customer more calls than allowed.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from serve_support import Served, call

from rater import kafka, reference
from rater.accounts.api import Accounts
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

RESELLER = "simres"
SWITCH = "simsw"
#: per minute, micro-units; sell = buy x 1.40 (docs/DESIGN.md section 1)
_RATES = {"49": 10_000, "4930": 8_000, "31": 20_000, "44": 15_000}
SELL = TariffTable(
    name="sim-retail", steps=Steps(60, 60), decimals=4,
    rows=tuple(TariffRow(p, p, rate=r * 14 // 10) for p, r in _RATES.items()),
)  # fmt: skip
BUY = TariffTable(
    name="sim-wholesale", steps=Steps(1, 1), decimals=6,
    rows=tuple(TariffRow(p, p, rate=r) for p, r in _RATES.items()),
)  # fmt: skip
CALLEES = ("+493012345678", "+4989123456", "+31201234567", "+442071234567", "+31612345678")
#: the calls' start times: two hours ago, so every CDR ends in the past
_EPOCH = int(time.time()) - 7200


@dataclass
class Payer:
    kind: str  # account | card | ani
    customer: str
    card: str = ""
    pin: str = ""
    ani: str = ""


@dataclass
class SimWorld:
    accounts: Accounts
    payers: list[Payer]
    cards: list[str]
    customers: list[str]
    versions: dict[str, list[TariffTable]] = field(default_factory=dict)

    def price(self, table: TariffTable, callee: str, billsec: int, start: int) -> int:
        """The reference price of one call (docs/DESIGN.md section 2)."""
        _, rated = reference.rate_cdr(self.versions[table.name], callee, billsec, start,
                                      SwitchSettings())  # fmt: skip
        return rated.price_micro if rated else 0


def build(settings: Settings, client: Any) -> SimWorld:
    """Reseller simres (credit 60.00) with customers simc1 (20.00, four cards of 3.00, one
    with a caller number) and simc2 (10.00): small balances, so calls compete for them."""
    store = TariffStore(client, settings, clickhouse=False)
    world = SimWorld(Accounts(settings, client, actor="simulator"), [], [], ["simc1", "simc2"])
    # the sell table is the reseller's own, the buy table the operator's (tariff owners)
    world.versions[SELL.name] = [store.save(SELL, owner=RESELLER)]
    world.versions[BUY.name] = [store.save(BUY)]
    accounts = world.accounts
    accounts.create_reseller(RESELLER, "Simulated reseller", credit="60", buy_tariff=BUY.name)
    accounts.create_customer("simc1", "SIP one", reseller_id=RESELLER, tariff=SELL.name,
                             balance="20")  # fmt: skip
    accounts.create_customer("simc2", "SIP two", reseller_id=RESELLER, tariff=SELL.name,
                             balance="10")  # fmt: skip
    issued = accounts.create_cards("simc1", count=4, value="3").cards
    accounts.add_ani(issued[0].number, "+31205550100")
    world.cards = [card.number for card in issued]
    # half the calls on the accounts; a card holds one call at a time (the default limit)
    world.payers = [
        *(Payer("account", customer) for customer in ("simc1", "simc2") * 3),
        *(Payer("card", "simc1", card.number, card.pin) for card in issued),
        Payer("ani", "simc1", issued[0].number, ani="+31205550100"),
    ]  # fmt: skip
    return world


@dataclass
class Call:
    """One simulated call and what happened to it."""

    index: int
    payer: Payer
    callee: str
    wanted_s: int  # how long the caller would talk if allowed
    answers: bool
    allowed: bool = False
    reason: str = ""
    auth_id: str = ""
    granted_s: int = 0  # the most seconds allowed in the end (after renewals)
    renewals: int = 0
    refused_renewal: bool = False
    billsec: int = 0
    start: int = 0

    def cdr(self) -> dict[str, Any]:
        """The CDR message (docs/DESIGN.md section 5) with the authorization's id."""
        answer = self.start + 7 if self.billsec else ""
        message: dict[str, Any] = {
            "cdr_id": f"sim-{self.index}", "switch": SWITCH, "account": self.payer.customer,
            "caller": self.payer.ani or "+31205550199", "callee": self.callee,
            "start_time": self.start, "answer_time": answer,
            "end_time": self.start + 7 + self.billsec, "billsec": self.billsec,
            "disposition": "ANSWERED" if self.billsec else "NO ANSWER",
            "auth_id": self.auth_id,
        }  # fmt: skip
        if self.payer.kind != "account":
            message["card"] = self.payer.card
        return message


def plan(world: SimWorld, count: int, seed: int) -> list[Call]:
    """`count` calls: a quarter unanswered, a fifth long enough to need renewals."""
    rng = random.Random(seed)
    calls = []
    for i in range(count):
        long = rng.random() < 0.2
        calls.append(
            Call(
                index=i, payer=rng.choice(world.payers), callee=rng.choice(CALLEES),
                wanted_s=rng.randint(200, 900) if long else rng.randint(1, 150),
                answers=rng.random() >= 0.25, start=_EPOCH + i,
            )
        )  # fmt: skip
    return calls


class CdrSender:
    """Publishes CDRs as calls end: one producer in a thread of its own (a producer per CDR
    would take longer to start than the call)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.sent = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any]) -> None:
        self._queue.put(message)

    def close(self) -> None:
        """Everything sent and acknowledged (again: nothing)."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the CDR sender did not finish"

    # a `with` block ends the sender on every path: its executor thread, blocked on the queue,
    # would otherwise keep pytest from exiting after a failure
    def __enter__(self) -> CdrSender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def _run(self) -> None:
        producer = kafka.producer(self.settings)
        await producer.start()
        try:
            while True:
                message = await asyncio.to_thread(self._queue.get)
                if message is None:
                    break
                key = message["account"].encode()
                await producer.send_and_wait(
                    self.settings.topic_cdrs, orjson.dumps(message), key=key
                )
                self.sent += 1
        finally:
            await producer.stop()


class Switch:
    """Makes calls against a running `rater serve` with one switch token; each call's CDR goes
    to `cdrs` when it ends."""

    #: what a call asks for first: a long call renews for the rest
    FIRST_ASK_S = 120
    #: real seconds per simulated second of talk (a 600 s call lasts 0.3 s): long enough for
    #: the worker to debit the CDRs of ended calls while others are set up
    TIME_SCALE = 0.0005

    def __init__(self, served: Served, token: str, cdrs: CdrSender, seed: int = 1) -> None:
        self.served = served
        self.token = token
        self.cdrs = cdrs
        self.seed = seed

    def run(self, calls: list[Call], threads: int = 12) -> None:
        with ThreadPoolExecutor(threads) as pool:
            for done in pool.map(self.make, calls):
                assert done is not None

    def make(self, c: Call) -> Call:
        rng = random.Random(self.seed * 100_003 + c.index)
        body: dict[str, Any] = {"callee": c.callee, "max_seconds": self.FIRST_ASK_S}
        if c.payer.kind == "account":
            body["account"] = c.payer.customer
        elif c.payer.kind == "card":
            body |= {"card": c.payer.card, "pin": c.payer.pin, "caller": "+31205550199"}
        else:
            body["ani"] = c.payer.ani
        answer = self._post("/v1/authorize", body)
        c.allowed, c.reason = answer["allowed"], answer["reason"]
        if not c.allowed:
            return c
        c.auth_id, c.granted_s = answer["auth_id"], answer["max_seconds"]
        time.sleep(rng.uniform(0, 0.02))  # ringing
        if not c.answers:
            self._post(f"/v1/authorize/{c.auth_id}/release", {})
            self.cdrs.send(c.cdr())
            return c
        talked = 0
        while True:
            chunk = min(c.wanted_s, c.granted_s) - talked
            time.sleep(chunk * self.TIME_SCALE)
            talked += chunk
            if talked >= c.wanted_s or c.refused_renewal:
                break
            renewed = self._post(f"/v1/authorize/{c.auth_id}/renew", {})
            c.renewals += 1
            if renewed["allowed"] and renewed["max_seconds"] > c.granted_s:
                c.granted_s = renewed["max_seconds"]
            else:
                c.refused_renewal = True  # the switch hangs up at what it has
        c.billsec = talked
        self.cdrs.send(c.cdr())
        return c

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        status, answer, _ = call(self.served, "POST", path, body, token=self.token)
        assert status == 200, (path, status, answer)
        return answer


# ------------------------------------------------------------------------------ watching
#: (balance, held, calls) of each account named, read at one instant
_SNAPSHOT = """
local out = {}
for i = 1, #KEYS, 2 do
  local t = redis.call('HMGET', KEYS[i + 1], 'held', 'calls')
  out[#out + 1] = redis.call('HGET', KEYS[i], 'bal') or '0'
  out[#out + 1] = t[1] or '0'
  out[#out + 1] = t[2] or '0'
end
return out
"""


@dataclass
class Watch:
    """Samples every level's balance against what is held for it, until stopped."""

    client: Any
    world: SimWorld
    settings: Settings
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def levels(self) -> Iterator[tuple[str, str, str, int | None]]:
        """(name, account key, totals key, most calls) per level."""
        yield ("reseller", keys.reseller(RESELLER),
               keys.reservation_totals(RESELLER, "r", RESELLER), None)  # fmt: skip
        for customer in self.world.customers:
            yield (customer, keys.customer(RESELLER, customer),
                   keys.reservation_totals(RESELLER, "c", customer),
                   self.settings.max_calls_per_account)  # fmt: skip
        for card in self.world.cards:
            yield (card, keys.card(RESELLER, card), keys.reservation_totals(RESELLER, "k", card),
                   self.settings.max_calls_per_card)  # fmt: skip

    def sample(self) -> None:
        levels = list(self.levels())
        names = [k for _, account, totals, _ in levels for k in (account, totals)]
        raw = self.client.eval(_SNAPSHOT, len(names), *names)
        for i, (name, _, _, most) in enumerate(levels):
            balance, held, calls = (int(raw[3 * i + j]) for j in range(3))
            if held > max(balance, 0):
                self.violations.append(f"{name}: holds {held} of a balance of {balance}")
            if most is not None and calls > most:
                self.violations.append(f"{name}: {calls} calls at once, at most {most}")
        self.samples += 1

    def __enter__(self) -> Watch:
        def loop() -> None:
            while not self._stop.wait(0.005):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()
