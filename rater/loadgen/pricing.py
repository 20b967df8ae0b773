"""Expected prices and costs of generated calls, from the reference rater (never the kernel).

`rater.reference` is the definition of a right price, and deliberately plain: Decimal
arithmetic and dataclass rows, a few thousand CDRs a second at best (about 300/s for sell and
buy on the 29,000-row deck, measured in bench_loadgen). A million CDRs are not rated one by
one that way: the answers are memoised on what they provably depend on, and every answer
still comes from the reference's own functions:

1. The dialled string is normalised once per distinct (switch, string), with the pipeline's
   `rater.switches.numbers.normalise_number`.
2. Which version and row a number gets depends on the start time only through which of the
   table's dates (version effective_from, row effective_from / effective_to) are <= it: times
   between two consecutive dates ("a bucket") all give the same answer.
3. The matched row depends on the number only through the table's prefixes that start it, so
   `reference.match` is called once per (table, bucket, longest such prefix).
4. The price depends on billsec only through the billable seconds (`reference.billable_seconds`),
   and on the version and row only through their rounding, steps, rate, first-step rate and
   connect fee, so `reference.price_micro` is called once per distinct set of those.

So the manifest of a million CDRs costs a few tens of thousands of reference calls, not a
million, and each answer equals what `reference.rate` returns for that CDR.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from rater import reference
from rater.errors import NormalisationError
from rater.loadgen.generate import Calls, Chunk
from rater.loadgen.numbers import NumberBook
from rater.loadgen.population import Scenario
from rater.switches.numbers import normalise_number
from rater.tariffs.model import SwitchSettings, TariffRow, TariffTable

I64 = npt.NDArray[np.int64]
Normaliser = Callable[[str, SwitchSettings], str]

RATED = 0
UNANSWERED = 1
UNRATED = 2  # answered, but no sell or no buy match
BAD_NUMBER = 3  # the callee cannot be normalised: the pipeline dead-letters it

_NO_ROW = -1
#: callee codes fit in 40 bits (NumberBook: number code * 6 * switches)
_CODE_BITS = 40
_CODE_MASK = (1 << _CODE_BITS) - 1


@dataclass(frozen=True)
class Priced:
    """Per call: status (RATED, UNANSWERED, UNRATED, BAD_NUMBER), sell price and buy cost."""

    status: npt.NDArray[np.int8]
    price: I64
    cost: I64


class _Tariff:
    """One tariff name: its versions, their dates and prefixes, and lazy per-version indexes."""

    def __init__(self, name: str, versions: Sequence[TariffTable]) -> None:
        if not versions:
            raise ValueError(f"tariff {name!r} has no versions")
        self.name = name
        self.versions = list(versions)
        dates: set[float] = set()
        self.prefixes: set[str] = set()
        for table in self.versions:
            if table.effective_from is not None:
                dates.add(table.effective_from.timestamp())
            for row in table.rows:
                self.prefixes.add(row.prefix)
                for when in (row.effective_from, row.effective_to):
                    if when is not None:
                        dates.add(when.timestamp())
        self.bounds = np.array(sorted(dates), dtype=np.float64)

    def bucket(self, start: I64) -> I64:
        """Index of the interval between this tariff's dates that each start time falls in."""
        return np.searchsorted(self.bounds, start.astype(np.float64), side="right").astype(np.int64)

    def longest_prefix(self, number: str) -> str | None:
        for size in range(len(number), 0, -1):
            if number[:size] in self.prefixes:
                return number[:size]
        return None


