"""The changes feed against the fake Salesforce over HTTPS (the real hook and simple-salesforce).

The oracle: the latest snapshot read with its changes must hold exactly what a full extraction
taken at the same moment holds, for every object the feed covers.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from builders import contact, event, sf_id
from salesforce_org import ACME, ADA, CONN, E2, E3, FAST, LEE, SAM, T0, a_task, api, relation, run

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.changes import changes_cli, pull_changes
from sa_hygiene.source.records import ExtractionError
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.source.store import ChangesFeed, SnapshotStore

pytestmark = pytest.mark.integration

NOON = T0 + timedelta(hours=7)  # 2026-11-23T12:00Z
FEED = ["Contact", "Lead", "Task", "EventRelation", "Event"]
COMPARED = {"Task": None, "Event": None, "Contact": None}


def stamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pull(store, now):
    return pull_changes(load_config(), store, CONN, now=now, options=FAST)


def frames(snapshot) -> dict:
    return {obj: snapshot[obj].drop(columns=["key"]).sort_values("id").reset_index(drop=True) for obj in COMPARED}


def assert_as_a_full_extraction(fake, store, tmp_path, now):
    """Snapshot + latest changes reads as a full extraction taken ``now``."""
    cfg = load_config()
    latest = store.latest()
    folder = ChangesFeed(store, latest).latest()["folder"]
    merged = read_snapshot(latest.url, cfg, changes=folder)
    # Both the snapshot and the changes were typed at commit: the same as typing them now.
    assert (Path(latest.url) / "_typed" / "_manifest.json").exists() and (Path(folder) / "_typed" / "_manifest.json").exists()
    at_read = read_snapshot(latest.url, cfg, changes=folder, typed=False)
    assert all(merged[obj].equals(at_read[obj]) for obj in merged.tables)
    fresh = SnapshotStore(tmp_path / f"fresh-{now:%H%M%S}")
    run(fresh, now)
    whole = read_snapshot(fresh.latest().url, cfg)
    got, want = frames(merged), frames(whole)
    for obj in COMPARED:
        assert got[obj].equals(want[obj]), (obj, got[obj].compare(want[obj]) if got[obj].shape == want[obj].shape else got[obj])
    assert merged.quarantine.empty


def changes_at(fake, moment):
    at = stamp(moment)
    fake.upsert("Task", api("Task", [a_task(7, subject="Edited", is_closed="true", system_modstamp=at),
                                     a_task(90001, subject="Logged after the snapshot", system_modstamp=at)]))  # fmt: skip
    fake.delete("Task", [sf_id("00T", 8)], at)
    fake.upsert("Event", api("Event", [event(id=E2, owner_id=ADA, subject="Moved", system_modstamp=at),
                                       event(id=sf_id("00U", 50), owner_id=SAM, subject="Booked this morning",
                                             system_modstamp=at)]))  # fmt: skip
    fake.upsert("EventRelation", [relation(7, E3, LEE, at), relation(50, sf_id("00U", 50), "0035e0000000NEWAAA", at)])
    fake.delete("EventRelation", [sf_id("0RE", 2)], at)  # Pat leaves E1: E1 itself is not modified
    new = api("Contact", [contact(id="0035e0000000NEWAAA", account_id=ACME, email="new@acme.com")])[0]
    fake.upsert("Contact", [{**new, "SystemModstamp": at}])


# --------------------------------------------------------------------------- what a pull fetches


def test_the_first_pull_starts_at_the_snapshot_and_costs_one_query_per_object(fake, store):
    run(store, T0)
    before = len(fake.requests)
    report = pull(store, NOON)

    since = stamp(T0 - timedelta(minutes=5))
    soql = [r.soql for r in fake.requests[before:] if r.soql]
    assert [s.split(" FROM ")[1] for s in soql] == [f"{obj} WHERE SystemModstamp > {since}" for obj in FEED]
    assert soql[2].startswith("SELECT Id, OwnerId, WhatId") and ", IsDeleted FROM Task" in soql[2]
    assert {r.path.split("/")[4] for r in fake.data_requests()[-5:]} == {"queryAll"}
    assert report.api_calls == 5 and report.written and report.version == 1
    assert report.high_water_mark == T0
    manifest = ChangesFeed(store, store.latest()).latest()
    assert manifest["high_water_mark"] == T0.isoformat() and manifest["pulled_at"] == NOON.isoformat()
    assert manifest["api_usage"] == f"{fake.api_used}/15000" and manifest["rows"] == dict.fromkeys(FEED, 0)


def test_inserts_updates_and_deletions_read_as_a_full_extraction(fake, store, tmp_path):
    run(store, T0)
    changes_at(fake, NOON)
    report = pull(store, NOON + timedelta(minutes=1))

    assert report.fetched == {"Contact": 1, "Lead": 0, "Task": 3, "EventRelation": 3, "Event": 2}
    assert report.high_water_mark == NOON
    # E1 lost an attendee, E3 gained one: both join the feed though Salesforce did not modify them.
    assert report.rows["Event"] == 4 and report.deleted == {"Contact": 0, "Lead": 0, "Task": 1, "EventRelation": 1,
                                                            "Event": 0}  # fmt: skip
    assert_as_a_full_extraction(fake, store, tmp_path, NOON + timedelta(minutes=1))


def test_the_feed_is_cumulative_and_a_row_changed_twice_keeps_its_latest_version(fake, store, tmp_path):
    run(store, T0)
    changes_at(fake, NOON)
    pull(store, NOON + timedelta(minutes=1))
    later = NOON + timedelta(minutes=20)
    fake.upsert("Task", api("Task", [a_task(7, subject="Edited again", system_modstamp=stamp(later - timedelta(minutes=5))),
                                     a_task(90001, subject="Edited twice", system_modstamp=stamp(later))]))  # fmt: skip
    fake.upsert("Task", api("Task", [a_task(90001, subject="Edited thrice", system_modstamp=stamp(later))]))
    report = pull(store, later)

    # Two edits, and the deletion at noon again: it is within the overlap of the high-water mark.
    assert report.version == 2 and report.fetched["Task"] == 3 and report.high_water_mark == later
    tasks = read_snapshot(store.latest().url, load_config(), changes=report.folder)["Task"].set_index("id")
    assert tasks.loc[sf_id("00T", 90001), "subject"] == "Edited thrice"
    assert tasks.loc[sf_id("00T", 7), "subject"] == "Edited again"
    assert sf_id("00T", 8) not in tasks.index  # the first pull's deletion is still in the feed
    assert_as_a_full_extraction(fake, store, tmp_path, later)


def test_nothing_new_writes_no_version_but_moves_the_pointer(fake, store):
    run(store, T0)
    first = pull(store, NOON)
    second = pull(store, NOON + timedelta(minutes=15))

    assert (second.version, second.written, second.folder) == (first.version, False, first.folder)
    assert second.api_calls == 5
    manifest = ChangesFeed(store, store.latest()).latest()
    assert manifest["version"] == 1 and manifest["pulled_at"] == (NOON + timedelta(minutes=15)).isoformat()


# --------------------------------------------------------------------------- the high-water mark


def test_a_change_stamped_just_before_the_high_water_mark_is_not_skipped(fake, store, tmp_path):
    run(store, T0)
    changes_at(fake, NOON)
    assert pull(store, NOON).high_water_mark == NOON
    # A transaction that committed after the pull, stamped before it: the overlap still reads it.
    fake.upsert("Task", api("Task", [a_task(11, subject="Late commit", system_modstamp=stamp(NOON - timedelta(minutes=4)))]))
    report = pull(store, NOON + timedelta(minutes=15))

    assert report.high_water_mark == NOON and report.written
    tasks = read_snapshot(store.latest().url, load_config(), changes=report.folder)["Task"].set_index("id")
    assert tasks.loc[sf_id("00T", 11), "subject"] == "Late commit"


def test_a_pull_failing_halfway_keeps_the_last_good_changes_and_loses_nothing(fake, store, tmp_path):
    run(store, T0)
    first = pull(store, NOON - timedelta(hours=1))
    changes_at(fake, NOON)
    fake.fail("unavailable", when=lambda r: r.soql is not None and "FROM EventRelation" in r.soql, times=10)

    with pytest.raises(ExtractionError) as failed:
        pull(store, NOON + timedelta(minutes=1))

    assert "EventRelation: query: HTTP 503" in str(failed.value)
    assert f"the last good changes of {store.latest().name} are version 1, high-water mark {T0.isoformat()}" in str(
        failed.value)  # fmt: skip
    feed = ChangesFeed(store, store.latest())
    assert feed.latest()["folder"] == first.folder and feed.latest()["high_water_mark"] == T0.isoformat()
    assert sorted(p.name for p in (tmp_path / "store" / store.latest().name / "_changes").iterdir()) == [
        "latest.json", "v000001"]  # fmt: skip
    fake.faults.clear()
    again = pull(store, NOON + timedelta(minutes=16))
    assert again.version == 2 and again.fetched["Task"] == 3
    assert_as_a_full_extraction(fake, store, tmp_path, NOON + timedelta(minutes=16))


def test_a_new_snapshot_starts_a_new_feed(fake, store):
    run(store, T0)
    changes_at(fake, NOON)
    pull(store, NOON)
    tomorrow = T0 + timedelta(days=1)
    run(store, tomorrow)
    report = pull(store, tomorrow + timedelta(minutes=15))

    assert report.snapshot == store.latest().name and report.version == 1
    assert report.high_water_mark == tomorrow and report.rows["Task"] == 0


# --------------------------------------------------------------------------- the command


def test_the_changes_command_pulls_and_exits_1_without_a_snapshot(fake, tmp_path, capsys):
    assert changes_cli(["--conn-id", CONN, "--store", str(tmp_path / "empty")]) == 1
    assert "holds no snapshot yet" in capsys.readouterr().err
    store = SnapshotStore(tmp_path / "store")
    run(store, T0)
    assert changes_cli(["--conn-id", CONN, "--store", str(tmp_path / "store")]) == 0
    assert f"changes v1 of {store.latest().name} (written)" in capsys.readouterr().out
