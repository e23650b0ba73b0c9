"""The sa_snapshot and sa_changes steps: stage, validate and commit a snapshot; pull the changes feed.

What sa_snapshot's steps hand each other, a ``StagedSnapshot`` and its ``SnapshotValidation``,
crosses its task boundaries in their XCom form (``pipeline/xcom.py``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sa_hygiene.contract.config import Config
from sa_hygiene.pipeline.xcom import XComValue
from sa_hygiene.source.jsonl import write_jsonl

log = logging.getLogger(__name__)


class StagedSnapshot(XComValue):
    """A snapshot extracted (or copied) into a staged folder of the store, not committed yet."""

    staged: str  # the staged folder
    source: str  # "salesforce:<connection>" or "folder:<path>"
    taken_at: datetime
    api_calls: int | None = None  # Salesforce's own count of the org's calls during the extraction
    api_usage: str | None = None  # the last usage seen, "used/limit"


class SnapshotValidation(XComValue):
    """A staged snapshot read as the rules will: rows per object and the rows quarantined."""

    rows: dict[str, int]
    quarantined: int
    quarantine: dict[str, int]  # {"<object>:<reason>": rows}


def snapshot_store(cfg: Config):
    from sa_hygiene.source.store import SnapshotStore

    return SnapshotStore(cfg.store.url, keep=cfg.store.keep)


def stage_snapshot(cfg: Config, taken_at: datetime, conn_id: str | None = None) -> StagedSnapshot:
    """Extract (or copy, for a folder source) one snapshot into a staged folder of the store."""
    from sa_hygiene.source.store import copy_tables

    store = snapshot_store(cfg)
    if cfg.source.kind == "folder":
        staged = store.stage(taken_at)
        try:
            copy_tables(cfg.source.folder, staged)
        except BaseException:
            store.discard(staged)
            raise
        return StagedSnapshot(staged=staged, source=f"folder:{cfg.source.folder}", taken_at=taken_at)
    from sa_hygiene.source.extract import extract_snapshot

    report = extract_snapshot(cfg, store, conn_id, now=taken_at, commit=False)
    log.info("%s", report.summary())
    return StagedSnapshot(staged=report.staged, source=f"salesforce:{conn_id or cfg.salesforce.conn_id}",
                          taken_at=taken_at, api_calls=report.api_calls, api_usage=report.api_usage)  # fmt: skip


def validate_snapshot(cfg: Config, staged: str) -> SnapshotValidation:
    """Read the staged snapshot as the rules will: unusable input fails here, bad rows are counted."""
    from sa_hygiene.source.snapshot import read_snapshot
    from sa_hygiene.source.typed import write_typed

    snap = read_snapshot(staged, cfg)
    write_typed(staged, cfg, snap)  # typed once, here: the commit and every later read reuse it
    quarantine = snap.quarantine
    # Beside the extractor's own _quarantine.jsonl (records it could not store at all).
    path = f"{staged}/_read_quarantine.jsonl"
    write_jsonl(path, quarantine.to_dict(orient="records"))
    counts = quarantine.groupby(["object", "reason"]).size()
    return SnapshotValidation(rows={obj: len(df) for obj, df in snap.tables.items()}, quarantined=len(quarantine),
                              quarantine={f"{o}:{r}": int(n) for (o, r), n in counts.items()})  # fmt: skip


def commit_snapshot(cfg: Config, staged: str, taken_at, source: str) -> str:
    return snapshot_store(cfg).commit(staged, taken_at, source=source, cfg=cfg).url


def pull_changes(cfg: Config, now=None, conn_id: str | None = None) -> dict:
    """One pull of the changes feed into the latest snapshot's ``_changes`` (the sa_changes DAG).

    A folder source has no Salesforce to ask: nothing is pulled, and runs read the snapshot alone.
    """
    if cfg.source.kind == "folder":
        log.info("source.kind is folder: no changes feed to pull")
        return {"skipped": "folder source"}
    from sa_hygiene.source.changes import pull_changes as pull

    report = pull(cfg, snapshot_store(cfg), conn_id, now=now)
    return {**report.manifest(), "folder": report.folder, "written": report.written}
