"""Salesforce extraction: complete, incremental, atomic snapshots through the Salesforce provider.

Why it works the way it does:

- Only the mapped fields are queried (never ``FIELDS(ALL)``), and every one is checked
  against ``describe`` before the first query, so a typo in the field map fails in seconds
  with the whole list, not halfway through a run with one name.
- Small objects page through REST ``query``/``queryMore``; an object with more rows than
  ``salesforce.bulk_threshold`` (by ``SELECT COUNT()``) goes through one Bulk API 2.0 query
  job. Either way records stream into Parquet a chunk at a time (one row group per chunk),
  typed once here, so memory does not grow with an object's rows. (What does: the day's
  changes of an incremental object, and the event -> attendee e-mails map, both in Arrow.)
- Task and Event change little from day to day but are the largest objects, so they are
  fetched by ``SystemModstamp`` since the previous snapshot, through ``queryAll`` so that
  deleted rows come back too, and merged into the previous snapshot's tables. The
  ``EventRelation`` and ``Lead`` rows that ``Event.AttendeeEmails`` is built from are kept in
  the snapshot beside the contract's tables for the same reason.
- Between snapshots, the changes feed (``pull_changes``, every 15 minutes) pulls the same way
  what changed in Task, Event, EventRelation, Contact and Lead since the last good pull, and
  keeps it beside the snapshot as a changes folder (CONTRACT.md § 1b): a few queries a run,
  where a snapshot every 15 minutes would read every object.
- The snapshot store only lists a snapshot once every table was written and its rows match
  Salesforce's own count, so a failure anywhere leaves yesterday's snapshot as the latest.
  Records that cannot be typed are quarantined to ``_quarantine.jsonl`` in the snapshot and
  counted, never dropped silently and never fatal.

Airflow, simple-salesforce and requests are imported where they are used: DAG files import
this module at parse time.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sa_hygiene.contract.schema import OBJECTS

if TYPE_CHECKING:
    from sa_hygiene.contract.config import Config
    from sa_hygiene.source.snapshot import SnapshotRef, SnapshotStore

log = logging.getLogger(__name__)
T = TypeVar("T")

QUARANTINE_FILE = "_quarantine.jsonl"
TIMESTAMP = pa.timestamp("ms", tz="UTC")
ARROW_TYPES = {"id": pa.string(), "ref": pa.string(), "text": pa.string(), "multi": pa.string(),
               "bool": pa.bool_(), "number": pa.float64(), "date": pa.date32(), "datetime": TIMESTAMP}  # fmt: skip
TYPE_NAMES = {pa.bool_(): "boolean", pa.float64(): "number", pa.date32(): "date", TIMESTAMP: "datetime"}
# Objects outside the data contract, read to build Event.AttendeeEmails. Standard fields:
# no field map needed.
AUXILIARY = {
    "Lead": {"Id": pa.string(), "Email": pa.string(), "SystemModstamp": TIMESTAMP},
    "EventRelation": {"Id": pa.string(), "EventId": pa.string(), "RelationId": pa.string(), "SystemModstamp": TIMESTAMP},
}
# Extraction order: Event needs the e-mails of User, Contact and Lead, and EventRelation.
ORDER = ["User", "Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Lead", "EventRelation", "Event"]
INCREMENTAL = {"Task", "Event", "Lead", "EventRelation"}
_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")
_LOGIN_URL = re.compile(r"/services/(Soap/u/|oauth2/token)")


class ExtractionError(RuntimeError):
    """The extraction failed and nothing was committed; the message says what and where."""

    report: ExtractionReport | None = None


@dataclass(frozen=True)
class ExtractOptions:
    """Tuning that suits every org, so it is not configuration; tests and the bench shrink it."""

    bulk_page_size: int = 50_000  # records per Bulk API 2.0 results request
    bulk_poll_seconds: float = 2.0
    row_group_rows: int = 50_000  # REST pages are gathered into row groups of about this size
    retries: int = 4  # network errors and 5xx, per call
    backoff_seconds: float = 1.0  # doubled on each retry
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 120.0  # per HTTP request; requests has no default
    # Incremental windows start this long before the previous snapshot: clocks differ, and
    # fetching a record twice is harmless (upsert by Id).
    overlap: timedelta = timedelta(minutes=5)
    # Deleted records leave the recycle bin (and queryAll) after 15 days: an older previous
    # snapshot cannot learn about deletions, so Task and Event are then extracted in full.
    max_incremental_age: timedelta = timedelta(days=14)


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


# --------------------------------------------------------------------------- what to extract


@dataclass(frozen=True)
class _Spec:
    obj: str
    columns: dict[str, pa.DataType]  # the snapshot table's columns, API names, in order
    id: str
    built: str | None = None  # a column made at extraction, not queried (Event.AttendeeEmails)

    @property
    def incremental(self) -> bool:
        return self.obj in INCREMENTAL

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.columns.items()))

    @property
    def queried(self) -> list[str]:
        return [c for c in self.columns if c != self.built]

    def soql(self, since: datetime | None = None, count: bool = False) -> str:
        """Deleted rows carry IsDeleted only in incremental queries, which go through queryAll."""
        fields = "COUNT()" if count else ", ".join(self.queried + (["IsDeleted"] if since else []))
        where = f" WHERE SystemModstamp > {since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if since else ""
        return f"SELECT {fields} FROM {self.obj}{where}"


def _specs(cfg: Config) -> dict[str, _Spec]:
    specs = {}
    for obj in ORDER:
        if obj in AUXILIARY:
            specs[obj] = _Spec(obj, AUXILIARY[obj], "Id")
            continue
        fmap = cfg.fields[obj]
        columns: dict[str, pa.DataType] = {}
        for logical, f in OBJECTS[obj].items():
            columns.setdefault(fmap[logical], ARROW_TYPES[f.kind])
        built = fmap["attendee_emails"] if obj == "Event" else None
        specs[obj] = _Spec(obj, columns, fmap["id"], built)
    return specs


# --------------------------------------------------------------------------- the connection


@dataclass
class _Usage:
    """What the session's response hook saw: requests, logins, the org's API usage."""

    requests: int = 0
    logins: int = 0
    first: tuple[int, int] | None = None
    last: tuple[int, int] | None = None

    def observe(self, response, *args, **kwargs):
        self.requests += 1
        if _LOGIN_URL.search(response.url):
            self.logins += 1
        m = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if m:
            self.last = (int(m[1]), int(m[2]))
            self.first = self.first or self.last
        return response

    @property
    def calls(self) -> int | None:
        return self.last[0] - self.first[0] + 1 if self.first and self.last else None

    @property
    def seen(self) -> str:
        return f"{self.last[0]}/{self.last[1]}" if self.last else "none reported"


def _instrument(session, usage: _Usage, timeout: float) -> None:
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["timeout"] = kwargs.get("timeout") or timeout
            return super().send(request, **kwargs)

    session.mount("https://", TimeoutAdapter())
    session.hooks["response"].append(usage.observe)


def _error_code(exc) -> tuple[str, str]:
    """(errorCode, message) of a simple-salesforce error, whatever shape its content has."""
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return "", str(content if content else exc)


def _transient(exc: Exception) -> bool:
    import requests
    from simple_salesforce.exceptions import SalesforceGeneralError

    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, requests.exceptions.SSLError):
        return "CERTIFICATE_VERIFY_FAILED" not in str(exc)  # a broken stream, not an untrusted server
    return isinstance(exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


class _Api:
    """The hook's connection, with what a long extraction needs around each call.

    Network errors and 5xx are retried with exponential backoff. An expired session is
    logged in again once per call: simple-salesforce refreshes REST calls by itself, but its
    Bulk API 2.0 handler keeps the session id it was made with. REQUEST_LIMIT_EXCEEDED stops
    at once, since every retry spends more of the org's daily allowance.
    """

    def __init__(self, conn_id: str, session_id: str | None, options: ExtractOptions):
        self.conn_id, self.session_id, self.options = conn_id, session_id, options
        self.usage = _Usage()
        self.retries = 0
        self.connects = 0
        self.sf = self._retrying("log in to Salesforce", self._connect)

    def _connect(self):
        from airflow.providers.common.compat.sdk import AirflowNotFoundException
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
        from simple_salesforce.exceptions import SalesforceAuthenticationFailed

        try:
            sf = SalesforceHook(salesforce_conn_id=self.conn_id, session_id=self.session_id).get_conn()
        except AirflowNotFoundException:
            raise ExtractionError(f"no Airflow connection {self.conn_id!r} (set AIRFLOW_CONN_{self.conn_id.upper()})") from None
        except SalesforceAuthenticationFailed as exc:
            raise ExtractionError(f"cannot log in with connection {self.conn_id!r}: {exc.code}: {exc.auth_message}") from None
        except TypeError as exc:  # simple-salesforce's word for "no usable credentials"
            raise ExtractionError(f"connection {self.conn_id!r} cannot be used: {exc}") from None
        self.connects += 1
        _instrument(sf.session, self.usage, self.options.timeout_seconds)
        return sf

    @property
    def logins(self) -> int:
        return self.connects + self.usage.logins

    def call(self, what: str, fn: Callable[[Any], T]) -> T:
        from simple_salesforce.exceptions import SalesforceExpiredSession

        relogged = False
        while True:
            try:
                return self._retrying(what, lambda: fn(self.sf))
            except SalesforceExpiredSession:
                if self.sf.auth_type == "direct":
                    raise ExtractionError(f"{what}: the session expired and connection {self.conn_id!r} has a "
                                          "session id, not credentials to log in again") from None  # fmt: skip
                if relogged:
                    raise ExtractionError(f"{what}: the session expired again right after logging in") from None
                relogged = True
                log.warning("%s: the Salesforce session expired; logging in again", what)
                self.sf = self._retrying("log in to Salesforce again", self._connect)

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

        attempt = 0
        while True:
            try:
                return fn()
            except (ExtractionError, SalesforceExpiredSession):
                raise
            except SalesforceRefusedRequest as exc:
                raise ExtractionError(self._refused(what, exc)) from None
            except Exception as exc:
                reason = self._reason(exc)
                if not _transient(exc):
                    raise ExtractionError(f"{what}: {reason}") from exc
                if attempt >= self.options.retries:
                    raise ExtractionError(f"{what}: {reason} (gave up after {attempt + 1} attempts)") from exc
                attempt += 1
                self.retries += 1
                delay = min(self.options.backoff_seconds * 2 ** (attempt - 1), self.options.max_backoff_seconds)
                log.warning("%s: %s; retry %d of %d in %.1fs", what, reason, attempt, self.options.retries, delay)
                time.sleep(delay)

    def _refused(self, what: str, exc) -> str:
        code, message = _error_code(exc)
        if code == "REQUEST_LIMIT_EXCEEDED":
            return (f"{what}: Salesforce refused the request: REQUEST_LIMIT_EXCEEDED ({message}); "
                    f"API usage seen: {self.usage.seen}, of which this run made {self.usage.calls}")  # fmt: skip
        return f"{what}: Salesforce refused the request: {code or exc.status}: {message}"

    @staticmethod
    def _reason(exc: Exception) -> str:
        from simple_salesforce.exceptions import SalesforceError

        if isinstance(exc, SalesforceError):
            code, message = _error_code(exc)
            return f"HTTP {exc.status} {code}: {message}".replace("  ", " ")
        return f"{type(exc).__name__}: {exc}"


def _rest_pages(api: _Api, what: str, soql: str, include_deleted: bool) -> Iterator[list]:
    result = api.call(what, lambda sf: sf.query(soql, include_deleted=include_deleted))
    while True:
        yield result.get("records", [])
        if result.get("done", True):
            return
        url = result["nextRecordsUrl"]
        result = api.call(what, lambda sf, url=url: sf.query_more(url, identifier_is_url=True))


def _bulk_pages(api: _Api, what: str, obj: str, soql: str, include_deleted: bool, options: ExtractOptions) -> Iterator[str]:
    """CSV pages of one Bulk API 2.0 query job, each fetched (and retried) by its locator."""
    from simple_salesforce.bulk2 import Operation

    operation = Operation.query_all if include_deleted else Operation.query

    def client(sf):  # built per call: after a new login the job must be read with the new session
        return getattr(sf.bulk2, obj)._client

    job = api.call(what, lambda sf: client(sf).create_job(operation, soql))["id"]
    api.call(what, lambda sf: client(sf).wait_for_job(job, True, options.bulk_poll_seconds))
    locator = ""
    while True:
        page = api.call(what, lambda sf, loc=locator: client(sf).get_query_results(job, loc, options.bulk_page_size))
        yield page["records"]
        locator = page["locator"]
        if not locator:
            return


# --------------------------------------------------------------------------- records to typed tables


def _quarantined(obj: str, record_id: str | None, reason: str, detail: str, record: Any) -> dict:
    return {"object": obj, "record_id": record_id, "reason": reason, "detail": detail, "record": record}


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _from_json(obj: str, records: list, fields: list[str]) -> tuple[dict[str, pa.Array], list[dict]]:
    good, bad = [], []
    for r in records:
        if isinstance(r, dict) and all(f in r and not isinstance(r[f], dict | list) for f in fields):
            good.append(r)
        else:
            rid = r.get("Id") if isinstance(r, dict) else None
            bad.append(_quarantined(obj, _text(rid), "malformed_record", "not a flat record of the queried fields",
                                    r if isinstance(r, dict) else repr(r)))  # fmt: skip
    return {f: pa.array([_text(r[f]) for r in good], pa.string()) for f in fields}, bad


def _from_csv(obj: str, text: str, fields: list[str]) -> tuple[dict[str, pa.Array], list[dict]]:
    if not text.strip():
        return {f: pa.array([], pa.string()) for f in fields}, []
    bad: list[dict] = []

    def invalid(row) -> str:
        detail = f"a CSV row with {row.actual_columns} fields, expected {row.expected_columns}"
        bad.append(_quarantined(obj, None, "malformed_record", detail, row.text))
        return "skip"

    table = pacsv.read_csv(
        pa.py_buffer(text.encode()),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={f: pa.string() for f in fields},
            null_values=[""],  # not pyarrow's default list: "NA" and "null" are real values
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    if table.column_names != fields:
        raise ExtractionError(f"{obj}: the Bulk API returned columns {table.column_names}, expected {fields}")
    return {f: table[f].combine_chunks() for f in fields}, bad


def _cast(text: pa.Array, type_: pa.DataType) -> tuple[pa.Array, list[int]]:
    """(values, positions that do not parse); element by element only when a page has a bad one."""
    try:
        return pc.cast(text, type_), []
    except pa.ArrowInvalid:
        pass
    values, invalid = [], []
    for i, v in enumerate(text.to_pylist()):
        try:
            values.append(None if v is None else pc.cast(pa.array([v]), type_)[0].as_py())
        except pa.ArrowInvalid:
            values.append(None)
            invalid.append(i)
    return pa.array(values, type_), invalid


def _typed(obj: str, id_field: str, columns: dict[str, pa.Array], types: dict[str, pa.DataType]) -> tuple[pa.Table, list[dict]]:
    """A page's text columns as a typed table; rows without an Id or with a bad value are quarantined."""
    ids = columns[id_field]
    blank = np.flatnonzero(pc.is_null(ids).to_numpy(zero_copy_only=False))
    problems: dict[int, tuple[str, str]] = {int(i): ("blank_id", f"{id_field} is blank") for i in blank}
    arrays = []
    for name, type_ in types.items():
        values, invalid = _cast(columns[name], type_)
        for i in invalid:
            problems.setdefault(i, ("bad_value", f"{name}: {columns[name][i].as_py()!r} is not a {TYPE_NAMES[type_]}"))
        arrays.append(values)
    table = pa.Table.from_arrays(arrays, schema=pa.schema(list(types.items())))
    if not problems:
        return table, []
    bad = [_quarantined(obj, ids[i].as_py(), reason, detail, {n: c[i].as_py() for n, c in columns.items()})
           for i, (reason, detail) in sorted(problems.items())]  # fmt: skip
    keep = np.ones(table.num_rows, bool)
    keep[list(problems)] = False
    return table.filter(pa.array(keep)), bad


