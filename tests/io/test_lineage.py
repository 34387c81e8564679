"""kbpipe.io.lineage: which drops count against --max-reject-rate."""

from __future__ import annotations

import pytest

from kbpipe.io.lineage import StepResult
from kbpipe.steps import audit, decontaminate, dedupe, verify


@pytest.mark.parametrize(
    "reason",
    [audit.FLAGGED, verify.FAILED, decontaminate.CONTAMINATED, dedupe.NOT_VERIFIED],
)
def test_rows_a_check_was_asked_to_drop_are_not_lost(reason: str) -> None:
    # audit --drop-flagged, verify --drop-failed, decontaminate --drop and dedupe
    # --require-verified drop by a verdict on the row: however many, nothing is lost.
    result = StepResult("check", rows_in=10, rows_out=1)
    result.drop(reason, 9)
    assert (result.n_lost, result.loss_rate) == (0, 0.0)


def test_other_drops_are_losses_over_the_rows_meant_to_be_kept() -> None:
    result = StepResult("check", rows_in=10, rows_out=6)
    result.drop(verify.FAILED, 2)
    result.drop("judge_failed", 2)
    assert (result.n_lost, result.loss_rate) == (2, 0.25)
