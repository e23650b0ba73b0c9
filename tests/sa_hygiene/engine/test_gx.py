"""A frame's checks in few GX validations (``engine/gx.py``, ``rules.run_workflows``): the
workflows reading one frame are validated together, the same expectation of several workflows
once, and each workflow still gets exactly the rows its own scope and ``when`` fail, with its
own reasons, as ``engine/predicates.py`` judges them one row at a time."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from sa_hygiene.contract.config import Expectation, Recipient, Workflow
from sa_hygiene.engine import gx
from sa_hygiene.engine.gx import Validator
from sa_hygiene.engine.predicates import unmet
from sa_hygiene.engine.rules import run_workflows

pytestmark = pytest.mark.unit

PARAMS = {"as_of": pd.Timestamp(date(2026, 11, 24))}
N = 60


def frame() -> pd.DataFrame:
    """Dates, text and flags with blanks and equal pairs coming up often; a gapped index."""
    rng = np.random.default_rng(7)
    days = pd.to_datetime(["2026-11-01", "2026-11-20", "2026-12-01"]).to_numpy()
    a = pd.Series(days[rng.integers(0, 3, N)]).where(rng.random(N) > 0.3)
    b = pd.Series(days[rng.integers(0, 3, N)]).where(rng.random(N) > 0.3)
    status = pd.Series(np.array(["Win", "Loss", "Maybe"])[rng.integers(0, 3, N)], dtype="str").where(rng.random(N) > 0.2)
    return pd.DataFrame(
        {
            "id": pd.Series([f"006{i:012d}" for i in range(N)], dtype="str"),
            "owner_id": pd.Series(["005000000000001"] * N, dtype="str"),
            "a": a,
            "b": b,
            "status": status,
            "flag": rng.random(N) > 0.5,
            "n": rng.integers(0, 3, N).astype("int64"),
        },
        index=pd.RangeIndex(0, 3 * N, 3),
    )


def workflow(scope: str, *expect: dict) -> Workflow:
    return Workflow(title="t", object="Opportunity", frame="opportunities", scope=scope, report_reasons=True,
                    expect=[Expectation(**e) for e in expect], recipient=Recipient(channel="#t"), slot="channel_post")  # fmt: skip


WORKFLOWS = {
    # The same not_null in three workflows on different rows; a pair, a set and a bound beside it.
    "w1": workflow("flag", {"reason": "a1", "expectation": "not_null", "column": "a"}),
    "w2": workflow("not flag", {"reason": "a2", "expectation": "not_null", "column": "a"},
                   {"reason": "pair", "expectation": "pair_equal", "column": "a", "other": "b"}),  # fmt: skip
    "w3": workflow("True", {"reason": "set", "when": "flag", "expectation": "in_set", "column": "status", "values": ["Win", "Loss"]},
                   {"reason": "a3", "when": "n == 2", "expectation": "not_null", "column": "a"},
                   {"reason": "late", "expectation": "between", "column": "b", "max": "@as_of"},
                   {"reason": "order", "expectation": "pair_greater", "column": "b", "other": "a", "or_equal": True}),  # fmt: skip
}


def by_workflow(alerts: pd.DataFrame) -> dict[str, list[tuple[str, list[str]]]]:
    return {w: list(zip(g["record_id"], g["reasons"], strict=True)) for w, g in alerts.groupby("workflow", sort=False)}


def expected(f: pd.DataFrame) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
    out = {}
    for wid, wf in WORKFLOWS.items():
        rows = unmet(f, wf, PARAMS)
        out[wid] = {(f.at[label, "id"], tuple(dict.fromkeys(e.reason for e in failed))) for label, failed in rows.items()}
    return out


def test_workflows_of_one_frame_share_validations_and_keep_their_own_rows_and_reasons():
    f = frame()
    v = Validator()
    got = by_workflow(run_workflows({"opportunities": f}, None, WORKFLOWS, PARAMS, v))
    assert {w: {(i, tuple(r)) for i, r in rows} for w, rows in got.items()} == expected(f)
    # One validation of the frame; the not_null of "a" in three workflows is one expectation.
    assert len(v.results) == 1
    configs = [r.expectation_config for r in v.results[0].results]
    assert len(configs) == len(WORKFLOWS["w1"].expect) + len(WORKFLOWS["w2"].expect) + len(WORKFLOWS["w3"].expect) - 2
    assert sum(c.type == "expect_column_values_to_not_be_null" for c in configs) == 1


def test_a_frame_split_into_more_batches_finds_the_same_alerts_in_the_same_order(monkeypatch):
    f = frame()
    together = run_workflows({"opportunities": f}, None, WORKFLOWS, PARAMS, Validator())
    monkeypatch.setattr(gx, "ROWS_PER_VALIDATION", 1)  # every check that would read another's rows goes alone
    v = Validator()
    apart = run_workflows({"opportunities": f}, None, WORKFLOWS, PARAMS, v)
    assert len(v.results) > 1
    pd.testing.assert_frame_equal(apart, together)


def test_a_check_reads_blanks_outside_its_rows_and_gx_counts_only_its_own():
    f = frame()
    domain = f["flag"].to_numpy()
    checks = [gx.Check(Expectation(expectation="not_null", column="a"), domain, {"workflow": "w"}),
              gx.Check(Expectation(expectation="in_set", column="flag", values=[True]), ~domain, {"workflow": "w"})]  # fmt: skip
    ((kind, batch, expectations, members),) = gx.frame_batches(f, checks, PARAMS)
    assert kind == "rows" and members == [0, 1] and list(batch.index) == list(range(N))
    not_null, in_set = batch["a [w]"], batch["flag [w]"]
    assert not_null[~domain].notna().all()  # not_null cannot skip a blank: a set value there
    assert in_set[domain].isna().all() and in_set[~domain].notna().all()
    unexpected = Validator().unexpected("opportunities", batch, "t", expectations)
    assert sorted(unexpected[0]) == list(np.flatnonzero(domain & f["a"].isna().to_numpy()))
    assert sorted(unexpected[1]) == list(np.flatnonzero(~domain))
