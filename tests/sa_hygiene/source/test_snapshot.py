import pandas as pd
import pytest
from builders import account, contact, event, opportunity, task, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.snapshot import SnapshotError, read_snapshot

pytestmark = pytest.mark.unit
CFG = load_config()


SA = user(id="0055e0000000SA1AAA")
AE = user(id="0055e0000000AE1AAA", role_type="AE")


def org(**extra):
    return {"User": [SA, AE], **extra}


def quarantined(snap, obj):
    q = snap.quarantine[snap.quarantine["object"] == obj]
    return dict(zip(q["record_id"], q["reason"], strict=True))


def test_types_and_blank_values(tmp_path):
    tables = org(
        Opportunity=[
            opportunity(id="0065e0000000001AAA", owner_id=AE["id"], sa=f"  {SA['id']}  ", iacv="  ",
                        te_start="2026-11-02", te_status="   ", is_ps="TRUE", stage="3-Technical Evaluation"),
        ],
        Task=[task(owner_id=SA["id"], activity_types="Demo; Discovery Session ;", persona_levels=" ",
                   created="2026-11-23T15:04:05-05:00")],
    )  # fmt: skip
    snap = read_snapshot(write_snapshot(tmp_path, tables), CFG)
    assert snap.quarantine.empty
    o = snap["Opportunity"].iloc[0]
    assert o["sa"] == SA["id"]
    assert o["iacv"] == 0.0
    assert pd.isna(o["te_status"])
    assert o["te_start"] == pd.Timestamp("2026-11-02")
    assert o["is_ps"] is True or o["is_ps"] == True  # noqa: E712
    assert o["rank"] == 3 and not o["lost"]
    t = snap["Task"].iloc[0]
    assert t["activity_types"] == ["Demo", "Discovery Session"]
    assert t["persona_levels"] == []
    assert t["created"] == pd.Timestamp("2026-11-23T20:04:05Z")
    assert str(snap["Task"]["created"].dtype) == "datetime64[us, UTC]"


def test_fifteen_and_eighteen_character_ids_share_a_key(tmp_path):
    tables = org(
        Opportunity=[opportunity(id="0065e0000000777AAA", owner_id=AE["id"][:15], sa=SA["id"][:15])]
    )
    snap = read_snapshot(write_snapshot(tmp_path, tables), CFG)
    assert snap.quarantine.empty  # the 15-character references found their 18-character users
    assert snap["Opportunity"]["key"].tolist() == ["0065e0000000777"]
    assert snap["User"]["key"].tolist() == [SA["id"][:15], AE["id"][:15]]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"id": ""}, "blank_id"),
        ({"id": "   "}, "blank_id"),
        ({"id": "006-bad"}, "malformed_id"),
        ({"id": "0065e0000000001AA"}, "malformed_id"),  # 17 characters
        ({"stage": "Negotiation"}, "unknown_stage"),
        ({"stage": ""}, "unknown_stage"),
        ({"iacv": "-1"}, "negative_iacv"),
        ({"iacv": "lots"}, "bad_number"),
        ({"te_start": "2026-02-30"}, "bad_date"),
        ({"close_date": "23/11/2026"}, "bad_date"),
        ({"stage3_date": "2026-1-5"}, "bad_date"),
        ({"last_modified": "yesterday"}, "bad_datetime"),
        ({"is_closed": "maybe"}, "bad_boolean"),
        ({"sa": "0055e0000000NOPEAAA"}, "missing_reference"),
        ({"owner_id": ""}, "missing_reference"),
    ],
)
def test_each_bad_opportunity_is_quarantined_with_its_reason(tmp_path, row, reason):
    tables = org()
    good = opportunity(owner_id=AE["id"], sa=SA["id"])
    bad = opportunity(**{"owner_id": AE["id"], "sa": SA["id"], **row})
    tables["Opportunity"] = [good, bad]
    snap = read_snapshot(write_snapshot(tmp_path, tables), CFG)
    q = snap.quarantine
    assert len(q) == 1 and q.iloc[0]["reason"] == reason and q.iloc[0]["object"] == "Opportunity"
    assert q.iloc[0]["record_id"] == (bad["id"].strip() or None)
    assert q.iloc[0]["detail"]
    assert snap["Opportunity"]["id"].tolist() == [good["id"]]  # the others are read as usual


