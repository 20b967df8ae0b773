"""Columnar generation of CDR messages (docs/DESIGN.md section 5), chunk by chunk.

Every random choice is drawn for a whole chunk at once with numpy (caller, switch, destination,
format, ring and talk time, disposition, end time); Python only loops once per message to build
its JSON object (orjson), about 2 us a message. Dialled strings are built once per distinct
(number, switch, format) code (`NumberBook`), times are formatted vectorised.

Counts are exact, not sampled: after any chunk, invalid and duplicate messages are the rounded
fractions of everything generated so far, so a run of N messages has exactly round(N * F) of
each. Invalid kinds are taken from the catalogue in turn, so every kind appears once there are
at least as many invalid records as kinds. A duplicate is a resend of a valid CDR of the same
chunk (same key, same bytes) placed later in the stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from rater.loadgen.durations import DISPOSITIONS, HANGUP_CAUSES, draw_calls
from rater.loadgen.invalid import KINDS, InvalidKind, corrupt
from rater.loadgen.numbers import NumberBook, SwitchProfile, zipf_probabilities
from rater.loadgen.population import Scenario

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class GenerationOptions:
    """What the stream looks like (the CLI's options, minus publishing)."""

    seed: int = 1
    invalid_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    unanswered_fraction: float = 0.33
    #: share of valid calls to numbers no tariff covers (stored as unrated)
    unrated_fraction: float = 0.002
    invalid_kinds: tuple[InvalidKind, ...] = KINDS
    #: calls end within this many seconds before `end_time`
    window_s: int = 3600
    #: epoch seconds the generated calls end before; None: the start of the run
    end_time: int | None = None
    #: Zipf exponent of destination, customer and card popularity
    zipf_exponent: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "invalid_fraction",
            "duplicate_fraction",
            "unanswered_fraction",
            "unrated_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be within 0..1, not {value}")
        if self.invalid_fraction + self.duplicate_fraction >= 1.0:
            raise ValueError("invalid and duplicate fractions together must stay below 1")
        if not self.invalid_kinds:
            raise ValueError("at least one invalid kind is needed")
        if self.window_s < 1:
            raise ValueError("the time window must be at least 1 second")


@dataclass(frozen=True)
class Calls:
    """The valid, original CDRs of a chunk, one array per attribute (what the manifest prices)."""

    seq: I64  # run-wide sequence number (in the cdr_id)
    customer: I32  # index into scenario.customers
    card: I32  # index into Generator.cards, -1 for a SIP call
    switch: I32  # index into scenario.switches
    callee_code: I64  # NumberBook callee code (number, switch, format)
    callee: npt.NDArray[np.str_]  # the dialled string as published
    billsec: I64
    start: I64  # epoch seconds

    def __len__(self) -> int:
        return len(self.seq)


@dataclass
class Chunk:
    """Messages ready to publish, in order, and what they are."""

    keys: list[bytes]
    values: list[bytes]
    calls: Calls
    invalid: Counter[InvalidKind] = field(default_factory=Counter)
    duplicates: int = 0

    @property
    def published(self) -> int:
        """Messages in the chunk (the keys and values may have been dropped after publishing)."""
        return len(self.calls) + sum(self.invalid.values()) + self.duplicates

    def __len__(self) -> int:
        return len(self.values)


