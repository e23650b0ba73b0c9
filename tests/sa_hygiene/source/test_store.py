from datetime import UTC, datetime, timedelta

import pytest
from builders import user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.source.store import MANIFEST, SnapshotStore

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


def source(tmp_path, name="src", **kw):
    return write_snapshot(tmp_path / name, {"User": [user(**kw)]}, fmt="parquet")


def test_commit_lists_latest_and_previous(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    assert store.latest() is None and store.list() == []
    refs = [store.commit_folder(source(tmp_path), T0 + timedelta(days=i)) for i in range(3)]
    assert [r.name for r in store.list()] == ["20261120T050000Z", "20261121T050000Z", "20261122T050000Z"]
    assert store.latest() == refs[2]
    assert store.previous(refs[2]) == refs[1]
    assert store.previous(refs[0]) is None
    assert store.manifest(refs[0])["rows"]["User"] == 1
    snap = read_snapshot(refs[1].url, load_config())
    assert snap.taken_at == T0 + timedelta(days=1)


def test_an_interrupted_write_is_never_listed(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    good = store.commit_folder(source(tmp_path), T0)
    with pytest.raises(RuntimeError, match="network gone"):
        with store.writer(T0 + timedelta(days=1)) as target:
            (tmp_path / "store" / target.rsplit("/", 1)[-1] / "User.parquet").write_bytes(b"half a file")
            raise RuntimeError("network gone")
    assert store.list() == [good]
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [good.name]


def test_a_folder_without_manifest_is_not_a_snapshot(tmp_path):
    # What a crash leaves behind on an object store, where the rename is a copy.
    store = SnapshotStore(tmp_path / "store")
    store.commit_folder(source(tmp_path), T0)
    crashed = tmp_path / "store" / "20261121T050000Z"
    crashed.mkdir()
    (crashed / "User.parquet").write_bytes(b"")
    assert [r.name for r in store.list()] == ["20261120T050000Z"]
    assert (tmp_path / "store" / "20261120T050000Z" / MANIFEST).exists()


def test_retention_keeps_the_newest(tmp_path):
    store = SnapshotStore(tmp_path / "store", keep=2)
    for i in range(4):
        store.commit_folder(source(tmp_path), T0 + timedelta(hours=i))
    assert [r.taken_at.hour for r in store.list()] == [7, 8]


def test_the_same_moment_twice_is_refused(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    store.commit_folder(source(tmp_path), T0)
    with pytest.raises(FileExistsError):
        store.commit_folder(source(tmp_path), T0)


def test_any_fsspec_url_works_without_code_change(tmp_path):
    store = SnapshotStore("memory://sa-hygiene-test/store")
    ref = store.commit_folder(source(tmp_path, id="0055e0000000MEMAAA"), T0)
    assert ref.url == "memory://sa-hygiene-test/store/20261120T050000Z"
    assert read_snapshot(ref.url, load_config())["User"]["id"].tolist() == ["0055e0000000MEMAAA"]
    assert store.latest() == ref


def test_csv_sources_are_stored_as_parquet(tmp_path):
    src = write_snapshot(tmp_path / "csv", {"User": [user(id="0055e0000000CSVAAA")]}, fmt="csv")
    ref = SnapshotStore(tmp_path / "store").commit_folder(src, T0)
    stored = sorted(p.name for p in (tmp_path / "store" / ref.name).iterdir())
    assert "User.parquet" in stored and "User.csv" not in stored
    assert read_snapshot(ref.url, load_config())["User"]["id"].tolist() == ["0055e0000000CSVAAA"]


def test_prune_removes_what_a_killed_writer_left(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    dead = tmp_path / "store" / ".tmp-20261119T050000Z-0badf00d"
    dead.mkdir(parents=True)
    (dead / "User.parquet").write_bytes(b"")
    store.commit_folder(source(tmp_path), T0)
    assert not dead.exists()


def test_the_snapshot_that_was_latest_at_a_moment(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    refs = [store.commit_folder(source(tmp_path), T0 + timedelta(hours=6 * i)) for i in range(4)]
    assert store.at(T0 - timedelta(seconds=1)) is None
    assert store.at(T0) == refs[0]
    assert store.at(T0 + timedelta(hours=13)) == refs[2]
