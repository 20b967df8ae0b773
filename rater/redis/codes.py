"""The codes the Lua scripts answer with, one IntEnum per script, and the one place that turns a
code into an error (`raise_for`).

The Lua header (rater/redis/contract.py) defines every enum below as a Lua table of the same
names (`DEBIT.APPLIED`, `CORRECT.OUT_OF_RANGE`, `ADJUST.NOT_FOUND`, ...), so a script returns
a named constant, never a bare number.
"""

from __future__ import annotations

from enum import IntEnum

from rater.errors import (
    AccountError,
    DebitError,
    DisposableCardError,
    NotFound,
    RaterError,
)


class DebitOutcome(IntEnum):
    """Per CDR, from debit.lua (rater/pipeline/debit.py describes each)."""

    APPLIED = 0
    DUPLICATE = 1
    UNKNOWN_ACCOUNT = 2
    REPLAY_EXPIRED = 3
    CONFLICT = 4
    OUT_OF_RANGE = 5


#: the outcomes a de-duplication record keeps (what a replay of the same message reads back)
RECORDED = (DebitOutcome.APPLIED, DebitOutcome.UNKNOWN_ACCOUNT, DebitOutcome.OUT_OF_RANGE)
#: the outcome byte of a cross-reseller claim (Redis Cluster), never a CDR's outcome
CLAIMED = 255


class CorrectionOutcome(IntEnum):
    """Per correction item, from correct.lua."""

    ALREADY_APPLIED = 0
    APPLIED = 1
    OUT_OF_RANGE = 2  # would take a balance beyond +-MAX_AMOUNT: nothing changed


# The account scripts (adjust, create_cards, pin, reserve) answer these today; rater/accounts/
# reads them through the same names.
class AdjustCode(IntEnum):
    OK = 0
    NOT_FOUND = 1
    COVERAGE = 2  # detail: the shortfall (micro-units)
    DISPOSABLE = 3
    EXHAUSTED = 4


class CreateCardsCode(IntEnum):
    OK = 0
    NOT_FOUND = 1
    COVERAGE = 2  # detail: the shortfall (micro-units)
    NUMBER_TAKEN = 5  # detail: the number
    BATCH_TAKEN = 6


class PinCode(IntEnum):
    RIGHT = 0
    WRONG = 1  # detail: failures so far
    LOCKED = 2  # detail: locked until (epoch s)
    NO_CARD = 3


class ReserveCode(IntEnum):
    RESERVED = 0
    NOT_ENOUGH = 1  # detail: level, available
    REFUSED = 2  # detail: level, state


#: every script's codes, as the Lua header names them
ENUMS: dict[str, type[IntEnum]] = {
    "DEBIT": DebitOutcome,
    "CORRECT": CorrectionOutcome,
    "ADJUST": AdjustCode,
    "CREATE_CARDS": CreateCardsCode,
    "PIN": PinCode,
    "RESERVE": ReserveCode,
}

#: codes that are errors: (error class, message template formatted with the caller's context)
_ERRORS: dict[tuple[type[IntEnum], int], tuple[type[RaterError], str]] = {
    (CorrectionOutcome, CorrectionOutcome.OUT_OF_RANGE): (
        DebitError,
        "correction {key}: it would take a balance beyond +-{limit} micro-units; nothing changed",
    ),
    (AdjustCode, AdjustCode.NOT_FOUND): (NotFound, "{level} {account!r} does not exist"),
    (AdjustCode, AdjustCode.DISPOSABLE): (
        DisposableCardError,
        "card {account} is disposable: it is never topped up",
    ),
    (AdjustCode, AdjustCode.EXHAUSTED): (
        AccountError,
        "card {account} is exhausted for good; issue a new card",
    ),
    (CreateCardsCode, CreateCardsCode.NOT_FOUND): (
        NotFound,
        "customer {customer!r} does not exist",
    ),
    (CreateCardsCode, CreateCardsCode.BATCH_TAKEN): (
        AccountError,
        "batch {batch!r} already exists",
    ),
}


def error_for(code: IntEnum, **context: object) -> RaterError | None:
    """The error a script's code stands for (None when the code is not an error)."""
    found = _ERRORS.get((type(code), int(code)))
    if found is None:
        return None
    kind, template = found
    return kind(template.format(**context))


def raise_for(code: IntEnum, **context: object) -> None:
    """Raise the error a script's code stands for; nothing for a code that is not an error."""
    error = error_for(code, **context)
    if error is not None:
        raise error