def _join_sorted(table: pa.Table, key: str, value: str, sep: str) -> tuple[pa.Array, pa.Array]:
    """(each key, its distinct values sorted and joined by ``sep``).

    By sorting and cutting at key changes rather than with Arrow's group_by, which needs about
    three times the memory (400,000 event relations: 56 MB against 163 MB of peak RSS).
    """
    table = table.take(pc.sort_indices(table, [(key, "ascending"), (value, "ascending")])).combine_chunks()
    keys, values = table[key].combine_chunks(), table[value].combine_chunks()
    n = len(keys)
    first = np.ones(n, bool)
    repeated = np.zeros(n, bool)
    if n > 1:
        first[1:] = pc.not_equal(keys.slice(1), keys.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        repeated[1:] = pc.equal(values.slice(1), values.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    keep = first | ~repeated
    keys, values, first = keys.filter(pa.array(keep)), values.filter(pa.array(keep)), first[keep]
    starts = np.flatnonzero(first)
    lists = pa.ListArray.from_arrays(pa.array(np.append(starts, len(values)), pa.int32()), values)
    return keys.take(pa.array(starts)), pc.binary_join(lists, sep)


class _Sink:
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

    def __init__(self, api: _Api, cfg: Config, tmp_url: str, previous: SnapshotRef | None,
                 taken_at: datetime, options: ExtractOptions):  # fmt: skip
        self.api, self.cfg, self.options, self.taken_at = api, cfg, options, taken_at
        self.fs, self.root = fsspec.core.url_to_fs(tmp_url)
        self.previous = previous
        self.prev_fs, self.prev_root = fsspec.core.url_to_fs(previous.url) if previous else (None, None)
        self.quarantine: dict[str, list[dict]] = {}
        self.attendees: pa.Table | None = None
        self._prev_quarantine: list[dict] | None = None

    # ---- per object

    def extract(self, spec: _Spec) -> ObjectReport:
        if spec.built:
            self.attendees = self._attendee_emails(spec)
        since = self._since(spec)
        if since is not None:
            report = self._incremental(spec, since)
            if report is not None:
                return report
        return self._full(spec)

    def _full(self, spec: _Spec) -> ObjectReport:
        count = self._count(spec)
        path = self._path(count)
        quarantined: list[dict] = []
        sink = self._sink(spec)
        try:
            for table, bad in self._chunks(spec, None, path):
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

    def _incremental(self, spec: _Spec, since: datetime) -> ObjectReport | None:
        """Merge the changes into the previous table; None when the result does not add up."""
        total = self._count(spec)
        changed = self._count(spec, since)
        path = self._path(changed)
        delta, quarantined = self._delta(spec, since, path, changed)
        gone = pa.concat_arrays([delta[spec.id].combine_chunks(),
                                 pa.array([q["record_id"] for q in quarantined if q["record_id"]], pa.string())])  # fmt: skip
        gone_set = set(gone.to_pylist())
        carried = [q for q in self._previous_quarantine(spec.obj) if q["record_id"] not in gone_set]
        sink = self._sink(spec)
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

    def _delta(self, spec: _Spec, since: datetime, path: str, changed: int) -> tuple[pa.Table, list[dict]]:
        """The changed rows, latest per Id; held in memory (Arrow), as large as a day's changes."""
        tables, quarantined = [], []
        for table, bad in self._chunks(spec, since, path) if changed else ():
            tables.append(table)
            quarantined += bad
        types = {**{c: spec.columns[c] for c in spec.queried}, "IsDeleted": pa.bool_()}
        delta = pa.concat_tables(tables) if tables else pa.schema(list(types.items())).empty_table()
        if pc.count_distinct(delta[spec.id]).as_py() < delta.num_rows:
            positions = delta.append_column("_pos", pa.array(np.arange(delta.num_rows)))
            last = positions.group_by(spec.id, use_threads=False).aggregate([("_pos", "max")])["_pos_max"]
            delta = delta.take(pc.sort_indices(last))
        return delta, quarantined

    def _merge(self, spec: _Spec, delta: pa.Table, gone: pa.Array, sink: _Sink) -> None:
        """Previous rows not changed since, a row group at a time, then the live changed rows."""
        with self.prev_fs.open(f"{self.prev_root}/{spec.obj}.parquet", "rb") as fh:
            previous = pq.ParquetFile(fh)
            # Row group by row group: iter_batches' read-ahead took twice the memory (measured).
            for i in range(previous.num_row_groups):
                table = previous.read_row_group(i, columns=spec.queried)
                sink.write(table.filter(pc.invert(pc.is_in(table[spec.id], value_set=gone))))
        live = delta.filter(pc.invert(pc.fill_null(delta["IsDeleted"], False)))
        sink.write(live.drop_columns(["IsDeleted"]))

    def _since(self, spec: _Spec) -> datetime | None:
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

    def _count(self, spec: _Spec, since: datetime | None = None) -> int:
        soql = spec.soql(since, count=True)
        result = self.api.call(f"{spec.obj}: count", lambda sf: sf.query(soql, include_deleted=since is not None))
        return int(result["totalSize"])

    def _agrees(self, spec: _Spec, got: int, count: int) -> tuple[bool, list[int]]:
        """Rows can be created or deleted while a large object is read: count once more before failing."""
        if got == count:
            return True, [count]
        recount = self._count(spec)
        return got == recount, [count, recount]

    def _path(self, count: int) -> str:
        return "bulk" if count > self.cfg.salesforce.bulk_threshold else "rest"

    def _chunks(self, spec: _Spec, since: datetime | None, path: str) -> Iterator[tuple[pa.Table, list[dict]]]:
        fields = spec.queried + (["IsDeleted"] if since else [])
        types = {f: spec.columns.get(f, pa.bool_()) for f in fields}
        soql = spec.soql(since)
        deleted = since is not None
        if path == "bulk":
            what = f"{spec.obj}: Bulk API 2.0 query"
            for text in _bulk_pages(self.api, what, spec.obj, soql, deleted, self.options):
                columns, malformed = _from_csv(spec.obj, text, fields)
                table, bad = _typed(spec.obj, spec.id, columns, types)
                yield table, malformed + bad
        else:
            for records in _rest_pages(self.api, f"{spec.obj}: query", soql, deleted):
                columns, malformed = _from_json(spec.obj, records, fields)
                table, bad = _typed(spec.obj, spec.id, columns, types)
                yield table, malformed + bad

    def _sink(self, spec: _Spec) -> _Sink:
        def finish(table: pa.Table) -> pa.Table:
            if not spec.built:
                return table
            at = pc.index_in(table[spec.id], value_set=self.attendees["EventId"])
            return table.append_column(spec.built, pc.take(self.attendees[spec.built], at))

        return _Sink(self.fs, f"{self.root}/{spec.obj}.parquet", spec.schema, self.options.row_group_rows, finish)

    def _attendee_emails(self, spec: _Spec) -> pa.Table:
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
        event_ids, joined = _join_sorted(pairs.filter(pc.is_valid(at)), "EventId", "Email", ";")
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


def _check_fields(api: _Api, specs: dict[str, _Spec]) -> None:
    """Describe every object; raise one error naming each missing or misspelt field, object by object."""
    from simple_salesforce.exceptions import SalesforceResourceNotFound

    problems = []
    for obj, spec in specs.items():

        def describe(sf, obj=obj):
            try:
                return getattr(sf, obj).describe()
            except SalesforceResourceNotFound:
                return None

        described = api.call(f"{obj}: describe", describe)
        if described is None:
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


def extract_snapshot(cfg: Config, store: SnapshotStore, conn_id: str | None = None, now: datetime | None = None,
                     *, session_id: str | None = None, options: ExtractOptions | None = None,
                     commit: bool = True) -> ExtractionReport:  # fmt: skip
    """Extract one snapshot into ``store`` and commit it, or raise ``ExtractionError`` and commit nothing.

    ``conn_id`` defaults to ``cfg.salesforce.conn_id``; ``session_id`` is for connections that
    authenticate with an existing session (the hook's direct-session method). With
    ``commit=False`` the snapshot stays staged (``report.staged``) for the caller to validate and
    ``store.commit`` (the snapshot DAG's extract -> validate -> commit).
    """
    from sa_hygiene.source.snapshot import snapshot_name

    options = options or ExtractOptions()
    conn_id = conn_id or cfg.salesforce.conn_id
    taken_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    previous = store.latest()
    report = ExtractionReport(taken_at=taken_at, previous=previous.url if previous else None)
    started = time.perf_counter()
    api = None
    try:
        api = _Api(conn_id, session_id, options)
        specs = _specs(cfg)
        _check_fields(api, specs)
        staged = store.stage(taken_at)
        try:
            run = _Run(api, cfg, staged, previous, taken_at, options)
            for spec in specs.values():
                report.objects[spec.obj] = obj = run.extract(spec)
                log.info("%s: %d rows (%s, %s), %d quarantined", spec.obj, obj.rows, obj.mode, obj.path, obj.quarantined)
            report.quarantined = run.write_quarantine()
            if commit:
                store.commit(staged, taken_at, source=f"salesforce:{conn_id}")
        except BaseException:
            store.discard(staged)
            raise
        if commit:
            report.snapshot = f"{store.url}/{snapshot_name(taken_at)}"
        else:
            report.staged = staged
    except ExtractionError as exc:
        _account(report, api, started)
        latest = previous.name if previous else "none"
        log.error("extraction failed after %d API calls (usage %s): %s", report.api_calls or 0, report.api_usage, exc)
        error = ExtractionError(f"{exc}\nnothing was committed: the latest snapshot is still {latest}")
        error.report = report
        raise error from exc.__cause__
    _account(report, api, started)
    log.info("extracted %s: %d API calls (usage %s), %d requests, %d retries, %d logins, %.1fs", report.snapshot,
             report.api_calls or 0, report.api_usage, report.requests, report.retries, report.logins, report.seconds)  # fmt: skip
    return report


def _account(report: ExtractionReport, api: _Api | None, started: float) -> None:
    report.seconds = time.perf_counter() - started
    if api is not None:
        report.requests = api.usage.requests
        report.api_calls = api.usage.calls
        report.api_usage = api.usage.seen if api.usage.last else None
        report.retries = api.retries
        report.logins = api.logins


def extract_cli(argv: list[str]) -> int:
    """``extract --conn-id ID --store URL [--config FILE]``: 0 on success, 1 on failure, 2 on bad input."""
    return _command(argv, "extract", "Extract a Salesforce snapshot into the snapshot store.", extract_snapshot)


def _command(argv: list[str], name: str, description: str, action: Callable) -> int:
    """The shared shape of ``extract`` and ``changes``: a connection, a store, a configuration."""
    p = argparse.ArgumentParser(prog=f"python -m sa_hygiene {name}", description=description)
    p.add_argument("--conn-id", required=True, help="Airflow connection id (resolved from AIRFLOW_CONN_<ID>)")
    p.add_argument("--store", required=True, help="snapshot store: a folder or fsspec URL")
    p.add_argument("--config", help="project configuration (defaults apply without it)")
    args = p.parse_args(argv)

    from sa_hygiene.contract.config import ConfigError, load_config
    from sa_hygiene.source.snapshot import SnapshotStore

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


# --------------------------------------------------------------------------- the changes feed

# What the 15-minute feed pulls: the activities and meetings, and what Event.AttendeeEmails is
# built from (relations, and the e-mails of contacts and leads; users change too rarely to matter
# within a day). Contact changes are applied over the snapshot as well.
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

    def __init__(self, run: _Run, specs: dict[str, _Spec], snapshot: SnapshotRef, last: dict | None):
        self.run, self.specs, self.last = run, specs, last
        self.snap_fs, self.snap_root = fsspec.core.url_to_fs(snapshot.url)
        self.last_fs, self.last_root = fsspec.core.url_to_fs(last["folder"]) if last else (None, None)

    def previous(self, obj: str) -> pa.Table | None:
        """This object's rows in the last good version, or None."""
        if self.last is None or not self.last_fs.exists(f"{self.last_root}/{obj}.parquet"):
            return None
        with self.last_fs.open(f"{self.last_root}/{obj}.parquet", "rb") as fh:
            return pq.read_table(fh)

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
        fields = self.run.cfg.fields
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
        event_ids, joined = _join_sorted(pairs.filter(pc.is_valid(at)), "EventId", "Email", ";")
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
    from sa_hygiene.source.snapshot import ChangesFeed

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
    api = None
    try:
        api = _Api(conn_id, session_id, options)
        specs = _specs(cfg)
        staged = feed.stage()
        try:
            run = _Run(api, cfg, staged, None, pulled_at, options)
            pull = _Feed(run, specs, ref, last)
            changes, quarantined = {}, []
            for obj in FEED_OBJECTS:
                spec = specs[obj]
                delta, bad = run._delta(spec, mark - options.overlap, "rest", 1)
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
            _account_feed(report, api, started)
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
                committed = feed.commit(staged, report.manifest())
                report.version, report.folder, report.written = committed["version"], committed["folder"], True
        except BaseException:
            feed.discard(staged)
            raise
    except ExtractionError as exc:
        _account_feed(report, api, started)
        kept = f"version {last['version']}, high-water mark {last['high_water_mark']}" if last else "none yet"
        log.error("changes pull failed after %s API calls (usage %s): %s", report.api_calls, report.api_usage, exc)
        raise ExtractionError(f"{exc}\nnothing was written: the last good changes of {ref.name} are {kept}") from exc.__cause__
    log.info("%s", report.summary())
    return report


def _sorted(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("Id", "ascending")]))


def _account_feed(report: FeedReport, api: _Api | None, started: float) -> None:
    report.seconds = time.perf_counter() - started
    if api is not None:
        report.requests, report.api_calls, report.retries, report.logins = (
            api.usage.requests, api.usage.calls, api.retries, api.logins)  # fmt: skip
        report.api_usage = api.usage.seen if api.usage.last else None


def changes_cli(argv: list[str]) -> int:
    """``changes --conn-id ID --store URL [--config FILE]``: 0 on success, 1 on failure, 2 on bad input."""
    return _command(argv, "changes", "Pull the changes since the latest snapshot into its changes feed.", pull_changes)
