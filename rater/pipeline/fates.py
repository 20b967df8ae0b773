"""Each CDR's fate (docs/DESIGN.md section 4) and the columns stored with it.

`rated_columns` is the one definition of a CDR's price, cost, outcome and reason from its
tariffs and its number: the pipeline (`rated_rows`) and re-rating (rater/billing/rerate.py)
both call it, so they cannot price or explain a CDR differently.

Fates: rated (debited, stored), unanswered (billsec 0: stored, price 0), unrated (a reason:
stored with price 0, still through the debit script so its duplicates are caught), duplicate
(counted, not stored), invalid (dead letter). Late CDRs are priced, but sent to the debit
script at price 0 and stored unrated `late` (`apply_outcomes`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from kernels.layout import E164_MIN_DIGITS
from rater import metrics
from rater.accounts.lookup import Resolved
from rater.logs import get_logger
from rater.pipeline.debit import DebitResult, Outcome
from rater.pipeline.decode import CdrBatch, ObjArray, Reject, strings_of
from rater.pipeline.isolate import bisect
from rater.pipeline.rate import RateResult, rate_batch
from rater.pipeline.store import RatedRows
from rater.reasons import Kind, Reason, cap
from rater.tariffs.compile import CompiledTariffs

log = get_logger(__name__)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
Mask = npt.NDArray[np.bool_]


class Fate(StrEnum):
    """What became of a CDR (the `outcome` column and metric label)."""

    RATED = "rated"
    UNANSWERED = "unanswered"
    UNRATED = "unrated"
    DUPLICATE = "duplicate"
    INVALID = "invalid"


#: the outcome counted for another leg of a call (never stored, so not a Fate)
OTHER_LEG = "other leg"

RATED, UNANSWERED, UNRATED, DUPLICATE, INVALID = (
    Fate.RATED, Fate.UNANSWERED, Fate.UNRATED, Fate.DUPLICATE, Fate.INVALID,
)  # fmt: skip


@dataclass
class BatchReport:
    """What one batch did (tests, metrics, the demo and the benchmark read it)."""

    records: int = 0
    #: (outcome, reason kind or "") -> CDRs
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    stored: int = 0
    dead_lettered: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: CDRs that ended before now minus the de-duplication window (stored late or duplicates)
    late: int = 0
    #: switch name as sent -> its metric label (a name the registry knows, else "other")
    switch_labels: dict[str, str] = field(default_factory=dict)
    #: (switch label, outcome) -> CDRs
    by_switch: dict[tuple[str, str], int] = field(default_factory=dict)
    #: records that are another leg of a call (a FreeSWITCH B-leg): counted, never billed
    other_legs: int = 0

    def count(self, outcome: str, reason: str | None = None) -> int:
        return sum(n for (o, r), n in self.outcomes.items() if o == outcome and reason in (None, r))


# ------------------------------------------------------------------------ the rated columns
@dataclass(frozen=True)
class Priced:
    """Per CDR: the fate before the debit and what is stored with it."""

    outcome: ObjArray  # Fate: rated, unanswered or unrated
    reason: ObjArray  # Reason | None
    billable: I32
    price: I64  # micro-units; 0 unless rated
    cost: I64
    prefix: ObjArray  # the sell match's prefix and destination ('' without one)
    destination: ObjArray
    sell_tariff: ObjArray  # 'name@version' of the matched rows ('' without one)
    buy_tariff: ObjArray


def rated_columns(
    sell: CompiledTariffs,
    buy: CompiledTariffs,
    *,
    sell_names: Sequence[str],
    buy_names: Sequence[str],
    before: Sequence[Reason | None],
    number: I64,
    number_len: I8,
    start: I64,
    billsec: I32,
    max_price: int,
) -> Priced:
    """Price and cost of every CDR, its fate and its reason (docs/DESIGN.md sections 2, 4).

    `sell_names`/`buy_names` name each CDR's tables ('' none) in `sell`/`buy` (the same
    object in the pipeline); `before` holds reasons decided before pricing (an unknown
    account, ...). The first reason that applies wins: `before`, a rating error of that CDR
    alone, no sell or buy tariff, no sell or buy match (answered calls only), a price or cost
    outside 0..max_price. Without one the CDR is rated (billsec > 0) or unanswered.
    """
    n = len(number)
    sell_table = sell.table_indexes(sell_names)
    buy_table = buy.table_indexes(buy_names)
    result, failed = _rate(sell, buy, sell_table, buy_table, number, number_len, start, billsec)
    answered = billsec > 0
    short = number_len < E164_MIN_DIGITS  # extensions and service codes: "no route"
    reason: list[Reason | None] = list(before)
    given = np.fromiter((r is not None for r in reason), dtype=np.bool_, count=n)
    in_range = (result.price >= 0) & (result.price <= max_price)
    in_range &= (result.cost >= 0) & (result.cost <= max_price)
    suspect = (sell_table < 0) | (buy_table < 0)
    suspect |= answered & ((result.sell_row < 0) | (result.buy_row < 0) | ~in_range)
    if failed:
        suspect[list(failed)] = True
    # only the CDRs with a reason are looked at one by one (a batch is mostly rated)
    for i in np.flatnonzero(suspect & ~given).tolist():
        if i in failed:
            reason[i] = Reason.of_error(Kind.RATING_ERROR, failed[i])
        elif sell_table[i] < 0:
            reason[i] = Reason(Kind.NO_SELL_TARIFF, cap(sell_names[i]))
        elif buy_table[i] < 0:
            reason[i] = Reason(Kind.NO_BUY_TARIFF, cap(buy_names[i]))
        elif answered[i] and short[i] and (result.sell_row[i] < 0 or result.buy_row[i] < 0):
            side, name = (
                ("sell", sell_names[i]) if result.sell_row[i] < 0 else ("buy", buy_names[i])
            )
            reason[i] = Reason(Kind.NO_ROUTE, f"{int(number[i])} in {side} tariff {cap(name)}")
        elif answered[i] and result.sell_row[i] < 0:
            reason[i] = Reason(Kind.NO_SELL_MATCH, cap(sell_names[i]))
        elif answered[i] and result.buy_row[i] < 0:
            reason[i] = Reason(Kind.NO_BUY_MATCH, cap(buy_names[i]))
        elif answered[i] and not in_range[i]:
            reason[i] = Reason(
                Kind.PRICE_ABOVE_MAX,
                f"price {int(result.price[i])}, cost {int(result.cost[i])} micro-units, "
                f"maximum {max_price}",
            )
    reasons = np.empty(n, dtype=object)
    reasons[:] = reason
    unrated = given | suspect
    rated = ~unrated & answered
    outcome = np.full(n, UNANSWERED, dtype=object)
    outcome[rated] = RATED
    outcome[unrated] = UNRATED
    sell_row, buy_row = result.sell_row, result.buy_row
    return Priced(
        outcome=outcome,
        reason=reasons,
        billable=np.where(rated, result.billable, 0).astype(np.int32),
        price=np.where(rated, result.price, 0).astype(np.int64),
        cost=np.where(rated, result.cost, 0).astype(np.int64),
        prefix=_by_row(sell.row_prefix, sell_row),
        destination=_by_row(sell.row_destination, sell_row),
        sell_tariff=_by_row(sell.row_version_key, sell_row),
        buy_tariff=_by_row(buy.row_version_key, buy_row),
    )


def _by_row(values: ObjArray, rows: I32) -> ObjArray:
    out = np.full(len(rows), "", dtype=object)
    hit = rows >= 0
    out[hit] = values[rows[hit]]
    return out


def _rate(  # noqa: PLR0917 - rate_batch's columns
    sell: CompiledTariffs,
    buy: CompiledTariffs,
    sell_table: I32,
    buy_table: I32,
    number: I64,
    number_len: I8,
    start: I64,
    billsec: I32,
) -> tuple[RateResult, dict[int, Exception]]:
    """The kernel over the batch; CDRs that make it fail on their own come back as errors."""
    n = len(number)

    def call(index: I64) -> RateResult:
        columns = (number[index], number_len[index], start[index], billsec[index])
        if sell is buy:
            return rate_batch(sell, sell_table[index], buy_table[index], *columns)
        none = np.full(len(index), -1, dtype=np.int32)
        s = rate_batch(sell, sell_table[index], none, *columns)
        b = rate_batch(buy, none, buy_table[index], *columns)
        return RateResult(s.sell_row, b.buy_row, s.billable, b.buy_billable, s.price, b.cost)

    pieces, failed = bisect(n, call, what="rating")
    if len(pieces) == 1 and not failed:
        return pieces[0][1], failed
    out = RateResult(
        sell_row=np.full(n, -1, dtype=np.int32),
        buy_row=np.full(n, -1, dtype=np.int32),
        billable=np.zeros(n, dtype=np.int32),
        buy_billable=np.zeros(n, dtype=np.int32),
        price=np.zeros(n, dtype=np.int64),
        cost=np.zeros(n, dtype=np.int64),
    )
    for index, part in pieces:
        for name in ("sell_row", "buy_row", "billable", "buy_billable", "price", "cost"):
            getattr(out, name)[index] = getattr(part, name)
    if failed:
        metrics.inc(metrics.ISOLATED, len(failed), "rate")
    return out, failed


# ------------------------------------------------------------------------ the pipeline's rows
def rated_rows(
    compiled: CompiledTariffs,
    cdrs: CdrBatch,
    accounts: Resolved,
    number: I64,
    number_len: I8,
    *,
    late: Mask,
    max_price: int,
) -> RatedRows:
    """The rows the pipeline debits and stores: rated_columns plus the CDR's accounts."""
    known = np.asarray(accounts.known, dtype=bool)
    sell_names = [t if k else "" for t, k in zip(accounts.sell_tariff, known.tolist(), strict=True)]
    buy_names = [t if k else "" for t, k in zip(accounts.buy_tariff, known.tolist(), strict=True)]
    priced = rated_columns(
        compiled, compiled, sell_names=sell_names, buy_names=buy_names,
        before=accounts.reason, number=number, number_len=number_len, start=cdrs.start,
        billsec=cdrs.billsec, max_price=max_price,
    )  # fmt: skip
    return RatedRows(
        cdrs=cdrs,
        number=strings_of(
            [str(d) if k else "" for d, k in zip(number.tolist(), number_len.tolist(), strict=True)]
        ),
        prefix=priced.prefix,
        destination=priced.destination,
        billable=priced.billable,
        price=priced.price,
        cost=priced.cost,
        currency=strings_of(accounts.currency),
        sell_tariff=priced.sell_tariff,
        buy_tariff=priced.buy_tariff,
        reseller=np.where(known, strings_of(accounts.reseller_id), ""),
        customer=np.where(known, strings_of(accounts.customer_id), ""),
        # an unknown account or card keeps the CDR's own card, so `rerate --unrated` can
        # charge it once the account exists (the debit script gets it only when known)
        card=np.where(known, strings_of(accounts.card_number), cdrs.card),
        outcome=priced.outcome,
        reason=priced.reason,
        blocked=np.zeros(len(cdrs), dtype=np.bool_),
        late=np.asarray(late, dtype=np.bool_),
    )


