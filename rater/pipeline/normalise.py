"""The normalise stage: dialled numbers to E.164 per switch (docs/DESIGN.md section 2).

CDRs are grouped by switch with Python string comparison: numpy compares object arrays with a
str by turning the str into a fixed-width string, which drops trailing NULs, so a switch named
'sw\\0' would be taken for 'sw'. A CDR whose number cannot be normalised, or that makes the
normaliser raise, leaves the batch as a reject (dead letter) carrying its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt

from rater import metrics
from rater.errors import NormalisationError
from rater.pipeline.decode import CdrBatch, KafkaRecord, Reject, TimezoneOf, zone
from rater.pipeline.isolate import is_infrastructure
from rater.reasons import Kind, Reason
from rater.redis import keys
from rater.switches.numbers import normalise_many, normalise_number
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings


class SwitchCache:
    """Switch settings looked up once per batch and name."""

    def __init__(self, registry: SwitchRegistry) -> None:
        self.registry = registry
        self.known: dict[str, SwitchSettings] = {}

    def __call__(self, name: str) -> SwitchSettings:
        found = self.known.get(name)
        if found is None:
            found = self.known[name] = self.registry.get(name)
        return found

    def timezone_of(self) -> TimezoneOf:
        """tz_of for decode(): the switch's time zone for times without an offset."""

        def tz_of(name: str) -> tzinfo:
            return zone(self(name).timezone)

        return tz_of


class SwitchNames:
    """The names the switch registry knows (metric labels), re-read when they change."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._generation: object = None
        self._names: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        generation = self.redis.get(keys.SWITCHES_GENERATION)
        if generation != self._generation or generation is None:
            raw = self.redis.smembers(keys.SWITCHES)
            self._names = frozenset(n.decode() if isinstance(n, bytes) else n for n in raw)
            self._generation = generation
        return self._names

    def labels(self, switches: Sequence[str]) -> dict[str, str]:
        """Each name as sent -> its metric label."""
        known = self.current()
        return {name: metrics.switch_label(name, known) for name in set(switches)}


@dataclass(frozen=True)
class Numbers:
    """Normalised numbers of a batch: E.164 digits as int64 and their count (0: none)."""

    value: npt.NDArray[np.int64]
    length: npt.NDArray[np.int8]

    def take(self, index: npt.NDArray[Any]) -> Numbers:
        return Numbers(self.value[index], self.length[index])


def normalise(
    records: Sequence[KafkaRecord], cdrs: CdrBatch, switch_of: SwitchCache
) -> tuple[CdrBatch, Numbers, list[Reject]]:
    """The CDRs whose number normalises, their numbers, and rejects for the others."""
    n = len(cdrs)
    value = np.zeros(n, dtype=np.int64)
    length = np.zeros(n, dtype=np.int8)
    bad: dict[int, tuple[Reason, str]] = {}  # row -> (reason, exception class)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(cdrs.switch.tolist()):
        groups.setdefault(name, []).append(i)
    for name, rows in groups.items():
        callees = cdrs.callee[rows].tolist()
        try:
            digits, lengths, reasons = normalise_many(callees, switch_of(name))
        except Exception as error:
            if is_infrastructure(error):
                raise
            _one_by_one(name, rows, callees, switch_of, value, length, bad)
            continue
        value[rows] = digits
        length[rows] = lengths
        for i, why in zip(rows, reasons, strict=True):
            if why is not None:
                bad[i] = (Reason(Kind.BAD_NUMBER, f"callee: {why}"), "")
    if not bad:
        return cdrs, Numbers(value, length), []
    rejects = [
        Reject(records[int(cdrs.index[i])], reason, error, str(cdrs.switch[i]))
        for i, (reason, error) in sorted(bad.items())
    ]
    keep = np.ones(n, dtype=bool)
    keep[list(bad)] = False
    return cdrs.take(keep), Numbers(value[keep], length[keep]), rejects


def _one_by_one(  # noqa: PLR0917 - the stage's arrays
    name: str,
    rows: list[int],
    callees: list[str],
    switch_of: SwitchCache,
    value: npt.NDArray[np.int64],
    length: npt.NDArray[np.int8],
    bad: dict[int, tuple[Reason, str]],
) -> None:
    """After the batch path raised: each number alone, so only the ones that raise fail."""
    try:
        settings = switch_of(name)
    except Exception as error:
        if is_infrastructure(error):
            raise
        for i in rows:
            bad[i] = (Reason.of_error(Kind.NORMALISE_ERROR, error), type(error).__name__)
        return
    for i, callee in zip(rows, callees, strict=True):
        try:
            digits = normalise_number(callee, settings)
        except NormalisationError as error:
            bad[i] = (Reason(Kind.BAD_NUMBER, f"callee: {error}"), "")
        except Exception as error:
            if is_infrastructure(error):
                raise
            bad[i] = (Reason.of_error(Kind.NORMALISE_ERROR, error), type(error).__name__)
        else:
            value[i] = int(digits)
            length[i] = len(digits)
