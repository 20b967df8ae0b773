"""The whole flow of one batch, on one screen (docs/DESIGN.md sections 3 and 4):

    records --decode--> CDRs + rejects --normalise--> numbers --lookup--> accounts, tariffs
            --rate--> price, cost --debit--> outcome per CDR (applied / duplicate / ...)
            --store--> rated_cdrs (not duplicates) + dead letters (rejects) --commit--> offsets

Offsets are committed last and every effect before them is idempotent: the debit script skips
offsets at or below its watermark and de-duplicates (switch, cdr_id); the store inserts only the
message identities ClickHouse lacks; dead letters carry their identity. So a worker killed at any
moment and restarted charges nothing twice and loses nothing.

Fates (section 4): rated (debited, stored), unanswered (billsec 0: stored, price 0), unrated
(unknown account or card, no sell or buy tariff or match: stored with the reason, price 0, still
through the debit script so its duplicates are caught), duplicate (counted, not stored), invalid
(dead letter with the original bytes and the reason). Blocked or negative accounts are debited
all the same and their rows flagged.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaProducer

from rater import metrics
from rater.accounts.lookup import AccountLookup, Resolved
from rater.logs import get_logger
from rater.pipeline import deadletter as dlq
from rater.pipeline.debit import DebitBatch, Debiter, DebitResult, Outcome
from rater.pipeline.decode import CdrBatch, KafkaRecord, ObjArray, Reject, decode, strings_of, zone
from rater.pipeline.rate import rate_batch
from rater.pipeline.store import CdrStore, RatedRows
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.numbers import normalise_many
from rater.switches.registry import SwitchRegistry
from rater.tariffs.compile import CompiledTariffs
from rater.tariffs.loader import TariffLoader
from rater.tariffs.model import SwitchSettings
from rater.tariffs.store import TariffStore

log = get_logger(__name__)

RATED, UNANSWERED, UNRATED, DUPLICATE, INVALID = (
    "rated", "unanswered", "unrated", "duplicate", "invalid",
)  # fmt: skip


@dataclass
class BatchReport:
    """What one batch did (tests, metrics, the demo and the benchmark read it)."""

    records: int = 0
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    stored: int = 0
    dead_lettered: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def count(self, outcome: str, reason: str | None = None) -> int:
        return sum(n for (o, r), n in self.outcomes.items() if o == outcome and reason in (None, r))


@dataclass
class Prepared:
    """A batch rated and debited, waiting for its store and commit."""

    batch: int  # 1-based number of the batch in this process (fault injection counts them)
    report: BatchReport
    rows: RatedRows
    duplicates: int
    replayed: npt.NDArray[np.bool_]
    rejects: list[Reject]


@dataclass
class Pipeline:
    """One worker's stages; `process` takes a fetched batch to its stored, debited state."""

    settings: Settings
    topic_id: str
    redis: RedisLike
    producer: AIOKafkaProducer
    switches: SwitchRegistry = field(init=False)
    lookup: AccountLookup = field(init=False)
    loader: TariffLoader = field(init=False)
    debiter: Debiter = field(init=False)
    store: CdrStore = field(init=False)
    batches: int = 0

    def __post_init__(self) -> None:
        self.switches = SwitchRegistry(self.redis)
        self.lookup = AccountLookup(self.redis)
        self.loader = TariffLoader(TariffStore(self.redis, self.settings, clickhouse=False))
        self.debiter = Debiter(self.redis, settings=self.settings)
        self.store = CdrStore(self.settings)

    async def process(self, records: Sequence[KafkaRecord]) -> BatchReport:
        """Decode, rate, debit, store and dead-letter one fetched batch (not the commit)."""
        return await self.finish(await self.prepare(records))

    async def prepare(self, records: Sequence[KafkaRecord]) -> Prepared:
        """Decode, normalise, look up, rate and debit: everything up to the store.

        The synchronous stages run in a thread: the event loop stays free for the consumer's
        heartbeats while a batch (or a tariff recompile) takes a while.
        """
        return await asyncio.to_thread(self._rate_and_debit, records)

    async def finish(self, prepared: Prepared) -> BatchReport:
        """Store the rows, dead-letter the rejects, count: a prepared batch's way to the point
        where its offsets may be committed (rater/pipeline/checkpoint.py runs these steps one
        by one, retrying each, and commits after them)."""
        await self.store_rows(prepared)
        await self.dead_letter(prepared)
        self.fault("after_store", prepared.batch)
        return self.account(prepared)

    async def store_rows(self, prepared: Prepared) -> int:
        """Insert the batch's rows ClickHouse does not hold yet (idempotent). About 90% of a
        store is the server's work (parts, materialized views), so the worker overlaps it with
        the next batch's prepare."""
        report = prepared.report
        with _Timer(report.stage_seconds)("store"):
            report.stored = await asyncio.to_thread(self.store.store, self.topic_id, prepared.rows)
        return report.stored

    async def dead_letter(self, prepared: Prepared) -> int:
        """Publish the rejects not dead-lettered yet (a Redis watermark makes it idempotent)."""
        report = prepared.report
        with _Timer(report.stage_seconds)("dead_letter"):
            report.dead_lettered = await dlq.publish(
                self.producer, self.redis, self.settings, self.topic_id, prepared.rejects
            )
        return report.dead_lettered

    def account(self, prepared: Prepared) -> BatchReport:
        """Outcome counts and metrics of a stored batch."""
        report = prepared.report
        _count(report, prepared.rows, prepared.duplicates, prepared.rejects)
        _observe(report, prepared.rows, prepared.replayed)
        return report

    def new_incarnation(self, topic_id: str) -> None:
        """The cdrs topic started a new log (the broker lost its own): later batches are keyed
        by the new incarnation, and nothing learnt about the old one's offsets applies."""
        self.topic_id = topic_id
        self.store.forget_all()

    def watermark(self, partition: int) -> int:
        """Highest offset of a partition whose debit Redis holds (-1: none): where a new owner
        may have to replay from (docs/DESIGN.md section 3, "Replays")."""
        return self.debiter.watermark(self.topic_id, partition)

    def partitions_revoked(self, partitions: list[int]) -> None:
        """These partitions moved to another worker, which may store them from now on."""
        self.store.forget(partitions)

    def _rate_and_debit(self, records: Sequence[KafkaRecord]) -> Prepared:
        report = BatchReport(records=len(records))
        timer = _Timer(report.stage_seconds)
        with timer("decode"):
            switch_of = _SwitchCache(self.switches)
            cdrs, rejects = decode(records, lambda name: zone(switch_of(name).timezone))
            cdrs, number, number_len, bad = _normalise(cdrs, switch_of)
            rejects += _rejects_of(records, bad)
        with timer("lookup"):
            accounts = self.lookup.resolve(cdrs.account.tolist(), cdrs.card.tolist())
            compiled = self.loader.compiled()
        with timer("rate"):
            rows = _rate(compiled, cdrs, accounts, number, number_len)
        with timer("debit"):
            result = self._debit(rows)
            rows, duplicates, replayed = _apply_outcomes(rows, result)
        self.batches += 1
        self.fault("after_debit", self.batches)
        return Prepared(self.batches, report, rows, duplicates, replayed, rejects)

    def warm_up(self) -> None:
        """Compile the tariffs and the kernels before joining the group (a first batch that
        compiles for many seconds would otherwise stall the consumer in the middle of a join)."""
        compiled = self.loader.compiled()
        empty = np.zeros(1, dtype=np.int64)
        rate_batch(
            compiled, np.full(1, -1, np.int32), np.full(1, -1, np.int32), empty,
            np.zeros(1, np.int8), empty, np.zeros(1, np.int32),
        )  # fmt: skip
        normalise_many(["+31201234567"], SwitchSettings())

    def _debit(self, rows: RatedRows) -> DebitResult:
        """One script call per partition of the batch (the watermark is per partition)."""
        c = rows.cdrs
        parts: list[DebitResult] = []
        for partition in np.unique(c.partition).tolist():
            mine = np.flatnonzero(c.partition == partition)
            parts.append(
                self.debiter.apply(
                    DebitBatch(
                        topic_id=self.topic_id,
                        partition=int(partition),
                        offsets=c.offset[mine],
                        switches=c.switch[mine].tolist(),
                        cdr_ids=c.cdr_id[mine].tolist(),
                        customers=rows.customer[mine].tolist(),
                        cards=np.where(rows.customer[mine] != "", rows.card[mine], "").tolist(),
                        resellers=rows.reseller[mine].tolist(),
                        prices=rows.price[mine],
                        costs=rows.cost[mine],
                        auth_ids=c.auth_id[mine].tolist(),
                    )
                )
            )
        if not parts:
            empty = np.zeros(0, dtype=np.bool_)
            return DebitResult(np.zeros(0, dtype=np.int8), empty, empty.copy())
        # partitions are contiguous and ascending in a fetched batch, so concatenation lines up
        return DebitResult(
            outcome=np.concatenate([p.outcome for p in parts]),
            blocked=np.concatenate([p.blocked for p in parts]),
            replayed=np.concatenate([p.replayed for p in parts]),
        )

    def fault(self, point: str, batch: int) -> None:
        """Fault injection for the tests, at a named point of a batch from batch
        settings.fault_after_batches on: SIGKILL ourselves (after_debit, after_store,
        before_commit) or stop dead (freeze_before_commit: the calling thread sleeps, which on
        the event loop's thread freezes the worker; stall_* points are awaited by the checkpoint
        instead, see `stalls`)."""
        wanted = self.settings.fault_point
        if batch < self.settings.fault_after_batches or wanted.removeprefix("freeze_") != point:
            return
        if wanted == point:
            log.warning("fault injection: SIGKILL", point=point, batch=batch)
            os.kill(os.getpid(), signal.SIGKILL)
        log.warning("fault injection: freeze", point=point, batch=batch)
        time.sleep(86_400)

    def stalls(self, point: str, batch: int) -> bool:
        """Fault injection: True when the batch should wait forever at `point` with the event
        loop free (settings.fault_point stall_<point>), as a deadlocked await would."""
        return (
            self.settings.fault_point == f"stall_{point}"
            and batch >= self.settings.fault_after_batches
        )


