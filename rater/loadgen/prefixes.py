"""A realistic wholesale tariff built from the `phonenumbers` package's prefix data.

One row per country calling code (fixed line, "Netherlands") and one per mobile carrier
prefix ("Netherlands Mobile - KPN"), about 29,000 rows, the shape of a real A-Z wholesale deck.
Rates are drawn once from a seeded generator: fixed lines around EUR 0.02/min, mobiles in three
tiers (1.5, 2.2 or 3.5x their country's fixed rate), a few destinations with a connect fee or
60/1 billing, as real decks have. Also gives each prefix the length of a real number there,
so generated numbers look like the country's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import phonenumbers
from phonenumbers.carrierdata import CARRIER_DATA
from phonenumbers.geocoder import _region_display_name

from rater.tariffs.model import Steps, TariffRow, TariffTable

#: E.164 numbers have at most 15 digits
E164_MAX = 15
#: digits a generated number has after its prefix, at least (so a pool of numbers fits)
_MIN_SUBSCRIBER_DIGITS = 3
_DEFAULT_LENGTH = 11
#: mobile rates as multiples of the country's fixed-line rate
_MOBILE_TIERS = (1.5, 2.2, 3.5)


@dataclass(frozen=True)
class PrefixInfo:
    """One destination prefix of the generated deck."""

    prefix: str
    destination: str
    country_code: str
    mobile: bool


@lru_cache(maxsize=1)
def phonenumbers_prefixes() -> tuple[PrefixInfo, ...]:
    """Country codes plus mobile carrier prefixes from phonenumbers, sorted by prefix."""
    found: dict[str, PrefixInfo] = {}
    for number, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        region = regions[0]
        if region in (phonenumbers.UNKNOWN_REGION, "001"):
            name = f"International +{number}"
        else:
            name = _region_display_name(region, "en") or region
        found[str(number)] = PrefixInfo(str(number), name, str(number), mobile=False)
    for prefix, names in CARRIER_DATA.items():
        code = _country_code_of(prefix)
        if code is None or prefix in found:
            continue
        carrier = names.get("en", "").strip() or "Mobile"
        country = found[code].destination
        found[prefix] = PrefixInfo(prefix, f"{country} Mobile - {carrier}", code, mobile=True)
    return tuple(found[p] for p in sorted(found))


def _country_code_of(prefix: str) -> str | None:
    for size in (1, 2, 3):
        if int(prefix[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return prefix[:size]
    return None


@lru_cache(maxsize=512)
def _national_length(country_code: str, mobile: bool) -> int:
    """Digits of a national significant number in that country (from an example number)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country_code), ())
    kind = (
        phonenumbers.PhoneNumberType.MOBILE if mobile else phonenumbers.PhoneNumberType.FIXED_LINE
    )
    for region in regions:
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            example = phonenumbers.example_number_for_type(
                region, phonenumbers.PhoneNumberType.FIXED_LINE
            )
        if example is not None:
            return len(str(example.national_number))
    return _DEFAULT_LENGTH - len(country_code)


def number_length(prefix: str, country_code: str | None = None, mobile: bool = False) -> int:
    """The E.164 length (digits, no '+') of a realistic number starting with `prefix`."""
    code = country_code or _country_code_of(prefix)
    mobile = mobile or any(prefix[:size] in CARRIER_DATA for size in range(len(prefix), 0, -1))
    length = _DEFAULT_LENGTH if code is None else len(code) + _national_length(code, mobile)
    return min(E164_MAX, max(length, len(prefix) + _MIN_SUBSCRIBER_DIGITS))


def wholesale_table(
    name: str,
    *,
    seed: int = 7,
    currency: str = "EUR",
    limit: int | None = None,
) -> TariffTable:
    """A buy (wholesale) deck: every country code and mobile prefix, seeded rates.

    `limit` keeps the country codes and the first mobile prefixes up to that many rows (tests
    use a few hundred rows: the reference rater scans every row on each call).
    """
    infos = list(phonenumbers_prefixes())
    if limit is not None:
        countries = [i for i in infos if not i.mobile]
        mobiles = [i for i in infos if i.mobile][: max(0, limit - len(countries))]
        infos = sorted(countries + mobiles, key=lambda i: i.prefix)[: max(limit, 1)]
    rng = np.random.default_rng(seed)
    # per country: a fixed rate in micro-units per minute, 4 decimals (a multiple of 100 micro)
    fixed_rate: dict[str, int] = {}
    for info in infos:
        if info.country_code not in fixed_rate:
            euros = float(np.clip(rng.lognormal(np.log(0.02), 0.9), 0.002, 1.5))
            fixed_rate[info.country_code] = max(100, int(euros * 10_000) * 100)
    rows = []
    for line, info in enumerate(infos, start=2):
        rate = fixed_rate[info.country_code]
        if info.mobile:
            # decks price mobile networks in a few tiers per country, not one rate per carrier
            tier = float(rng.choice(_MOBILE_TIERS))
            rate = int(rate * tier // 100) * 100
        connect_fee = 10_000 if rng.random() < 0.05 else 0  # EUR 0.01 on some routes
        steps = Steps(60, 1) if rng.random() < 0.05 else None
        rows.append(
            TariffRow(
                prefix=info.prefix,
                destination=info.destination,
                rate=rate,
                connect_fee=connect_fee,
                steps=steps,
                line=line,
            )
        )
    return TariffTable(
        name=name,
        currency=currency,
        decimals=4,
        steps=Steps(1, 1),
        rows=tuple(rows),
        source=f"rater.loadgen: phonenumbers {phonenumbers.__version__} prefixes, seed {seed}",
    )
