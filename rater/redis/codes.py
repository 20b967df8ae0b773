"""The codes the Lua scripts answer with, one IntEnum per script, and where a code becomes an
error (`raise_for` here for the debit side; rater/accounts/replies.py for the account scripts).

The Lua header (rater/redis/contract.py) defines every enum below as a Lua table of the same
names (`DEBIT.APPLIED`, `CORRECT.OUT_OF_RANGE`, `ADJUST.NOT_FOUND`, ...), so a script returns
a named constant, never a bare number.
"""

from __future__ import annotations

from enum import IntEnum

from rater.errors import DebitError, RaterError


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


# The account scripts' codes (rater/accounts/replies.py reads the answers and turns the
# refusals of adjust and create_cards into errors for a person).
class AdjustCode(IntEnum):
    """rater/redis/lua/adjust.lua"""

    APPLIED = 0  # detail: the new balance
    NOT_FOUND = 1
    NOT_COVERED = 2  # detail: the shortfall
    DISPOSABLE = 3  # a top-up of a disposable card
    EXHAUSTED = 4  # a top-up of an exhausted card
    ALREADY_APPLIED = 5  # this ledger entry id was applied before: nothing changed (detail:
    # the balance)
    OUT_OF_RANGE = 6  # the balance would leave +-MAX_AMOUNT: nothing changed


class CreateCardsCode(IntEnum):
    """rater/redis/lua/create_cards.lua"""

    DONE = 0  # 'fund' phase detail: the customer's balance
    NO_CUSTOMER = 1
    NOT_COVERED = 2  # detail: the shortfall
    NUMBER_TAKEN = 5  # detail: the card number another card has (redrawn by the caller)
    BATCH_TAKEN = 6


class PinCode(IntEnum):
    """rater/redis/lua/pin.lua"""

    RIGHT = 0  # detail: 1 when the HMAC was re-hashed with the current key
    WRONG = 1  # detail: wrong PINs since the last right one
    LOCKED = 2  # detail: locked until (epoch s)
    NO_CARD = 3
    BLOCKED = 4  # blocked after too many wrong PINs, until `rater card unblock`; detail: failures


class GuardCode(IntEnum):
    """rater/redis/lua/pin_guard.lua (wrong PINs per caller number)"""

    GO = 0  # detail: attempts counted in this round
    LOCKED = 2  # detail: locked until (epoch s)


class ReserveCode(IntEnum):
    """rater/redis/lua/reserve.lua (reserve, renew and release)"""

    DONE = 0  # reserve/renew detail: expires (epoch s); release: 1 when something was held
    SHORT = 1  # detail: level, what it has available
    REFUSED = 2  # detail: level, state (blocked, negative, expired, ...)
    TOO_MANY_CALLS = 3  # detail: level, calls already authorized
    GONE = 4  # renew: no such live reservation; detail: 'unknown' or 'expired'
    OVER_LIFETIME = 5  # renew: more seconds than the lifetime allows; detail: the most allowed
    CHANGED = 6  # renew: another renewal changed it meanwhile


#: every script's codes, as the Lua header names them
ENUMS: dict[str, type[IntEnum]] = {
    "DEBIT": DebitOutcome,
    "CORRECT": CorrectionOutcome,
    "ADJUST": AdjustCode,
    "CREATE_CARDS": CreateCardsCode,
    "PIN": PinCode,
    "PIN_GUARD": GuardCode,
    "RESERVE": ReserveCode,
}

#: codes that are errors: (error class, message template formatted with the caller's context).
#: The refusals of the account scripts need the reseller's figures in their message: they are
#: turned into errors by rater/accounts/replies.py raise_for.
_ERRORS: dict[tuple[type[IntEnum], int], tuple[type[RaterError], str]] = {
    (CorrectionOutcome, CorrectionOutcome.OUT_OF_RANGE): (
        DebitError,
        "correction {key}: it would take a balance beyond +-{limit} micro-units; nothing changed",
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
