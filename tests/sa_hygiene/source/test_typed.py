"""Snapshots typed at commit read exactly as snapshots typed at read: the same frames, the same
quarantine (rows and reasons), the same alerts; anything the typed form cannot serve is typed
from the raw tables and said once in the log."""

import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from builders import event, opportunity, task, user, write_changes, write_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from org_strategies import AS_OF
from source.test_snapshot_changes import outcome, snapshots_and_changes, typed_parquet

from sa_hygiene.contract.config import load_config
from sa_hygiene.demo.org import write_demo_org
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot
from sa_hygiene.source.store import ChangesFeed, SnapshotStore, url_to_fs
from sa_hygiene.source.typed import TYPED_DIR, typed_changes, write_typed_changes

pytestmark = pytest.mark.unit
CFG = load_config()
TAKEN = datetime(2026, 11, 24, 4, tzinfo=UTC)

SA = user(id="0055e0000000SA1AAA")
AE = user(id="0055e0000000AE1AAA", role_type="AE")


def commit(tmp_path: Path, folder: Path, cfg=CFG) -> str:
    return SnapshotStore(str(tmp_path / "store")).commit_folder(folder, TAKEN, "test", cfg=cfg).url


def quarantine_rows(snap) -> list[tuple]:
    q = snap.quarantine
    return sorted(
        zip(q["object"], q["record_id"].fillna(""), q["reason"], q["detail"].astype(str), strict=True)
    )


def assert_same(typed, raw) -> None:
    assert list(typed.tables) == list(raw.tables)
    for obj in raw.tables:
        pd.testing.assert_frame_equal(typed[obj], raw[obj], check_exact=True, obj=obj)
    assert quarantine_rows(typed) == quarantine_rows(raw)
    pd.testing.assert_frame_equal(typed.quarantine.sort_values(["object", "record_id"], ignore_index=True),
                                  raw.quarantine.sort_values(["object", "record_id"], ignore_index=True))  # fmt: skip


BAD_ROWS = {
    "Opportunity": [
        opportunity(owner_id=AE["id"], sa=f"  {SA['id']}  ", iacv="  ", te_status="   ", is_ps="TRUE"),
        opportunity(id=""), opportunity(id="   ", owner_id=AE["id"]), opportunity(id="006-bad", owner_id=AE["id"]),
        opportunity(id="0065e0000000001AA", owner_id=AE["id"]), opportunity(owner_id=AE["id"], stage="Negotiation"),
        opportunity(owner_id=AE["id"], iacv="-1"), opportunity(owner_id=AE["id"], iacv="lots"),
        opportunity(owner_id=AE["id"], iacv="inf"), opportunity(owner_id=AE["id"], te_start="2026-02-30"),
        opportunity(owner_id=AE["id"], close_date="23/11/2026"), opportunity(owner_id=AE["id"], stage3_date="0999-01-05"),
        opportunity(owner_id=AE["id"], last_modified="yesterday"), opportunity(owner_id=AE["id"], is_closed="maybe"),
        opportunity(owner_id=AE["id"], sa="0055e0000000NOPEAAA"), opportunity(owner_id=""),
        opportunity(id="0065e0000000042AAA", owner_id=AE["id"], stage="1-Discovery", system_modstamp="2026-11-01T00:00:00Z"),
        opportunity(id="0065e0000000042", owner_id=AE["id"], stage="2-Scoping", system_modstamp="2026-11-20T00:00:00+01:00"),
        opportunity(owner_id=AE["id"], stage="8-Closed Lost", is_closed="true", is_won="false"),
    ],
    "Task": [task(owner_id=SA["id"], activity_types=" Demo ;; Webinar; "), task(owner_id=SA["id"], activity_date="someday"),
             task(owner_id="0055e0000000GONEAA"), task(owner_id=SA["id"], created="2026-11-23 12:00")],
    "Event": [event(owner_id=SA["id"]), event(owner_id=SA["id"], end="soon"),
              event(owner_id=SA["id"], start="2026-11-23T10:00:00+05:30")],
}  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_bad_rows_are_quarantined_alike_typed_at_commit_or_at_read(tmp_path, fmt):
    folder = write_snapshot(
        tmp_path / "raw", {"User": [SA, AE, user(id="0055e0000000SA1")], **BAD_ROWS}, fmt=fmt
    )
    if fmt == "parquet":
        typed_parquet(write_snapshot(folder, {"User": [SA, AE], **BAD_ROWS}))
    url = commit(tmp_path, folder)
    assert (Path(url) / TYPED_DIR / "_manifest.json").exists()
    raw = read_snapshot(folder, CFG)
    assert len(raw.quarantine) >= 15
    assert_same(read_snapshot(url, CFG), raw)
    assert_same(
        read_snapshot(url, CFG, objects=PREVIOUS_OBJECTS),
        read_snapshot(folder, CFG, objects=PREVIOUS_OBJECTS),
    )


