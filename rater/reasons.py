"""Why a CDR was not rated, or not stored: one closed set of kinds, each with a short detail.

A reason is structured: `kind` (a `Kind`, from the closed set below: counting, metric labels,
`rated_cdrs.reason_kind`) and `detail` (the record's own values, each quoted and capped at
`VALUE_CHARS` characters, so that a record of megabytes makes a reason of about a hundred).
Code never parses a reason back from its text; the text (`Reason.text`: the kind, then ': ' and
the detail) is for people: the `reason` column of rated_cdrs (docs/ANALYSTS.md) and the
`reason` header of a dead letter (docs/DESIGN.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: characters of one value a reason quotes; longer values are cut and their length named
VALUE_CHARS = 100


class Kind(StrEnum):
    """Every reason there is. The values are the readable names (and the metric labels)."""

    # -- invalid: the record goes to the dead-letter topic (docs/DESIGN.md section 4)
    BAD_JSON = "bad json"
    NOT_AN_OBJECT = "not an object"
    MISSING = "missing field"
    EMPTY = "empty field"
    WRONG_TYPE = "wrong type"
    NEGATIVE = "negative"
    OUT_OF_RANGE = "out of range"
    BILLSEC_ABOVE_MAX = "billsec above maximum"
    BAD_TIME = "bad time"
    END_BEFORE_START = "end before start"
    ANSWER_OUTSIDE_CALL = "answer outside call"
    FUTURE = "end in the future"
    BAD_AUTH_ID = "bad auth id"
    BAD_NUMBER = "bad number"
    DECODE_ERROR = "decode error"
    NORMALISE_ERROR = "normalise error"
    # -- unrated: the CDR is stored with price 0 and this reason; re-rating fixes it later
    NO_ACCOUNT = "no account"
    UNKNOWN_ACCOUNT = "unknown account"
    UNKNOWN_CARD = "unknown card"
    FOREIGN_CARD = "card of another customer"
    NO_SELL_TARIFF = "no sell tariff"
    NO_BUY_TARIFF = "no buy tariff"
    NO_SELL_MATCH = "no sell match"
    NO_BUY_MATCH = "no buy match"
    NO_ROUTE = "no route"  # a short number (1002, 112) that no tariff row is exactly
    PRICE_ABOVE_MAX = "price above maximum"
    AMOUNT_OUT_OF_RANGE = "amount out of range"
    LATE = "late"
    LOOKUP_ERROR = "lookup error"
    RATING_ERROR = "rating error"
    DEBIT_ERROR = "debit error"
    # -- re-rating leaves a CDR as it is (rater/billing/rerate.py)
    OTHER_RESELLER = "another reseller's account"
    NO_NUMBER = "no normalised number"
    RATED_COPY = "rated copy exists"
    # -- a metric label for anything outside a closed set
    OTHER = "other"


#: kinds that send a record to the dead-letter topic
INVALID_KINDS = frozenset(
    {
        Kind.BAD_JSON, Kind.NOT_AN_OBJECT, Kind.MISSING, Kind.EMPTY, Kind.WRONG_TYPE,
        Kind.NEGATIVE, Kind.OUT_OF_RANGE, Kind.BILLSEC_ABOVE_MAX, Kind.BAD_TIME,
        Kind.END_BEFORE_START, Kind.ANSWER_OUTSIDE_CALL, Kind.FUTURE, Kind.BAD_AUTH_ID,
        Kind.BAD_NUMBER, Kind.DECODE_ERROR, Kind.NORMALISE_ERROR,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reason:
    """A kind and the record's values that explain it (already capped)."""

    kind: Kind
    detail: str = ""

    @property
    def text(self) -> str:
        """'kind: detail', or the kind alone: what people read."""
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value

    def __str__(self) -> str:
        return self.text

    @classmethod
    def of_error(cls, kind: Kind, error: BaseException) -> Reason:
        """A reason for an unexpected exception: its class and its message, capped."""
        message = cap(str(error))
        name = type(error).__name__
        return cls(kind, f"{name}: {message}" if message else name)


def cap(text: str, limit: int = VALUE_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def quote(value: object, limit: int = VALUE_CHARS) -> str:
    """A record's value as a reason quotes it: repr() of its first `limit` characters, and its
    length when it was longer. Escapes (a NUL is 4 characters in repr) are cut at 2 x limit."""
    if not isinstance(value, str):
        return cap(repr(value), limit)
    shown = repr(value[:limit])
    if len(shown) > 2 * limit:
        shown = shown[: 2 * limit] + "..."
    return shown if len(value) <= limit else f"{shown}... ({len(value):,} characters)"
