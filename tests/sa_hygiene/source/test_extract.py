"""Salesforce extraction against a fake org over HTTPS, through the real SalesforceHook and simple-salesforce.

The fake (tests/fakes/salesforce.py) is a proxy that terminates TLS as login.salesforce.com
and the org's instance, so nothing in the client is patched: the connection's ``proxies``
extra routes it, ``REQUESTS_CA_BUNDLE`` makes requests trust the test CA.
"""

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from builders import contact, event, opportunity, sf_id, user, write_snapshot
from fakes.salesforce import INSTANCE
from salesforce_org import (
    ACME,
    ADA,
    CONN,
    E1,
    E2,
    E3,
    FMAP,
    LEE,
    SAM,
    T0,
    TASKS,
    a_task,
    api,
    org,
    relation,
    run,
)

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.schema import OBJECTS
from sa_hygiene.source.extract import extract_cli
from sa_hygiene.source.records import ExtractionError
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.source.store import SnapshotStore

pytestmark = pytest.mark.integration

T1 = T0 + timedelta(days=1)
SINCE = "2026-11-23T04:55:00Z"  # T0 less the five-minute overlap
ORDER = ["User", "Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Lead", "EventRelation", "Event"]

SELECT = {
    "User": "SELECT Id, Name, Email, IsActive, ManagerId, TimeZoneSidKey, User_Segment__c, User_Geo__c, "
            "User_Region__c, User_Role_Type__c FROM User",
    "Account": "SELECT Id, Name, Website, OwnerId FROM Account",
    "Contact": "SELECT Id, AccountId, Name, Email FROM Contact",
    "Opportunity": "SELECT Id, Name, AccountId, OwnerId, StageName, IsClosed, IsWon, CloseDate, Incremental_ACV__c, "
                   "Solution_Architect__c, x3_Technical_Evaluation_Date__c, SA_Validated_Tech_Evaluation_Start_Date__c, "
                   "SA_Validated_Tech_Evaluation_End_Date__c, SA_Validated_Tech_Evaluation_Close_Statu__c, "
                   "SA_Validated_Tech_Evaluation_Close_Details__c, Is_PS_Opportunity__c, LastModifiedDate, "
                   "SystemModstamp FROM Opportunity",
    "OpportunityContactRole": "SELECT Id, OpportunityId, ContactId FROM OpportunityContactRole",
    "Task": "SELECT Id, OwnerId, WhatId, WhoId, AccountId, Subject, Description, ActivityDate, Status, IsClosed, "
            "CreatedDate, SA_Activity_Type__c, Products_Positioned__c, Persona_Levels__c, Persona_Functions__c, "
            "Customer_Interaction_Sentiment__c, affectlayer__Chorus_Call_Id__c, LastModifiedDate, SystemModstamp, "
            "TaskSubtype FROM Task",
    "Lead": "SELECT Id, Email, SystemModstamp FROM Lead",
    "EventRelation": "SELECT Id, EventId, RelationId, SystemModstamp FROM EventRelation",
    "Event": "SELECT Id, OwnerId, Subject, StartDateTime, EndDateTime, WhatId, SystemModstamp FROM Event",
}  # fmt: skip


# --------------------------------------------------------------------------- what the snapshot holds


ATTENDEES = {E1: "kim@lead.io;pat@acme.com;sam@gitlab.com", E2: "lee@acme.com", E3: None}

# What the snapshot holds: Salesforce's values, blank as null, each field with its contract type.
KINDS = {obj: {FMAP[obj][n]: f.kind for n, f in fields.items()} for obj, fields in OBJECTS.items()}
KINDS["Lead"] = {"Id": "id", "Email": "text", "SystemModstamp": "datetime"}
KINDS["EventRelation"] = {"Id": "id", "EventId": "ref", "RelationId": "ref", "SystemModstamp": "datetime"}
PARSE = {"bool": lambda v: v == "true", "number": float, "date": date.fromisoformat, "datetime": datetime.fromisoformat}