# ---------------------------------------------------------------------------------- stages
class _SwitchCache:
    """Switch settings looked up once per batch and name."""

    def __init__(self, registry: SwitchRegistry) -> None:
        self.registry = registry
        self.known: dict[str, SwitchSettings] = {}

    def __call__(self, name: str) -> SwitchSettings:
        found = self.known.get(name)
        if found is None:
            found = self.known[name] = self.registry.get(name)
        return found


def _normalise(
    cdrs: CdrBatch, switch_of: _SwitchCache
) -> tuple[CdrBatch, npt.NDArray[np.int64], npt.NDArray[np.int8], list[tuple[int, int, str]]]:
    """Dialled numbers per switch; CDRs whose number cannot be normalised leave the batch."""
    n = len(cdrs)
    number = np.zeros(n, dtype=np.int64)
    number_len = np.zeros(n, dtype=np.int8)
    ok = np.ones(n, dtype=bool)
    bad: list[tuple[int, int, str]] = []
    for name in np.unique(cdrs.switch).tolist() if n else []:
        mine = np.flatnonzero(cdrs.switch == name)
        digits, lengths, reasons = normalise_many(cdrs.callee[mine].tolist(), switch_of(name))
        number[mine] = digits
        number_len[mine] = lengths
        for i, reason in zip(mine.tolist(), reasons, strict=True):
            if reason is not None:
                ok[i] = False
                bad.append((int(cdrs.partition[i]), int(cdrs.offset[i]), f"callee: {reason}"))
    if not ok.all():
        return cdrs.take(ok), number[ok], number_len[ok], bad
    return cdrs, number, number_len, bad


