"""The batch-level calls of a batch (account look-up, debit), each narrowed to the records that
make it fail (rater/pipeline/isolate.py): those records are stored unrated with the error, the
others go on (docs/DESIGN.md section 4)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rater import metrics
from rater.accounts.lookup import AccountLookup, Resolved
from rater.pipeline.debit import DebitBatch, Debiter, DebitResult, fingerprints_of
from rater.pipeline.decode import CdrBatch
from rater.pipeline.fates import fail_rows
from rater.pipeline.isolate import bisect
from rater.pipeline.store import RatedRows
from rater.reasons import Kind, Reason

_RESOLVED_LISTS = ("reason", "customer_id", "card_number", "reseller_id", "sell_tariff",
                   "buy_tariff", "currency")  # fmt: skip


def resolve(lookup: AccountLookup, cdrs: CdrBatch) -> Resolved:
    """Accounts and cards; CDRs the look-up fails on alone are unknown, with the error."""
    accounts, cards = cdrs.account.tolist(), cdrs.card.tolist()

    def call(index: npt.NDArray[np.int64]) -> Resolved:
        rows = index.tolist()
        return lookup.resolve([accounts[i] for i in rows], [cards[i] for i in rows])

    pieces, failed = bisect(len(cdrs), call, what="account look-up")
    if len(pieces) == 1 and not failed:
        return pieces[0][1]
    n = len(cdrs)
    out = Resolved(np.zeros(n, dtype=np.bool_), [None] * n, *([""] * n for _ in range(6)))
    for index, part in pieces:
        for j, i in enumerate(index.tolist()):
            out.known[i] = part.known[j]
            for name in _RESOLVED_LISTS:
                getattr(out, name)[i] = getattr(part, name)[j]
    for i, error in failed.items():
        out.reason[i] = Reason.of_error(Kind.LOOKUP_ERROR, error)
    metrics.inc(metrics.ISOLATED, len(failed), "lookup")
    return out


def debit(debiter: Debiter, topic_id: str, rows: RatedRows) -> DebitResult:
    """One script call per partition of the batch (the watermark is per partition).

    Late CDRs go at price 0 (recorded for de-duplication, nothing charged). A call that fails
    because of some CDRs is halved until they are found: they become unrated with the error,
    and the others are applied (each piece is contiguous and ascending in offsets, as the
    script's watermark needs).
    """
    c = rows.cdrs
    n = len(rows)
    outcome = np.zeros(n, dtype=np.int8)
    blocked = np.zeros(n, dtype=np.bool_)
    replayed = np.zeros(n, dtype=np.bool_)
    first = np.full((n, 2), -1, dtype=np.int64)  # a CONFLICT's first copy (partition, offset)
    prices = np.where(rows.late, 0, rows.price).astype(np.int64)
    costs = np.where(rows.late, 0, rows.cost).astype(np.int64)
    cards = np.where(rows.customer != "", rows.card, "")
    groups: dict[int, list[int]] = {}
    for i, partition in enumerate(c.partition.tolist()):
        groups.setdefault(partition, []).append(i)
    failed: dict[int, Reason] = {}
    for partition, members in groups.items():
        mine = np.asarray(members, dtype=np.int64)

        def apply(
            index: npt.NDArray[np.int64],
            partition: int = partition,
            mine: npt.NDArray[np.int64] = mine,
        ) -> DebitResult:
            at = mine[index]
            return debiter.apply(
                DebitBatch(
                    topic_id=topic_id,
                    partition=partition,
                    offsets=c.offset[at],
                    switches=c.switch[at].tolist(),
                    cdr_ids=c.cdr_id[at].tolist(),
                    customers=rows.customer[at].tolist(),
                    cards=cards[at].tolist(),
                    resellers=rows.reseller[at].tolist(),
                    prices=prices[at],
                    costs=costs[at],
                    auth_ids=c.auth_id[at].tolist(),
                    fingerprints=fingerprints_of(c, at),
                )
            )

        pieces, errors = bisect(len(mine), apply, what="debit")
        for index, part in pieces:
            at = mine[index]
            outcome[at], blocked[at], replayed[at] = part.outcome, part.blocked, part.replayed
            if part.first is not None:
                first[at] = part.first
        for j, error in errors.items():
            failed[int(mine[j])] = Reason.of_error(Kind.DEBIT_ERROR, error)
    if failed:
        fail_rows(rows, failed)
        metrics.inc(metrics.ISOLATED, len(failed), "debit")
    return DebitResult(outcome=outcome, blocked=blocked, replayed=replayed, first=first)