def expected(obj: str, rows: list[dict], attendees: dict | None = None) -> list[dict]:
    out = []
    for row in rows:
        typed = {}
        for name, kind in KINDS[obj].items():
            value = row.get(name) or None
            typed[name] = PARSE[kind](value) if value is not None and kind in PARSE else value
        if obj == "Event":
            typed["AttendeeEmails"] = (attendees or ATTENDEES)[row["Id"]]
        out.append(typed)
    return sorted(out, key=lambda r: r["Id"])


def table(url: str, obj: str) -> list[dict]:
    return sorted(pq.read_table(f"{url}/{obj}.parquet").to_pylist(), key=lambda r: r["Id"])


# --------------------------------------------------------------------------- helpers


def config(tmp_path, text: str):
    path = tmp_path / "project.yaml"
    path.write_text(text)
    return load_config(path)


BULK = "salesforce: {bulk_threshold: 1000}\n"


def paths(fake, pattern: str) -> list[str]:
    return [r.path for r in fake.data_requests() if re.search(pattern, r.path)]


# --------------------------------------------------------------------------- full extraction


def test_a_full_extraction_copies_every_object_with_the_contract_types(fake, store):
    report = run(store)

    ref = store.latest()
    assert report.snapshot == ref.url and ref.taken_at == T0
    source = org()
    for obj in ORDER:
        assert table(ref.url, obj) == expected(obj, source[obj]), obj
    assert store.manifest(ref)["rows"] == {"User": 3, "Account": 1, "Contact": 3, "Opportunity": 3,
                                           "OpportunityContactRole": 1, "Task": TASKS, "Lead": 2, "EventRelation": 7,
                                           "Event": 3}  # fmt: skip
    assert {(o.mode, o.path) for o in report.objects.values()} == {("full", "rest")}
    # The reader takes it as it is: typed, nothing quarantined, attendees as lists.
    snap = read_snapshot(ref.url, load_config())
    assert snap.quarantine.empty and len(snap["Task"]) == TASKS
    assert snap["Event"].set_index("id").loc[E1, "attendee_emails"] == ["kim@lead.io", "pat@acme.com", "sam@gitlab.com"]


def test_fields_are_described_first_then_counted_and_queried_with_exact_soql(fake, store):
    report = run(store)

    requests = fake.data_requests()
    # The optional Proof_of_Value__c is described too: this org has none (404), so it is not read.
    assert [r.path for r in requests[:10]] == [f"/services/data/v59.0/sobjects/{o}/describe" for o in [*ORDER, "Proof_of_Value__c"]]
    assert fake.soql() == [q for obj in ORDER for q in (f"SELECT COUNT() FROM {obj}", SELECT[obj])]
    # Task pages through nextRecordsUrl at 2,000 records.
    assert [p.rsplit("-", 1)[1] for p in paths(fake, r"/query/01g")] == ["2000", "4000"]
    # Every request counted from Sforce-Limit-Info: the fake started at 25 used.
    assert report.api_calls == len(requests) == fake.api_used - 25
    assert report.api_usage == f"{fake.api_used}/15000"
    assert report.logins == 1 and report.retries == 0


def test_the_field_map_decides_what_is_queried_and_how_columns_are_named(fake, store, tmp_path):
    cfg = config(tmp_path, "fields:\n  Opportunity: {sa: Primary_SA__c}\n")
    rows = [{**r, "Primary_SA__c": ADA} for r in org()["Opportunity"]]
    fake.add("Opportunity", rows, types={"Primary_SA__c": "reference"})

    run(store, cfg=cfg)

    assert SELECT["Opportunity"].replace("Solution_Architect__c", "Primary_SA__c") in fake.soql()
    got = table(store.latest().url, "Opportunity")
    assert [r["Primary_SA__c"] for r in got] == [ADA, ADA, ADA]
    assert "Solution_Architect__c" not in got[0]


