"""The changes feed: every 15 minutes, what changed in Salesforce since the latest snapshot.

A snapshot a day is too late for a reminder minutes after a meeting, and a snapshot every 15
minutes would read every object. So between snapshots ``pull_changes`` reads what changed in
Task, Event, EventRelation, Contact and Lead since the last good pull (``SystemModstamp`` after
a high-water mark, through ``queryAll`` so that deletions come too: a few queries a run) and
keeps it beside the snapshot as a changes folder (CONTRACT.md § 1b), which the reader applies
over the snapshot. The feed is cumulative: each version holds every change since the snapshot,
so a reader needs only the latest, and a failed pull leaves the last good one in place.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sa_hygiene.contract.schema import OPTIONAL_OBJECTS
from sa_hygiene.source.extract import record_calls, run_command
from sa_hygiene.source.records import (
    QUARANTINE_FILE,
    ExtractionError,
    ExtractOptions,
    ObjectSpec,
    changed_rows,
    join_sorted,
    object_specs,
)
from sa_hygiene.source.salesforce import SalesforceError

if TYPE_CHECKING:
    from sa_hygiene.contract.config import Config
    from sa_hygiene.source.store import SnapshotRef, SnapshotStore

log = logging.getLogger(__name__)

# What the 15-minute feed pulls: the activities and meetings, and what Event.AttendeeEmails is
# built from (relations, and the e-mails of contacts and leads; users change too rarely to matter
# within a day). Contact changes are applied over the snapshot as well; so are Proofs of Value
# when the org has them (spec v3: the SA updates one from Slack).
FEED_OBJECTS = ["Contact", "Lead", "Task", "EventRelation", "Event"]


@dataclass
class FeedReport:
    """One pull of the changes feed; ``manifest`` is what the store keeps of it."""

    snapshot: str
    high_water_mark: datetime
    pulled_at: datetime
    version: int | None = None
    folder: str | None = None
    written: bool = False  # False: nothing new, the previous version stands (its pointer moved on)
    fetched: dict[str, int] = field(default_factory=dict)  # rows this pull returned, per object
    rows: dict[str, int] = field(default_factory=dict)  # rows of the feed (cumulative), per object
    deleted: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    requests: int = 0
    api_calls: int | None = None
    api_usage: str | None = None
    retries: int = 0
    logins: int = 0
    seconds: float = 0.0

    def manifest(self) -> dict:
        return {"snapshot": self.snapshot, "high_water_mark": self.high_water_mark.isoformat(),
                "pulled_at": self.pulled_at.isoformat(), "version": self.version, "rows": self.rows,
                "deleted": self.deleted, "fetched": self.fetched, "quarantined": self.quarantined,
                "api_calls": self.api_calls, "api_usage": self.api_usage, "requests": self.requests}  # fmt: skip

    def summary(self) -> str:
        fetched = ", ".join(f"{k} {v:,}" for k, v in self.fetched.items())
        state = "written" if self.written else "unchanged"
        return (f"changes v{self.version} of {self.snapshot} ({state}): fetched {fetched}; high-water mark "
                f"{self.high_water_mark:%Y-%m-%dT%H:%M:%SZ}; {self.api_calls} API calls (usage {self.api_usage}), "
                f"{self.requests} requests, {self.retries} retries, {self.seconds:.1f}s")  # fmt: skip


def _upsert(old: pa.Table | None, new: pa.Table, id_field: str) -> pa.Table:
    """``old`` with the rows of ``new`` replacing those of the same Id (Salesforce's 18-character Ids)."""
    if old is None or not old.num_rows:
        return new
    old = old.select(new.column_names).cast(new.schema)
    return pa.concat_tables([old.filter(pc.invert(pc.is_in(old[id_field], value_set=new[id_field]))), new])


def _live(table: pa.Table | None) -> pa.Table | None:
    return None if table is None else table.filter(pc.invert(pc.fill_null(table["IsDeleted"], False)))


class _Feed:
    """One pull: reads the snapshot and the last good changes, writes the next version staged."""

    def __init__(self, cfg: Config, specs: dict[str, ObjectSpec], snapshot: SnapshotRef, last: dict | None):
        self.cfg, self.specs, self.last = cfg, specs, last
        self.snap_fs, self.snap_root = fsspec.core.url_to_fs(snapshot.url)
        self.last_fs, self.last_root = fsspec.core.url_to_fs(last["folder"]) if last else (None, None)

    def previous(self, obj: str) -> pa.Table | None:
        """This object's rows in the last good version, or None."""
        if self.last is None or not self.last_fs.exists(f"{self.last_root}/{obj}.parquet"):
            return None
        with self.last_fs.open(f"{self.last_root}/{obj}.parquet", "rb") as fh:
            return pq.read_table(fh)

    def snapshot_has(self, obj: str) -> bool:
        """Whether the snapshot has a table of ``obj`` (an optional object the org has)."""
        return self.snap_fs.exists(f"{self.snap_root}/{obj}.parquet")

    def snapshot(self, obj: str, columns: list[str], ids: pa.Array | None = None) -> pa.Table | None:
        """Columns of the snapshot's table (only the rows of ``ids``), or None when it has none."""
        path = f"{self.snap_root}/{obj}.parquet"
        if not self.snap_fs.exists(path):
            return None
        with self.snap_fs.open(path, "rb") as fh:
            table = pq.read_table(fh, columns=columns)
        return table if ids is None else table.filter(pc.is_in(table[columns[0]], value_set=ids))

    def applied(self, obj: str, columns: list[str], changes: pa.Table) -> pa.Table:
        """The snapshot's table of ``obj`` with the changes applied (Salesforce's own Ids: exact)."""
        base = self.snapshot(obj, columns)
        live = _live(changes).select(columns)
        if base is None:
            return live
        base = base.filter(pc.invert(pc.is_in(base["Id"], value_set=changes["Id"])))
        return pa.concat_tables([base.cast(live.schema), live])

    def events(self, changes: dict[str, pa.Table]) -> pa.Table:
        """The Event changes with AttendeeEmails, plus the snapshot's events whose attendees changed
        (a relation added or removed, a contact's or lead's e-mail edited): the meeting did not."""
        spec = self.specs["Event"]
        events = changes["Event"]
        relations = self.applied("EventRelation", ["Id", "EventId", "RelationId"], changes["EventRelation"])
        people = pa.concat_arrays([changes["Contact"]["Id"].combine_chunks(), changes["Lead"]["Id"].combine_chunks()])
        touched = pa.concat_arrays([
            changes["EventRelation"]["EventId"].combine_chunks(),
            relations.filter(pc.is_in(relations["RelationId"], value_set=people))["EventId"].combine_chunks(),
        ])  # fmt: skip
        touched = pc.filter(touched, pc.invert(pc.is_in(touched, value_set=events["Id"])))
        fields = self.cfg.fields
        extra = self.snapshot("Event", spec.queried, pc.unique(pc.drop_null(touched)))
        if extra is not None and extra.num_rows:
            extra = extra.append_column("IsDeleted", pa.array(np.zeros(extra.num_rows, bool)))
            events = pa.concat_tables([events, extra.cast(events.schema)])
        contact, user = fields["Contact"], fields["User"]
        emails = pa.concat_tables([
            self.snapshot("User", [user["id"], user["email"]]).rename_columns(["Id", "Email"]),
            self.applied("Contact", [contact["id"], contact["email"]], changes["Contact"]).rename_columns(["Id", "Email"]),
            self.applied("Lead", ["Id", "Email"], changes["Lead"]),
        ])  # fmt: skip
        emails = emails.filter(pc.is_valid(emails["Email"]))
        relations = relations.filter(pc.is_in(relations["EventId"], value_set=events["Id"]))
        at = pc.index_in(relations["RelationId"], value_set=emails["Id"])
        pairs = pa.table({"EventId": relations["EventId"], "Email": pc.take(emails["Email"], at)})
        event_ids, joined = join_sorted(pairs.filter(pc.is_valid(at)), "EventId", "Email", ";")
        found = pc.index_in(events["Id"], value_set=event_ids)
        return events.append_column(spec.built, pc.take(joined, found))


def pull_changes(cfg: Config, store: SnapshotStore, conn_id: str | None = None, now: datetime | None = None,
                 *, session_id: str | None = None, options: ExtractOptions | None = None) -> FeedReport:  # fmt: skip
    """Pull what changed since the last good pull into the latest snapshot's changes feed.

    ``SystemModstamp > high-water mark - overlap`` through ``queryAll``, so deletions arrive
    with ``IsDeleted``; merged with the last good version by Id (the feed is cumulative) and
    committed as the next version, or, when nothing new came, only the pointer moves on. The
    high-water mark starts at the snapshot's own time and becomes the latest ``SystemModstamp``
    seen (Salesforce's clock, not ours). Raises ``ExtractionError`` and changes nothing on failure:
    the last good version and its high-water mark stay.
    """
    from sa_hygiene.source.store import ChangesFeed

    options = options or ExtractOptions(overlap=timedelta(minutes=cfg.changes.overlap_minutes))
    conn_id = conn_id or cfg.salesforce.conn_id
    pulled_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    ref = store.latest()
    if ref is None:
        raise ExtractionError(f"{store.url}: the snapshot store holds no snapshot yet: the feed follows one")
    feed = ChangesFeed(store, ref)
    last = feed.latest()
    mark = datetime.fromisoformat(last["high_water_mark"]) if last else ref.taken_at
    report = FeedReport(snapshot=ref.name, high_water_mark=mark, pulled_at=pulled_at,
                        version=last["version"] if last else None)  # fmt: skip
    started = time.perf_counter()
    client = None
    try:
        client = options.client(conn_id, session_id).connect()
        specs = object_specs(cfg)
        staged = feed.stage()
        try:
            pull = _Feed(cfg, specs, ref, last)
            changes, quarantined = {}, []
            # Optional objects the snapshot holds (the org has them: no describe needed) are pulled too.
            optional = [o for o in OPTIONAL_OBJECTS if pull.snapshot_has(o)]
            for obj in [*FEED_OBJECTS, *sorted(optional)]:
                spec = specs[obj]
                delta, bad = changed_rows(client, spec, mark - options.overlap, "rest", options)
                quarantined += bad
                report.fetched[obj] = delta.num_rows
                # Contact's contract fields leave SystemModstamp out: it is filtered on, not read.
                stamped = delta.num_rows and "SystemModstamp" in delta.column_names
                newest = pc.max(delta["SystemModstamp"]).as_py() if stamped else None
                report.high_water_mark = max(report.high_water_mark, newest or report.high_water_mark)
                previous = pull.previous(obj)
                if previous is not None and obj == "Event":
                    previous = previous.drop_columns([spec.built])
                changes[obj] = _upsert(previous, delta, spec.id)
            changes["Event"] = pull.events(changes)
            report.quarantined = len(quarantined)
            same = last is not None and not quarantined and all(
                (old := pull.previous(obj)) is not None and _sorted(old).equals(_sorted(t.cast(old.schema)))
                for obj, t in changes.items())  # fmt: skip
            for obj, t in changes.items():
                report.rows[obj] = t.num_rows
                report.deleted[obj] = int(pc.sum(pc.cast(pc.fill_null(t["IsDeleted"], False), pa.int64())).as_py() or 0)
            record_calls(report, client, started)
            if same:
                feed.discard(staged)
                feed.point({**last, **report.manifest(), "version": last["version"], "name": last["name"]})
                report.folder = last["folder"]
            else:
                fs, root = fsspec.core.url_to_fs(staged)
                for obj, t in changes.items():
                    with fs.open(f"{root}/{obj}.parquet", "wb") as fh:
                        pq.write_table(t, fh)
                if quarantined:
                    with fs.open(f"{root}/{QUARANTINE_FILE}", "w") as fh:
                        fh.writelines(json.dumps(q, ensure_ascii=False, default=str) + "\n" for q in quarantined)
                committed = feed.commit(staged, report.manifest(), cfg=cfg)
                report.version, report.folder, report.written = committed["version"], committed["folder"], True
        except BaseException:
            feed.discard(staged)
            raise
    except (ExtractionError, SalesforceError) as exc:
        record_calls(report, client, started)
        kept = f"version {last['version']}, high-water mark {last['high_water_mark']}" if last else "none yet"
        log.error("changes pull failed after %s API calls (usage %s): %s", report.api_calls, report.api_usage, exc)
        raise ExtractionError(f"{exc}\nnothing was written: the last good changes of {ref.name} are {kept}") from exc.__cause__
    log.info("%s", report.summary())
    return report


def _sorted(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("Id", "ascending")]))


def changes_cli(argv: list[str]) -> int:
    """``changes --conn-id ID --store URL [--config FILE]``: 0 on success, 1 on failure, 2 on bad input."""
    return run_command(argv, "changes", "Pull the changes since the latest snapshot into its changes feed.", pull_changes)
