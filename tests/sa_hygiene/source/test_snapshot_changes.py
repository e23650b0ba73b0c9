"""Changes folders (CONTRACT.md § 1b): snapshot + changes reads as the snapshot that held them."""

import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from builders import event, opportunity, task, user, write_changes, write_snapshot
from commands import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from org_strategies import AS_OF, EVENT_IDS, TASK_IDS, USER_IDS, events, opps, orgs, tasks

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.schema import OBJECTS, default_field_map
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.snapshot import read_snapshot

pytestmark = pytest.mark.unit

FMAP = default_field_map()
KINDS = {"date": pa.date32(), "datetime": pa.timestamp("ms", tz="UTC"), "bool": pa.bool_(), "number": pa.float64()}


def typed_parquet(directory: Path) -> Path:
    """Each CSV table as Parquet typed as the extraction types it (dates, datetimes, booleans,
    numbers), so that a text change meets a typed snapshot column. Values that do not cast stay text."""
    for path in sorted(directory.glob("*.csv")):
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in open(path).readline().strip().split(",")}))  # fmt: skip
        kinds = {FMAP[path.stem][n]: f.kind for n, f in OBJECTS[path.stem].items()}
        cols = {}
        for name in table.column_names:
            col = pc.if_else(pc.equal(table[name], ""), pa.scalar(None, pa.string()), table[name])
            try:
                cols[name] = pc.cast(col, KINDS[kinds[name]]) if kinds.get(name) in KINDS else col
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                cols[name] = col
        pq.write_table(pa.table(cols), path.with_suffix(".parquet"))
        path.unlink()
    return directory