def test_lost_stages_are_not_unknown(tmp_path):
    tables = org()
    tables["Opportunity"] = [
        opportunity(owner_id=AE["id"], stage=s, is_closed=c, is_won=w)
        for s, c, w in [("8-Closed Lost", "true", "false"), ("10-Duplicate", "true", "false"),
                        ("Closed Lost (legacy)", "true", "false"), ("Closed Won", "true", "true"),
                        ("7-Closing", "false", "false")]
    ]  # fmt: skip
    o = read_snapshot(write_snapshot(tmp_path, tables), CFG)["Opportunity"]
    assert o["lost"].tolist() == [True, True, True, False, False]
    assert o["rank"].fillna(-1).tolist() == [-1, -1, -1, 8, 7]


def test_duplicates_keep_the_latest_systemmodstamp(tmp_path):
    tables = org()
    old = opportunity(id="0065e0000000042AAA", owner_id=AE["id"], stage="1-Discovery", system_modstamp="2026-11-01T00:00:00Z")
    new = dict(old, stage="2-Scoping", system_modstamp="2026-11-20T00:00:00Z")
    short = dict(old, id="0065e0000000042", stage="0-Pending Acceptance", system_modstamp="2026-10-01T00:00:00Z")
    tables["Opportunity"] = [old, new, short]
    snap = read_snapshot(write_snapshot(tmp_path, tables), CFG)
    assert snap["Opportunity"]["stage"].tolist() == ["2-Scoping"]
    q = snap.quarantine
    assert sorted(q["record_id"]) == sorted([old["id"], short["id"]]) and set(q["reason"]) == {"duplicate_id"}


def test_tasks_and_events_quarantine_too(tmp_path):
    tables = org(
        Task=[task(owner_id=SA["id"]), task(id="00T5e0000000BADAAA", owner_id=SA["id"], activity_date="someday"),
              task(id="00T5e0000000NOWAAA", owner_id="0055e0000000GONEAA")],
        Event=[event(owner_id=SA["id"]), event(id="00U5e0000000BADAAA", owner_id=SA["id"], end="soon")],
    )  # fmt: skip
    snap = read_snapshot(write_snapshot(tmp_path, tables), CFG)
    assert quarantined(snap, "Task") == {"00T5e0000000BADAAA": "bad_date", "00T5e0000000NOWAAA": "missing_reference"}
    assert quarantined(snap, "Event") == {"00U5e0000000BADAAA": "bad_datetime"}
    assert len(snap["Task"]) == 1 and len(snap["Event"]) == 1


def test_missing_file_and_missing_column_are_clear_errors(tmp_path):
    tables = org()
    path = write_snapshot(tmp_path / "a", tables)
    (path / "Event.csv").unlink()
    with pytest.raises(SnapshotError, match=r"Event\.parquet \(or \.csv\): missing file"):
        read_snapshot(path, CFG)
    path = write_snapshot(tmp_path / "b", tables, drop={"Opportunity": ["StageName", "IsWon"]})
    with pytest.raises(SnapshotError, match=r"Opportunity\.csv: missing required column\(s\): StageName, IsWon"):
        read_snapshot(path, CFG)
    with pytest.raises(SnapshotError, match="no such snapshot directory"):
        read_snapshot(tmp_path / "nowhere", CFG)