def test_missing_or_misspelt_fields_fail_before_any_query_with_every_one_listed(fake, store, tmp_path):
    cfg = config(tmp_path, "fields:\n  Opportunity: {stage: stagename, sa: Solution_Architect_c}\n"
                           "  Task: {sentiment: Sentiment__c}\n")  # fmt: skip
    del fake.objects["Lead"]

    with pytest.raises(ExtractionError) as failed:
        run(store, cfg=cfg)

    assert str(failed.value) == (
        "the field map names fields this Salesforce org does not have (fix `fields` in the configuration):\n"
        "  Opportunity: stagename (did you mean StageName?), Solution_Architect_c\n"
        "  Task: Sentiment__c\n"
        "  Lead: no such object, or not visible to this user\n"
        "nothing was committed: the latest snapshot is still none"
    )
    assert fake.soql() == []
    assert store.list() == [] and not (tmp_path / "store").exists()


# --------------------------------------------------------------------------- Bulk API 2.0


def test_above_the_threshold_a_bulk_job_streams_the_same_table_in_row_groups(fake, store, tmp_path):
    report = run(store, cfg=config(tmp_path, BULK))

    url = store.latest().url
    assert table(url, "Task") == expected("Task", org()["Task"])
    assert (report.objects["Task"].path, report.objects["Event"].path) == ("bulk", "rest")
    jobs = [r for r in fake.data_requests() if r.method == "POST"]
    assert [json.loads(r.body) for r in jobs] == [
        {"operation": "query", "columnDelimiter": "COMMA", "lineEnding": "LF", "query": SELECT["Task"]}]
    # The job reports InProgress once, then JobComplete: polled twice before its results are read.
    assert len(paths(fake, r"/jobs/query/750\w+$")) == 2
    results = [r.params for r in fake.data_requests() if r.path.endswith("/results")]
    assert results == [{"maxRecords": "1000"}] + [{"maxRecords": "1000", "locator": str(n)} for n in range(1000, 5000, 1000)]
    # Pages are gathered into row groups of about row_group_rows: memory holds one group, not the table.
    groups = pq.ParquetFile(f"{url}/Task.parquet").metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [3000, 1500]


# --------------------------------------------------------------------------- incremental


def test_task_and_event_are_merged_from_changes_since_the_previous_snapshot(fake, store):
    run(store, T0)
    at = "2026-11-23T12:00:00Z"
    edited, new = a_task(7, subject="Edited", system_modstamp=at), a_task(90000, subject="New", system_modstamp=at)
    fake.upsert("Task", api("Task", [edited, new]))
    fake.delete("Task", [sf_id("00T", 8)], at)
    fake.upsert("Event", api("Event", [event(id=E2, owner_id=ADA, subject="Moved", system_modstamp=at)]))
    fake.upsert("EventRelation", [relation(7, E3, LEE, at)])
    fake.delete("EventRelation", [sf_id("0RE", 2)], at)  # Pat leaves E1
    # Contact is a full copy: Lee's new address reaches events that did not change.
    fake.upsert("Contact", api("Contact", [contact(id=LEE, account_id=ACME, email="lee@acme.example")]))

    report = run(store, T1)

    url = store.latest().url
    tasks = {r["Id"]: r for r in org()["Task"]} | {r["Id"]: r for r in api("Task", [edited, new])}
    del tasks[sf_id("00T", 8)]
    assert table(url, "Task") == expected("Task", list(tasks.values()))
    events = {r["Id"]: r for r in org()["Event"]} | {E2: api("Event", [event(id=E2, owner_id=ADA, subject="Moved",
                                                                              system_modstamp=at)])[0]}  # fmt: skip
    attendees = {E1: "kim@lead.io;sam@gitlab.com", E2: "lee@acme.com;lee@acme.example", E3: "lee@acme.example"}
    assert table(url, "Event") == expected("Event", list(events.values()), attendees)
    second = fake.soql()[fake.soql().index("SELECT COUNT() FROM Task", 12):]
    assert second[:3] == ["SELECT COUNT() FROM Task", f"SELECT COUNT() FROM Task WHERE SystemModstamp > {SINCE}",
                          SELECT["Task"].replace(" FROM Task", f", IsDeleted FROM Task WHERE SystemModstamp > {SINCE}")]
    # Nothing changed in Lead: two counts, no query.
    assert second[3:5] == ["SELECT COUNT() FROM Lead", f"SELECT COUNT() FROM Lead WHERE SystemModstamp > {SINCE}"]
    # Through queryAll, which returns deleted rows: four counts and the three objects that changed.
    assert [r.path.split("/")[4] for r in fake.data_requests() if r.soql and "WHERE" in r.soql] == ["queryAll"] * 7
    task_report = report.objects["Task"]
    assert (task_report.mode, task_report.rows, task_report.changed, task_report.salesforce_count) == (
        "incremental", TASKS, 3, TASKS)  # fmt: skip
    assert report.previous.endswith("20261123T050000Z")


