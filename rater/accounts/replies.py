"""The answers of the account scripts (rater/redis/lua/*.lua), one IntEnum per script (in
rater/redis/codes.py, where the Lua header takes them from), and the one place that turns a
refusal code of theirs into an error.

Every script answers `{code, detail...}`. `reply(Enum, raw)` reads the code as that script's
enum (an unknown code is a bug, reported with the script's name); `raise_for` maps the codes
that are errors for a person (not found, not covered, disposable, ...) to rater's errors.
PIN and reservation codes are results rather than errors: rater/accounts/pins.py and
rater/accounts/authorize.py turn them into answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from rater.accounts.model import Reseller
from rater.errors import (
    AccountError,
    CoverageError,
    DisposableCardError,
    NotFound,
    RaterError,
)
from rater.money import display
from rater.redis.codes import AdjustCode, CreateCardsCode, GuardCode, PinCode, ReserveCode
from rater.redis.contract import MAX_AMOUNT

__all__ = [
    "AdjustCode", "CreateCardsCode", "GuardCode", "PinCode", "ReserveCode", "Subject",
    "coverage_error", "raise_for", "reply",
]  # fmt: skip


Code = TypeVar("Code", bound=IntEnum)


def reply(enum: type[Code], raw: Sequence[Any]) -> tuple[Code, list[Any]]:
    """(code, details as str/int) of a script's answer."""
    try:
        code = enum(int(raw[0]))
    except (ValueError, IndexError, TypeError):
        raise RaterError(f"{enum.__name__}: unexpected script answer {raw!r}") from None
    details = [d.decode() if isinstance(d, bytes) else d for d in raw[1:]]
    return code, details


@dataclass(frozen=True)
class Subject:
    """What a script call was about, for the error message."""

    what: str  # "customer 'C1'", "card 812345678901", "batch 'B1'"
    reseller: Reseller | None = None
    amount: int = 0  # the change asked for, micro-units (coverage errors name it)


def raise_for(code: AdjustCode | CreateCardsCode, subject: Subject, detail: Any = 0) -> None:
    """Nothing for success; otherwise the error a person can act on."""
    if code in (AdjustCode.APPLIED, CreateCardsCode.DONE):
        return
    if code in (AdjustCode.NOT_FOUND, CreateCardsCode.NO_CUSTOMER):
        raise NotFound(f"{subject.what} does not exist")
    if code in (AdjustCode.NOT_COVERED, CreateCardsCode.NOT_COVERED):
        raise coverage_error(subject, int(detail))
    if code is AdjustCode.DISPOSABLE:
        raise DisposableCardError(f"{subject.what} is disposable: it is never topped up")
    if code is AdjustCode.EXHAUSTED:
        raise AccountError(f"{subject.what} is exhausted for good; issue a new card")
    if code is AdjustCode.OUT_OF_RANGE:
        raise AccountError(
            f"{subject.what}: the balance would leave +-{display(MAX_AMOUNT)}, the most rater "
            "keeps exact"
        )
    if code is CreateCardsCode.BATCH_TAKEN:
        raise AccountError(f"{subject.what} already exists")
    raise AccountError(f"{subject.what}: the script answered {code.name} {detail!r}")


def coverage_error(subject: Subject, shortfall: int) -> CoverageError:
    """docs/DESIGN.md section 1: issuing credit the reseller's credit cannot cover."""
    reseller = subject.reseller
    if reseller is None:
        return CoverageError(f"{subject.what}: not covered; shortfall {display(shortfall)}", 0)
    cur = reseller.currency
    return CoverageError(
        f"reseller {reseller.reseller_id!r}: its credit ({display(reseller.credit)} {cur}) "
        f"would not cover its customers' balances after this change of "
        f"{display(subject.amount)} {cur}; shortfall {display(shortfall)} {cur}",
        shortfall,
    )
