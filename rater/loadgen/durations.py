"""Call durations, ring times and dispositions, drawn like a real switch's day.

- Answered calls: log-normal talk time with a median of about 1.5 minutes (mean about
  2.5 minutes), plus a 3% Pareto tail of long calls up to 4 hours (modem lines, forgotten calls).
- About a third of calls are not answered (billsec 0): mostly NO ANSWER after ringing 15-60 s,
  then BUSY, FAILED, CONGESTION, CANCEL, CHANUNAVAIL with short ring times. A small share are
  ANSWERED with billsec 0 (hung up within the first second): docs/DESIGN.md says those are stored as
  unanswered, so the stream should contain some.
- 1% of answered CDRs come without answer_time (some switches leave it empty), which must not
  change the price: billsec is authoritative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

MAX_BILLSEC = 4 * 3600

#: dispositions of unanswered calls and their shares; Q.850 causes as switches log them
UNANSWERED_DISPOSITIONS: tuple[tuple[str, float, str], ...] = (
    ("NO ANSWER", 0.52, "19"),
    ("BUSY", 0.24, "17"),
    ("FAILED", 0.08, "41"),
    ("CONGESTION", 0.05, "34"),
    ("CANCEL", 0.06, "487"),
    ("CHANUNAVAIL", 0.03, "44"),
    ("ANSWERED", 0.02, "16"),  # answered and dropped at once: billsec 0
)
DISPOSITIONS: tuple[str, ...] = ("ANSWERED", *(d for d, _, _ in UNANSWERED_DISPOSITIONS[:-1]))
HANGUP_CAUSES: dict[str, str] = {"ANSWERED": "16"} | {
    d: c for d, _, c in UNANSWERED_DISPOSITIONS[:-1]
}


@dataclass(frozen=True)
class CallTimes:
    """Per call: seconds from start to answer (or to the end when unanswered), billsec, and the
    disposition (index into DISPOSITIONS); `answer_missing` marks CDRs written without
    answer_time."""

    ring: I64
    billsec: I64
    disposition: npt.NDArray[np.int8]
    answer_missing: npt.NDArray[np.bool_]

    @property
    def duration(self) -> I64:
        return self.ring + self.billsec


def draw_calls(rng: np.random.Generator, n: int, unanswered_fraction: float) -> CallTimes:
    """Ring times, talk times and dispositions of n calls."""
    if not 0.0 <= unanswered_fraction <= 1.0:
        raise ValueError(f"unanswered fraction must be within 0..1, not {unanswered_fraction}")
    answered = rng.random(n) >= unanswered_fraction
    talk = rng.lognormal(np.log(90.0), 1.0, n)
    tail = rng.random(n) < 0.03
    talk[tail] = 600.0 * (1.0 + rng.pareto(1.2, int(tail.sum())))
    billsec = np.clip(np.ceil(talk), 1, MAX_BILLSEC).astype(np.int64)
    billsec[~answered] = 0

    ring = np.clip(np.rint(rng.lognormal(np.log(7.0), 0.5, n)), 1, 45).astype(np.int64)
    disposition = np.zeros(n, dtype=np.int8)  # ANSWERED
    missed = np.flatnonzero(~answered)
    shares = np.array([s for _, s, _ in UNANSWERED_DISPOSITIONS])
    picks = np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(len(missed)), side="right")
    picks = np.minimum(picks, len(shares) - 1)
    names = [d for d, _, _ in UNANSWERED_DISPOSITIONS]
    codes = np.array([DISPOSITIONS.index(d) for d in names], dtype=np.int8)
    disposition[missed] = codes[picks]
    no_answer = missed[picks == names.index("NO ANSWER")]
    ring[no_answer] = rng.integers(15, 61, len(no_answer))  # rang until the timeout
    quick = missed[np.isin(picks, [names.index(d) for d in ("BUSY", "CONGESTION", "CHANUNAVAIL")])]
    ring[quick] = rng.integers(0, 4, len(quick))
    answer_missing = answered & (rng.random(n) < 0.01)
    return CallTimes(
        ring=ring, billsec=billsec, disposition=disposition, answer_missing=answer_missing
    )
