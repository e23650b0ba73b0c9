"""Proofs of Value from Salesforce (spec v3) against the fake org over HTTPS: extracted in snapshots
and pulled by the changes feed when the org's describe lists the object; an org without it
extracts as before, with no error and no file. The figures: API calls each adds."""

import pytest
from builders import pov
from salesforce_org import CONN, FAST, FMAP, SAM, T0, api, run

from sa_hygiene.contract.config import load_config
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.changes import pull_changes
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.source.store import ChangesFeed

pytestmark = pytest.mark.integration

OPP1 = "0065e0000000001AAA"
POVS = [pov(id="a0P5e0000000001AAA", name="Acme <POV>", owner_id=SAM, opportunity_id=OPP1, success_criteria=""),
        pov(id="a0P5e0000000002AAA", name="Done", owner_id=SAM, opportunity_id=OPP1, status="Completed")]  # fmt: skip
SELECT = ("SELECT Id, Name, Opportunity__c, Account__c, OwnerId, Status__c, Start_Date__c, End_Date__c, Result__c, "
          "Success_Criteria__c, LastModifiedDate, SystemModstamp FROM Proof_of_Value__c")  # fmt: skip


def test_an_org_with_povs_has_them_in_its_snapshot_and_its_changes(fake, store):
    fake.add("Proof_of_Value__c", api("Proof_of_Value__c", POVS))
    before = fake.api_used
    report = run(store, T0)
    assert report.objects["Proof_of_Value__c"].rows == 2
    assert fake.soql()[-2:] == ["SELECT COUNT() FROM Proof_of_Value__c", SELECT]
    cfg = load_config()
    snap = read_snapshot(store.latest().url, cfg)
    assert sorted(snap["Proof_of_Value__c"]["name"]) == ["Acme <POV>", "Done"] and snap.quarantine.empty
    assert "Proof_of_Value__c" not in snap.absent
    # A describe, a COUNT() and a page: two calls more than an org without the object (its describe).
    calls = fake.api_used - before

    # The SA completes the first one: the 15-minute feed pulls it.
    at = "2026-11-23T08:00:00Z"
    row = api("Proof_of_Value__c", [{**POVS[0], "status": "Completed", "result": "Successful", "system_modstamp": at}])
    fake.upsert("Proof_of_Value__c", row)
    queries = len(fake.soql())
    feed = pull_changes(cfg, store, CONN, now=T0.replace(hour=9), options=FAST)
    pulled = fake.soql()[queries:]
    assert [q for q in pulled if "Proof_of_Value__c" in q] == [SELECT.replace("Success_Criteria__c, LastModifiedDate, SystemModstamp FROM",
                                                                              "Success_Criteria__c, LastModifiedDate, SystemModstamp, IsDeleted FROM")
                                                               + " WHERE SystemModstamp > 2026-11-23T04:55:00Z"]  # fmt: skip
    assert feed.fetched["Proof_of_Value__c"] == 1
    latest = store.latest()
    merged = read_snapshot(latest.url, cfg, changes=ChangesFeed(store, latest).latest()["folder"])
    done = merged["Proof_of_Value__c"].set_index("id").loc[POVS[0]["id"]]
    assert (done["status"], done["result"]) == ("Completed", "Successful")
    result = evaluate_snapshots(latest.url, None, cfg, T0.date(), changes=ChangesFeed(store, latest).latest()["folder"])
    assert not [a for a in result.alert_records() if a["workflow"] == "pov-criteria"]  # completed: no longer active
    print(f"\nPOV extraction: {calls} API calls per snapshot with the object")


def test_an_org_without_povs_extracts_and_pulls_as_before(fake, store):
    report = run(store, T0)
    assert "Proof_of_Value__c" not in report.objects
    assert not any("Proof_of_Value__c" in q for q in fake.soql())
    assert [r.path for r in fake.data_requests() if "Proof_of_Value__c" in r.path] == [
        "/services/data/v59.0/sobjects/Proof_of_Value__c/describe"]  # one call: the describe that says so
    ref = store.latest()
    assert "Proof_of_Value__c" not in store.manifest(ref)["rows"]
    snap = read_snapshot(ref.url, load_config())
    assert "Proof_of_Value__c" in snap.absent and snap.quarantine.empty and snap["Proof_of_Value__c"].empty
    queries = len(fake.soql())
    pull_changes(load_config(), store, CONN, now=T0.replace(hour=9), options=FAST)
    assert not any("Proof_of_Value__c" in q for q in fake.soql()[queries:])


def test_the_field_map_names_the_pov_columns(fake, store, tmp_path):
    renamed = [{("POV_Status__c" if k == FMAP["Proof_of_Value__c"]["status"] else k): v for k, v in r.items()}
               for r in api("Proof_of_Value__c", POVS)]  # fmt: skip
    fake.add("Proof_of_Value__c", renamed, types={"POV_Status__c": "picklist"})
    path = tmp_path / "c.yaml"
    path.write_text("fields:\n  Proof_of_Value__c: {status: POV_Status__c}\n")
    cfg = load_config(path)
    run(store, T0, cfg=cfg)
    assert "POV_Status__c" in fake.soql()[-1]
    assert sorted(read_snapshot(store.latest().url, cfg)["Proof_of_Value__c"]["status"]) == ["Completed", "In Progress"]
