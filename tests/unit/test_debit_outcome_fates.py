"""The fates of the debit's CONFLICT and OUT_OF_RANGE outcomes in the pipeline (docs/DESIGN.md
section 4): a conflict leaves the batch for cdr_conflicts, an amount out of range is unrated."""

from __future__ import annotations

import numpy as np

from rater.pipeline.conflicts import Conflicts
from rater.pipeline.debit import DebitResult, Outcome
from rater.pipeline.fates import RATED, UNRATED, apply_outcomes
from rater.reasons import Kind
from tests.unit.test_pipeline_fates import COMPILED, _batch, _rate


def test_conflicts_leave_the_batch_and_out_of_range_amounts_are_unrated() -> None:
    cdrs, digits, lengths, resolved = _batch([("+493012345678", 60, "cust", "")] * 4)
    rows = _rate(COMPILED, cdrs, resolved, digits, lengths)
    result = DebitResult(
        outcome=np.array(
            [Outcome.APPLIED, Outcome.CONFLICT, Outcome.OUT_OF_RANGE, Outcome.DUPLICATE],
            dtype=np.int8,
        ),
        blocked=np.zeros(4, dtype=np.bool_),
        replayed=np.array([False, True, False, False]),
        first=np.array([[-1, -1], [0, 7], [-1, -1], [-1, -1]], dtype=np.int64),
    )
    conflicts = Conflicts.of(rows.cdrs, result)
    assert conflicts.cdrs.cdr_id.tolist() == ["c1"]
    assert conflicts.first.tolist() == [[0, 7]]
    kept, duplicates, replayed = apply_outcomes(rows, result, window_s=86_400)
    assert duplicates == 1
    assert kept.cdrs.cdr_id.tolist() == ["c0", "c2"]
    assert kept.outcome.tolist() == [RATED, UNRATED]
    assert kept.reason.tolist()[1].kind == Kind.AMOUNT_OUT_OF_RANGE
    assert (kept.price.tolist()[1], kept.cost.tolist()[1]) == (0, 0)
    assert replayed.tolist() == [False, False]