def fail_rows(rows: RatedRows, failed: dict[int, Reason]) -> None:
    """CDRs a batch-level stage failed on alone: unrated with the reason, nothing charged."""
    for i, reason in failed.items():
        rows.outcome[i] = UNRATED
        rows.reason[i] = reason
        rows.price[i] = 0
        rows.cost[i] = 0
        rows.billable[i] = 0


def apply_outcomes(
    rows: RatedRows, result: DebitResult, *, window_s: int
) -> tuple[RatedRows, int, Mask]:
    """Duplicates and conflicts leave the batch; accounts gone since the look-up, and amounts
    the debit refused as beyond its bound, make the CDR unrated; late CDRs become unrated
    `late` (they went to the script at price 0).

    A late CDR the script reports as a replay that was APPLIED was debited by an earlier pass
    of this message, which may have come before the CDR was late (a kill between debit and
    store): unless its record was published when the CDR was already late (so every pass saw
    it late), it keeps its rated values, as it was debited then (docs/DESIGN.md section 4).
    """
    late = rows.late.copy()
    replayed_applied = result.replayed & (result.outcome == Outcome.APPLIED)
    if late.any() and replayed_applied.any():
        c = rows.cdrs
        late_at_publish = (c.kafka_ts > 0) & (c.end < c.kafka_ts // 1000 - window_s)
        restored = late & replayed_applied & ~late_at_publish
        if restored.any():
            log.warning(
                "late CDRs replayed after a debit: stored with the rated values of that debit",
                cdrs=int(restored.sum()),
            )
            late &= ~restored
    if late.any():
        for i in np.flatnonzero(late).tolist():
            rows.reason[i] = Reason(Kind.LATE, f"ended {_iso(int(rows.cdrs.end[i]))}")
        rows.outcome[late] = UNRATED
        rows.price[late] = 0
        rows.cost[late] = 0
        rows.billable[late] = 0
    for code, why in (
        (Outcome.UNKNOWN_ACCOUNT, Reason(Kind.UNKNOWN_ACCOUNT, "gone since the look-up")),
        # beyond the debit's own bound (rater/pipeline/debit.py); max_price keeps prices below it
        (Outcome.OUT_OF_RANGE, Reason(Kind.AMOUNT_OUT_OF_RANGE, "refused by the debit")),
    ):
        gone = result.outcome == code
        if gone.any():
            rows.outcome[gone] = UNRATED
            for i in np.flatnonzero(gone).tolist():
                rows.reason[i] = why
            rows.price[gone] = 0
            rows.cost[gone] = 0
            rows.billable[gone] = 0
    rows.blocked[:] = result.blocked
    duplicate = result.outcome == Outcome.DUPLICATE
    # conflicting copies leave too: they are kept apart (rater/pipeline/conflicts.py)
    leave = duplicate | (result.outcome == Outcome.CONFLICT)
    if leave.any():
        return rows.take(~leave), int(duplicate.sum()), result.replayed[~leave]
    return rows, 0, result.replayed


def _iso(epoch: int) -> str:
    return np.datetime_as_string(np.datetime64(epoch, "s")) + "Z"


# ------------------------------------------------------------------------ counting
def count(report: BatchReport, rows: RatedRows, duplicates: int, rejects: Sequence[Reject]) -> None:
    """Outcomes by (outcome, reason kind), and by (switch label, outcome)."""
    kinds = [r.kind.value if r is not None else "" for r in rows.reason.tolist()]
    outcomes = Counter(zip((str(o) for o in rows.outcome.tolist()), kinds, strict=True))
    labels = report.switch_labels
    by_switch = Counter(
        (labels.get(s, metrics.OTHER), str(o))
        for s, o in zip(rows.cdrs.switch.tolist(), rows.outcome.tolist(), strict=True)
    )
    if duplicates:
        outcomes[(DUPLICATE.value, "")] += duplicates
    if report.other_legs:
        outcomes[(OTHER_LEG, "")] += report.other_legs
    for reject in rejects:
        outcomes[(INVALID.value, reject.reason.kind.value)] += 1
        by_switch[(labels.get(reject.switch, metrics.OTHER), INVALID.value)] += 1
    report.outcomes = dict(outcomes)
    report.by_switch = dict(by_switch)


def observe(report: BatchReport, rows: RatedRows, replayed: Mask) -> None:
    """The batch's metrics. Every label comes from a closed set (rater/metrics.py)."""
    metrics.inc(metrics.CONSUMED, report.records)
    for (outcome, reason), n in report.outcomes.items():
        metrics.inc(metrics.OUTCOMES, n, metrics.outcome_label(outcome), metrics.kind_label(reason))
    for (switch, outcome), n in report.by_switch.items():
        metrics.inc(metrics.SWITCH_CDRS, n, switch, metrics.outcome_label(outcome))
    metrics.inc(metrics.DEAD_LETTERED, report.dead_lettered)
    metrics.inc(metrics.LATE, report.late)
    fresh = (rows.outcome == RATED) & ~replayed
    if fresh.any():
        for currency in set(rows.currency[fresh].tolist()):
            # a Python comparison: numpy would compare fixed-width strings without trailing NULs
            mine = fresh & np.fromiter(
                (c == currency for c in rows.currency.tolist()), dtype=np.bool_, count=len(rows)
            )
            label = metrics.currency_label(currency)
            metrics.inc(metrics.DEBITED, int(rows.price[mine].sum()), "customer", label)
            metrics.inc(
                metrics.DEBITED, int(rows.price[mine & (rows.card != "")].sum()), "card", label
            )
            metrics.inc(metrics.DEBITED, int(rows.cost[mine].sum()), "reseller", label)
    for stage, seconds in report.stage_seconds.items():
        metrics.inc(metrics.STAGE_SECONDS, seconds, metrics.stage_label(stage))
