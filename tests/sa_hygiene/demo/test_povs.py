"""The demo org's Proofs of Value: every status, each fault the POV rules look for, the bad rows
the reader quarantines, and the same bytes for the same seed."""

from datetime import date

import pytest

from sa_hygiene.contract.config import load_config
from sa_hygiene.demo.org import write_demo_org
from sa_hygiene.engine.rules import evaluate_snapshots

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)


def test_povs_in_every_status_with_every_fault(tmp_path):
    write_demo_org(tmp_path / "org", AS_OF, scale=0.1)
    result = evaluate_snapshots(tmp_path / "org" / "current", tmp_path / "org" / "previous", load_config(), AS_OF)
    povs = result.snapshot["Proof_of_Value__c"]
    assert set(povs["status"]) == {"Planned", "In Progress", "Completed", "Cancelled"}
    fired = {a["workflow"] for a in result.alert_records()}
    assert {"pov-overdue", "pov-criteria", "pov-opportunity", "pov-result", "pov-tech-eval", "pov-load"} <= fired
    q = result.quarantine[result.quarantine["object"] == "Proof_of_Value__c"]
    assert sorted(q["reason"]) == ["missing_reference", "unknown_status"]


def test_the_same_seed_gives_the_same_povs(tmp_path):
    for d in ("a", "b"):
        write_demo_org(tmp_path / d, AS_OF, scale=0.1, seed=3)
    assert (tmp_path / "a/current/Proof_of_Value__c.parquet").read_bytes() == (tmp_path / "b/current/Proof_of_Value__c.parquet").read_bytes()