class Generator:
    """Makes chunks of CDR messages for one run of one scenario."""

    def __init__(
        self,
        scenario: Scenario,
        book: NumberBook,
        options: GenerationOptions,
        run_id: str,
        *,
        now: int,
    ) -> None:
        self.scenario = scenario
        self.book = book
        self.options = options
        self.run_id = run_id
        self.end_time = options.end_time if options.end_time is not None else now
        self.rng = np.random.default_rng([options.seed, 2])
        setup_rng = np.random.default_rng([options.seed, 3])
        self.switches: tuple[SwitchProfile, ...] = scenario.switches
        customers = scenario.customers
        self.customer_keys = [c.customer_id.encode() for c in customers]
        self.cards: list[str] = []
        card_owner: list[int] = []
        for i, customer in enumerate(customers):
            for number in customer.cards:
                self.cards.append(number)
                card_owner.append(i)
        self.card_customer = np.asarray(card_owner, dtype=np.int32)
        sip = [i for i, c in enumerate(customers) if not c.disposable]
        if not sip and not any(c.cards for c in customers):
            raise ValueError(f"scenario {scenario.name}: card-batch customers without cards")
        self.sip_customers = np.asarray(sip or [0], dtype=np.int32)
        #: with only card-batch customers, every call is a card call
        self.card_share = scenario.card_share if sip else 1.0
        self.sip_popularity = zipf_probabilities(
            len(self.sip_customers), options.zipf_exponent, setup_rng
        )
        self.card_popularity = zipf_probabilities(len(self.cards), options.zipf_exponent, setup_rng)
        # each customer calls mostly through one switch, from one caller number
        self.home_switch = setup_rng.integers(0, len(self.switches), len(customers)).astype(
            np.int32
        )
        self.customer_caller = [
            self._caller_number(setup_rng, self.switches[s]) for s in self.home_switch.tolist()
        ]
        card_switch = self.home_switch[self.card_customer] if self.cards else np.zeros(0, np.int32)
        self.card_caller = [
            self._caller_number(setup_rng, self.switches[s]) for s in card_switch.tolist()
        ]
        self.access_numbers = [f"+{s.country_code}800{i:05d}" for i, s in enumerate(self.switches)]
        # JSON fragments per entity, quoted once (ids from an existing setup may need escaping)
        self.switch_piece = _objects(f',"switch":{_q(s.name)}' for s in self.switches)
        self.head_piece = _objects(f',"account":{_q(c.customer_id)}' for c in customers)
        self.customer_piece = _objects(f',"caller":{_q(n)}' for n in self.customer_caller)
        self.card_piece = (
            _objects(
                f',"card":{_q(number)},"caller":{_q(caller)}'
                for number, caller in zip(self.cards, self.card_caller, strict=True)
            )
            if self.cards
            else _objects([""])
        )
        self.access_piece = _objects(f',"access_number":{_q(a)}' for a in self.access_numbers)
        self.disposition_piece = _objects(
            f',"disposition":{_q(d)},"hangup_cause":{_q(HANGUP_CAUSES[d])}' for d in DISPOSITIONS
        )
        self.made = 0
        self.made_invalid = 0
        self.made_duplicates = 0
        self.seq = 0

    @staticmethod
    def _caller_number(rng: np.random.Generator, switch: SwitchProfile) -> str:
        digits = 10 if switch.country_code == "1" else 9
        first = int(rng.integers(2, 10))
        rest = int(rng.integers(0, 10 ** (digits - 1)))
        return f"+{switch.country_code}{first}{rest:0{digits - 1}d}"

    def _split(self, n: int) -> tuple[int, int]:
        """(invalid, duplicate) message counts for the next n messages (exact running totals)."""
        total = self.made + n
        invalid = round(total * self.options.invalid_fraction) - self.made_invalid
        duplicates = round(total * self.options.duplicate_fraction) - self.made_duplicates
        invalid = max(0, min(invalid, n))
        duplicates = max(0, min(duplicates, n - invalid - 1))
        return invalid, duplicates

    def chunk(self, n: int) -> Chunk:  # noqa: PLR0915 - one chunk's columns built side by side, vectorised
        """The next n messages."""
        if n < 1:
            raise ValueError("a chunk needs at least one message")
        rng = self.rng
        n_invalid, n_dup = self._split(n)
        n_base = n - n_dup
        seq = self.seq + np.arange(n_base, dtype=np.int64)

        # who calls, through which switch
        card = np.full(n_base, -1, dtype=np.int32)
        if self.cards:
            by_card = np.flatnonzero(rng.random(n_base) < self.card_share)
            card[by_card] = _draw(rng, self.card_popularity, len(by_card))
        customer = self.sip_customers[_draw(rng, self.sip_popularity, n_base)]
        with_card = card >= 0
        customer[with_card] = self.card_customer[card[with_card]]
        switch = self.home_switch[customer].copy()
        roaming = rng.random(n_base) < 0.1
        switch[roaming] = rng.integers(0, len(self.switches), int(roaming.sum()))

        # what was dialled, when, for how long
        switch64 = switch.astype(np.int64)
        numbers = self.book.draw(rng, switch64, self.switches, self.options.unrated_fraction)
        callee, callee_code = self.book.callees(numbers, switch64, self.switches, rng)
        times = draw_calls(rng, n_base, self.options.unanswered_fraction)
        end = self.end_time - rng.integers(0, self.options.window_s, n_base)
        start = end - times.duration
        answer = start + times.ring
        has_answer = ((times.billsec > 0) | (times.disposition == 0)) & ~times.answer_missing

        # JSON is assembled from per-column pieces in one comprehension (about 1.3 us a
        # message); building a dict and calling orjson.dumps per message takes 5x longer.
        start_lit = _time_literals(start, switch, self.switches)
        end_lit = _time_literals(end, switch, self.switches)
        answer_lit = _time_literals(answer, switch, self.switches)
        empty_answer = np.array([s.time_format == "iso" for s in self.switches])[switch]
        answer_part = np.where(
            has_answer,
            np.strings.add(',"answer_time":', answer_lit),
            np.where(empty_answer, ',"answer_time":""', ""),
        ).tolist()
        with_card = card >= 0
        who = np.where(
            with_card,
            self.card_piece[np.maximum(card, 0)] + self.access_piece[switch],
            self.customer_piece[customer],
        ).tolist()
        head = self.head_piece[customer].tolist()
        sw_piece = self.switch_piece[switch].tolist()
        disp = self.disposition_piece[times.disposition].tolist()
        run = self.run_id
        texts = [
            f'{{"cdr_id":"{run}-{q:010d}"{w}{h}{c},"callee":"{d}","start_time":{st}{an},"end_time":{en},'
            f'"duration":{du},"billsec":{b}{di}}}'
            for q, w, h, c, d, st, an, en, du, b, di in zip(
                seq.tolist(),
                sw_piece,
                head,
                who,
                callee.tolist(),
                start_lit.tolist(),
                answer_part,
                end_lit.tolist(),
                times.duration.tolist(),
                times.billsec.tolist(),
                disp,
                strict=True,
            )
        ]
        values = [t.encode() for t in texts]
        keys = [self.customer_keys[i] for i in customer.tolist()]

        invalid: Counter[InvalidKind] = Counter()
        invalid_at = np.zeros(n_base, dtype=bool)
        if n_invalid:
            positions = np.sort(rng.choice(n_base, n_invalid, replace=False))
            invalid_at[positions] = True
            kinds = self.options.invalid_kinds
            for j, i in enumerate(positions.tolist()):
                kind = kinds[(self.made_invalid + j) % len(kinds)]
                invalid[kind] += 1
                values[i] = corrupt(kind, orjson.loads(values[i]), rng)

        valid = np.flatnonzero(~invalid_at)
        if n_dup and len(valid) == 0:  # nothing to resend: make them originals next time
            n_dup = 0
        order_keys = np.arange(n_base, dtype=np.float64)
        if n_dup:
            sources = valid[rng.integers(0, len(valid), n_dup)]
            # resent later: anywhere up to half a chunk after the original
            delay = 0.5 + np.floor(rng.random(n_dup) * max(1.0, n_base / 2))
            order = np.argsort(np.concatenate([order_keys, sources + delay]), kind="stable")
            keys_all = keys + [keys[i] for i in sources.tolist()]
            values_all = values + [values[i] for i in sources.tolist()]
            keys = [keys_all[i] for i in order.tolist()]
            values = [values_all[i] for i in order.tolist()]

        self.seq += n_base
        self.made += n_base + n_dup
        self.made_invalid += n_invalid
        self.made_duplicates += n_dup
        calls = Calls(
            seq=seq[valid],
            customer=customer[valid],
            card=card[valid],
            switch=switch[valid],
            callee_code=callee_code[valid],
            callee=callee[valid],
            billsec=times.billsec[valid],
            start=start[valid],
        )
        return Chunk(keys=keys, values=values, calls=calls, invalid=invalid, duplicates=n_dup)