def test_unreadable_files_are_clear_errors_and_a_byte_order_mark_is_fine(tmp_path):
    path = write_snapshot(tmp_path / "pq", org(), fmt="parquet")
    (path / "Task.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(SnapshotError, match=r"Task\.parquet: not a readable Parquet table"):
        read_snapshot(path, CFG)
    path = write_snapshot(tmp_path / "csv", org())
    (path / "Event.csv").write_bytes(b'Id,OwnerId\n"unterminated,x\n')
    with pytest.raises(SnapshotError, match=r"Event\.csv: not a readable CSV table"):
        read_snapshot(path, CFG)
    path = write_snapshot(tmp_path / "bom", org(Opportunity=[opportunity(owner_id=AE["id"])]))
    for f in path.glob("*.csv"):  # what Excel writes
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert len(read_snapshot(path, CFG)["Opportunity"]) == 1


def test_optional_columns_may_be_absent(tmp_path):
    tables = org(Opportunity=[opportunity(owner_id="0055e0000000AE1AAA")])
    path = write_snapshot(tmp_path, tables, drop={"Opportunity": ["Name", "CloseDate", "SystemModstamp"]})
    o = read_snapshot(path, CFG)["Opportunity"]
    assert o["name"].isna().all() and o["close_date"].isna().all()


def test_csv_and_parquet_give_the_same_frames(tmp_path):
    tables = org(
        Opportunity=[opportunity(owner_id=AE["id"], sa=SA["id"], iacv="25000.5", stage="4-Proposal",
                                 te_start="2026-10-01", te_end="2026-10-20", te_status="Win"),
                     opportunity(owner_id=AE["id"], iacv="oops")],
        Task=[task(owner_id=SA["id"], activity_types="Demo;Other", description=" <!here> hi ")],
        Event=[event(owner_id=SA["id"], attendee_emails="a@x.com; B@Y.com")],
        Account=[account(website="https://www.acme.com")],
        Contact=[contact(email="Pat@Acme.com")],
    )  # fmt: skip
    a = read_snapshot(write_snapshot(tmp_path / "csv", tables, fmt="csv"), CFG)
    b = read_snapshot(write_snapshot(tmp_path / "pq", tables, fmt="parquet"), CFG)
    for obj in a.tables:
        pd.testing.assert_frame_equal(a[obj], b[obj], check_dtype=True)
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    assert a["Task"]["description"].iloc[0] == "<!here> hi"


def test_typed_parquet_columns_are_read_natively(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = org(Opportunity=[opportunity(owner_id="0055e0000000AE1AAA")])
    path = write_snapshot(tmp_path, tables, fmt="parquet")
    t = pq.read_table(path / "Opportunity.parquet")
    t = t.set_column(t.schema.get_field_index("IsClosed"), "IsClosed", pa.array([True]))
    t = t.set_column(t.schema.get_field_index("Incremental_ACV__c"), "Incremental_ACV__c", pa.array([12.5]))
    t = t.set_column(t.schema.get_field_index("CloseDate"), "CloseDate", pa.array([pd.Timestamp("2026-12-01").date()]))
    pq.write_table(t, path / "Opportunity.parquet")
    o = read_snapshot(path, CFG)["Opportunity"].iloc[0]
    assert o["is_closed"] and o["iacv"] == 12.5 and o["close_date"] == pd.Timestamp("2026-12-01")


def test_parquet_wins_over_csv(tmp_path):
    tables = org()
    path = write_snapshot(tmp_path, tables, fmt="csv")
    write_snapshot(tmp_path, {"User": [user(id="0055e0000000PQ1AAA")]}, fmt="parquet")
    assert read_snapshot(path, CFG)["User"]["id"].tolist() == ["0055e0000000PQ1AAA"]


def test_field_map_reads_an_org_with_other_names(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("fields:\n  Opportunity:\n    sa: Primary_SA__c\n")
    cfg = load_config(cfg_path)
    tables = org(Opportunity=[opportunity(owner_id=AE["id"], sa=SA["id"])])
    path = write_snapshot(tmp_path / "s", tables)
    text = (path / "Opportunity.csv").read_text().replace("Solution_Architect__c", "Primary_SA__c")
    (path / "Opportunity.csv").write_text(text)
    assert read_snapshot(path, cfg)["Opportunity"]["sa"].tolist() == [SA["id"]]
    with pytest.raises(SnapshotError, match="Solution_Architect__c"):
        read_snapshot(path, CFG)


NOT_AMOUNTS = ["inf", "-inf", "Infinity", "1e309", "NaN", "nan"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_infinite_and_nan_iacv_are_bad_numbers_in_every_format(tmp_path, fmt):
    good = opportunity(owner_id=AE["id"], sa=SA["id"], iacv="25000")
    bad = [opportunity(owner_id=AE["id"], sa=SA["id"], iacv=text) for text in NOT_AMOUNTS]
    snap = read_snapshot(write_snapshot(tmp_path, org(Opportunity=[good, *bad]), fmt=fmt), CFG)
    assert quarantined(snap, "Opportunity") == {o["id"]: "bad_number" for o in bad}
    assert snap["Opportunity"]["iacv"].tolist() == [25000.0]


def test_parquet_float_nan_and_infinity_iacv_are_bad_numbers_too(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    opps = [opportunity(owner_id=AE["id"], sa=SA["id"]) for _ in range(5)]
    path = write_snapshot(tmp_path, org(Opportunity=opps), fmt="parquet")
    table = pq.read_table(path / "Opportunity.parquet")
    iacv = pa.array([25000.0, float("nan"), float("inf"), float("-inf"), None], pa.float64())
    pq.write_table(table.set_column(table.column_names.index("Incremental_ACV__c"), "Incremental_ACV__c", iacv),
                   path / "Opportunity.parquet")  # fmt: skip
    snap = read_snapshot(path, CFG)
    assert quarantined(snap, "Opportunity") == {o["id"]: "bad_number" for o in opps[1:4]}
    assert snap["Opportunity"]["iacv"].tolist() == [25000.0, 0.0]  # blank is no IACV, as in CSV


def test_parquet_read_in_many_batches_gives_the_frames_of_one(tmp_path, monkeypatch):
    """Batches (chunks) must not change a value: blanks and white space across chunk edges,
    a duplicate Id in another batch, a bad date among good ones, lists split per chunk."""
    import sa_hygiene.source.snapshot as snapshot

    tasks = [task(owner_id=SA["id"], subject=s, activity_types=a, activity_date=d)
             for s, a, d in [("  Call ", "Demo; Other", "2026-11-02"), ("", " ", "2026-11-03"), ("\u00a0x\u3000", "Demo", ""),
                             ("ok", "", "2026-02-30"), ("é ", "Other ;", "2026-11-04")]]  # fmt: skip
    tasks.append({**tasks[0], "system_modstamp": "2026-11-23T00:00:00Z"})  # the same Id again, later
    tables = org(Task=tasks)
    one = read_snapshot(write_snapshot(tmp_path / "one", tables, fmt="parquet"), CFG)
    monkeypatch.setattr(snapshot, "PARQUET_BATCH_ROWS", 2)
    many = read_snapshot(write_snapshot(tmp_path / "many", tables, fmt="parquet"), CFG)
    assert many["Task"]["id"].array._pa_array.num_chunks > 1
    for obj in one.tables:
        pd.testing.assert_frame_equal(one[obj], many[obj], check_dtype=True)
    pd.testing.assert_frame_equal(one.quarantine, many.quarantine)
    t = many["Task"]
    assert t["subject"].fillna("-").tolist() == ["-", "x", "é", "Call"]
    assert [list(v) for v in t["activity_types"]] == [[], ["Demo"], ["Other"], ["Demo", "Other"]]
    assert sorted(many.quarantine["reason"]) == ["bad_date", "duplicate_id"]
