"""The tariff an account points at: refused in another currency or when its reseller may not
see it (rater/tariffs/store.py `may_see`), warned about when unknown."""

from __future__ import annotations

from rater.accounts.core import AccountStore
from rater.accounts.model import Reseller
from rater.errors import AccountError
from rater.logs import get_logger
from rater.tariffs.model import TariffTable
from rater.tariffs.store import OPERATOR, TariffStore, may_see

log = get_logger(__name__)


def check_tariff(store: AccountStore, name: str, currency: str) -> None:
    """A reseller's buy table: the operator's, in the reseller's currency. A tariff in another
    currency is refused; an unknown one only warned about (it may be imported later; CDRs rate
    as unrated until then)."""
    tariffs = _tariffs(store)
    table = _header(tariffs, name)
    if table is None:
        return
    _same_currency(table, currency)
    if tariffs.owner(name) != OPERATOR:
        raise AccountError(
            f"tariff {name!r} belongs to a reseller; a buy table is one of the operator's"
        )


def check_customer_tariff(store: AccountStore, name: str, reseller: Reseller) -> None:
    """A customer's sell table: one its reseller may see (its own tables and its buy table,
    docs/DESIGN.md section 1), in the reseller's currency; unknown ones only warned about."""
    tariffs = _tariffs(store)
    table = _header(tariffs, name)
    if table is None:
        return
    owner = tariffs.owner(name)
    if not may_see(name, owner, reseller_id=reseller.reseller_id, buy_tariff=reseller.buy_tariff):
        raise AccountError(
            f"tariff {name!r} is not one of reseller {reseller.reseller_id!r}'s tables: a "
            "customer gets one of its reseller's own tables or the reseller's buy table"
        )
    _same_currency(table, reseller.currency)


def _tariffs(store: AccountStore) -> TariffStore:
    return TariffStore(store.redis, store.settings, clickhouse=False)


def _header(tariffs: TariffStore, name: str) -> TariffTable | None:
    """The current version's header (name, currency, ...; no rows) of a tariff table, if any.

    Headers only: decoding a 29,000-row deck to read its currency cost about 0.15 s per
    account created (the load generator creates hundreds)."""
    if not name:
        raise AccountError("a tariff name is required")
    infos = tariffs.infos(name)
    if not infos:
        log.warning("tariff not found (yet)", tariff=name)
        return None
    return infos[-1].table


def _same_currency(table: TariffTable, currency: str) -> None:
    if table.currency != currency:
        raise AccountError(
            f"tariff {table.name!r} is in {table.currency}; accounts of this reseller are in "
            f"{currency}"
        )