def _q(text: str) -> str:
    """A JSON string literal."""
    return orjson.dumps(text).decode()


def _objects(items: Iterable[str]) -> npt.NDArray[np.object_]:
    values = list(items)
    out: npt.NDArray[np.object_] = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _draw(rng: np.random.Generator, probabilities: npt.NDArray[np.float64], n: int) -> I32:
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    cdf = np.cumsum(probabilities)
    cdf /= cdf[-1]
    picks = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(picks, len(probabilities) - 1).astype(np.int32)


def _time_literals(
    seconds: I64, switch: I32, switches: Sequence[SwitchProfile]
) -> npt.NDArray[np.str_]:
    """Each time as a JSON literal the way its switch writes it: an ISO 8601 string with the
    switch's offset, or epoch seconds / milliseconds (numpy string operations, no Python
    objects: about 3x faster than concatenating object arrays)."""
    out: npt.NDArray[np.str_] = np.empty(len(seconds), dtype="<U32")
    for s, profile in enumerate(switches):
        mine = np.flatnonzero(switch == s)
        if not len(mine):
            continue
        values = seconds[mine]
        if profile.time_format == "epoch":
            out[mine] = values.astype(str)
        elif profile.time_format == "epoch_ms":
            out[mine] = (values * 1000).astype(str)
        elif profile.time_format == "iso":
            local = (values + profile.utc_offset_minutes * 60).astype("datetime64[s]")
            text = np.datetime_as_string(local, unit="s")
            suffix = _offset_suffix(profile.utc_offset_minutes) + '"'
            out[mine] = np.strings.add(np.strings.add('"', text), suffix)
        else:
            raise ValueError(f"switch {profile.name}: unknown time format {profile.time_format!r}")
    return out


def _offset_suffix(minutes: int) -> str:
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"
