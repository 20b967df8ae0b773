"""The tariff an account points at: refused in another currency, warned about when unknown."""

from __future__ import annotations

from rater.accounts.core import AccountStore
from rater.errors import AccountError
from rater.logs import get_logger
from rater.tariffs.model import TariffTable
from rater.tariffs.store import TariffStore

log = get_logger(__name__)


def check_tariff(store: AccountStore, name: str, currency: str) -> None:
    """A tariff in another currency is refused; an unknown one only warned about (it may be
    imported later; CDRs rate as unrated until then)."""
    if not name:
        raise AccountError("a tariff name is required")
    table = tariff_header(store, name)
    if table is None:
        log.warning("tariff not found (yet)", tariff=name)
        return
    if table.currency != currency:
        raise AccountError(
            f"tariff {name!r} is in {table.currency}; accounts of this reseller are in {currency}"
        )


def tariff_header(store: AccountStore, name: str) -> TariffTable | None:
    """The current version's header (name, currency, ...; no rows) of a tariff table, if any.

    Headers only: decoding a 29,000-row deck to read its currency cost about 0.15 s per
    account created (the load generator creates hundreds)."""
    infos = TariffStore(store.redis, store.settings, clickhouse=False).infos(name)
    return infos[-1].table if infos else None