def merged(snapshot: dict[str, list[dict]], changes: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The contract's words, record by record: the independent reading the engine is checked against."""
    out = {obj: list(rows) for obj, rows in snapshot.items()}
    for obj, rows in changes.items():
        keys = {r["id"].strip()[:15] for r in rows}
        kept = [r for r in out.get(obj, []) if r["id"].strip()[:15] not in keys]
        live = [{k: v for k, v in r.items() if k != "is_deleted"} for r in rows
                if r.get("is_deleted", "").strip().lower() not in ("true", "1", "yes")]  # fmt: skip
        out[obj] = kept + live
    return out


def outcome(result) -> tuple[list, list]:
    alerts = sorted(json.dumps(a, sort_keys=True) for a in result.alert_records())
    quarantine = sorted(json.dumps(q, sort_keys=True) for q in result.quarantine_records())
    return alerts, quarantine


# --------------------------------------------------------------------------- examples


def test_a_change_replaces_the_record_whole_adds_new_ids_and_deletes(tmp_path):
    sa = user(id="0055e0000000SA1AAA")
    logged = task(id="00T5e0000000T01", owner_id=sa["id"], activity_date="2026-11-24", is_closed="false", subject="Old")
    gone = task(id="00T5e0000000T02AAA", owner_id=sa["id"])
    kept = task(id="00T5e0000000T03AAA", owner_id=sa["id"])
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Task": [logged, gone, kept]})
    changes = write_changes(tmp_path / "c", {"Task": [
        {**logged, "id": "00T5e0000000T01AAA", "is_closed": "true", "description": ""},  # 18 chars: the same record
        {"id": "00T5e0000000T02", "is_deleted": "true", "owner_id": ""},  # deleted, named by its 15 characters
        task(id="00T5e0000000T04AAA", owner_id=sa["id"], subject="New", is_deleted=""),
    ]})  # fmt: skip
    tasks_ = read_snapshot(snap, load_config(), changes=changes)["Task"].set_index("id")
    assert sorted(tasks_.index) == ["00T5e0000000T01AAA", "00T5e0000000T03AAA", "00T5e0000000T04AAA"]
    assert tasks_.loc["00T5e0000000T01AAA", "is_closed"]
    assert pd.isna(tasks_.loc["00T5e0000000T01AAA", "description"])  # replaced whole: blank now
    assert tasks_.loc["00T5e0000000T03AAA", "subject"] == "Demo"


def test_objects_absent_from_the_changes_are_unchanged_and_bad_changes_are_quarantined(tmp_path):
    sa = user(id="0055e0000000SA1AAA")
    opp = opportunity(id="0065e0000000OP1AAA", owner_id=sa["id"])
    t = task(id="00T5e0000000T01AAA", owner_id=sa["id"])
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Opportunity": [opp], "Task": [t]})
    changes = write_changes(tmp_path / "c", {"Task": [
        {**t, "activity_date": "24/11/2026"},  # replaces the good row, then is quarantined like any bad row
        task(id="", owner_id=sa["id"]),
        task(id="00T5e0000000T09AAA", owner_id=sa["id"], is_deleted="perhaps"),
    ]})  # fmt: skip
    snapshot = read_snapshot(snap, load_config(), changes=changes)
    assert snapshot["Task"].empty
    assert list(snapshot["Opportunity"]["id"]) == [opp["id"]]
    q = snapshot.quarantine
    assert sorted(zip(q["record_id"].fillna(""), q["reason"], strict=True)) == [
        ("", "blank_id"), ("00T5e0000000T01AAA", "bad_date"), ("00T5e0000000T09AAA", "bad_boolean")]  # fmt: skip


def test_a_changes_file_without_a_required_column_is_a_clear_error(tmp_path):
    from sa_hygiene.source.snapshot import SnapshotError

    snap = write_snapshot(tmp_path / "s", {})
    changes = tmp_path / "c"
    changes.mkdir()
    (changes / "Task.csv").write_text("Id,Subject\n00T5e0000000T01AAA,x\n")
    with pytest.raises(SnapshotError, match=r"Task.csv: missing required column\(s\): OwnerId"):
        read_snapshot(snap, load_config(), changes=changes)


def test_event_relation_and_other_objects_outside_the_contract_are_accepted_and_not_read(tmp_path):
    snap = write_snapshot(tmp_path / "s", {})
    changes = tmp_path / "c"
    changes.mkdir()
    (changes / "EventRelation.csv").write_text("Id,EventId,RelationId,SystemModstamp,IsDeleted\n0RE5e0000000R01AAA,x,y,,\n")
    assert read_snapshot(snap, load_config(), changes=changes)["Event"].empty


def test_typed_parquet_snapshot_with_text_changes_reads_as_the_merged_text_snapshot(tmp_path):
    sa = user(id="0055e0000000SA1AAA")
    rows = {"User": [sa], "Task": [task(id=f"00T5e0000000T0{i}AAA", owner_id=sa["id"], activity_types="Demo;Webinar",
                                        activity_date="2026-11-24", is_closed="false") for i in range(3)]}  # fmt: skip
    change = {"Task": [{**rows["Task"][0], "is_closed": "true", "created": "2026-11-23T12:00:00.5+02:00"}]}
    typed = typed_parquet(write_snapshot(tmp_path / "s", rows))
    assert pq.read_schema(typed / "Task.parquet").field("IsClosed").type == pa.bool_()
    got = evaluate_snapshots(str(typed), None, load_config(), AS_OF, changes=str(write_changes(tmp_path / "c", change)))
    want = evaluate_snapshots(str(write_snapshot(tmp_path / "m", merged(rows, change))), None, load_config(), AS_OF)
    assert outcome(got) == outcome(want)
    assert sum(a["workflow"] == "wf-11" for a in got.alert_records()) == 2


# --------------------------------------------------------------------------- the property


@st.composite
def changes_of(draw, snapshot):
    """Random changes to Task, Event and Opportunity: updates of existing records (by their 18- or
    15-character Id), new records, deletions (also of records the snapshot never had), each Id at
    most once per folder."""
    out = {}
    plans = [("Task", TASK_IDS + [f"00T5e0000000N{i:02d}AAA" for i in range(4)], tasks),
             ("Event", EVENT_IDS + [f"00U5e0000000N{i:02d}AAA" for i in range(3)], events),
             ("Opportunity", [o["id"] for o in snapshot["Opportunity"]] + ["0065e0000000N00AAA"], opps)]  # fmt: skip
    for obj, pool, rows_of in plans:
        if draw(st.integers(0, 3)) == 0:
            continue  # the object is absent from the folder
        fresh = [r for r in draw(rows_of()) if r["id"]]
        ids = draw(st.lists(st.sampled_from(pool), unique_by=lambda i: i[:15], max_size=6))
        rows = []
        for i, rid in enumerate(ids):
            if fresh:
                body = dict(fresh[i % len(fresh)])
            else:
                body = {"Task": task, "Event": event, "Opportunity": opportunity}[obj](owner_id=USER_IDS[0])
            body["id"] = draw(st.sampled_from([rid, rid[:15]]))
            body["is_deleted"] = draw(st.sampled_from(["", "", "false", "FALSE", "0", "true", "True", "1"]))
            rows.append(body)
        out[obj] = rows
    return out


@st.composite
def snapshots_and_changes(draw):
    current, previous = draw(orgs())
    for obj in ("Task", "Event"):  # 15-character Ids in the snapshot too
        current[obj] = [{**r, "id": draw(st.sampled_from([r["id"], r["id"][:15]]))} for r in current[obj]]
    return current, previous, draw(changes_of(current))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots_and_changes(), st.sampled_from(["csv", "typed"]), st.sampled_from(["csv", "parquet"]))
