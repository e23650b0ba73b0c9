"""The snapshot store: dated snapshots and their changes feeds, committed atomically.

The store keeps one directory per snapshot, named by its UTC timestamp. A snapshot is written
under a temporary name, gets a manifest last, and is renamed; the store lists only directories
with a manifest, so a half-written snapshot is never read, also on object stores where a rename
is a copy. The changes pulled since a snapshot (``ChangesFeed``) are kept inside it the same way,
version by version, behind a pointer that moves only once a version is complete.

Any fsspec URL serves (a local folder, an object store): ``url_to_fs`` is how every module of
``source`` opens one.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from sa_hygiene.contract.config import Config


def url_to_fs(url: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """(file system, root path without a trailing slash) of a folder or fsspec URL."""
    fs, root = fsspec.core.url_to_fs(str(url))
    return fs, root.rstrip("/")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


MANIFEST = "_manifest.json"


NAME_FORMAT = "%Y%m%dT%H%M%SZ"


def snapshot_name(taken_at: datetime) -> str:
    return taken_at.astimezone(UTC).strftime(NAME_FORMAT)


def parse_snapshot_name(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, NAME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class SnapshotRef:
    name: str
    taken_at: datetime
    url: str


class SnapshotStore:
    """Dated snapshots under a root folder or fsspec URL, committed atomically."""

    def __init__(self, url: str, keep: int = 60):
        self.url = str(url).rstrip("/")
        self.fs, self.root = url_to_fs(self.url)
        self.keep = keep

    def _url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def list(self) -> list[SnapshotRef]:
        if not self.fs.exists(self.root):
            return []
        refs = []
        for entry in self.fs.ls(self.root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            taken = parse_snapshot_name(name)
            if taken and self.fs.exists(f"{self.root}/{name}/{MANIFEST}"):
                refs.append(SnapshotRef(name, taken, self._url(name)))
        return sorted(refs, key=lambda r: r.taken_at)

    def latest(self) -> SnapshotRef | None:
        refs = self.list()
        return refs[-1] if refs else None

    def previous(self, of: SnapshotRef | datetime) -> SnapshotRef | None:
        when = of.taken_at if isinstance(of, SnapshotRef) else of
        earlier = [r for r in self.list() if r.taken_at < when]
        return earlier[-1] if earlier else None

    def at(self, moment: datetime) -> SnapshotRef | None:
        """The snapshot that was the latest at ``moment`` (taken at or before it)."""
        before = [r for r in self.list() if r.taken_at <= moment]
        return before[-1] if before else None

    def manifest(self, ref: SnapshotRef) -> dict:
        with self.fs.open(f"{self.root}/{ref.name}/{MANIFEST}") as fh:
            return json.load(fh)

    def stage(self, taken_at: datetime) -> str:
        """A new temporary folder (URL) to write a snapshot's tables into; never listed."""
        name = snapshot_name(taken_at)
        if self.fs.exists(f"{self.root}/{name}"):
            raise FileExistsError(f"{self._url(name)}: a snapshot taken at this time already exists")
        tmp = f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(f"{self.root}/{tmp}", exist_ok=True)
        return self._url(tmp)

    def commit(self, staged: str, taken_at: datetime, source: str = "", cfg: Config | None = None) -> SnapshotRef:
        """Publish a staged folder: manifest last, then the rename that makes it listed.

        With ``cfg``, the snapshot is typed and checked once, here (``typed.py``), so that the
        reads of the day load its frames instead of typing it again.
        """
        name = snapshot_name(taken_at)
        tmp = url_to_fs(staged)[1]
        if self.fs.exists(f"{self.root}/{name}"):
            raise FileExistsError(f"{self._url(name)}: a snapshot taken at this time already exists")
        if cfg is not None:
            from sa_hygiene.source.typed import type_at_commit

            type_at_commit(staged, cfg)
        tables = {}
        for entry in self.fs.ls(tmp, detail=False):
            base = entry.rsplit("/", 1)[-1]
            if base.endswith(".parquet"):
                tables[base.removesuffix(".parquet")] = pq.read_metadata(
                    entry if is_local(self.fs) else self.fs.open(entry, "rb")
                ).num_rows
        manifest = {"taken_at": taken_at.astimezone(UTC).isoformat(), "source": source, "rows": tables}
        with self.fs.open(f"{tmp}/{MANIFEST}", "w") as fh:
            json.dump(manifest, fh, indent=1)
        self.fs.mv(tmp, f"{self.root}/{name}", recursive=True)
        self.prune()
        return SnapshotRef(name, taken_at.astimezone(UTC), self._url(name))

    def discard(self, staged: str) -> None:
        path = url_to_fs(staged)[1]
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    @contextmanager
    def writer(self, taken_at: datetime, source: str = "", cfg: Config | None = None) -> Iterator[str]:
        """Yield a staged folder URL to write tables into; commit it when the block ends.

        On any exception the staged folder is removed and nothing is listed.
        """
        staged = self.stage(taken_at)
        try:
            yield staged
            self.commit(staged, taken_at, source, cfg)
        except BaseException:
            self.discard(staged)
            raise

    def commit_folder(self, folder: str | os.PathLike, taken_at: datetime, source: str = "",
                      cfg: Config | None = None) -> SnapshotRef:  # fmt: skip
        """Copy a finished local folder of tables into the store as one snapshot (CSV becomes
        Parquet), typed at commit with ``cfg``."""
        with self.writer(taken_at, source=source, cfg=cfg) as target:
            copy_tables(folder, target)
        return next(r for r in self.list() if r.name == snapshot_name(taken_at))

    def prune(self) -> list[str]:
        """Delete the oldest snapshots beyond ``keep``, and temporary folders of crashed writers."""
        removed = []
        refs = self.list()
        for ref in refs[: max(0, len(refs) - self.keep)]:
            self.fs.rm(f"{self.root}/{ref.name}", recursive=True)
            removed.append(ref.name)
        # A temporary folder older than the newest snapshot belongs to a writer that died.
        newest = refs[-1].taken_at if refs else None
        for entry in self.fs.ls(self.root, detail=False) if newest else []:
            base = entry.rstrip("/").rsplit("/", 1)[-1]
            taken = parse_snapshot_name(base[5:21]) if base.startswith(".tmp-") else None
            if taken and taken < newest:
                self.fs.rm(f"{self.root}/{base}", recursive=True)
                removed.append(base)
        return removed


