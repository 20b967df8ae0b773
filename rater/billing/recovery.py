"""Balances converge after Redis loses recent writes (docs/DESIGN.md section 3, "Redis data
loss").

Redis writes its append-only file once a second: a crashed host, or a replica promoted while it
lagged, loses the last writes. ClickHouse holds what they did, so nothing needs an operator:

* **call debits.** Every stored CDR keeps its message identity and the amounts debited for it
  (rated_cdrs, revision 0); `stored_offsets` (migration 070) keeps the highest stored offset per
  (topic identity, partition, reseller). `gaps` compares each reseller's Redis watermark with
  it; `repair_debits` feeds the stored rows above the watermark through the debit script again.
  The script applies each CDR whose de-duplication record is gone and treats the rest as
  replays (offsets at or below a reseller's watermark), so a repair never charges twice.
* **re-rating corrections** (rerate_audit, one row per correction with its key) and **ledgered
  balance changes** (credits, top-ups, corrections: the ledger, one row per entry id) of the
  last `recovery_horizon_s` are applied again by their keys: correct.lua and adjust.lua apply
  each key once, and Redis records the keys beside the changes.

A larger loss, a restore from an old snapshot, is reported and not repaired: cards (with their
PINs), customers and resellers that ClickHouse knows and Redis does not cannot be made again from
ClickHouse. `missing_accounts` lists them (`rater reconcile` shows them), and CDRs of such
accounts come back from a repair as unknown.

Workers run `Recovery.check_and_repair` for their partitions when they are assigned, when the
Redis server they talk to changed (its run id: a restart or a promoted replica), and every
`recovery_check_s`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from rater import clickhouse
from rater.accounts.balances import applied_record_args, entry_day
from rater.accounts.ledger import LedgerEntry
from rater.billing.reconcile import AccountCheck
from rater.logs import get_logger
from rater.pipeline.debit import Correction, DebitBatch, Debiter, fingerprints
from rater.redis import keys
from rater.redis.codes import AdjustCode, DebitOutcome
from rater.redis.topology import Topology, route
from rater.settings import Settings

log = get_logger(__name__)

#: CDRs per debit call while repairing (the stream's batches are of the same order)
CHUNK = 5_000
#: ledger kinds that adjust.lua applied, each once per entry id; other kinds create accounts or
#: cards (their loss is reported by missing_accounts, never repaired)
REAPPLIED_KINDS = ("credit", "topup", "adjustment")
_LEVEL_CODE = {"reseller": "r", "customer": "c", "card": "k"}


@dataclass(frozen=True)
class Gap:
    """Debits of one reseller in one partition that ClickHouse stored and Redis no longer has."""

    topic_id: str
    partition: int
    reseller: str
    redis_mark: int  # the reseller's watermark in Redis (-1: none)
    stored_high: int  # the highest offset ClickHouse stored for the reseller

    def __str__(self) -> str:
        who = self.reseller or "(unknown accounts)"
        return (
            f"partition {self.partition} reseller {who}: Redis applied up to offset "
            f"{self.redis_mark}, ClickHouse stored up to {self.stored_high}"
        )


@dataclass
class Repair:
    """What one check found and re-applied."""

    gaps: list[Gap] = field(default_factory=list)
    cdrs_applied: int = 0  # CDRs whose debit was applied again
    cdrs_unknown: int = 0  # rated CDRs whose account Redis no longer has (a larger loss)
    corrections_applied: int = 0
    ledger_applied: int = 0
    ledger_unknown: int = 0  # ledger entries of accounts Redis no longer has

    @property
    def anything(self) -> bool:
        return bool(self.gaps or self.corrections_applied or self.ledger_applied)

    @property
    def larger_loss(self) -> bool:
        return bool(self.cdrs_unknown or self.ledger_unknown)


class Recovery:
    """Finds and re-applies what Redis lost (see the module doc). One per worker process."""

    def __init__(self, settings: Settings, topology: Topology, debiter: Debiter | None = None):
        self.settings = settings
        self.topology = topology
        self.debiter = debiter or Debiter(topology, settings=settings)
        self._run_id = ""

    # ------------------------------------------------------------------ when to look
    def server_changed(self) -> bool:
        """True the first time, and whenever a Redis server answering is another process
        (a restart, a promoted replica) than at the last call."""
        info: Any = self.topology.client.info("server")
        if "run_id" in info:
            run_id = str(info["run_id"])
        else:  # Redis Cluster: node -> its INFO
            run_id = ",".join(sorted(str(node.get("run_id", "")) for node in info.values()))
        changed = run_id != self._run_id
        self._run_id = run_id
        return changed

    # ------------------------------------------------------------------ call debits
    def gaps(self, topic_id: str, partitions: Sequence[int]) -> list[Gap]:
        """Resellers of these partitions whose Redis watermark is below ClickHouse's highest
        stored offset."""
        if not partitions:
            return []
        highs = sorted(self._stored_highs(topic_id, partitions).items())
        if not highs:
            return []
        marks = self.topology.mget(
            [keys.watermark(res, topic_id, part) for (part, res), _ in highs]
        )
        found = []
        for ((part, res), high), raw in zip(highs, marks, strict=True):
            mark = int(raw) if raw is not None else -1
            if mark < high:
                found.append(Gap(topic_id, part, res, mark, high))
        return found

    def repair_debits(self, gaps: Sequence[Gap], into: Repair | None = None) -> Repair:
        """Re-apply the stored CDRs of every gap through the debit script, in offset order."""
        report = into or Repair()
        report.gaps.extend(gaps)
        by_partition: dict[tuple[str, int], list[Gap]] = defaultdict(list)
        for gap in gaps:
            by_partition[(gap.topic_id, gap.partition)].append(gap)
        for (topic_id, partition), mine in sorted(by_partition.items()):
            low = {gap.reseller: gap.redis_mark for gap in mine}
            rows = self._stored_rows(topic_id, partition, low)
            for first in range(0, len(rows), CHUNK):
                self._reapply(topic_id, partition, rows[first : first + CHUNK], report)
        return report

    def _reapply(
        self, topic_id: str, partition: int, rows: Sequence[tuple[Any, ...]], report: Repair
    ) -> None:
        columns = list(zip(*rows, strict=True))
        (offsets, switches, cdr_ids, accounts, cards, callees, billsecs, starts, ends,
         customers, resellers, prices, costs, auth_ids, outcomes) = columns  # fmt: skip
        customer_list = [str(c) for c in customers]
        card_list = [str(k) if c else "" for k, c in zip(cards, customer_list, strict=True)]
        batch = DebitBatch(
            topic_id=topic_id,
            partition=partition,
            offsets=np.asarray(offsets, dtype=np.int64),
            switches=list(switches),
            cdr_ids=list(cdr_ids),
            customers=customer_list,
            cards=card_list,
            resellers=list(resellers),
            prices=np.asarray(prices, dtype=np.int64),
            costs=np.asarray(costs, dtype=np.int64),
            auth_ids=list(auth_ids),
            fingerprints=fingerprints(
                accounts=list(accounts),
                cards=list(cards),
                callees=list(callees),
                billsecs=np.asarray(billsecs, dtype=np.int64),
                starts=np.asarray([_epoch(t) for t in starts], dtype=np.int64),
                ends=np.asarray([_epoch(t) for t in ends], dtype=np.int64),
            ),
        )
        result = self.debiter.apply(batch)
        fresh = ~result.replayed
        report.cdrs_applied += int(
            np.count_nonzero(fresh & (result.outcome == DebitOutcome.APPLIED))
        )
        rated = np.asarray(outcomes, dtype=object) == "rated"
        unknown = fresh & rated & (result.outcome == DebitOutcome.UNKNOWN_ACCOUNT)
        report.cdrs_unknown += int(np.count_nonzero(unknown))

    def _stored_highs(self, topic_id: str, partitions: Sequence[int]) -> dict[tuple[int, str], int]:
        rows = self._query(
            "SELECT partition, reseller, maxMerge(high) FROM stored_offsets"
            " WHERE topic_id = %(t)s AND partition IN %(p)s GROUP BY partition, reseller",
            {"t": topic_id, "p": tuple(int(p) for p in partitions)},
        )
        return {(int(p), str(r)): int(h) for p, r, h in rows}

    def _stored_rows(
        self, topic_id: str, partition: int, low: dict[str, int]
    ) -> list[tuple[Any, ...]]:
        """Revision-0 rows of the partition above each reseller's Redis watermark: the CDRs as
        first stored, with the amounts debited then (re-rates are corrections of their own)."""
        floor = min(low.values())
        rows = self._query(
            "SELECT offset, switch, cdr_id, account, card, callee, billsec, start_time,"
            " end_time, customer, reseller, price, cost, auth_id, outcome FROM rated_cdrs"
            " WHERE topic_id = %(t)s AND partition = %(p)s AND offset > %(floor)s"
            " AND revision = 0 AND sign = 1 AND reseller IN %(r)s ORDER BY offset",
            {"t": topic_id, "p": partition, "floor": floor, "r": tuple(low)},
        )
        # each reseller from its own watermark (a lower one of another reseller set the floor)
        return [row for row in rows if int(row[0]) > low[str(row[10])]]

    # ------------------------------------------------------------------ by key
    def repair_corrections(self, into: Repair | None = None) -> Repair:
        """Re-rating corrections of the horizon whose mark Redis lacks, applied again by key."""
        report = into or Repair()
        since = _naive(self._now() - timedelta(seconds=self.settings.recovery_horizon_s))
        rows = self._query(
            "SELECT correction_key, any(reseller), any(customer), any(card),"
            " any(new_price - old_price), any(new_cost - old_cost) FROM rerate_audit"
            " WHERE run_at >= %(since)s AND correction_key != ''"
            " AND (new_price != old_price OR new_cost != old_cost) GROUP BY correction_key",
            {"since": since},
        )
        if not rows:
            return report
        marks = self.topology.mget([keys.correction(str(r[1]), str(r[0])) for r in rows])
        missing = [
            Correction(str(k), str(res), str(cust), str(card), int(dp), int(dc))
            for (k, res, cust, card, dp, dc), mark in zip(rows, marks, strict=True)
            if mark is None
        ]
        if missing:
            applied = self.debiter.apply_corrections(missing)
            report.corrections_applied += int(np.count_nonzero(applied))
        return report

    def repair_ledger(self, into: Repair | None = None) -> Repair:
        """Credits, top-ups and corrections of the horizon whose entry id Redis lacks, applied
        again by id (no coverage check: they passed it when they were first applied)."""
        report = into or Repair()
        since = _naive(self._now() - timedelta(seconds=self.settings.recovery_horizon_s))
        rows = self._query(
            "SELECT entry_id, ts, level, reseller, customer, card, kind, amount, currency,"
            " reason, ref, actor FROM ledger WHERE ts >= %(since)s AND kind IN %(kinds)s"
            " ORDER BY ts, entry_id",
            {"since": since, "kinds": REAPPLIED_KINDS},
        )
        entries = [_entry(row) for row in rows]
        if not entries:
            return report
        pipe = self.topology.client.pipeline(transaction=False)
        for entry in entries:
            pipe.hexists(keys.ledger_applied(entry.reseller, entry_day(entry)), entry.entry_id)
        present = pipe.execute()
        script = self.topology.script("adjust")
        for entry, seen in zip(entries, present, strict=True):
            if seen:
                continue
            account = {"reseller": entry.reseller, "customer": entry.customer}.get(
                entry.level, entry.card
            )
            raw = self.topology.run(
                script,
                route(entry.reseller),
                [
                    _LEVEL_CODE[entry.level], entry.reseller, account, entry.amount, 0, 0,
                    "1" if self.topology.global_keys else "0",
                    *applied_record_args(entry, self.settings.recovery_horizon_s),
                ],
            )  # fmt: skip
            code = AdjustCode(int(raw[0]))
            if code is AdjustCode.APPLIED:
                report.ledger_applied += 1
            elif code is AdjustCode.NOT_FOUND:
                report.ledger_unknown += 1
            elif code is not AdjustCode.ALREADY_APPLIED:
                log.error(
                    "ledger entry could not be applied again", entry=entry.entry_id,
                    code=code.name,
                )  # fmt: skip
        return report

    # ------------------------------------------------------------------ all of it
    def check_and_repair(self, topic_id: str, partitions: Sequence[int]) -> Repair:
        """Debits of these partitions, then corrections and ledger entries; logs what it did."""
        report = self.repair_debits(self.gaps(topic_id, partitions))
        self.repair_corrections(report)
        self.repair_ledger(report)
        if report.anything:
            log.warning(
                "Redis had lost writes: applied again from ClickHouse",
                gaps=[str(g) for g in report.gaps], cdrs=report.cdrs_applied,
                corrections=report.corrections_applied, ledger_entries=report.ledger_applied,
            )  # fmt: skip
        if report.larger_loss:
            log.error(
                "Redis lacks accounts ClickHouse knows: restored from an older snapshot? Cards "
                "(with their PINs), customers and resellers made since cannot be made again "
                "from ClickHouse; run `rater reconcile` and see docs/OPERATIONS.md",
                cdrs=report.cdrs_unknown, ledger_entries=report.ledger_unknown,
            )  # fmt: skip
        return report

    def check_and_repair_all(self) -> Repair:
        """check_and_repair over every (topic identity, partition) ClickHouse stored CDRs of
        (`rater reconcile --repair`)."""
        report = Repair()
        for topic_id, partitions in self._stored_partitions().items():
            part = self.repair_debits(self.gaps(topic_id, partitions))
            report.gaps.extend(part.gaps)
            report.cdrs_applied += part.cdrs_applied
            report.cdrs_unknown += part.cdrs_unknown
        self.repair_corrections(report)
        self.repair_ledger(report)
        return report

    def _stored_partitions(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = defaultdict(list)
        for topic_id, partition in self._query(
            "SELECT DISTINCT topic_id, partition FROM stored_offsets ORDER BY topic_id, partition",
            {},
        ):
            found[str(topic_id)].append(int(partition))
        return dict(found)

    # ------------------------------------------------------------------ helpers
    def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        ch = clickhouse.client(self.settings, numpy=False)
        try:
            return list(ch.execute(sql, params))
        finally:
            ch.disconnect()

    def _now(self) -> datetime:
        return datetime.now(UTC)


def missing_accounts(settings: Settings, topology: Topology) -> list[tuple[str, str, str]]:
    """(level, account, reseller) of every account the ledger knows and Redis does not: what a
    restore from an older snapshot lost (rater reconcile reports them)."""
    ch = clickhouse.client(settings, numpy=False)
    try:
        rows = ch.execute(
            "SELECT DISTINCT level, reseller, customer, card FROM ledger WHERE kind != 'call'"
        )
    finally:
        ch.disconnect()
    wanted: list[tuple[str, str, str, str]] = []
    for raw in rows:
        level, reseller, customer, card = (str(v) for v in raw)
        if level == "reseller":
            wanted.append((level, reseller, reseller, keys.reseller(reseller)))
        elif level == "customer":
            wanted.append((level, customer, reseller, keys.customer(reseller, customer)))
        elif level == "card":
            wanted.append((level, card, reseller, keys.card(reseller, card)))
    pipe = topology.client.pipeline(transaction=False)
    for *_, key in wanted:
        pipe.exists(key)
    found = pipe.execute() if wanted else []
    return sorted(
        (level, account, reseller)
        for (level, account, reseller, _), exists in zip(wanted, found, strict=True)
        if not exists
    )


def _entry(row: Sequence[Any]) -> LedgerEntry:
    entry_id, ts, level, reseller, customer, card, kind, amount, currency, reason, ref, actor = row
    return LedgerEntry(
        entry_id=str(entry_id), ts=ts.replace(tzinfo=UTC), level=str(level),
        reseller=str(reseller), customer=str(customer), card=str(card), kind=str(kind),
        amount=int(amount), currency=str(currency), reason=str(reason), ref=str(ref),
        actor=str(actor),
    )  # fmt: skip


def _epoch(value: Any) -> int:
    if isinstance(value, datetime):
        return (
            int(value.replace(tzinfo=UTC).timestamp())
            if value.tzinfo is None
            else int(value.timestamp())
        )
    return int(value)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def rebuild_balances(topology: Topology, checks: Sequence[AccountCheck]) -> list[AccountCheck]:
    """Set every balance that differs to what ClickHouse says it should be (credits and top-ups
    from the ledger, debits from rated_cdrs), through adjust.lua so the notice's state rules
    (empty, negative, ANI) follow; no ledger entry is written, because the ledger already holds
    every change. Returns the checks that were changed. For accounts Redis still has."""
    script = topology.script("adjust")
    changed = []
    for check in checks:
        if check.difference == 0:
            continue
        raw = topology.run(
            script,
            route(check.reseller),
            [
                _LEVEL_CODE[check.level], check.reseller, check.account, -check.difference, 0, 0,
                "1" if topology.global_keys else "0", "", 0, 0,
            ],
        )  # fmt: skip
        if AdjustCode(int(raw[0])) is AdjustCode.APPLIED:
            changed.append(check)
            log.warning(
                "balance rebuilt from ClickHouse", level=check.level, account=check.account,
                was=check.redis_balance, now=check.expected,
            )  # fmt: skip
    return changed