class ReferencePricer:
    """Prices chunks of generated calls; keeps its memos for the whole run."""

    def __init__(
        self,
        scenario: Scenario,
        tariffs: Mapping[str, Sequence[TariffTable]],
        normalise: Normaliser | None = None,
        book: NumberBook | None = None,
    ) -> None:
        """`book`: rebuild dialled strings from callee codes (then calls need no `callee`)."""
        self.normalise = normalise_number if normalise is None else normalise
        self.book = book
        self.scenario = scenario
        missing = [n for n in scenario.tariff_names() if n not in tariffs]
        if missing:
            raise ValueError(f"no versions loaded for tariff(s) {', '.join(missing)}")
        self.tariffs = [_Tariff(name, tariffs[name]) for name in scenario.tariff_names()]
        tid = {t.name: i for i, t in enumerate(self.tariffs)}
        buy = {r.reseller_id: r.buy_tariff for r in scenario.resellers}
        self.sell_of = np.array([tid[c.tariff] for c in scenario.customers], dtype=np.int64)
        self.buy_of = np.array(
            [tid[buy[c.reseller_id]] for c in scenario.customers], dtype=np.int64
        )
        self.switch_settings = [p.settings() for p in scenario.switches]
        self._numbers: dict[int, str | None] = {}
        self._matches: dict[tuple[int, int, str], int] = {}
        self._rows: list[tuple[TariffTable, TariffRow]] = []
        self._row_ids: dict[tuple[int, int], int] = {}
        self._row_of_key: dict[int, int] = {}
        self._price_of_key: dict[int, int] = {}
        self._prices: dict[tuple[int, int, int, int, tuple[int, int, int | None], int], int] = {}
        self.reference_calls = 0

    # ------------------------------------------------------------------ public
    def price(self, calls: Calls) -> Priced:
        n = len(calls)
        status = np.full(n, UNANSWERED, dtype=np.int8)
        price = np.zeros(n, dtype=np.int64)
        cost = np.zeros(n, dtype=np.int64)
        ok = self._normalised(calls)
        status[~ok] = BAD_NUMBER
        answered = np.flatnonzero(ok & (calls.billsec > 0))
        if not len(answered):
            return Priced(status, price, cost)
        customer = calls.customer[answered].astype(np.int64)
        sub = calls.billsec[answered]
        sell_row = self._rows_for(self.sell_of[customer], calls, answered)
        buy_row = self._rows_for(self.buy_of[customer], calls, answered)
        matched = (sell_row != _NO_ROW) & (buy_row != _NO_ROW)
        status[answered] = np.where(matched, RATED, UNRATED)
        good = np.flatnonzero(matched)
        price[answered[good]] = self._prices_for(sell_row[good], sub[good])
        cost[answered[good]] = self._prices_for(buy_row[good], sub[good])
        return Priced(status, price, cost)

    # ------------------------------------------------------------------ steps
    def _normalised(self, calls: Calls) -> npt.NDArray[np.bool_]:
        """True where the callee normalises; fills the code -> number memo."""
        unique, first, inverse = np.unique(
            calls.callee_code, return_index=True, return_inverse=True
        )
        memo = self._numbers
        missing = object()
        known = [memo.get(code, missing) for code in unique.tolist()]
        todo = [i for i, number in enumerate(known) if number is missing]
        if self.book is not None:
            dialled = self.book.dialled(unique[todo], self.scenario.switches).tolist()
        else:
            dialled = [str(calls.callee[first[i]]) for i in todo]
        for i, raw in zip(todo, dialled, strict=True):
            code, at = int(unique[i]), int(first[i])
            switch = self.switch_settings[int(calls.switch[at])]
            try:
                memo[code] = self.normalise(raw, switch)
            except NormalisationError:
                memo[code] = None
            known[i] = memo[code]
        good = np.array([number is not None for number in known], dtype=bool)
        return good[inverse]

    def _rows_for(self, tariff_ids: I64, calls: Calls, which: I64) -> I64:
        """The matched row id (or _NO_ROW) of each call, for the given tariff per call."""
        buckets = np.zeros(len(which), dtype=np.int64)
        starts = calls.start[which]
        for t in np.unique(tariff_ids).tolist():
            mine = tariff_ids == t
            buckets[mine] = self.tariffs[t].bucket(starts[mine])
        codes = calls.callee_code[which]
        # one int64 key per (tariff, bucket, callee code): np.unique on it is ~10x faster than
        # on rows of a 2-D array
        key = ((tariff_ids << 12) | buckets) << _CODE_BITS | codes
        unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        rows = np.empty(len(unique), dtype=np.int64)
        memo = self._row_of_key
        for i, (k, at) in enumerate(zip(unique.tolist(), first.tolist(), strict=True)):
            found = memo.get(k)
            if found is None:
                t, bucket, code = k >> (_CODE_BITS + 12), (k >> _CODE_BITS) & 0xFFF, k & _CODE_MASK
                number = self._numbers[code]
                assert number is not None
                found = self._match(t, bucket, number, int(starts[at]))
                memo[k] = found
            rows[i] = found
        return rows[inverse]

    def _match(self, t: int, bucket: int, number: str, start: int) -> int:
        tariff = self.tariffs[t]
        longest = tariff.longest_prefix(number)
        if longest is None:
            return _NO_ROW
        memo = (t, bucket, longest)
        found = self._matches.get(memo)
        if found is None:
            at = datetime.fromtimestamp(start, UTC)
            table = reference.version_at(tariff.versions, at)
            row = None
            if table is not None:
                self.reference_calls += 1
                row = reference.match(table, number, at)
            found = _NO_ROW if row is None or table is None else self._row_id(table, row)
            self._matches[memo] = found
        return found

    def _row_id(self, table: TariffTable, row: TariffRow) -> int:
        key = (id(table), id(row))
        found = self._row_ids.get(key)
        if found is None:
            found = len(self._rows)
            self._rows.append((table, row))
            self._row_ids[key] = found
        return found

    def _prices_for(self, rows: I64, billsec: I64) -> I64:
        key = (rows << 32) | billsec
        unique, inverse = np.unique(key, return_inverse=True)
        out = np.empty(len(unique), dtype=np.int64)
        memo = self._price_of_key
        for i, k in enumerate(unique.tolist()):
            found = memo.get(k)
            if found is None:
                found = self._price(k >> 32, k & 0xFFFFFFFF)
                memo[k] = found
            out[i] = found
        return out[inverse]

    def _price(self, row_id: int, seconds: int) -> int:
        table, row = self._rows[row_id]
        steps = row.steps or table.steps
        billable = reference.billable_seconds(steps, seconds)
        # everything reference.price reads of the table and the row, and the billable seconds:
        # rows of equal rates (a deck's rate tiers) share their prices
        rates = (row.rate, row.connect_fee, row.first_rate)
        memo = (
            table.decimals,
            table.rounding.code,
            steps.minimum,
            steps.increment,
            rates,
            billable,
        )
        found = self._prices.get(memo)
        if found is None:
            self.reference_calls += 1
            found = reference.price_micro(table, row, seconds)
            self._prices[memo] = found
        return found


