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
