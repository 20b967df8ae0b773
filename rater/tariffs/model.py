"""Tariff tables, versions and rows: the shared model of importers, storage, compiler and raters.

Money is integer micro-units (per minute for rates). Times are UTC-aware datetimes; a version's
`effective_from` of None means "from the beginning of time" (the first version of a table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from rater.errors import TariffError
from rater.money import DECIMALS_MAX, Rounding

_STEPS = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, order=True)
class Steps:
    """Billing steps X/Y: a minimum of X seconds, then increments of Y seconds."""

    minimum: int
    increment: int

    def __post_init__(self) -> None:
        if self.minimum < 0 or self.increment < 1:
            raise TariffError(f"billing steps {self} need X >= 0 and Y >= 1")

    @classmethod
    def parse(cls, text: str) -> Steps:
        """'60/60' -> Steps(60, 60); TariffError for anything else."""
        match = _STEPS.match(text)
        if not match:
            raise TariffError(f"billing steps {text!r} are not of the form X/Y (e.g. 60/60)")
        return cls(int(match[1]), int(match[2]))

    def billable(self, billsec: int) -> int:
        """0 for 0; X if billsec <= X; else X + ceil((billsec - X) / Y) * Y."""
        if billsec <= 0:
            return 0
        if billsec <= self.minimum:
            return self.minimum
        extra = billsec - self.minimum
        return self.minimum + -(-extra // self.increment) * self.increment

    def __str__(self) -> str:
        return f"{self.minimum}/{self.increment}"


@dataclass(frozen=True)
class TariffRow:
    """One prefix of a tariff version.

    `effective_from` None means the version's own time ("ASAP"); `effective_to` (exclusive) closes
    the code, after which its calls fall to a shorter prefix.
    """

    prefix: str  # E.164 digits, no '+'
    destination: str
    rate: int  # micro-units per minute
    connect_fee: int = 0  # micro-units per answered call
    steps: Steps | None = None  # None: the table's default steps
    first_rate: int | None = None  # micro-units per minute for the first step; None: rate
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    line: int = 0  # source line, for error messages


@dataclass(frozen=True)
class TariffTable:
    """One version of a named tariff table."""

    name: str
    currency: str = "EUR"
    decimals: int = 4
    rounding: Rounding = Rounding.UP
    steps: Steps = field(default_factory=lambda: Steps(1, 1))
    rows: tuple[TariffRow, ...] = ()
    version: int = 1
    effective_from: datetime | None = None  # None: the beginning of time
    created_at: datetime | None = None
    source: str = ""  # file name, or "derived from NAME vN (+40% markup)"

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= DECIMALS_MAX:
            raise TariffError(f"decimals must be 0..{DECIMALS_MAX}, not {self.decimals}")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise TariffError(f"currency must be an ISO 4217 code like EUR, not {self.currency!r}")

    @property
    def key(self) -> str:
        """'name@version', how CDR rows and caches refer to a version."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class SwitchSettings:
    """How one switch writes numbers and times (managed with `rater switch`)."""

    name: str = "default"
    country_code: str = ""  # default country for national numbers, e.g. "31"
    trunk_prefix: str = "0"  # national trunk prefix stripped before the country code
    #: regex of carrier tech prefixes to strip, e.g. r"^\d{5}#" for "78816#"
    tech_prefix: str = r"^\d{1,6}#"
    timezone: str = "UTC"  # for timestamps without an offset
    #: how its CDRs are written: rater, freeswitch-json, asterisk-csv, asterisk-json,
    #: kamailio-json or mapping (rater/pipeline/formats/, docs/SWITCHES.md)
    format: str = "rater"
    mapping: str = ""  # the TOML text of a `mapping` format's field mapping
    options: str = ""  # the format's options as a JSON object of strings ("" none)
