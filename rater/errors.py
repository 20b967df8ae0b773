"""Every exception rater raises on purpose derives from RaterError.

Each carries a message meant for a person (which record, which field, why); the CLI prints it
and exits non-zero without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class RaterError(Exception):
    """Root of rater's own errors."""

    #: a retry loop may try again (a service that is restarting, a rebalance)
    retriable: bool = False


class ConfigError(RaterError):
    """A setting or option has a value that cannot work."""


class StackError(RaterError):
    """A local service could not be started, stopped or reached."""


class ServiceUnavailable(StackError):
    """Kafka, Redis or ClickHouse did not answer."""

    retriable = True


class MigrationError(RaterError):
    """A ClickHouse migration failed."""


class MoneyError(RaterError):
    """An amount that cannot be represented exactly (too many decimals, not a number)."""


@dataclass(frozen=True)
class TariffProblem:
    """One bad cell or row in a tariff file."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


class TariffError(RaterError):
    """A tariff table, version or row is wrong, or was not found."""


class TariffImportError(TariffError):
    """A tariff file has bad rows; nothing of it was imported."""

    def __init__(self, source: str, problems: list[TariffProblem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} error(s), nothing imported\n{shown}{more}")


class NormalisationError(RaterError):
    """A dialled number that cannot be turned into E.164 digits."""


class CdrError(RaterError):
    """A CDR that is invalid (it goes to the dead-letter topic with this reason)."""


class AccountError(RaterError):
    """An account operation was refused or named something that does not exist."""


class NotFound(AccountError):
    """A reseller, customer, card or tariff that does not exist."""


class CoverageError(AccountError):
    """Issuing customer credit would leave the reseller's credit short."""

    def __init__(self, message: str, shortfall_micro: int) -> None:
        self.shortfall_micro = shortfall_micro
        super().__init__(message)


class DisposableCardError(AccountError):
    """A disposable card cannot be topped up."""


class AuthorizationError(AccountError):
    """A switch's authorization request is malformed (a refusal is a result, not an error)."""


class KeyNameError(RaterError):
    """A Redis key cannot be built from these values (docs/REDIS_KEYS.md)."""


class DebitError(RaterError):
    """A debit batch is malformed (mismatched array lengths, offsets not ascending, ...)."""


class CardSheetError(RaterError):
    """A calling-card spreadsheet cannot be written (target exists) or read back (bad cell)."""


class RerateError(RaterError):
    """A re-rate cannot run (another run holds the lock, a tariff or version is missing)."""