def test_a_previous_snapshot_without_fitting_tables_means_full_extraction(fake, store, tmp_path):
    # A hand-made snapshot: CSV text columns, no Lead or EventRelation table.
    store.commit_folder(write_snapshot(tmp_path / "csv", {"User": [user()]}), T0)

    report = run(store, T1)

    assert {o: r.mode for o, r in report.objects.items() if r.mode != "full"} == {}
    assert SELECT["Task"] in fake.soql() and not any("WHERE" in q for q in fake.soql())


def test_a_previous_snapshot_older_than_the_recycle_bin_means_full_extraction(fake, store):
    run(store, T0)
    first = len(fake.soql())

    report = run(store, T0 + timedelta(days=15))

    assert {r.mode for r in report.objects.values()} == {"full"}
    assert not any("WHERE" in q for q in fake.soql()[first:])


def test_a_record_quarantined_before_and_unchanged_since_stays_quarantined(fake, store):
    fake.upsert("Task", api("Task", [a_task(9999, activity_date="2026-13-01")]))
    run(store, T0)

    report = run(store, T1)

    assert report.objects["Task"].mode == "incremental"
    with open(f"{store.latest().url}/_quarantine.jsonl") as fh:
        assert [(q["record_id"], q["detail"]) for q in map(json.loads, fh)] == [
            (sf_id("00T", 9999), "ActivityDate: '2026-13-01' is not a date")]
    assert (report.objects["Task"].rows, report.objects["Task"].quarantined) == (TASKS, 1)


def test_an_incremental_result_that_does_not_add_up_is_extracted_in_full(fake, store):
    run(store, T0)
    first = len(fake.soql())
    fake.fail("miscount", when=lambda r: r.soql == "SELECT COUNT() FROM Task", times=2)

    report = run(store, T1)

    assert report.objects["Task"].mode == "full"
    assert [q for q in fake.soql()[first:] if "FROM Task" in q] == [
        "SELECT COUNT() FROM Task", f"SELECT COUNT() FROM Task WHERE SystemModstamp > {SINCE}",  # no changes
        "SELECT COUNT() FROM Task",  # the recount still disagrees with the merged table
        "SELECT COUNT() FROM Task", SELECT["Task"],
    ]
    assert table(store.latest().url, "Task") == expected("Task", org()["Task"])


# --------------------------------------------------------------------------- failures


def test_a_failure_commits_nothing_and_says_what_failed(fake, store, tmp_path):
    first = run(store, T0)
    fake.fail("request_limit", when=lambda r: r.soql == "SELECT COUNT() FROM Task")

    with pytest.raises(ExtractionError) as failed:
        run(store, T1)

    used = fake.api_used
    calls = used - int(first.api_usage.split("/")[0])
    assert str(failed.value) == (
        "Task: count: Salesforce refused the request: REQUEST_LIMIT_EXCEEDED (TotalRequests Limit exceeded.); "
        f"API usage seen: {used}/15000, of which this run made {calls}\n"
        "nothing was committed: the latest snapshot is still 20261123T050000Z"
    )
    assert list(failed.value.report.objects) == ORDER[:5]
    assert store.latest().name == "20261123T050000Z"
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["20261123T050000Z"]


def test_a_count_that_does_not_match_fails_the_run(fake, store):
    fake.fail("miscount", when=lambda r: r.soql == "SELECT COUNT() FROM Account", times=2)

    with pytest.raises(ExtractionError, match=r"^Account: 1 rows written and 0 quarantined, but SELECT COUNT\(\) "
                                              r"says 2 then 2\n"):  # fmt: skip
        run(store)
    assert store.latest() is None


