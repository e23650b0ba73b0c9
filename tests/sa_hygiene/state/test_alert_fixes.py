"""Fixes made from the Slack app in the alert state: pending until an evaluation of a later date
has seen them, then confirmed (the alert is gone) or reopened (still raised); a re-run of that
date settles them again the same way; a version 3 state is upgraded to hold them."""

from datetime import UTC, date, datetime, timedelta

import pytest

from sa_hygiene.state.alerts import FIXED, PENDING, REOPENED, AlertState

pytestmark = pytest.mark.integration

D0 = date(2026, 11, 2)
SA = {"type": "user", "id": "0051a00000XyZaBAAB"}
OPP = "0061a00000AbC%02dAAV"


def alert(n: int, workflow: str = "wf-06") -> dict:
    return {"workflow": workflow, "object": "Opportunity", "record_id": OPP % n, "recipient": SA, "reasons": []}


def statuses(state) -> dict:
    return {(w, k[13:15]): (f["status"], f["settled_on"]) for (w, k), f in state.fixes().items()}


def test_a_fix_is_pending_until_a_later_evaluation_confirms_or_reopens_it(tmp_path):
    with AlertState(f"sqlite:///{tmp_path}/s.sqlite") as state:
        state.record(D0, [alert(1), alert(1, "wf-15"), alert(2)])
        at = datetime(2026, 11, 2, 17, 30, tzinfo=UTC)
        # Only workflows with an episode open on the record are marked: te-stalled never raised here.
        assert state.mark_fixed(["wf-06", "wf-15", "te-stalled"], OPP % 1, "Sam", {"te_end": "2026-11-01"}, at) == ["wf-06", "wf-15"]
        assert state.mark_fixed(["wf-06"], OPP % 2, "Sam", {"te_end": "2026-11-01"}, at) == ["wf-06"]
        state.record(D0, [alert(1), alert(1, "wf-15"), alert(2)])  # the same date again: it cannot have seen the fix
        assert statuses(state) == {("wf-06", "01"): (PENDING, None), ("wf-15", "01"): (PENDING, None),
                                   ("wf-06", "02"): (PENDING, None)}  # fmt: skip
        d1 = D0 + timedelta(days=1)
        state.record(d1, [alert(2)], scope={"wf-06": {(OPP % 1)[:15], (OPP % 2)[:15]}, "wf-15": {(OPP % 1)[:15]}})
        expected = {("wf-06", "01"): (FIXED, d1), ("wf-15", "01"): (FIXED, d1), ("wf-06", "02"): (REOPENED, d1)}
        assert statuses(state) == expected
        state.record(d1, [alert(2)], scope={"wf-06": {(OPP % 1)[:15], (OPP % 2)[:15]}, "wf-15": {(OPP % 1)[:15]}})
        assert statuses(state) == expected  # a re-run of the date undoes and settles again: the same
        fix = state.fixes()[("wf-06", (OPP % 1)[:15])]
        assert fix["fields"] == {"te_end": "2026-11-01"} and fix["fixed_by"] == "Sam" and fix["fixed_at"] == at
        # Fixed again after reopening: pending again.
        state.mark_fixed(["wf-06"], OPP % 2, "Sam", {"te_end": "2026-11-02"}, at + timedelta(days=1))
        assert statuses(state)[("wf-06", "02")] == (PENDING, None)


def test_a_version_3_state_is_upgraded_to_hold_fixes(tmp_path):
    from sa_hygiene.state.alerts import COMPONENT, fixes
    from sa_hygiene.state.db import schema_versions

    url = f"sqlite:///{tmp_path}/v3.sqlite"
    with AlertState(url) as s:
        s.record(D0, [alert(1)])
        with s.engine.begin() as conn:  # what version 3 had: no fixes
            fixes.drop(conn)
            conn.execute(schema_versions.update().where(schema_versions.c.component == COMPONENT).values(version=3))
    with AlertState(url) as s:
        assert s.fixes() == {}
        assert s.mark_fixed(["wf-06"], OPP % 1, "Sam", {}) == ["wf-06"]
        assert s.record(D0 + timedelta(days=1), [alert(1)]).alerts[0]["first_seen"] == D0.isoformat()