def test_the_demo_org_typed_at_commit_reads_and_alerts_as_typed_at_read(tmp_path):
    org = tmp_path / "org"
    write_demo_org(org, AS_OF, scale=0.05)
    store = SnapshotStore(str(tmp_path / "store"))
    previous = store.commit_folder(org / "previous", datetime(2026, 11, 23, 4, tzinfo=UTC), "demo", cfg=CFG)
    current = store.commit_folder(org / "current", TAKEN, "demo", cfg=CFG)
    raw = read_snapshot(org / "current", CFG)
    assert len(raw.quarantine) > 0
    assert_same(read_snapshot(current.url, CFG), raw)
    assert_same(read_snapshot(current.url, CFG, typed=False), raw)
    got = evaluate_snapshots(current.url, previous.url, CFG, AS_OF)
    want = evaluate_snapshots(str(org / "current"), str(org / "previous"), CFG, AS_OF)
    assert outcome(got) == outcome(want) and len(outcome(got)[0]) > 0


def test_a_stale_typed_form_is_typed_again_and_said_once(tmp_path, caplog):
    folder = write_snapshot(tmp_path / "raw", {"User": [SA, AE], **BAD_ROWS})
    url = commit(tmp_path, folder)
    # Another field map: Opportunity's Primary SA read from another column.
    other = load_config().model_copy(deep=True)
    other.fields["Opportunity"]["sa"] = "OwnerId"
    caplog.set_level(logging.INFO, logger="sa_hygiene.source.typed")
    for _ in range(2):
        assert_same(read_snapshot(url, other), read_snapshot(folder, other))
    said = [r.getMessage() for r in caplog.records if "typed at read" in r.getMessage()]
    assert len(said) == 1 and "another field map" in said[0]
    # A raw table rewritten after the commit is not read through its old typed form.
    pq.write_table(pq.read_table(Path(url) / "Task.parquet").slice(0, 1), Path(url) / "Task.parquet")
    assert len(read_snapshot(url, CFG)["Task"]) == len(read_snapshot(url, CFG, typed=False)["Task"]) == 1
    # A store committed before typing at commit (no typed form) reads as before.
    shutil.rmtree(Path(url) / TYPED_DIR)
    assert_same(read_snapshot(url, CFG), read_snapshot(url, CFG, typed=False))
    assert any("committed before" in r.getMessage() for r in caplog.records)


def test_a_raw_folder_is_typed_at_read_without_a_word(tmp_path, caplog):
    folder = write_snapshot(tmp_path / "raw", {"User": [SA, AE], **BAD_ROWS})
    caplog.set_level(logging.INFO, logger="sa_hygiene.source.typed")
    read_snapshot(folder, CFG)
    assert not (folder / TYPED_DIR).exists() and not caplog.records


def test_a_folder_that_cannot_be_typed_is_committed_raw_and_still_a_clear_error(tmp_path):
    from sa_hygiene.source.snapshot import SnapshotError

    folder = write_snapshot(tmp_path / "raw", {"User": [SA]}, drop={"Task": ["OwnerId"]})
    url = commit(tmp_path, folder)
    assert not (Path(url) / TYPED_DIR).exists()
    with pytest.raises(SnapshotError, match="missing required column"):
        read_snapshot(url, CFG)


# --------------------------------------------------------------------------- changes


def test_a_typed_changes_version_applies_as_its_raw_tables(tmp_path):
    sa = user(id="0055e0000000SA1AAA")
    rows = {"User": [sa], "Task": [task(id="00T5e0000000T01", owner_id=sa["id"]), task(id="00T5e0000000T02AAA", owner_id=sa["id"]),
                                   task(id="00T5e0000000T03AAA", owner_id=sa["id"], activity_date="bad"),
                                   task(id="  ", owner_id=sa["id"])]}  # fmt: skip
    store = SnapshotStore(str(tmp_path / "store"))
    ref = store.commit_folder(write_snapshot(tmp_path / "s", rows), TAKEN, "test", cfg=CFG)
    feed = ChangesFeed(store, ref)
    staged = feed.stage()
    write_changes(Path(url_to_fs(staged)[1]), {"Task": [
        {**rows["Task"][0], "id": "00T5e0000000T01AAA", "is_closed": "true", "description": ""},
        {"id": "00T5e0000000T02", "is_deleted": "true", "owner_id": ""},
        task(id="00T5e0000000T03AAA", owner_id=sa["id"]),  # replaces a quarantined row: out of the quarantine
        task(id="00T5e0000000T04AAA", owner_id="0055e0000000GONEAA"), task(id="", owner_id=sa["id"]),
        task(id="00T5e0000000T05AAA", owner_id=sa["id"], is_deleted="perhaps"),
        task(id="00T5e0000000T06AAA", owner_id=sa["id"]), task(id="00T5e0000000T06", owner_id=sa["id"]),
    ]}, "parquet")  # fmt: skip
    version = feed.commit(staged, {"rows": {}}, cfg=CFG)
    assert (Path(url_to_fs(version["folder"])[1]) / TYPED_DIR / "_replaced.parquet").exists()
    typed = read_snapshot(ref.url, CFG, changes=version["folder"])
    raw = read_snapshot(ref.url, CFG, changes=version["folder"], typed=False)
    assert_same(typed, raw)
    assert sorted(typed["Task"]["id"]) == ["00T5e0000000T01AAA", "00T5e0000000T03AAA", "00T5e0000000T06"]
    assert {r[2] for r in quarantine_rows(typed)} == {
        "missing_reference",
        "blank_id",
        "bad_boolean",
        "duplicate_id",
    }