def test_an_expired_session_during_rest_paging_logs_in_again_and_continues(fake, store):
    fake.fail("expire_session", when=lambda r: r.path.endswith("-2000"))

    report = run(store)

    assert fake.logins == 2 and report.logins == 2
    assert [p.rsplit("-", 1)[1] for p in paths(fake, r"/query/01g")] == ["2000", "2000", "4000"]
    assert len(table(store.latest().url, "Task")) == TASKS


def test_an_expired_session_during_a_bulk_job_logs_in_again_and_reads_on(fake, store, tmp_path):
    fake.fail("expire_session", when=lambda r: r.params.get("locator") == "2000")

    report = run(store, cfg=config(tmp_path, BULK))

    assert fake.logins == 2 and report.logins == 2
    locators = [r.params.get("locator") for r in fake.data_requests() if r.path.endswith("/results")]
    assert locators == [None, "1000", "2000", "2000", "3000", "4000"]
    assert table(store.latest().url, "Task") == expected("Task", org()["Task"])


def test_a_session_that_expires_again_right_after_logging_in_fails(fake, store, tmp_path):
    fake.fail("expire_session", when=lambda r: r.params.get("locator") == "2000", times=2)

    with pytest.raises(ExtractionError, match="^Task: Bulk API 2.0 query: the session expired again right after"):
        run(store, cfg=config(tmp_path, BULK))
    assert store.latest() is None


def test_a_direct_session_cannot_log_in_again(fake, store, monkeypatch):
    extra = {"instance_url": f"https://{INSTANCE}", "proxies": {"https": fake.proxy_url}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "salesforce", "extra": extra}))
    fake.fail("expire_session", when=lambda r: r.soql == "SELECT COUNT() FROM Task")

    with pytest.raises(ExtractionError, match="^Task: count: the session expired and connection 'salesforce_test' has a "
                                              "session id, not credentials"):  # fmt: skip
        run(store, session_id=fake.new_session())
    assert fake.logins == 0 and store.latest() is None


def test_unavailable_servers_and_dropped_connections_are_retried(fake, store, tmp_path):
    fake.fail("unavailable", when=lambda r: r.path.endswith("/Opportunity/describe"))
    fake.fail("drop", when=lambda r: r.params.get("locator") == "1000")
    fake.fail("drop", when=lambda r: r.soql == SELECT["Contact"])

    report = run(store, cfg=config(tmp_path, BULK))

    assert report.retries == 3
    assert len(paths(fake, r"/Opportunity/describe$")) == 2
    assert [r.params.get("locator") for r in fake.data_requests() if r.path.endswith("/results")][:3] == [None, "1000", "1000"]
    assert table(store.latest().url, "Task") == expected("Task", org()["Task"])
    assert table(store.latest().url, "Contact") == expected("Contact", org()["Contact"])


def test_retries_end_with_a_clear_error(fake, store):
    fake.fail("unavailable", when=lambda r: r.soql == SELECT["User"], times=10)

    with pytest.raises(ExtractionError, match=r"^User: query: HTTP 503 SERVER_UNAVAILABLE: Server temporarily "
                                              r"unavailable \(gave up after 3 attempts\)"):  # fmt: skip
        run(store)
    assert fake.soql() == ["SELECT COUNT() FROM User"] + [SELECT["User"]] * 3
    assert store.latest() is None


def test_malformed_records_are_quarantined_in_the_snapshot_not_fatal(fake, store):
    fake.upsert("Opportunity", api("Opportunity", [opportunity(id="", owner_id=SAM),
                                                   opportunity(id=sf_id("006", 9), owner_id=SAM, close_date="2026-02-30")]))  # fmt: skip

    report = run(store)

    url = store.latest().url
    assert table(url, "Opportunity") == expected("Opportunity", org()["Opportunity"])
    with open(f"{url}/_quarantine.jsonl") as fh:
        lines = [json.loads(line) for line in fh]
    assert [(q["object"], q["record_id"], q["reason"], q["detail"]) for q in lines] == [
        ("Opportunity", None, "blank_id", "Id is blank"),
        ("Opportunity", sf_id("006", 9), "bad_value", "CloseDate: '2026-02-30' is not a date"),
    ]
    assert lines[1]["record"]["CloseDate"] == "2026-02-30"
    opp = report.objects["Opportunity"]
    assert (opp.rows, opp.quarantined, opp.salesforce_count, report.quarantined) == (3, 2, 5, 2)