def _rejects_of(records: Sequence[KafkaRecord], bad: list[tuple[int, int, str]]) -> list[Reject]:
    if not bad:
        return []
    by_id = {(r.partition, r.offset): r for r in records}
    out = []
    for partition, offset, reason in bad:
        record = by_id[(partition, offset)]
        out.append(Reject(partition, offset, record.value or b"", record.key, reason))
    return out


def _rate(
    compiled: CompiledTariffs,
    cdrs: CdrBatch,
    accounts: Resolved,
    number: npt.NDArray[np.int64],
    number_len: npt.NDArray[np.int8],
) -> RatedRows:
    """Price and cost of every CDR, and its fate before the debit (rated/unanswered/unrated)."""
    n = len(cdrs)
    sell_table = compiled.table_indexes(accounts.sell_tariff)
    buy_table = compiled.table_indexes(accounts.buy_tariff)
    known = np.asarray(accounts.known, dtype=bool)
    result = rate_batch(
        compiled,
        np.where(known, sell_table, -1).astype(np.int32),
        np.where(known, buy_table, -1).astype(np.int32),
        number,
        number_len,
        cdrs.start,
        cdrs.billsec,
    )
    outcome = np.full(n, RATED, dtype=object)
    reason = np.full(n, "", dtype=object)
    answered = cdrs.billsec > 0
    # the first reason that applies wins: account, then tariff, then match
    checks = [
        (~known, strings_of(accounts.reason)),
        (known & (sell_table < 0), "no sell tariff"),
        (known & (buy_table < 0), "no buy tariff"),
        (known & answered & (result.sell_row < 0), "no sell match"),
        (known & answered & (result.buy_row < 0), "no buy match"),
    ]
    for mask, why in reversed(checks):
        outcome[mask] = UNRATED
        reason[mask] = why[mask] if isinstance(why, np.ndarray) else why
    unanswered = (outcome == RATED) & ~answered
    outcome[unanswered] = UNANSWERED
    rated = outcome == RATED
    price = np.where(rated, result.price, 0).astype(np.int64)
    cost = np.where(rated, result.cost, 0).astype(np.int64)

    def by_row(values: ObjArray, rows: npt.NDArray[np.int32]) -> ObjArray:
        out = np.full(n, "", dtype=object)
        hit = rows >= 0
        out[hit] = values[rows[hit]]
        return out

    sell_row = result.sell_row
    prefix = by_row(compiled.row_prefix, sell_row)
    destination = by_row(compiled.row_destination, sell_row)
    customer = np.where(known, strings_of(accounts.customer_id), "")
    return RatedRows(
        cdrs=cdrs,
        number=strings_of(
            [str(d) if k else "" for d, k in zip(number.tolist(), number_len.tolist(), strict=True)]
        ),
        prefix=prefix,
        destination=destination,
        billable=np.where(rated, result.billable, 0).astype(np.int32),
        price=price,
        cost=cost,
        currency=strings_of(accounts.currency),
        sell_tariff=by_row(compiled.row_version_key, sell_row),
        buy_tariff=by_row(compiled.row_version_key, result.buy_row),
        reseller=np.where(known, strings_of(accounts.reseller_id), ""),
        customer=customer,
        # an unknown account or card keeps the CDR's own card, so `rerate --unrated` can
        # charge it once the account exists (the debit script gets it only when known)
        card=np.where(known, strings_of(accounts.card_number), cdrs.card),
        outcome=outcome,
        reason=reason,
        blocked=np.zeros(n, dtype=np.bool_),
    )


