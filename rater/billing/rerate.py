"""Re-rating: price stored CDRs again and apply only the difference, exactly once per CDR.

Two modes share one engine:

- **tariff** (`rater rerate --from --to [--customer C] [--tariff T [--version V]]`): live rows
  with outcome `rated` are priced again: the sell side with T (default: each customer's current
  tariff), the buy side with the reseller's current wholesale tariff (or --buy-tariff); a
  version given with --version/--buy-version is used for every CDR, otherwise the version in
  force at each CDR's start time (the rule the pipeline used).
- **unrated** (`rater rerate --unrated`): live rows with outcome `unrated` are looked up again
  (account, card) and priced; those that now rate become `rated` (or `unanswered` when
  billsec is 0), and their full price and cost are charged as a correction. This is the only
  path by which an unrated CDR gets rated.

For every CDR whose price, cost, billable seconds, match or outcome changes, the new revision
is old revision + 1, and the work happens in this order, each step idempotent:

1. **plan** - the new values are stored in Redis under the CDR revision. Before pricing, every
   examined CDR is looked up for a plan an interrupted run left: such a plan is completed as
   it was planned (whatever this run asks for), so a balance correction already applied and
   the row written always agree;
2. **correct** - Debiter.apply_corrections with key `rerate:<switch>:<cdr_id>:<revision>`
   applies (new - old) price to customer and card and (new - old) cost to the reseller, once
   per key (a repeated key changes nothing);
3. **audit** - one rerate_audit row per CDR revision (skipped if already there);
4. **rows** - the cancelling copy of the old row (sign -1) and the new row (sign +1) in one
   insert (same partition: atomic together);
5. the plans are dropped.

A second run finds every CDR's live row already at the target values and does nothing; a run
interrupted anywhere is completed by running it again. A Redis lock keeps two runs apart.
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from rater.accounts.lookup import AccountLookup
from rater.analytics.summaries import base_days
from rater.billing.audit import AuditRow, already_audited, write_audit
from rater.billing.rows import Row, insert_rows, select_live_between
from rater.clickhouse.executor import Executor
from rater.clock import Clock
from rater.errors import RerateError
from rater.logs import get_logger
from rater.pipeline.debit import Correction, Debiter
from rater.pipeline.fates import rated_columns
from rater.pipeline.store import stored_copies
from rater.reasons import Kind, Reason, quote
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.compile import CompiledTariffs, compile_tables
from rater.tariffs.model import TariffTable
from rater.tariffs.store import TariffStore

log = get_logger(__name__)

LOCK_KEY = keys.RERATE_LOCK
#: a run renews its lock before every chunk; a killed run's lock lapses after this long
LOCK_TTL_S = 120
CHUNK = 2_000
#: stored rows of a day above which it is read hour by hour
BIG_DAY = 100_000

#: the fields a plan fixes (everything of the new row that is not copied from the old one)
PLAN_FIELDS = (
    "prefix",
    "destination",
    "billable_seconds",
    "price",
    "cost",
    "margin",
    "currency",
    "sell_tariff",
    "buy_tariff",
    "reseller",
    "customer",
    "card",
    "outcome",
    "reason",
)
#: a CDR is "changed" when one of these differs; only the tariff version key differing (the
#: same price from a newer version) is not worth a new revision and a balance correction
COMPARED = tuple(name for name in PLAN_FIELDS if name not in ("sell_tariff", "buy_tariff"))


@dataclass(frozen=True)
class RerateRequest:
    first: date
    last: date
    unrated: bool = False
    customer: str | None = None
    reseller: str | None = None
    tariff: str | None = None  # sell tariff; None: each customer's current one
    version: int | None = None
    buy_tariff: str | None = None  # None: each reseller's current one
    buy_version: int | None = None
    reason: str = ""
    actor: str = ""
    dry_run: bool = False


@dataclass
class RerateSummary:
    run_id: str
    examined: int = 0
    changed: int = 0
    unchanged: int = 0
    resumed: int = 0  # completed from a plan an interrupted run had stored
    corrections_applied: int = 0
    price_delta: int = 0
    cost_delta: int = 0
    #: why CDRs stay as they were: reason texts (rater/reasons.py) with counts
    #: ("no sell match: retail": 3)
    left: dict[str, int] = field(default_factory=dict)
    changes: list[tuple[Row, Row]] = field(default_factory=list)  # (old, new), when dry_run

    def leave(self, why: str) -> None:
        self.left[why] = self.left.get(why, 0) + 1


correction_key = keys.correction_id
#: the hash holding the plans of CDRs started on one UTC day, one field per CDR revision (a
#: global key: an unrated CDR has no reseller until it is resolved). One hash per day makes it
#: three Redis commands per chunk instead of three per CDR.
_plan_key = keys.rerate_plans


def _hours(day: date) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) of every UTC hour of a day."""
    moment = datetime.combine(day, time())
    for _ in range(24):
        yield moment, moment + timedelta(hours=1)
        moment += timedelta(hours=1)


