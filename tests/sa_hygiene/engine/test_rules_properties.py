"""Property tests: random orgs against an independent reading of the pages (``oracle.py``)."""

import tempfile
from pathlib import Path

import pytest
from builders import write_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import oracle
from org_strategies import AS_OF, orgs

from sa_hygiene.contract.config import load_config
from sa_hygiene.engine.rules import evaluate_snapshots

pytestmark = pytest.mark.unit


def engine(current, previous):
    with tempfile.TemporaryDirectory() as tmp:
        cur = write_snapshot(Path(tmp) / "c", current)
        prev = write_snapshot(Path(tmp) / "p", previous) if previous is not None else None
        result = evaluate_snapshots(str(cur), str(prev) if prev else None, load_config(), AS_OF)
        assert result.quarantine.empty, result.quarantine
        return {
            (a["workflow"], a["record_id"], (a["recipient"]["type"], a["recipient"].get("id") or a["recipient"].get("name")),
             tuple(a["reasons"]), a.get("suggested_what_id"))
            for a in result.alert_records()
        }  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orgs())
def test_engine_agrees_with_an_independent_reading_of_the_pages(org):
    current, previous = org
    assert engine(current, previous) == oracle(current, previous, AS_OF)


garbage = st.sampled_from(["", " ", "x", "-1", "2026-13-40", "true", "<!channel>", "0065e0000000O00AAA", "1e400", "NaN", "🙂"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orgs(), st.data())
def test_random_garbage_never_crashes_and_alerts_name_surviving_records(org, data):
    current, _ = org
    for obj in ("Opportunity", "Task", "Event", "User", "Proof_of_Value__c"):
        for row in current.get(obj, []):
            for field in data.draw(st.lists(st.sampled_from(sorted(row)), max_size=2)):
                row[field] = data.draw(garbage)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_snapshot(Path(tmp) / "c", current)
        result = evaluate_snapshots(str(path), None, load_config(), AS_OF)
        q = result.quarantine
        # A duplicate's loser shares its Id with the row that was kept (and may be alerted).
        q = q[(q["reason"] != "duplicate_id") & q["record_id"].notna()]
        quarantined = set(zip(q["object"], q["record_id"], strict=True))
        for a in result.alert_records():
            frames = {"Opportunity": "opportunities", "Task": "tasks", "Event": "meetings", "Proof_of_Value__c": "povs",
                      "User": "pov_owners"}  # fmt: skip
            frame = result.frames[frames[a["object"]]]
            assert a["record_id"] in set(frame["id"]) and (a["object"], a["record_id"]) not in quarantined