def test_snapshot_plus_changes_gives_the_alerts_of_the_merged_snapshot(case, snapshot_format, changes_format):
    current, previous, changes = case
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        snap = write_snapshot(tmp / "s", current)
        if snapshot_format == "typed":
            typed_parquet(snap)
        prev = str(write_snapshot(tmp / "p", previous)) if previous else None
        delta = write_changes(tmp / "c", changes, changes_format)
        whole = write_snapshot(tmp / "m", merged(current, changes))
        got = evaluate_snapshots(str(snap), prev, load_config(), AS_OF, changes=str(delta))
        want = evaluate_snapshots(str(whole), prev, load_config(), AS_OF)
        assert outcome(got) == outcome(want)


# --------------------------------------------------------------------------- the command line


def test_evaluate_with_changes_on_the_command_line(tmp_path):
    sa = user(id="0055e0000000SA1AAA")
    due = task(id="00T5e0000000T01AAA", owner_id=sa["id"], activity_date="2026-11-24", is_closed="false")
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Task": [due]})
    changes = write_changes(tmp_path / "c", {"Task": [{**due, "is_closed": "true"}]})
    before = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24")
    after = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--changes", str(changes))
    assert before.returncode == after.returncode == 0, after.stderr
    assert [json.loads(line)["workflow"] for line in before.stdout.splitlines()] == ["wf-11"]
    assert after.stdout == ""


def test_evaluate_with_a_missing_changes_folder_exits_2(tmp_path):
    snap = write_snapshot(tmp_path / "s", {})
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--changes", str(tmp_path / "nowhere"))
    assert r.returncode == 2
    assert f"{tmp_path / 'nowhere'}: no such changes directory" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("where", ["root", "unknown"])
def test_a_folder_that_is_no_changes_window_is_exit_2_naming_what_was_expected(tmp_path, where):
    sa = user(id="0055e0000000SA1AAA")
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Task": [task(owner_id=sa["id"])]})
    root = tmp_path / "feed"
    write_changes(root / "2026-11-24T1200", {"Task": [task(owner_id=sa["id"])]})  # one window inside the root
    folder = root if where == "root" else tmp_path / "other"
    if where == "unknown":
        folder.mkdir()
        (folder / "Widget.csv").write_text("Id\n1\n")
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--changes", str(folder))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{folder}: no changes tables here" in r.stderr and "not the feed's root" in r.stderr
