"""Destinations and dialled numbers as switches really send them.

A destination is a prefix of the tariff in use; its popularity follows Zipf's law over a seeded
shuffle of the prefixes (a few destinations carry most of the traffic, as in real CDR streams).
Each destination has a small pool of subscriber numbers (people call the same numbers again),
which also keeps the number of distinct numbers the manifest must rate small.

The same E.164 number is written the way a given switch writes it: '+31612345678',
'0031612345678' (or '011...' on a North American switch), national with the switch's trunk
prefix ('0612345678' on a Dutch switch), sometimes behind a carrier tech prefix ('78816#...').
Numbers are built once per distinct (number, switch, format) code and cached, so a million CDRs
cost a few hundred thousand string operations at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from rater.loadgen.prefixes import number_length
from rater.tariffs.model import SwitchSettings

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: numbers in each destination's subscriber pool
POOL_SIZE = 16
#: length of numbers under an uncovered block (no tariff matches them)
_UNRATED_LENGTH = 11


class DialFormat(IntEnum):
    """How the callee is written."""

    PLUS = 0  # '+31612345678'
    INTERNATIONAL = 1  # '0031612345678' / '01131612345678'
    NATIONAL = 2  # '0612345678' (switch country only)


@dataclass(frozen=True)
class SwitchProfile:
    """A switch publishing CDRs: its numbering plan and how it writes times."""

    name: str
    country_code: str
    trunk_prefix: str = "0"
    international_prefix: str = "00"
    #: a carrier tech prefix this switch puts before some numbers ('78816#'); "" for none
    tech_prefix: str = ""
    #: start/answer/end times as "iso" (with offset), "epoch" seconds or "epoch_ms"
    time_format: str = "iso"
    #: the offset ISO times are written with (a switch in local time), minutes east of UTC
    utc_offset_minutes: int = 0
    #: share of this switch's calls to its own country (most traffic is domestic)
    home_share: float = 0.3

    def settings(self) -> SwitchSettings:
        """What `rater switch set` must hold for the pipeline to normalise this switch."""
        return SwitchSettings(
            name=self.name, country_code=self.country_code, trunk_prefix=self.trunk_prefix
        )


DEFAULT_SWITCHES: tuple[SwitchProfile, ...] = (
    SwitchProfile("sw-ams-1", "31", time_format="iso"),
    SwitchProfile("sw-fra-1", "49", tech_prefix="78816#", time_format="iso", utc_offset_minutes=60),
    SwitchProfile("sw-lon-1", "44", time_format="epoch"),
    SwitchProfile(
        "sw-nyc-1", "1", trunk_prefix="1", international_prefix="011", time_format="epoch_ms"
    ),
)


def zipf_probabilities(n: int, exponent: float, rng: np.random.Generator) -> F64:
    """Zipf weights 1/rank**s over a seeded random ranking of n items (sums to 1)."""
    if n == 0:
        return np.zeros(0)
    ranks = rng.permutation(n) + 1
    weights = 1.0 / np.power(ranks.astype(np.float64), exponent)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def uncovered_block(prefixes: Sequence[str]) -> str | None:
    """A 3-digit block no prefix covers or starts inside: numbers under it never match."""
    known = set(prefixes)
    starts = {p[:3] for p in prefixes if len(p) >= 3}
    # unassigned ITU codes first (28x, 99x), so the numbers look plausible but unroutable
    candidates = [f"{i}" for i in range(280, 290)] + [f"{i}" for i in range(990, 1000)]
    candidates += [f"{i}" for i in range(100, 1000)]
    for block in candidates:
        if block in starts or any(block[:k] in known for k in (1, 2, 3)):
            continue
        return block
    return None


@dataclass
class NumberBook:
    """Destination prefixes with popularity, and how to write their numbers.

    A number code is `dest * POOL_SIZE + subscriber`; dest == len(prefixes) is the uncovered
    block (numbers no tariff matches). A callee code adds how it was written:
    `((number_code * 3 + format) * 2 + tech) * len(switches) + switch`, with the format and
    tech flag as actually used (national only for domestic numbers, tech only on switches
    that have a tech prefix), so equal codes mean equal dialled strings. Everything is
    vectorised numpy string work: no per-call Python.
    """

    prefixes: tuple[str, ...]
    lengths: npt.NDArray[np.int16]
    popularity: F64
    seed: int
    unrated_block: str | None
    _home: dict[str, tuple[I64, F64]] = field(default_factory=dict)

    @classmethod
    def from_prefixes(
        cls, prefixes: Sequence[str], *, seed: int, zipf_exponent: float = 1.0
    ) -> NumberBook:
        unique = sorted(set(prefixes))
        if not unique:
            raise ValueError("no destination prefixes to draw from")
        lengths = np.array([number_length(p) for p in unique], dtype=np.int16)
        rng = np.random.default_rng([seed, 1])
        return cls(
            prefixes=tuple(unique),
            lengths=lengths,
            popularity=zipf_probabilities(len(unique), zipf_exponent, rng),
            seed=seed,
            unrated_block=uncovered_block(unique),
        )

    @property
    def unrated_dest(self) -> int:
        return len(self.prefixes)

    def home(self, country_code: str) -> tuple[I64, F64]:
        """Indices and popularity of the destinations inside one country."""
        if country_code not in self._home:
            idx = np.array(
                [i for i, p in enumerate(self.prefixes) if p.startswith(country_code)],
                dtype=np.int64,
            )
            weights = self.popularity[idx] if len(idx) else np.zeros(0)
            probs = weights / weights.sum() if len(idx) else weights
            self._home[country_code] = (idx, probs)
        return self._home[country_code]

    def draw(
        self,
        rng: np.random.Generator,
        switch_idx: I64,
        switches: Sequence[SwitchProfile],
        unrated_fraction: float,
    ) -> I64:
        """Number codes for calls from the given switches (home-country share per switch)."""
        n = len(switch_idx)
        dest = _sample(rng, self.popularity, n)
        for s, profile in enumerate(switches):
            idx, probs = self.home(profile.country_code)
            if not len(idx):
                continue
            mine = np.flatnonzero((switch_idx == s) & (rng.random(n) < profile.home_share))
            dest[mine] = idx[_sample(rng, probs, len(mine))]
        if unrated_fraction > 0 and self.unrated_block is not None:
            dest[rng.random(n) < unrated_fraction] = self.unrated_dest
        subscriber = rng.integers(0, POOL_SIZE, n)
        return dest * POOL_SIZE + subscriber

    def e164(self, number_codes: I64) -> npt.NDArray[np.str_]:
        """The E.164 digits (no '+') of each number code."""
        dest = number_codes // POOL_SIZE
        prefixes = np.array([*self.prefixes, self.unrated_block or "999"])
        lengths = np.append(self.lengths.astype(np.int64), _UNRATED_LENGTH)
        salt = np.uint64((self.seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            x = _mix64(number_codes.astype(np.uint64) + salt)
        y = _mix64(x ^ np.uint64(0xD1B54A32D192ED03))
        # subscriber digits: the first 2-9 (subscriber numbers do not start 0 or 1), then 14 more
        first = (x % np.uint64(8) + np.uint64(2)).astype(np.int64)
        rest = (y % np.uint64(10**14)).astype(np.int64)
        digits = (first * 10**14 + rest).astype(str)
        want = lengths[dest] - np.strings.str_len(prefixes[dest])
        out: npt.NDArray[np.str_] = np.strings.add(
            prefixes[dest], np.strings.slice(digits, 0, want)
        )
        return out

    def callees(
        self,
        number_codes: I64,
        switch_idx: I64,
        switches: Sequence[SwitchProfile],
        rng: np.random.Generator,
    ) -> tuple[npt.NDArray[np.str_], I64]:
        """Dialled strings for each call, and their callee codes."""
        n = len(number_codes)
        fmt = np.where(rng.random(n) < 0.3, DialFormat.PLUS, DialFormat.INTERNATIONAL).astype(
            np.int64
        )
        national = _national_ok(self.e164(number_codes), switch_idx, switches)
        fmt[national & (rng.random(n) < 0.75)] = DialFormat.NATIONAL  # domestic: mostly national
        has_tech = np.array([bool(s.tech_prefix) for s in switches])[switch_idx]
        tech = (has_tech & (rng.random(n) < 0.5)).astype(np.int64)
        codes = ((number_codes * 3 + fmt) * 2 + tech) * len(switches) + switch_idx
        return self.dialled(codes, switches), codes

    def dialled(self, codes: I64, switches: Sequence[SwitchProfile]) -> npt.NDArray[np.str_]:
        """The dialled string of each callee code."""
        switch = codes % len(switches)
        rest = codes // len(switches)
        tech, rest = rest % 2, rest // 2
        fmt, number_codes = rest % 3, rest // 3
        e164 = self.e164(number_codes)
        cc_len = np.array([len(s.country_code) for s in switches])[switch]
        trunk = np.array([s.trunk_prefix for s in switches])[switch]
        intl = np.array([s.international_prefix for s in switches])[switch]
        techp = np.array([s.tech_prefix for s in switches])[switch]
        text = np.where(
            fmt == DialFormat.PLUS,
            np.strings.add("+", e164),
            np.where(
                fmt == DialFormat.NATIONAL,
                np.strings.add(trunk, np.strings.slice(e164, cc_len, None)),
                np.strings.add(intl, e164),
            ),
        )
        text = np.where(tech == 1, np.strings.add(techp, text), text)
        out: npt.NDArray[np.str_] = text
        return out

    def intended(self, codes: I64, switches: Sequence[SwitchProfile]) -> npt.NDArray[np.str_]:
        """The E.164 number each callee code stands for (what normalisation must give back)."""
        return self.e164(codes // len(switches) // 2 // 3)


def _national_ok(
    e164: npt.NDArray[np.str_], switch: I64, switches: Sequence[SwitchProfile]
) -> npt.NDArray[np.bool_]:
    """Where a number may be written nationally on its switch: domestic, not starting 0 after
    the country code, and not reading like an international number once the trunk prefix is
    put in front ('0' + '0...' would be '00...')."""
    ok = np.zeros(len(e164), dtype=bool)
    for s, profile in enumerate(switches):
        mine = np.flatnonzero(switch == s)
        if not len(mine):
            continue
        numbers = e164[mine]
        cc = profile.country_code
        national = np.strings.slice(numbers, len(cc), None)
        written = np.strings.add(profile.trunk_prefix, national)
        good = np.strings.startswith(numbers, cc) & (np.strings.str_len(national) > 0)
        good &= ~np.strings.startswith(national, "0")
        for intl in {"00", "011", profile.international_prefix}:
            good &= ~np.strings.startswith(written, intl)
        ok[mine] = good
    return ok


def _sample(rng: np.random.Generator, probabilities: F64, n: int) -> I64:
    """n draws from a discrete distribution (inverse CDF; much faster than rng.choice(p=))."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cdf = np.cumsum(probabilities)
    cdf /= cdf[-1]
    picks = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(picks, len(probabilities) - 1).astype(np.int64)


def _mix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser (wrapping uint64 arithmetic): a well-spread hash of each value."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)
