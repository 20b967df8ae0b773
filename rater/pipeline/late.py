"""Late CDRs: ended before now minus the de-duplication window (docs/DESIGN.md section 4).

The debit script's de-duplication record of a CDR lives at least one window from the moment it
was debited, so a copy arriving later may not be recognised by Redis. Such a CDR is therefore
not charged by the stream: when ClickHouse holds its (switch, cdr_id) under another message it
is a duplicate (counted, not stored); otherwise it is stored unrated `late`, and
`rater rerate --unrated` rates it after checking ClickHouse for a rated copy. A message
ClickHouse already holds under its own identity is a replay of a stored batch: it takes the
normal path (the store skips it, the debit script reads its first outcome back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rater.logs import get_logger
from rater.pipeline.decode import CdrBatch
from rater.pipeline.normalise import Numbers
from rater.pipeline.store import CopyFinder
from rater.settings import Settings

log = get_logger(__name__)

#: seconds between two warnings about a backlog of late CDRs
_WARN_EVERY_S = 60


@dataclass
class Lateness:
    """What the late check left of a batch."""

    cdrs: CdrBatch
    numbers: Numbers
    late: npt.NDArray[np.bool_]  # of the CDRs left: late ones (priced, not charged)
    duplicates: int  # late CDRs ClickHouse already holds under another message
    seen: int  # late CDRs in the batch, duplicates included


class LateCheck:
    """Splits a batch's late CDRs off; warns (log) when a backlog holds them."""

    def __init__(self, settings: Settings, copies: CopyFinder | None = None) -> None:
        self.window = settings.dedup_window_s
        self.copies = copies or CopyFinder(settings)
        self._warned_at: int | None = None

    def __call__(self, topic_id: str, cdrs: CdrBatch, numbers: Numbers, now: int) -> Lateness:
        late = cdrs.end < now - self.window
        if not late.any():
            return Lateness(cdrs, numbers, late, 0, 0)
        seen = int(late.sum())
        rows = np.flatnonzero(late)
        switches, ids = cdrs.switch[rows].tolist(), cdrs.cdr_id[rows].tolist()
        starts = cdrs.start[rows]
        found = self.copies(
            list(zip(switches, ids, strict=True)),
            int(starts.min()) - self.window,
            int(starts.max()) + self.window,
        )
        duplicate = np.zeros(len(cdrs), dtype=bool)
        for i, switch, cdr_id in zip(rows.tolist(), switches, ids, strict=True):
            held = found.get((switch, cdr_id))
            if not held:
                continue
            own = (topic_id, int(cdrs.partition[i]), int(cdrs.offset[i]))
            if held - {own}:
                duplicate[i] = True  # stored from another message: a copy
            else:
                late[i] = False  # this very message is stored: a replay, the normal path
        self._warn(now, seen, int(cdrs.end[rows].min()))
        if duplicate.any():
            keep = ~duplicate
            return Lateness(
                cdrs.take(keep), numbers.take(keep), late[keep], int(duplicate.sum()), seen
            )
        return Lateness(cdrs, numbers, late, 0, seen)

    def _warn(self, now: int, seen: int, oldest_end: int) -> None:
        if self._warned_at is not None and now - self._warned_at < _WARN_EVERY_S:
            return
        self._warned_at = now
        log.warning(
            "the backlog holds CDRs older than the de-duplication window: they are not charged "
            "by the stream (stored unrated 'late'; `rater rerate --unrated` rates them)",
            late=seen, window_s=self.window, oldest_end_age_s=now - oldest_end,
        )  # fmt: skip