def test_changes_holding_users_are_applied_to_the_raw_tables(tmp_path, caplog):
    rows = {"User": [SA, AE], "Task": [task(owner_id=SA["id"])]}
    url = commit(tmp_path, write_snapshot(tmp_path / "s", rows))
    delta = write_changes(tmp_path / "c", {"User": [{**SA, "id": "0055e0000000SA1AAB"}]})
    caplog.set_level(logging.INFO, logger="sa_hygiene.source.typed")
    assert_same(read_snapshot(url, CFG, changes=delta), read_snapshot(url, CFG, changes=delta, typed=False))
    assert any("the changes hold User" in r.getMessage() for r in caplog.records)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snapshots_and_changes(),
    st.sampled_from(["csv", "typed"]),
    st.sampled_from(["csv", "parquet"]),
    st.booleans(),
)
def test_typed_snapshot_plus_changes_reads_and_alerts_as_typed_at_read(
    case, snapshot_format, changes_format, written
):
    current, previous, changes = case
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        snap = write_snapshot(tmp / "s", current)
        if snapshot_format == "typed":
            typed_parquet(snap)
        url = SnapshotStore(str(tmp / "store")).commit_folder(snap, TAKEN, "test", cfg=CFG).url
        delta = write_changes(tmp / "c", changes, changes_format)
        if written:
            write_typed_changes(str(delta), CFG)
        assert_same(read_snapshot(url, CFG, changes=delta), read_snapshot(snap, CFG, changes=delta))
        got = evaluate_snapshots(url, None, CFG, AS_OF, changes=str(delta))
        want = evaluate_snapshots(str(snap), None, CFG, AS_OF, changes=str(delta))
        assert outcome(got) == outcome(want)


def test_a_written_typed_changes_folder_reads_back_as_typed_now(tmp_path):
    delta = write_changes(tmp_path / "c", {"Task": BAD_ROWS["Task"], "Opportunity": BAD_ROWS["Opportunity"]})
    fs, root = url_to_fs(str(delta))
    now = typed_changes(fs, root, CFG)
    write_typed_changes(str(delta), CFG)
    manifest = json.loads((delta / TYPED_DIR / "_manifest.json").read_text())
    assert set(manifest["sources"]) == {"Opportunity", "Task"}
    back = typed_changes(fs, root, CFG)
    for obj in now.frames:
        pd.testing.assert_frame_equal(back.frames[obj], now.frames[obj], check_exact=True)
        assert sorted(back.replaced[obj].to_pylist()) == sorted(now.replaced[obj].to_pylist())
        assert len(back.quarantine[obj]) == len(now.quarantine[obj]) > 0


def test_date_columns_are_stored_as_dates(tmp_path):
    url = commit(tmp_path, write_snapshot(tmp_path / "raw", {"User": [SA, AE], **BAD_ROWS}))
    schema = pq.read_schema(Path(url) / TYPED_DIR / "Opportunity.parquet")
    assert str(schema.field("te_start").type) == "date32[day]"
    assert str(schema.field("last_modified").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("is_ps").type) == "bool"


def test_a_typed_read_of_some_columns_reads_only_those_and_the_same_values(tmp_path):
    folder = write_snapshot(tmp_path / "raw", {"User": [SA, AE], **BAD_ROWS})
    url = commit(tmp_path, folder)
    wanted = {"Task": ["id", "owner_id", "subject"]}
    whole = read_snapshot(url, CFG)
    some = read_snapshot(url, CFG, columns=wanted)
    assert list(some["Task"].columns) == ["id", "owner_id", "subject"]
    pd.testing.assert_frame_equal(some["Task"], whole["Task"][wanted["Task"]], check_exact=True)
    pd.testing.assert_frame_equal(some["User"], whole["User"], check_exact=True)
    assert quarantine_rows(some) == quarantine_rows(whole)
    # A raw folder is typed whole: its checks read every column.
    assert list(read_snapshot(folder, CFG, columns=wanted)["Task"].columns) == list(whole["Task"].columns)


def test_an_empty_changes_window_with_its_typed_form_is_no_change(tmp_path):
    """Nothing changed in a window: its folder holds only the typed form written at the feed's
    commit, which is no sign of the feed's root given by mistake."""
    folder = write_snapshot(tmp_path / "raw", {"User": [SA, AE], **BAD_ROWS})
    url = commit(tmp_path, folder)
    delta = write_changes(tmp_path / "c", {})
    write_typed_changes(str(delta), CFG)
    assert (delta / TYPED_DIR).is_dir()
    assert_same(read_snapshot(url, CFG, changes=delta), read_snapshot(url, CFG))