def _chunks(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class Rerater:
    """Runs re-rates against one Redis and one ClickHouse."""

    def __init__(self, settings: Settings, redis: RedisLike, ch: Executor) -> None:
        self.settings = settings
        self.redis: Any = redis
        self.ch = ch
        self.store = TariffStore(redis, settings, clickhouse=False)
        self.lookup = AccountLookup(redis)
        self.debiter = Debiter(redis, settings=settings)
        self.clock = Clock.of(settings)
        self._versions: dict[str, list[TariffTable]] = {}

    # ------------------------------------------------------------------ public
    def run(self, request: RerateRequest) -> RerateSummary:
        if request.last < request.first:
            raise RerateError(f"--to {request.last} is before --from {request.first}")
        if request.version is not None and not request.tariff:
            raise RerateError("--version needs --tariff")
        if request.buy_version is not None and not request.buy_tariff:
            raise RerateError("--buy-version needs --buy-tariff")
        request = replace(request, actor=request.actor or _whoami())
        summary = RerateSummary(run_id=uuid.uuid4().hex)
        token = summary.run_id
        if not request.dry_run and not self.redis.set(LOCK_KEY, token, nx=True, ex=LOCK_TTL_S):
            holder = self.redis.get(LOCK_KEY)
            left = self.redis.ttl(LOCK_KEY)
            raise RerateError(
                f"another re-rate is running (run {holder.decode() if holder else '?'}); "
                f"its lock lapses in {left} s if that run was killed"
            )
        try:
            for start, end in self._windows(request):
                rows = self._select(request, start, end)
                for chunk in _chunks(rows, CHUNK):
                    self._renew_lock(request, token)
                    self._chunk(request, chunk, summary)
        finally:
            if not request.dry_run and self.redis.get(LOCK_KEY) == token.encode():
                self.redis.delete(LOCK_KEY)
        log.info(
            "re-rate done", run_id=summary.run_id, examined=summary.examined,
            changed=summary.changed, resumed=summary.resumed, left=summary.left,
        )  # fmt: skip
        return summary

    def _renew_lock(self, request: RerateRequest, token: str) -> None:
        if request.dry_run:
            return
        if self.redis.get(LOCK_KEY) != token.encode():
            raise RerateError("this re-rate lost its lock (paused longer than the lock lives)")
        self.redis.expire(LOCK_KEY, LOCK_TTL_S)

    # ------------------------------------------------------------------ selection
    def _windows(self, request: RerateRequest) -> Iterator[tuple[datetime, datetime]]:
        """The time windows to read: each day holding rows, by the hour when it is big (a
        busy day at once is too much memory); empty days cost nothing."""
        cond, params = base_days(request.first, request.last)
        counts = self.ch.rows(
            f"SELECT toDate(start_time, 'UTC') AS d, count() FROM rated_cdrs WHERE {cond}"
            " GROUP BY d ORDER BY d",
            params,
        )
        for day, count in counts:
            if int(count) > BIG_DAY:
                yield from _hours(day)
            else:
                start = datetime.combine(day, time())
                yield start, start + timedelta(days=1)

    def _select(self, request: RerateRequest, start: datetime, end: datetime) -> list[Row]:
        """Live rows of one hour: a day of a busy switch is too much memory at once."""
        conditions = ["outcome = %(outcome)s"]
        params: dict[str, Any] = {"outcome": "unrated" if request.unrated else "rated"}
        if request.customer:
            # an unrated CDR of an unknown account has no customer yet: match its account
            column = "account" if request.unrated else "customer"
            conditions.append(f"{column} = %(customer)s")
            params["customer"] = request.customer
        if request.reseller and not request.unrated:
            conditions.append("reseller = %(reseller)s")
            params["reseller"] = request.reseller
        return select_live_between(
            self.ch, start, end, where=" AND ".join(conditions), params=params
        )

    # ------------------------------------------------------------------ tariffs
    def _versions_of(self, name: str, version: int | None) -> list[TariffTable]:
        """The versions to rate with: all (version in force per CDR) or the one asked for."""
        if name not in self._versions:
            self._versions[name] = self.store.versions(name)
        versions = self._versions[name]
        if version is None:
            return versions
        chosen = [t for t in versions if t.version == version]
        if not chosen:
            known = [t.version for t in versions]
            raise RerateError(f"tariff {name!r} has no version {version} (versions: {known})")
        # a single version compiles as in force from the beginning of time
        return chosen

    def _currency(self, name: str) -> str:
        """A tariff table's currency (all its versions share one; the store refuses others)."""
        return self._versions_of(name, None)[0].currency

    def _compile(self, names: set[str], forced: tuple[str | None, int | None]) -> CompiledTariffs:
        tables: dict[str, list[TariffTable]] = {}
        for name in sorted(names):
            versions = self._versions_of(name, forced[1] if name == forced[0] else None)
            if versions:
                tables[name] = versions
        return compile_tables(tables)

    # ------------------------------------------------------------------ one chunk
    def _chunk(self, request: RerateRequest, rows: list[Row], summary: RerateSummary) -> None:
        summary.examined += len(rows)
        now = self.clock.now().replace(tzinfo=None, microsecond=0)
        keyed = [correction_key(r["switch"], r["cdr_id"], int(r["revision"]) + 1) for r in rows]
        # plans left by an interrupted run come first, whatever this run asks for: their
        # corrections may already be applied, so their rows must be written as planned
        plans = _plan_key(rows[0]["start_time"].date())  # a chunk holds one day
        pending = self._pending_plans(plans, keyed)
        # a plan for a CDR's current revision was completed (rows written) by a run that
        # stopped before dropping it: drop it now
        if not request.dry_run:
            done = [correction_key(r["switch"], r["cdr_id"], int(r["revision"])) for r in rows]
            self.redis.hdel(plans, *done)
        planned: list[tuple[Row, Row, str]] = []  # old, new, correction key
        fresh_rows = [r for r, key in zip(rows, keyed, strict=True) if key not in pending]
        targets = iter(self._price(request, fresh_rows, summary) if fresh_rows else [])
        for old, key in zip(rows, keyed, strict=True):
            base = {**old, "revision": int(old["revision"]) + 1, "sign": 1, "rated_at": now}
            if key in pending:
                summary.resumed += 1
                planned.append((old, {**base, **pending[key]}, key))
                continue
            new_values = next(targets)
            if new_values is None:
                continue
            if all(old[name] == new_values[name] for name in COMPARED):
                summary.unchanged += 1
                continue
            planned.append((old, {**base, **new_values}, key))
        if not planned:
            return
        if request.dry_run:
            summary.changed += len(planned)
            for old, new, _ in planned:
                summary.price_delta += int(new["price"]) - int(old["price"])
                summary.cost_delta += int(new["cost"]) - int(old["cost"])
                summary.changes.append((old, new))
            return
        self._store_plans(plans, [p for p in planned if p[2] not in pending])
        self._correct(planned, summary)
        self._audit(request, planned, summary, now)
        cancel_and_new: list[Row] = []
        for old, new, _ in planned:
            cancel_and_new.append({**old, "sign": -1})
            cancel_and_new.append(new)
        insert_rows(self.ch, cancel_and_new)
        self.redis.hdel(plans, *[key for _, _, key in planned])
        summary.changed += len(planned)

    def _price(
        self, request: RerateRequest, rows: list[Row], summary: RerateSummary
    ) -> list[dict[str, Any] | None]:
        """The new values per row (PLAN_FIELDS), or None where the CDR must stay as it is.

        Prices, outcomes and reasons come from rater/pipeline/fates.py's rated_columns, the
        definition the pipeline uses."""
        n = len(rows)
        before: list[Reason | None] = [None] * n
        if request.unrated:
            resolved = self.lookup.resolve([r["account"] for r in rows], [r["card"] for r in rows])
            before = list(resolved.reason)
            customers = resolved.customer_id
            cards = resolved.card_number
            resellers = resolved.reseller_id
            currencies = resolved.currency
            sell_names = [request.tariff or t for t in resolved.sell_tariff]
            buy_names = [request.buy_tariff or t for t in resolved.buy_tariff]
            copies = self._rated_copies(rows)
        else:
            resolved = self.lookup.resolve([r["customer"] for r in rows], [""] * n)
            customers = [r["customer"] for r in rows]
            cards = [r["card"] for r in rows]
            resellers = [r["reseller"] for r in rows]
            currencies = [r["currency"] for r in rows]
            sell_names = [
                request.tariff or (t if ok else "")
                for t, ok in zip(resolved.sell_tariff, resolved.known, strict=True)
            ]
            buy_names = [
                request.buy_tariff or (t if ok else "")
                for t, ok in zip(resolved.buy_tariff, resolved.known, strict=True)
            ]
            copies = set()
        for i, row in enumerate(rows):
            if before[i] is not None:
                continue
            if (row["switch"], row["cdr_id"]) in copies:
                # a late CDR (docs/DESIGN.md section 4) whose copy was rated: charged already
                before[i] = Reason(Kind.RATED_COPY)
            elif request.reseller and resellers[i] != request.reseller:
                # --unrated: the reseller is known only now that the account resolves
                before[i] = Reason(Kind.OTHER_RESELLER, quote(resellers[i]))
            elif not row["number"]:
                before[i] = Reason(Kind.NO_NUMBER)
        names = {name for name in sell_names + buy_names if name}
        available = {name for name in names if self.store.infos(name)}
        sell_compiled = self._compile(
            {s for s in sell_names if s in available}, (request.tariff, request.version)
        )
        buy_compiled = self._compile(
            {b for b in buy_names if b in available}, (request.buy_tariff, request.buy_version)
        )
        priced = rated_columns(
            sell_compiled,
            buy_compiled,
            sell_names=sell_names,
            buy_names=buy_names,
            before=before,
            number=np.asarray(
                [int(r["number"]) if r["number"] else 0 for r in rows], dtype=np.int64
            ),
            number_len=np.asarray([len(r["number"]) for r in rows], dtype=np.int8),
            start=np.asarray(
                [int(r["start_time"].replace(tzinfo=UTC).timestamp()) for r in rows],
                dtype=np.int64,
            ),
            billsec=np.asarray([int(r["billsec"]) for r in rows], dtype=np.int32),
            max_price=self.settings.max_price_micro,
        )
        out: list[dict[str, Any] | None] = []
        for i, row in enumerate(rows):
            why = priced.reason[i]
            if why is not None:
                summary.leave(why.text)
                out.append(None)
                continue
            if currencies[i] and self._currency(sell_names[i]) != currencies[i]:
                raise RerateError(
                    f"tariff {sell_names[i]!r} is in {self._currency(sell_names[i])}, the "
                    f"account in {currencies[i]} (CDR {row['switch']}/{row['cdr_id']})"
                )
            price, cost = int(priced.price[i]), int(priced.cost[i])
            out.append(
                {
                    "prefix": str(priced.prefix[i]),
                    "destination": str(priced.destination[i]),
                    "billable_seconds": int(priced.billable[i]),
                    "price": price,
                    "cost": cost,
                    "margin": price - cost,
                    "currency": currencies[i],
                    "sell_tariff": str(priced.sell_tariff[i]),
                    "buy_tariff": str(priced.buy_tariff[i]),
                    "reseller": resellers[i],
                    "customer": customers[i],
                    "card": cards[i],
                    "outcome": str(priced.outcome[i]),
                    "reason": "",
                }
            )
        return out

    def _rated_copies(self, rows: list[Row]) -> set[tuple[str, str]]:
        """(switch, cdr_id) of these unrated CDRs that ClickHouse also holds rated (or
        unanswered) under another message: a late CDR's first copy, charged by the stream.
        Rating such a CDR again would charge it twice."""
        starts = [int(r["start_time"].replace(tzinfo=UTC).timestamp()) for r in rows]
        window = self.settings.dedup_window_s
        found = stored_copies(
            self.ch,
            [(r["switch"], r["cdr_id"]) for r in rows],
            min(starts) - window,
            max(starts) + window,
            rated_only=True,
        )
        return set(found)

    # ------------------------------------------------------------------ the write steps
    def _pending_plans(self, plans: str, correction_keys: list[str]) -> dict[str, dict[str, Any]]:
        """Plans an interrupted run stored for these CDR revisions (key -> planned values)."""
        stored = self.redis.hmget(plans, correction_keys)
        return {
            key: json.loads(value)
            for key, value in zip(correction_keys, stored, strict=True)
            if value is not None
        }

    def _store_plans(self, plans: str, planned: list[tuple[Row, Row, str]]) -> None:
        """Record what each CDR revision will become, before any balance changes.

        No expiry: a plan lives only from here to its rows' insert, and one that outlived an
        interrupted run must wait for the re-run (its correction, applied once, stays)."""
        if not planned:
            return
        mapping = {key: json.dumps({n: new[n] for n in PLAN_FIELDS}) for _, new, key in planned}
        self.redis.hset(plans, mapping=mapping)

    def _correct(self, planned: list[tuple[Row, Row, str]], summary: RerateSummary) -> None:
        items: list[Correction] = []
        for old, new, key in planned:
            price_delta = int(new["price"]) - int(old["price"])
            cost_delta = int(new["cost"]) - int(old["cost"])
            summary.price_delta += price_delta
            summary.cost_delta += cost_delta
            if price_delta == 0 and cost_delta == 0:
                continue
            items.append(
                Correction(
                    key=key,
                    reseller=new["reseller"],
                    customer=new["customer"],
                    card=new["card"],
                    price_delta=price_delta,
                    cost_delta=cost_delta,
                )
            )
        if items:
            applied = self.debiter.apply_corrections(items)
            summary.corrections_applied += int(np.count_nonzero(applied))

    def _audit(
        self,
        request: RerateRequest,
        planned: list[tuple[Row, Row, str]],
        summary: RerateSummary,
        now: datetime,
    ) -> None:
        done = already_audited(self.ch, [new for _, new, _ in planned])
        entries = []
        for old, new, key in planned:
            if (new["switch"], new["cdr_id"], int(new["revision"])) in done:
                continue
            entries.append(
                AuditRow.of(
                    run_id=summary.run_id,
                    run_at=now,
                    actor=request.actor,
                    reason=request.reason or _default_reason(request),
                    mode="unrated" if request.unrated else "tariff",
                    old=old,
                    new=new,
                    correction_key=key,
                )
            )
        write_audit(self.ch, entries)


def unrated_span(ch: Executor) -> tuple[date, date] | None:
    """First and last UTC day holding unrated rows (cancelled ones included), or None."""
    rows = ch.rows(
        "SELECT toDate(min(start_time), 'UTC'), toDate(max(start_time), 'UTC'), count()"
        " FROM rated_cdrs WHERE outcome = 'unrated'"
    )
    if not rows or int(rows[0][2]) == 0:
        return None
    return rows[0][0], rows[0][1]


def _default_reason(request: RerateRequest) -> str:
    if request.unrated:
        return "rate CDRs stored unrated"
    sell = request.tariff or "each customer's current tariff"
    if request.version is not None:
        sell += f"@{request.version}"
    return f"re-rate with {sell}"


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
