"""The two ways an expectation is judged, side by side, for tests that hold them to each other:
the engine's Great Expectations path (``rules.run_workflows``, what a digest reports) and the
plain predicates (``engine/predicates.py``, what the Slack app's form is checked by)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd

from sa_hygiene.contract.config import Recipient, Workflow
from sa_hygiene.engine.gx import Validator
from sa_hygiene.engine.predicates import unmet
from sa_hygiene.engine.rules import run_workflows


@cache
def validator() -> Validator:
    return Validator()  # a GX context takes a while to make: one per test session


def flagged_by_gx(frame: pd.DataFrame, workflow: Workflow, params: dict[str, Any]) -> dict[Any, set[int]]:
    """{index label: positions of the expectations it fails} as the engine's GX path finds them.

    The workflow runs as configured (scope, ``when``, batches) with each expectation's reason
    replaced by its position, reported to a channel: every alert names the expectations it
    broke, and no routing is needed."""
    probe = workflow.model_copy(update={
        "expect": [e.model_copy(update={"reason": str(i)}) for i, e in enumerate(workflow.expect)],
        "recipient": Recipient(channel="#probe"), "report_reasons": True,
    })  # fmt: skip
    labelled = frame.assign(id=pd.Series([str(label) for label in frame.index], index=frame.index, dtype="str"))
    v = validator()
    alerts = run_workflows({workflow.frame: labelled}, None, {"probe": probe}, params, v)
    v.results.clear()
    by_id = {str(label): label for label in frame.index}
    return {by_id[r]: {int(i) for i in reasons} for r, reasons in zip(alerts["record_id"], alerts["reasons"], strict=True)}


def flagged_by_predicates(frame: pd.DataFrame, workflow: Workflow, params: dict[str, Any]) -> dict[Any, set[int]]:
    """The same, as ``engine/predicates.py`` judges each row."""
    position = {id(e): i for i, e in enumerate(workflow.expect)}
    return {label: {position[id(e)] for e in failed} for label, failed in unmet(frame, workflow, params).items()}