def _apply_outcomes(
    rows: RatedRows, result: DebitResult
) -> tuple[RatedRows, int, npt.NDArray[np.bool_]]:
    """Duplicates leave the batch; accounts gone since the lookup make the CDR unrated."""
    gone = result.outcome == Outcome.UNKNOWN_ACCOUNT
    if gone.any():
        rows.outcome[gone] = UNRATED
        rows.reason[gone] = "unknown account"
        rows.price[gone] = 0
        rows.cost[gone] = 0
        rows.billable[gone] = 0
    rows.blocked[:] = result.blocked
    duplicate = result.outcome == Outcome.DUPLICATE
    if duplicate.any():
        return rows.take(~duplicate), int(duplicate.sum()), result.replayed[~duplicate]
    return rows, 0, result.replayed


def _count(report: BatchReport, rows: RatedRows, duplicates: int, rejects: list[Reject]) -> None:
    outcomes: dict[tuple[str, str], int] = {}
    pairs, counts = np.unique(
        np.char.add(rows.outcome.astype(str), np.char.add("\x1f", rows.reason.astype(str)))
        if len(rows)
        else np.zeros(0, dtype=str),
        return_counts=True,
    )
    for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
        outcome, reason = pair.split("\x1f", 1)
        key = (outcome, reason_kind(reason))
        outcomes[key] = outcomes.get(key, 0) + int(count)
    if duplicates:
        outcomes[(DUPLICATE, "")] = duplicates
    for reject in rejects:
        key = (INVALID, reason_kind(reject.reason))
        outcomes[key] = outcomes.get(key, 0) + 1
    report.outcomes = outcomes


def _observe(report: BatchReport, rows: RatedRows, replayed: npt.NDArray[np.bool_]) -> None:
    metrics.CONSUMED.inc(report.records)
    for (outcome, reason), count in report.outcomes.items():
        metrics.OUTCOMES.labels(outcome, reason).inc(count)
    metrics.DEAD_LETTERED.inc(report.dead_lettered)
    fresh = (rows.outcome == RATED) & ~replayed
    if fresh.any():
        for currency in np.unique(rows.currency[fresh]).tolist():
            mine = fresh & (rows.currency == currency)
            price = int(rows.price[mine].sum())
            metrics.DEBITED.labels("customer", currency).inc(price)
            metrics.DEBITED.labels("card", currency).inc(
                int(rows.price[mine & (rows.card != "")].sum())
            )
            metrics.DEBITED.labels("reseller", currency).inc(int(rows.cost[mine].sum()))
    for stage, seconds in report.stage_seconds.items():
        metrics.STAGE_SECONDS.labels(stage).inc(seconds)


#: values inside a reason: quoted text, parenthesised details, JSON positions, numbers
_VALUES = re.compile(r"""'[^']*'|"[^"]*"|`[^`]*`|\([^)]*\)|:\s*line \d+ column \d+.*$""")
_NUMBERS = re.compile(r"(?<![\w-])(?<!ISO )(?<!\.\.)-?\d+(?:\.\d+)?(?![\w.])")


def reason_kind(reason: str) -> str:
    """A reason without the record's own values, for counting and metric labels
    ("unknown card 8123" -> "unknown card", "billsec: negative (-5)" -> "billsec: negative")."""
    if reason.startswith("card ") and "belongs to" in reason:
        return "card of another customer"
    text = _NUMBERS.sub("", _VALUES.sub("", reason))
    return " ".join(text.split()).rstrip(" :,.") or reason


class _Timer:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, stage: str) -> _Stage:
        return _Stage(self.into, stage)


class _Stage:
    def __init__(self, into: dict[str, float], stage: str) -> None:
        self.into, self.stage = into, stage

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.into[self.stage] = self.into.get(self.stage, 0.0) + time.perf_counter() - self.started
