"""Salesforce extraction: complete, incremental, atomic snapshots through the Salesforce client.

Why it works the way it does:

- Every mapped field is checked against ``describe`` before the first query, so a typo in the
  field map fails in seconds with the whole list, not halfway through a run with one name.
- Small objects page through REST ``query``/``queryMore``; an object with more rows than
  ``salesforce.bulk_threshold`` (by ``SELECT COUNT()``) goes through one Bulk API 2.0 query
  job (``records``). Either way records stream into Parquet a chunk at a time (one row group
  per chunk), so memory does not grow with an object's rows. (What does: the day's changes of
  an incremental object, and the event -> attendee e-mails map, both in Arrow.)
- Task and Event change little from day to day but are the largest objects, so they are
  fetched by ``SystemModstamp`` since the previous snapshot, through ``queryAll`` so that
  deleted rows come back too, and merged into the previous snapshot's tables. The
  ``EventRelation`` and ``Lead`` rows that ``Event.AttendeeEmails`` is built from are kept in
  the snapshot beside the contract's tables for the same reason.
- The snapshot store only lists a snapshot once every table was written and its rows match
  Salesforce's own count, so a failure anywhere leaves yesterday's snapshot as the latest.
  Records that cannot be typed are quarantined to ``_quarantine.jsonl`` in the snapshot and
  counted, never dropped silently and never fatal.

Between snapshots the changes feed (``changes``) reads the same objects the same way.
Airflow, simple-salesforce and requests are imported where they are used: DAG files import
this module at parse time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sa_hygiene.contract.schema import OPTIONAL_OBJECTS
from sa_hygiene.source.records import (
    ORDER,
    QUARANTINE_FILE,
    ExtractionError,
    ExtractOptions,
    ObjectSpec,
    changed_rows,
    fetch,
    join_sorted,
    object_specs,
)
from sa_hygiene.source.salesforce import SalesforceError

if TYPE_CHECKING:
    from sa_hygiene.contract.config import Config
    from sa_hygiene.source.changes import FeedReport
    from sa_hygiene.source.salesforce import SalesforceClient
    from sa_hygiene.source.store import SnapshotRef, SnapshotStore

log = logging.getLogger(__name__)


@dataclass
class ObjectReport:
    object: str
    mode: str  # "full" or "incremental"
    path: str  # "rest" or "bulk"
    rows: int  # rows in the snapshot's table
    quarantined: int
    salesforce_count: int  # SELECT COUNT() the rows were checked against
    changed: int | None = None  # incremental: records changed or deleted since the previous snapshot


@dataclass
class ExtractionReport:
    taken_at: datetime
    snapshot: str | None = None  # URL of the committed snapshot
    staged: str | None = None  # URL of the staged, uncommitted snapshot (commit=False)
    previous: str | None = None  # URL of the snapshot incremental objects were merged into
    objects: dict[str, ObjectReport] = field(default_factory=dict)
    quarantined: int = 0
    requests: int = 0  # HTTP requests made after the first login
    api_calls: int | None = None  # from Sforce-Limit-Info: the org's usage during the run
    api_usage: str | None = None  # the last usage seen, "used/limit"
    retries: int = 0
    logins: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rows = ", ".join(f"{o.object} {o.rows:,} ({o.mode}, {o.path})" for o in self.objects.values())
        return (f"snapshot {self.snapshot}: {rows}; {self.quarantined} quarantined; "
                f"{self.api_calls} API calls (usage {self.api_usage}), {self.requests} requests, "
                f"{self.retries} retries, {self.logins} logins, {self.seconds:.1f}s")  # fmt: skip


class _ParquetWriter:
    """One Parquet table, written a row group at a time; REST pages are gathered first.

    ``finish`` completes a row group before it is written (Event's attendee e-mails): once
    per group rather than per 2,000-record page.
    """

    def __init__(self, fs, path: str, schema: pa.Schema, group_rows: int, finish: Callable[[pa.Table], pa.Table]):
        self.fs, self.path, self.schema, self.group_rows, self.finish = fs, path, schema, group_rows, finish
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._fh = fs.open(path, "wb")
        self._writer = pq.ParquetWriter(self._fh, schema)

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        if sum(t.num_rows for t in self._pending) >= self.group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = self.finish(pa.concat_tables(self._pending)).select(self.schema.names).cast(self.schema)
        self._pending = []
        if table.num_rows:
            self._writer.write_table(table, row_group_size=table.num_rows)
            self.rows += table.num_rows

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._fh.close()

    def check(self) -> None:
        """Read the file back: the store must not commit a table that is not what was written."""
        with self.fs.open(self.path, "rb") as fh:
            meta = pq.read_metadata(fh)
        if meta.num_rows != self.rows or not meta.schema.to_arrow_schema().equals(self.schema):
            raise ExtractionError(f"{self.path}: the written table does not read back as {self.rows} rows of {self.schema}")


# --------------------------------------------------------------------------- one run


class _Run:
    """Extracts every object into the store's temporary folder for one snapshot."""

    def __init__(self, client: SalesforceClient, cfg: Config, tmp_url: str, previous: SnapshotRef | None,
                 taken_at: datetime, options: ExtractOptions):  # fmt: skip
        self.client, self.cfg, self.options, self.taken_at = client, cfg, options, taken_at
        self.fs, self.root = fsspec.core.url_to_fs(tmp_url)
        self.previous = previous
        self.prev_fs, self.prev_root = fsspec.core.url_to_fs(previous.url) if previous else (None, None)
        self.quarantine: dict[str, list[dict]] = {}
        self.attendees: pa.Table | None = None
        self._prev_quarantine: list[dict] | None = None

    # ---- per object

    def extract(self, spec: ObjectSpec) -> ObjectReport:
        if spec.built:
            self.attendees = self._attendee_emails(spec)
        since = self._since(spec)
        if since is not None:
            report = self._incremental(spec, since)
            if report is not None:
                return report
        return self._full(spec)

    def _full(self, spec: ObjectSpec) -> ObjectReport:
        count = self._count(spec)
        path = self._path(count)
        quarantined: list[dict] = []
        sink = self._writer(spec)
        try:
            for table, bad in fetch(self.client, spec, None, path, self.options):
                sink.write(table)
                quarantined += bad
        finally:
            sink.close()
        sink.check()
        got = sink.rows + len(quarantined)
        agrees, counts = self._agrees(spec, got, count)
        if not agrees:
            raise ExtractionError(f"{spec.obj}: {sink.rows:,} rows written and {len(quarantined)} quarantined, but "
                                  f"SELECT COUNT() says {' then '.join(f'{c:,}' for c in counts)}")  # fmt: skip
        self.quarantine[spec.obj] = quarantined
        return ObjectReport(spec.obj, "full", path, sink.rows, len(quarantined), counts[-1])

    def _incremental(self, spec: ObjectSpec, since: datetime) -> ObjectReport | None:
        """Merge the changes into the previous table; None when the result does not add up."""
        total = self._count(spec)
        changed = self._count(spec, since)
        path = self._path(changed)
        delta, quarantined = changed_rows(self.client, spec, since, path, self.options, changed)
        gone = pa.concat_arrays([delta[spec.id].combine_chunks(),
                                 pa.array([q["record_id"] for q in quarantined if q["record_id"]], pa.string())])  # fmt: skip
        gone_set = set(gone.to_pylist())
        carried = [q for q in self._previous_quarantine(spec.obj) if q["record_id"] not in gone_set]
        sink = self._writer(spec)
        try:
            self._merge(spec, delta, gone, sink)
        finally:
            sink.close()
        sink.check()
        quarantined += carried
        agrees, counts = self._agrees(spec, sink.rows + len(quarantined), total)
        if not agrees:
            log.warning("%s: the merged table has %d rows and %d quarantined but SELECT COUNT() says %s; "
                        "extracting it in full instead", spec.obj, sink.rows, len(quarantined), counts)  # fmt: skip
            return None
        self.quarantine[spec.obj] = quarantined
        return ObjectReport(spec.obj, "incremental", path, sink.rows, len(quarantined), counts[-1], changed)

    def _merge(self, spec: ObjectSpec, delta: pa.Table, gone: pa.Array, sink: _ParquetWriter) -> None:
        """Previous rows not changed since, a row group at a time, then the live changed rows."""
        with self.prev_fs.open(f"{self.prev_root}/{spec.obj}.parquet", "rb") as fh:
            previous = pq.ParquetFile(fh)
            # Row group by row group: iter_batches' read-ahead took twice the memory (measured).
            for i in range(previous.num_row_groups):
                table = previous.read_row_group(i, columns=spec.queried)
                sink.write(table.filter(pc.invert(pc.is_in(table[spec.id], value_set=gone))))
        live = delta.filter(pc.invert(pc.fill_null(delta["IsDeleted"], False)))
        sink.write(live.drop_columns(["IsDeleted"]))

    def _since(self, spec: ObjectSpec) -> datetime | None:
        """Where an incremental extraction starts, or None for a full one."""
        if not spec.incremental or self.previous is None:
            return None
        if self.taken_at - self.previous.taken_at > self.options.max_incremental_age:
            log.info("%s: the previous snapshot is older than %s; extracting in full", spec.obj,
                     self.options.max_incremental_age)  # fmt: skip
            return None
        path = f"{self.prev_root}/{spec.obj}.parquet"
        if not self.prev_fs.exists(path):
            log.info("%s: the previous snapshot has no such table; extracting in full", spec.obj)
            return None
        with self.prev_fs.open(path, "rb") as fh:
            present = pq.read_schema(fh)
        wanted = [pa.field(c, spec.columns[c]) for c in spec.queried]
        if any(present.get_field_index(f.name) < 0 or present.field(f.name).type != f.type for f in wanted):
            log.info("%s: the previous snapshot's table does not match the field map; extracting in full", spec.obj)
            return None
        return self.previous.taken_at - self.options.overlap

    # ---- helpers

    def _count(self, spec: ObjectSpec, since: datetime | None = None) -> int:
        soql = spec.soql(since, count=True)
        result = self.client.query(soql, include_deleted=since is not None, what=f"{spec.obj}: count")
        return int(result["totalSize"])

    def _agrees(self, spec: ObjectSpec, got: int, count: int) -> tuple[bool, list[int]]:
        """Rows can be created or deleted while a large object is read: count once more before failing."""
        if got == count:
            return True, [count]
        recount = self._count(spec)
        return got == recount, [count, recount]

    def _path(self, count: int) -> str:
        return "bulk" if count > self.cfg.salesforce.bulk_threshold else "rest"

    def _writer(self, spec: ObjectSpec) -> _ParquetWriter:
        def finish(table: pa.Table) -> pa.Table:
            if not spec.built:
                return table
            at = pc.index_in(table[spec.id], value_set=self.attendees["EventId"])
            return table.append_column(spec.built, pc.take(self.attendees[spec.built], at))

        return _ParquetWriter(self.fs, f"{self.root}/{spec.obj}.parquet", spec.schema, self.options.row_group_rows, finish)

    def _attendee_emails(self, spec: ObjectSpec) -> pa.Table:
        """EventId -> the ';'-joined e-mails of its related users, contacts and leads, sorted, distinct."""
        fields = self.cfg.fields
        emails = pa.concat_tables([
            self._read("User", [fields["User"]["id"], fields["User"]["email"]], as_names=["Id", "Email"]),
            self._read("Contact", [fields["Contact"]["id"], fields["Contact"]["email"]], as_names=["Id", "Email"]),
            self._read("Lead", ["Id", "Email"]),
        ])  # fmt: skip
        emails = emails.filter(pc.is_valid(emails["Email"]))
        relations = self._read("EventRelation", ["EventId", "RelationId"])
        at = pc.index_in(relations["RelationId"], value_set=emails["Id"])  # lighter than a hash join
        pairs = pa.table({"EventId": relations["EventId"], "Email": pc.take(emails["Email"], at)})
        event_ids, joined = join_sorted(pairs.filter(pc.is_valid(at)), "EventId", "Email", ";")
        return pa.table({"EventId": event_ids, spec.built: joined})

    def _read(self, obj: str, columns: list[str], as_names: list[str] | None = None) -> pa.Table:
        """Columns of a table this run already wrote."""
        with self.fs.open(f"{self.root}/{obj}.parquet", "rb") as fh:
            table = pq.read_table(fh, columns=columns)
        return table.rename_columns(as_names or columns)

    def _previous_quarantine(self, obj: str) -> list[dict]:
        """Records quarantined before and not changed since are still in Salesforce: they stay quarantined."""
        if self._prev_quarantine is None:
            path = f"{self.prev_root}/{QUARANTINE_FILE}"
            self._prev_quarantine = []
            if self.prev_fs.exists(path):
                with self.prev_fs.open(path, "r") as fh:
                    self._prev_quarantine = [json.loads(line) for line in fh if line.strip()]
        return [q for q in self._prev_quarantine if q["object"] == obj and q["record_id"]]

    def write_quarantine(self) -> int:
        entries = [q for obj in ORDER for q in self.quarantine.get(obj, [])]
        if entries:
            with self.fs.open(f"{self.root}/{QUARANTINE_FILE}", "w") as fh:
                fh.writelines(json.dumps(q, ensure_ascii=False, default=str) + "\n" for q in entries)
        return len(entries)


# --------------------------------------------------------------------------- entry points


def _check_fields(client: SalesforceClient, specs: dict[str, ObjectSpec]) -> set[str]:
    """Describe every object; raise one error naming each missing or misspelt field, object by object.

    Returns the optional objects (``schema.OPTIONAL_OBJECTS``) the org does not have: they are
    not read, and the snapshot has no file of them (an org without POVs).
    """
    problems, absent = [], set()
    for obj, spec in specs.items():
        try:
            described = client.describe(obj, what=f"{obj}: describe")
        except SalesforceError as exc:
            if exc.status != 404:
                raise
            if obj in OPTIONAL_OBJECTS:
                absent.add(obj)
                continue
            problems.append(f"{obj}: no such object, or not visible to this user")
            continue
        names = {f["name"] for f in described["fields"]}
        lower = {n.lower(): n for n in names}
        missing = [f"{f} (did you mean {lower[f.lower()]}?)" if f.lower() in lower else f
                   for f in spec.queried if f not in names]  # fmt: skip
        if missing:
            problems.append(f"{obj}: {', '.join(missing)}")
    if problems:
        raise ExtractionError("the field map names fields this Salesforce org does not have "
                              "(fix `fields` in the configuration):\n  " + "\n  ".join(problems))  # fmt: skip
    return absent


def extract_snapshot(cfg: Config, store: SnapshotStore, conn_id: str | None = None, now: datetime | None = None,
                     *, session_id: str | None = None, options: ExtractOptions | None = None,
                     commit: bool = True) -> ExtractionReport:  # fmt: skip
    """Extract one snapshot into ``store`` and commit it, or raise ``ExtractionError`` and commit nothing.

    ``conn_id`` defaults to ``cfg.salesforce.conn_id``; ``session_id`` is for connections that
    authenticate with an existing session (the hook's direct-session method). With
    ``commit=False`` the snapshot stays staged (``report.staged``) for the caller to validate and
    ``store.commit`` (the snapshot DAG's extract -> validate -> commit).
    """
    from sa_hygiene.source.store import snapshot_name

    options = options or ExtractOptions()
    conn_id = conn_id or cfg.salesforce.conn_id
    taken_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    previous = store.latest()
    report = ExtractionReport(taken_at=taken_at, previous=previous.url if previous else None)
    started = time.perf_counter()
    client = None
    try:
        client = options.client(conn_id, session_id).connect()
        specs = object_specs(cfg)
        for obj in _check_fields(client, specs):
            del specs[obj]
        staged = store.stage(taken_at)
        try:
            run = _Run(client, cfg, staged, previous, taken_at, options)
            for spec in specs.values():
                report.objects[spec.obj] = obj = run.extract(spec)
                log.info("%s: %d rows (%s, %s), %d quarantined", spec.obj, obj.rows, obj.mode, obj.path, obj.quarantined)
            report.quarantined = run.write_quarantine()
            if commit:
                store.commit(staged, taken_at, source=f"salesforce:{conn_id}", cfg=cfg)
        except BaseException:
            store.discard(staged)
            raise
        if commit:
            report.snapshot = f"{store.url}/{snapshot_name(taken_at)}"
        else:
            report.staged = staged
    except (ExtractionError, SalesforceError) as exc:
        record_calls(report, client, started)
        latest = previous.name if previous else "none"
        log.error("extraction failed after %d API calls (usage %s): %s", report.api_calls or 0, report.api_usage, exc)
        error = ExtractionError(f"{exc}\nnothing was committed: the latest snapshot is still {latest}")
        error.report = report
        raise error from exc.__cause__
    record_calls(report, client, started)
    log.info("extracted %s: %d API calls (usage %s), %d requests, %d retries, %d logins, %.1fs", report.snapshot,
             report.api_calls or 0, report.api_usage, report.requests, report.retries, report.logins, report.seconds)  # fmt: skip
    return report


def record_calls(report: ExtractionReport | FeedReport, client: SalesforceClient | None, started: float) -> None:
    """A report's seconds since ``started``, and what the client counted of its calls."""
    report.seconds = time.perf_counter() - started
    for name, value in (client.counts() if client is not None else {}).items():
        setattr(report, name, value)


def extract_cli(argv: list[str]) -> int:
    """``extract --conn-id ID --store URL [--config FILE]``: 0 on success, 1 on failure, 2 on bad input."""
    return run_command(argv, "extract", "Extract a Salesforce snapshot into the snapshot store.", extract_snapshot)


def run_command(argv: list[str], name: str, description: str, action: Callable) -> int:
    """The shared shape of ``extract`` and ``changes``: a connection, a store, a configuration."""
    p = argparse.ArgumentParser(prog=f"python -m sa_hygiene {name}", description=description)
    p.add_argument("--conn-id", required=True, help="Airflow connection id (resolved from AIRFLOW_CONN_<ID>)")
    p.add_argument("--store", required=True, help="snapshot store: a folder or fsspec URL")
    p.add_argument("--config", help="project configuration (defaults apply without it)")
    args = p.parse_args(argv)

    from sa_hygiene.contract.config import ConfigError, load_config
    from sa_hygiene.source.store import SnapshotStore

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = action(cfg, SnapshotStore(args.store, keep=cfg.store.keep), args.conn_id)
    except ExtractionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