# ---------------------------------------------------------------------------- in the background

_worker: ReferencePricer | None = None


def _start_worker(
    scenario: Scenario, tariffs: dict[str, list[TariffTable]], book: NumberBook
) -> None:
    global _worker  # noqa: PLW0603 - one pricer per worker process, kept between chunks
    _worker = ReferencePricer(scenario, tariffs, book=book)


def _price_in_worker(calls: Calls) -> tuple[Priced, int]:
    assert _worker is not None
    return _worker.price(calls), _worker.reference_calls


class BackgroundPricer:
    """Prices chunks in a second process while this one generates and publishes (2 cores: the
    manifest of a million CDRs costs no wall time beyond the publishing). Results come back in
    submission order. `inline=True` prices in this process instead, when asked for them."""

    def __init__(
        self,
        scenario: Scenario,
        tariffs: Mapping[str, Sequence[TariffTable]],
        book: NumberBook,
        *,
        inline: bool = False,
    ) -> None:
        self._pending: list[tuple[Chunk, Future[tuple[Priced, int]] | None]] = []
        self.reference_calls = 0
        self.seconds = 0.0
        plain = {name: list(versions) for name, versions in tariffs.items()}
        self._inline = ReferencePricer(scenario, plain, book=book) if inline else None
        self._pool: ProcessPoolExecutor | None = None
        if not inline:
            # spawn, not fork: the parent runs an event loop and the producer's threads
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(scenario, plain, book),
            )

    def submit(self, chunk: Chunk) -> None:
        """Queue a published chunk (its keys and values are dropped: only calls are kept)."""
        chunk.keys, chunk.values = [], []
        calls = dataclasses.replace(chunk.calls, callee=np.empty(0, dtype=str))
        chunk.calls = calls
        future = self._pool.submit(_price_in_worker, calls) if self._pool is not None else None
        self._pending.append((chunk, future))

    def results(self) -> list[tuple[Chunk, Priced]]:
        """Every chunk submitted so far with its prices, in order; waits for the worker."""
        started = time.perf_counter()
        out: list[tuple[Chunk, Priced]] = []
        for chunk, future in self._pending:
            if future is None:
                assert self._inline is not None
                priced = self._inline.price(chunk.calls)
                self.reference_calls = self._inline.reference_calls
            else:
                priced, self.reference_calls = future.result()
            out.append((chunk, priced))
        self._pending.clear()
        self.seconds += time.perf_counter() - started
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> BackgroundPricer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