def test_a_broken_bulk_csv_row_is_quarantined_and_the_rest_kept(fake, store, tmp_path):
    fake.fail("break_row", when=lambda r: r.params.get("locator") == "1000")

    report = run(store, cfg=config(tmp_path, BULK))

    url = store.latest().url
    broken = sf_id("00T", 1999)
    assert table(url, "Task") == expected("Task", [r for r in org()["Task"] if r["Id"] != broken])
    with open(f"{url}/_quarantine.jsonl") as fh:
        assert [json.loads(line) for line in fh] == [{
            "object": "Task", "record_id": None, "reason": "malformed_record",
            "detail": "a CSV row with 1 fields, expected 20", "record": f'"{broken}"'}]  # fmt: skip
    assert (report.objects["Task"].rows, report.objects["Task"].quarantined) == (TASKS - 1, 1)


# --------------------------------------------------------------------------- the command


def test_the_command_extracts_and_prints_a_summary(fake, tmp_path, capsys):
    assert extract_cli(["--conn-id", CONN, "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert re.match(r"snapshot \S+/store/\d{8}T\d{6}Z: User 3 \(full, rest\), .* Task 4,500 \(full, rest\)", out)
    assert len(SnapshotStore(tmp_path / "store").list()) == 1


def test_the_command_exits_1_on_failure_and_2_on_bad_input(tmp_path, capsys):
    assert extract_cli(["--conn-id", "nowhere", "--store", str(tmp_path / "store")]) == 1
    assert capsys.readouterr().err.startswith(
        "error: no Airflow connection 'nowhere' (set AIRFLOW_CONN_NOWHERE)\nnothing was committed")
    assert extract_cli(["--conn-id", CONN, "--store", str(tmp_path), "--config", str(tmp_path / "none.yaml")]) == 2
    assert "configuration file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- the snapshot DAG's steps


def test_the_dag_steps_stage_validate_then_commit_through_the_same_extraction(fake, store, tmp_path):
    from sa_hygiene.pipeline import snapshots

    cfg = config(tmp_path, f"source: {{kind: salesforce}}\nsalesforce: {{conn_id: {CONN}}}\nstore: {{url: {store.url}}}\n")
    staged = snapshots.stage_snapshot(cfg, T0)
    assert staged.source == f"salesforce:{CONN}" and staged.taken_at == T0
    assert store.latest() is None  # staged, validated next, not yet listed
    checked = snapshots.validate_snapshot(cfg, staged.staged)
    assert checked.rows["Opportunity"] == len(org()["Opportunity"])
    typed = Path(staged.staged) / "_typed" / "_manifest.json"
    written = typed.read_text()  # typed while validating, with the frames the validation read
    url = snapshots.commit_snapshot(cfg, staged.staged, T0, staged.source)
    assert store.latest().url == url and store.manifest(store.latest())["source"] == f"salesforce:{CONN}"
    assert (Path(url) / "_typed" / "_manifest.json").read_text() == written  # the commit did not type it again
    snap, at_read = read_snapshot(url, cfg), read_snapshot(url, cfg, typed=False)
    assert all(snap[obj].equals(at_read[obj]) for obj in at_read.tables) and len(snap.quarantine) == len(at_read.quarantine)


def test_a_failed_staged_extraction_leaves_nothing_behind(fake, store, tmp_path):
    fake.fail("request_limit", when=lambda r: r.soql == "SELECT COUNT() FROM Task")
    with pytest.raises(ExtractionError):
        run(store, T0, commit=False)
    assert list((tmp_path / "store").iterdir()) == []
