"""``evaluate`` on Proofs of Value (spec v3), from the command line as a user types it: the POV rules
come out with their objects, bad POV rows go to the quarantine file, a missing required POV
column is a one-line error naming the file and the column."""

import json

import pytest
from builders import opportunity, pov, user, write_snapshot
from commands import run

pytestmark = pytest.mark.unit


def test_evaluate_writes_pov_alerts_and_quarantines_bad_pov_rows(tmp_path):
    mgr = user(id="0055e0000000MG9AAA", role_type="Manager")
    sa = user(id="0055e0000000SA9AAA", manager_id=mgr["id"])
    opp = opportunity(id="0065e0000000OP9AAA", owner_id=sa["id"], sa=sa["id"], stage="3-Technical Evaluation")
    running = [pov(id=f"a0P5e0000000PV{i}AAA", owner_id=sa["id"], opportunity_id=opp["id"], start_date="2026-09-29")
               for i in range(4)]  # fmt: skip
    done = pov(id="a0P5e0000000PV8AAA", owner_id=sa["id"], opportunity_id=opp["id"], status="Completed")
    unknown = pov(id="a0P5e0000000PV9AAA", owner_id=sa["id"], status="On hold")
    ghost = pov(id="a0P5e0000000PVZAAA", owner_id=sa["id"], opportunity_id="0065e0000000NOPAAA")
    snap = write_snapshot(tmp_path / "s", {"User": [sa, mgr], "Opportunity": [opp],
                                           "Proof_of_Value__c": [*running, done, unknown, ghost]})  # fmt: skip
    out, quarantine = tmp_path / "alerts.jsonl", tmp_path / "q.jsonl"
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--out", str(out), "--quarantine", str(quarantine))
    assert r.returncode == 0, r.stderr
    got = {(a["workflow"], a["object"], a["record_id"], a["recipient"].get("id")) for a in map(json.loads, out.read_text().splitlines())
           if a["workflow"].startswith("pov-")}  # fmt: skip
    # Started 56 days before: overdue; the opportunity has no tech-evaluation start date.
    expected = {(w, "Proof_of_Value__c", p["id"], sa["id"]) for p in running for w in ("pov-overdue", "pov-tech-eval")}
    expected |= {("pov-result", "Proof_of_Value__c", done["id"], sa["id"]), ("pov-load", "User", sa["id"], mgr["id"])}
    assert got == expected
    q = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert {(x["object"], x["record_id"], x["reason"]) for x in q} == {
        ("Proof_of_Value__c", ghost["id"], "missing_reference"), ("Proof_of_Value__c", unknown["id"], "unknown_status")}


def test_a_pov_file_without_a_required_column_is_a_clear_error(tmp_path):
    snap = write_snapshot(tmp_path / "s", {"Proof_of_Value__c": []}, drop={"Proof_of_Value__c": ["Status__c"]})
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Proof_of_Value__c.csv: missing required column(s): Status__c" in r.stderr


def test_an_org_without_the_object_evaluates_as_before(tmp_path):
    snap = write_snapshot(tmp_path / "s", {})
    assert not (snap / "Proof_of_Value__c.csv").exists()
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--quarantine", str(tmp_path / "q"))
    assert r.returncode == 0 and r.stdout == "" and (tmp_path / "q").read_text() == ""
