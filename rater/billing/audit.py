"""The re-rate audit trail (table rerate_audit, schemas/clickhouse/042_rerate_audit.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from rater.billing.rows import Row
from rater.clickhouse.executor import Executor, Params


@dataclass(frozen=True)
class AuditRow:
    """One CDR changed by one re-rate run (columns of rerate_audit, in order)."""

    run_id: str
    run_at: datetime
    actor: str
    reason: str
    mode: str  # tariff | unrated
    switch: str
    cdr_id: str
    start_time: datetime
    reseller: str
    customer: str
    card: str
    currency: str
    old_revision: int
    new_revision: int
    old_outcome: str
    new_outcome: str
    old_destination: str
    new_destination: str
    old_sell_tariff: str
    new_sell_tariff: str
    old_buy_tariff: str
    new_buy_tariff: str
    old_price: int
    new_price: int
    old_cost: int
    new_cost: int
    correction_key: str

    @classmethod
    def of(
        cls,
        *,
        run_id: str,
        run_at: datetime,
        actor: str,
        reason: str,
        mode: str,
        old: Row,
        new: Row,
        correction_key: str,
    ) -> AuditRow:
        return cls(
            run_id=run_id,
            run_at=run_at,
            actor=actor,
            reason=reason,
            mode=mode,
            switch=new["switch"],
            cdr_id=new["cdr_id"],
            start_time=new["start_time"],
            reseller=new["reseller"],
            customer=new["customer"],
            card=new["card"],
            currency=new["currency"],
            old_revision=int(old["revision"]),
            new_revision=int(new["revision"]),
            old_outcome=old["outcome"],
            new_outcome=new["outcome"],
            old_destination=old["destination"],
            new_destination=new["destination"],
            old_sell_tariff=old["sell_tariff"],
            new_sell_tariff=new["sell_tariff"],
            old_buy_tariff=old["buy_tariff"],
            new_buy_tariff=new["buy_tariff"],
            old_price=int(old["price"]),
            new_price=int(new["price"]),
            old_cost=int(old["cost"]),
            new_cost=int(new["cost"]),
            correction_key=correction_key,
        )


COLUMNS = tuple(f.name for f in fields(AuditRow))


def write_audit(ch: Executor, entries: Sequence[AuditRow]) -> None:
    # getattr, not dataclasses.astuple: astuple deep-copies every field (5x slower here)
    ch.insert("rerate_audit", COLUMNS, [tuple(getattr(e, c) for c in COLUMNS) for e in entries])


def already_audited(ch: Executor, rows: Sequence[Row]) -> set[tuple[str, str, int]]:
    """Which (switch, cdr_id, new revision) of `rows` have an audit row already (a run that
    stopped after its audit insert and before its rows insert)."""
    if not rows:
        return set()
    days = [r["start_time"] for r in rows]
    params: Params = {"first": min(days), "last": max(days)}
    wanted = {(r["switch"], r["cdr_id"], int(r["revision"])) for r in rows}
    ids = sorted({r["cdr_id"] for r in rows})
    # cdr ids go in as one IN list of literals (rendered and escaped by the executor)
    in_params = {f"id{i}": v for i, v in enumerate(ids)}
    in_list = ", ".join(f"%(id{i})s" for i in range(len(ids)))
    found = ch.rows(
        "SELECT switch, cdr_id, new_revision FROM rerate_audit"
        " WHERE start_time >= %(first)s AND start_time <= %(last)s"
        f" AND cdr_id IN ({in_list})",
        {**params, **in_params},
    )
    return {(s, c, int(r)) for s, c, r in found} & wanted


def history(ch: Executor, switch: str, cdr_id: str) -> list[dict[str, Any]]:
    """Every audit row of one CDR, oldest first."""
    rows = ch.rows(
        f"SELECT {', '.join(COLUMNS)} FROM rerate_audit"
        " WHERE switch = %(switch)s AND cdr_id = %(cdr_id)s ORDER BY new_revision, run_at",
        {"switch": switch, "cdr_id": cdr_id},
    )
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def runs(ch: Executor, first: date, last: date) -> list[tuple[Any, ...]]:
    """Per run: id, when, who, why, CDRs changed, price and cost differences."""
    return ch.rows(
        "SELECT run_id, min(run_at), any(actor), any(reason), count(),"
        " toInt64(sum(new_price - old_price)), toInt64(sum(new_cost - old_cost))"
        " FROM rerate_audit WHERE toDate(run_at) >= %(first)s AND toDate(run_at) <= %(last)s"
        " GROUP BY run_id ORDER BY min(run_at)",
        {"first": first, "last": last},
    )
