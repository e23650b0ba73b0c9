"""The app's view of the latest snapshot: read from the configured store, reread when a newer
snapshot is committed, and a clear error before the first one."""

from datetime import UTC, datetime, timedelta

import pytest
from builders import user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.store import SnapshotStore
from sa_hygiene.web.slack_app.backends import LatestSnapshot, SlackAppError

pytestmark = pytest.mark.unit


def test_the_app_reads_the_latest_committed_snapshot_and_follows_a_newer_one(tmp_path):
    path = tmp_path / "sa_hygiene.yaml"
    path.write_text(f"store: {{url: {tmp_path / 'store'}}}\n")
    cfg = load_config(path)
    latest = LatestSnapshot(cfg)
    with pytest.raises(SlackAppError, match="no snapshot yet"):
        latest()
    store = SnapshotStore(cfg.store.url)
    taken = datetime(2026, 11, 24, 4, tzinfo=UTC)
    store.commit_folder(write_snapshot(tmp_path / "a", {"User": [user(name="First Name")]}), taken)
    assert list(latest()["User"]["name"]) == ["First Name"]
    store.commit_folder(write_snapshot(tmp_path / "b", {"User": [user(name="Second Name")]}), taken + timedelta(days=1))
    assert list(latest()["User"]["name"]) == ["Second Name"]


def test_the_app_reads_the_snapshot_with_its_latest_changes(tmp_path):
    """A meeting booked after the snapshot is known to the app, with its subject and start."""
    from builders import event, write_changes

    from sa_hygiene.source.store import ChangesFeed, url_to_fs

    path = tmp_path / "sa_hygiene.yaml"
    path.write_text(f"store: {{url: {tmp_path / 'store'}}}\n")
    cfg = load_config(path)
    store = SnapshotStore(cfg.store.url)
    sam = user()
    ref = store.commit_folder(write_snapshot(tmp_path / "a", {"User": [sam]}), datetime(2026, 11, 24, 4, tzinfo=UTC))
    latest = LatestSnapshot(cfg)
    assert len(latest()["Event"]) == 0
    booked = event(owner_id=sam["id"], subject="Booked this morning", start="2026-11-24T15:00:00Z", end="2026-11-24T15:30:00Z")
    feed = ChangesFeed(store, ref)
    staged = feed.stage()
    fs, folder = url_to_fs(staged)
    for f in write_changes(tmp_path / "delta", {"Event": [booked]}).iterdir():
        fs.put(str(f), f"{folder}/{f.name}")
    feed.commit(staged, {"high_water_mark": "2026-11-24T09:00:00Z"})
    [row] = latest()["Event"].to_dict("records")
    assert row["subject"] == "Booked this morning" and str(row["start"].date()) == "2026-11-24"
    # The form of its reminder: the meeting's subject and local date, not "Meeting" on "NaT".
    from sa_hygiene.web.slack_app.items import Item
    from sa_hygiene.web.slack_app.log_form import meeting_of

    meeting = meeting_of(latest(), Item("log", "wf-01", booked["id"], sam["id"]))
    assert (meeting.subject, meeting.activity_date) == ("Booked this morning", "2026-11-24")