def copy_tables(folder: str | os.PathLike, target: str) -> None:
    """The tables of a local snapshot folder into ``target`` (a URL) as Parquet, CSV converted as text."""
    fs, root = url_to_fs(target)
    for entry in sorted(Path(folder).iterdir()):
        if entry.suffix == ".parquet":
            fs.put_file(str(entry), f"{root}/{entry.name}")
        elif entry.suffix == ".csv" and not entry.with_suffix(".parquet").exists():
            table = pacsv.read_csv(
                entry, convert_options=pacsv.ConvertOptions(strings_can_be_null=False, column_types=_all_text(entry))
            )
            with fs.open(f"{root}/{entry.stem}.parquet", "wb") as fh:
                pq.write_table(table, fh)


def _all_text(path: Path) -> dict[str, pa.DataType]:
    with open(path, "rb") as fh:
        head = fh.readline()
    return {c: pa.string() for c in pacsv.read_csv(pa.py_buffer(head)).column_names}


CHANGES_DIR = "_changes"


CHANGES_POINTER = "latest.json"


class ChangesFeed:
    """The changes pulled since one snapshot: ``<snapshot>/_changes/v<version>/`` folders and
    ``latest.json``, the manifest of the newest good one.

    The feed is cumulative (each version holds every change since the snapshot), so a reader
    needs only the latest. A version is staged under a temporary name, gets its manifest, is
    renamed, and only then does the pointer move (written beside and renamed over, one object
    on object stores): a pull that fails anywhere leaves the last good version and its
    high-water mark in place. A new snapshot starts a new feed in its own folder.
    """

    keep = 3  # versions kept: a reader that just read the pointer still finds its folder

    def __init__(self, store: SnapshotStore, ref: SnapshotRef):
        self.store, self.ref = store, ref
        self.fs = store.fs
        self.root = f"{store.root}/{ref.name}/{CHANGES_DIR}"
        self.url = f"{ref.url}/{CHANGES_DIR}"

    def latest(self) -> dict | None:
        """The manifest of the newest good version (``folder``: its URL), or None before the first pull."""
        path = f"{self.root}/{CHANGES_POINTER}"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path) as fh:
            manifest = json.load(fh)
        return {**manifest, "folder": f"{self.url}/{manifest['name']}"}

    def stage(self) -> str:
        tmp = f".tmp-{uuid.uuid4().hex[:12]}"
        self.fs.makedirs(f"{self.root}/{tmp}", exist_ok=True)
        return f"{self.url}/{tmp}"

    def discard(self, staged: str) -> None:
        path = url_to_fs(staged)[1]
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def commit(self, staged: str, manifest: dict, cfg: Config | None = None) -> dict:
        """Publish a staged folder as the next version, typed with ``cfg``; returns its manifest."""
        if cfg is not None:
            from sa_hygiene.source.typed import type_at_commit

            type_at_commit(staged, cfg, changes=True)
        last = self.latest()
        version = (last["version"] if last else 0) + 1
        name = f"v{version:06d}"
        manifest = {**manifest, "version": version, "name": name}
        tmp = url_to_fs(staged)[1]
        with self.fs.open(f"{tmp}/{MANIFEST}", "w") as fh:
            json.dump(manifest, fh, indent=1)
        self.fs.mv(tmp, f"{self.root}/{name}", recursive=True)
        self.point(manifest)
        self._prune(version)
        return {**manifest, "folder": f"{self.url}/{name}"}

    def point(self, manifest: dict) -> None:
        """Move the pointer: also after a pull that found nothing new (a later high-water mark)."""
        manifest = {k: v for k, v in manifest.items() if k != "folder"}
        tmp = f"{self.root}/.{CHANGES_POINTER}-{uuid.uuid4().hex[:8]}"
        with self.fs.open(tmp, "w") as fh:
            json.dump(manifest, fh, indent=1)
        self.fs.mv(tmp, f"{self.root}/{CHANGES_POINTER}")

    def _prune(self, version: int) -> None:
        for entry in self.fs.ls(self.root, detail=False):
            base = entry.rstrip("/").rsplit("/", 1)[-1]
            if re.fullmatch(r"v\d{6}", base) and int(base[1:]) <= version - self.keep:
                self.fs.rm(f"{self.root}/{base}", recursive=True)


def latest_changes(store: SnapshotStore, ref: SnapshotRef | None) -> dict | None:
    """The newest changes of snapshot ``ref`` (manifest with ``folder``), or None."""
    return ChangesFeed(store, ref).latest() if ref is not None else None
