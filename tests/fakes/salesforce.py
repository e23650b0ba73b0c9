"""A fake Salesforce org over HTTPS, reached by the real ``SalesforceHook`` and simple-salesforce.

simple-salesforce builds every URL itself, always ``https://`` and on Salesforce's own host
names (``login.salesforce.com`` to log in, then the instance the login hands back), so the
fake cannot simply sit at a URL. It is an HTTP *proxy* instead: the connection's ``proxies``
extra, which the hook passes to simple-salesforce, routes every request through it; the fake
accepts ``CONNECT`` and then speaks TLS itself with a certificate for those names, issued by a
``trustme`` CA that the client trusts through ``REQUESTS_CA_BUNDLE``. So the client's own login
(the SOAP flow the hook uses for username + password + security token) and its own
re-authentication after ``INVALID_SESSION_ID`` run unchanged against the fake.

The org lives in memory as one Arrow table per object (booleans and numbers typed, everything
else in Salesforce's wire format), so a million rows page out quickly. The fake parses just
enough SOQL (``SELECT f, ... | COUNT() FROM X [WHERE F op datetime]``) and answers: SOAP login,
``describe``, ``query``/``queryAll`` with ``nextRecordsUrl`` paging at 2,000 records, Bulk API
2.0 query jobs (create, poll, CSV results paged with ``Sforce-Locator``), record creation and
update (one record, or up to 200 through sObject Collections, each saved or refused on its own),
Chatter posts (``FeedItem`` creation, where the org has the object),
validation rules (``rule``), ``Sforce-Limit-Info`` on every response. Every request is
recorded; faults are injected per request with ``fail``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sa_hygiene.contract.schema import OBJECTS, default_field_map

INSTANCE = "fake.my.salesforce.com"
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
ORG_ID = "00D5e0000000001EAA"
PAGE_SIZE = 2000

SF_TYPE = {"id": "id", "ref": "reference", "text": "string", "bool": "boolean", "number": "double",
           "date": "date", "datetime": "datetime", "multi": "multipicklist"}  # fmt: skip
STANDARD = {"Id": "id", "IsDeleted": "boolean", "CreatedDate": "datetime", "LastModifiedDate": "datetime",
            "SystemModstamp": "datetime"}  # fmt: skip
# Objects outside the data contract that the extraction reads.
OTHER_OBJECTS = {
    "Lead": {"Name": "string", "Email": "email"},
    "EventRelation": {"EventId": "reference", "RelationId": "reference"},
}
# Fields an org has beyond what the contract reads, which the Slack app writes (a Contact's Name
# is compound: Salesforce builds it from these, and LastName is required).
WRITABLE = {"Contact": {"FirstName": "string", "LastName": "string"}}
# Chatter: a post on a record's feed (the Slack app asks Sales Support on a closed opportunity's).
# Add it to an org with ``add("FeedItem", [])``; an org without it refuses the post (NOT_FOUND), as
# an org whose API user may not post to feeds does.
OTHER_OBJECTS["FeedItem"] = {"ParentId": "reference", "Body": "textarea", "Type": "picklist"}
# Standard picklists the contract reads as text (describe says so, the wire format is the same).
PICKLISTS = {"Task": {"TaskSubtype": "picklist"}}
ACTIONS = ("expire_session", "request_limit", "unavailable", "drop", "miscount", "break_row", "validation_error", "slow", "hang")
COLLECTION_LIMIT = 200
KEY_PREFIX = {"Task": "00T", "Event": "00U", "Contact": "003", "Opportunity": "006", "Account": "001", "FeedItem": "0D5"}


def default_types(obj: str) -> dict[str, str]:
    """Describe types: the contract's default fields of ``obj`` plus the standard ones."""
    if obj in OTHER_OBJECTS:
        return {**STANDARD, **OTHER_OBJECTS[obj]}
    fmap = default_field_map()[obj]
    # AttendeeEmails is built by the extraction; Salesforce has no such field.
    own = {fmap[n]: SF_TYPE[f.kind] for n, f in OBJECTS[obj].items() if n != "attendee_emails"}
    own.update({k: v for k, v in PICKLISTS.get(obj, {}).items() if k in own})
    return {**STANDARD, **own, **WRITABLE.get(obj, {})}


@dataclass
class Request:
    method: str
    host: str
    path: str
    params: dict[str, str]
    body: bytes = b""

    @property
    def soql(self) -> str | None:
        """The SOQL of a query or of a Bulk API 2.0 job creation, else None."""
        if "q" in self.params:
            return self.params["q"]
        if self.method == "POST" and self.path.rstrip("/").endswith("/jobs/query"):
            return json.loads(self.body)["query"]
        return None


@dataclass
class Fault:
    action: str
    when: Callable[[Request], bool]
    times: int


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class _SoqlError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _errors(status: int, code: str, message: str) -> _Response:
    return _Response(status, json.dumps([{"message": message, "errorCode": code}]).encode())


def _json(payload) -> _Response:
    return _Response(200, json.dumps(payload).encode())


# --------------------------------------------------------------------------- the org's tables


def _strings(values) -> pa.Array:
    """Any column as strings, with Salesforce's rule that blank is null."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        text = [None if v is None else ("true" if v is True else "false" if v is False else str(v)) for v in values]
        values = pa.array(text, pa.string())
    values = pc.cast(values, pa.string())
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _wire(values, sftype: str) -> pa.Array:
    """Store a column the way the fake serves it; an unparsable value is kept as given."""
    text = _strings(values)
    try:
        if sftype == "boolean":
            return pc.equal(pc.utf8_lower(text), "true")
        if sftype in ("double", "currency", "percent"):
            return pc.cast(text, pa.float64())
        if sftype == "datetime":
            return pc.strftime(pc.cast(text, pa.timestamp("ms", "UTC")), format="%Y-%m-%dT%H:%M:%S+0000")
    except pa.ArrowInvalid:
        pass
    return text


def _table(rows, types: dict[str, str]) -> pa.Table:
    if isinstance(rows, pa.Table):
        n = rows.num_rows
        columns = {f: rows.column(f) if f in rows.column_names else pa.nulls(n) for f in types}
    else:
        n = len(rows)
        columns = {f: [r.get(f) for r in rows] for f in types}
    table = pa.table({f: _wire(columns[f], t) for f, t in types.items()})
    deleted = pc.fill_null(table["IsDeleted"], False) if n else pa.array([], pa.bool_())
    return table.set_column(table.column_names.index("IsDeleted"), "IsDeleted", deleted)


@dataclass
class _Object:
    types: dict[str, str]
    table: pa.Table


@dataclass
class _Job:
    id: str
    obj: str
    operation: str
    table: pa.Table
    datetimes: list[str]
    polls: int = 0


_SOQL = re.compile(
    r"SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
    r"(?:\s+WHERE\s+(?P<field>\w+)\s*(?P<op>>=|<=|>|<|=)\s*(?P<value>\S+))?\s*",
    re.IGNORECASE | re.DOTALL,
)
# Equality filters joined by AND (``WHERE OwnerId = '005…' AND ActivityDate = 2026-11-23``), as
# the Slack app looks up a Task it may already have created; values compared as text.
_EQUALS = re.compile(
    r"SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)\s+WHERE\s+(?P<conds>.+?)(?:\s+LIMIT\s+(?P<limit>\d+))?\s*",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|[\w.:+-]+)\s*(?:AND\b|$)", re.IGNORECASE)
_COMPARE = {">": pc.greater, ">=": pc.greater_equal, "<": pc.less, "<=": pc.less_equal, "=": pc.equal}
_LOGIN_FIELD = re.compile(r"<(?:\w+:)?(username|password)>(.*?)</(?:\w+:)?\1>", re.DOTALL)
_ROUTES = [
    ("GET", re.compile(r"/services/data/v[\d.]+/sobjects/(?P<obj>\w+)/describe/?"), "_describe"),
    ("GET", re.compile(r"/services/data/v[\d.]+/(?P<endpoint>query|queryAll)/?"), "_query"),
    ("GET", re.compile(r"/services/data/v[\d.]+/(?P<endpoint>query|queryAll)/(?P<cursor>\w+)-(?P<offset>\d+)"),
     "_query_more"),
    ("POST", re.compile(r"/services/data/v[\d.]+/jobs/query/?"), "_create_job"),
    ("POST", re.compile(r"/services/data/v[\d.]+/sobjects/(?P<obj>\w+)/?"), "_create"),
    ("PATCH", re.compile(r"/services/data/v[\d.]+/sobjects/(?P<obj>\w+)/(?P<record>\w+)/?"), "_update"),
    ("PATCH", re.compile(r"/services/data/v[\d.]+/composite/sobjects/?"), "_update_collection"),
    ("GET", re.compile(r"/services/data/v[\d.]+/jobs/query/(?P<job>\w+)/?"), "_job_info"),
    ("GET", re.compile(r"/services/data/v[\d.]+/jobs/query/(?P<job>\w+)/results/?"), "_results"),
]  # fmt: skip


class FakeSalesforce:
    """One in-memory org; ``with FakeSalesforce(ca) as sf:`` serves it on 127.0.0.1."""

    def __init__(self, ca, *, username: str = "integration@example.com", password: str = "correct-horse-battery",
                 security_token: str = "tok3n5ecret", api_used: int = 25, api_limit: int = 15000,
                 job_polls: int = 1, api_version: str = "59.0"):  # fmt: skip
        self.username, self.password, self.security_token = username, password, security_token
        self.api_used, self.api_limit = api_used, api_limit
        self.job_polls = job_polls  # how many status polls report InProgress before JobComplete
        self.api_version = api_version
        self.objects: dict[str, _Object] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.sessions: set[str] = set()
        self.logins = 0
        self._cursors: dict[str, tuple[str, str, pa.Table]] = {}
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(*LOGIN_HOSTS, INSTANCE).configure_cert(self._tls)
        self._server: _Server | None = None
        self.create_delay = 0.0  # seconds a record creation takes (a slow org)
        self.slow_seconds = 2.0  # how late the ``slow`` fault answers
        self.hang_seconds = 120.0  # how long the ``hang`` fault holds a request (``stop`` ends it)
        self._unhang = threading.Event()
        self.now = "2026-11-24T12:00:00.000+0000"  # the stamp of records created or updated
        self.rules: dict[str, list[Callable[[dict], str | None]]] = {}

    # ----------------------------------------------------------------------- set-up

    def add(self, obj: str, rows, types: dict[str, str] | None = None) -> None:
        """Create (or replace) ``obj`` with ``rows`` (dicts of API names, or an Arrow table)."""
        base = default_types(obj) if obj in OBJECTS or obj in OTHER_OBJECTS else STANDARD
        types = {**base, **(types or {})}
        self.objects[obj] = _Object(types, _table(rows, types))

    def upsert(self, obj: str, rows) -> None:
        """Insert or replace records by Id, as an edit in Salesforce would."""
        o = self.objects[obj]
        new = _table(rows, o.types)
        kept = o.table.filter(pc.invert(pc.is_in(o.table["Id"], value_set=new["Id"])))
        o.table = pa.concat_tables([kept, new])

    def delete(self, obj: str, ids: list[str], at: str) -> None:
        """Move records to the recycle bin: still visible to queryAll, with IsDeleted = true."""
        o = self.objects[obj]
        hit = pc.is_in(o.table["Id"], value_set=pa.array(ids, pa.string()))
        stamp = pc.if_else(hit, _wire([at], "datetime")[0], o.table["SystemModstamp"])
        table = o.table.set_column(o.table.column_names.index("IsDeleted"), "IsDeleted", pc.or_(o.table["IsDeleted"], hit))
        o.table = table.set_column(table.column_names.index("SystemModstamp"), "SystemModstamp", stamp)

    def rule(self, obj: str, check: Callable[[dict], str | None]) -> None:
        """A validation rule: ``check`` gets a record of ``obj`` as it would be saved (API names)
        and returns the error message that refuses it, or None."""
        self.rules.setdefault(obj, []).append(check)

    def record(self, obj: str, record_id: str) -> dict | None:
        """One record as stored (deleted ones too), or None."""
        t = self.objects[obj].table
        rows = t.filter(pc.equal(t["Id"], record_id)).to_pylist()
        return rows[-1] if rows else None

    def live(self, obj: str) -> pa.Table:
        """The records ``query`` returns (not deleted), for test oracles."""
        t = self.objects[obj].table
        return t.filter(pc.invert(t["IsDeleted"])).drop_columns(["IsDeleted"])

    def fail(self, action: str, when: Callable[[Request], bool] = lambda r: True, times: int = 1) -> None:
        """Answer the next ``times`` requests matching ``when`` with a fault.

        ``expire_session`` (401 INVALID_SESSION_ID, and every session so far is invalid),
        ``request_limit`` (403 REQUEST_LIMIT_EXCEEDED), ``unavailable`` (503), ``drop`` (the
        connection closes halfway through the body), ``miscount`` (a COUNT() one too high),
        ``break_row`` (the last row of a Bulk CSV page loses all fields but its Id), ``validation_error``
        (a record creation or update refused by a validation rule, 400 FIELD_CUSTOM_VALIDATION_EXCEPTION),
        ``slow`` (the answer comes ``slow_seconds`` late, and the request is carried out all the same),
        ``hang`` (no answer for ``hang_seconds`` or until the fake stops, then 503; nothing is done).
        """
        assert action in ACTIONS, action
        self.faults.append(Fault(action, when, times))

    def new_session(self) -> str:
        """A valid session id, for direct-session connections that skip the login."""
        token = f"{ORG_ID[:15]}!fake-session-{next(self._ids)}"
        self.sessions.add(token)
        return token

    # ----------------------------------------------------------------------- serving

    def start(self) -> FakeSalesforce:
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def unhang(self) -> None:
        """Every hung request answers now (503), and no more hang."""
        self.faults = [f for f in self.faults if f.action != "hang"]
        self._unhang.set()

    def stop(self) -> None:
        self._unhang.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSalesforce:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def connection(self, **extra) -> str:
        """An ``AIRFLOW_CONN_*`` value: password login through this fake (the hook's default flow)."""
        extras = {"security_token": self.security_token, "proxies": {"https": self.proxy_url}, **extra}
        return json.dumps({"conn_type": "salesforce", "login": self.username, "password": self.password,
                           "extra": extras})  # fmt: skip

    def soql(self) -> list[str]:
        """Every SOQL statement received, in order (queries, counts and Bulk jobs)."""
        return [s for s in (r.soql for r in self.requests) if s is not None]

    def data_requests(self) -> list[Request]:
        return [r for r in self.requests if r.host not in LOGIN_HOSTS]

    # ----------------------------------------------------------------------- answering

    def handle(self, req: Request, authorization: str | None) -> _Response:
        if self.create_delay and req.method == "POST" and "/sobjects/" in req.path:
            time.sleep(self.create_delay)  # outside the lock: other requests go on meanwhile
        with self._lock:
            self.requests.append(req)
            action = self._fault_for(req)
        if action == "slow":
            time.sleep(self.slow_seconds)  # outside the lock, as above
        if action == "hang":
            self._unhang.wait(self.hang_seconds)
            action = "unavailable"
        with self._lock:
            resp = self._answer(req, authorization, action)
            resp.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_limit}"
            resp.drop = action == "drop"
            return resp

    def _fault_for(self, req: Request) -> str | None:
        for fault in self.faults:
            if fault.times > 0 and fault.when(req):
                fault.times -= 1
                return fault.action
        return None

    def _answer(self, req: Request, authorization: str | None, action: str | None) -> _Response:
        if action == "unavailable":
            return _errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
        if req.host in LOGIN_HOSTS:
            return self._login(req)
        self.api_used += 1
        if action == "request_limit" or self.api_used > self.api_limit:
            self.api_used = min(self.api_used, self.api_limit)
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if action == "expire_session":
            self.sessions.clear()
        token = (authorization or "").removeprefix("Bearer ")
        if token not in self.sessions:
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        for method, pattern, name in _ROUTES:
            m = pattern.fullmatch(req.path)
            if m and method == req.method:
                try:
                    return getattr(self, name)(req, action=action, **m.groupdict())
                except _SoqlError as exc:
                    return _errors(400, exc.code, str(exc))
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _login(self, req: Request) -> _Response:
        if not req.path.startswith("/services/Soap/u/"):
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        self.logins += 1
        given = dict(_LOGIN_FIELD.findall(req.body.decode()))
        expected = {"username": escape(self.username), "password": escape(self.password + self.security_token)}
        if given != expected:
            return _Response(500, _SOAP_FAULT.encode(), "text/xml;charset=UTF-8")
        token = self.new_session()
        body = _SOAP_LOGIN.format(server=f"https://{INSTANCE}/services/Soap/u/{self.api_version}/{ORG_ID[:15]}",
                                  session=token)  # fmt: skip
        return _Response(200, body.encode(), "text/xml;charset=UTF-8")

    def _describe(self, req: Request, obj: str, action: str | None) -> _Response:
        if obj not in self.objects:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        fields = [{"name": f, "type": t, "label": f} for f, t in self.objects[obj].types.items()]
        return _json({"name": obj, "queryable": True, "fields": fields})

    def _select(self, soql: str, include_deleted: bool) -> tuple[str, list[str] | None, pa.Table]:
        """(object, fields or None for COUNT(), matching rows)."""
        if "'" in soql or re.search(r"\sAND\s", soql, re.IGNORECASE):
            return self._select_equal(soql, include_deleted)
        m = _SOQL.fullmatch(soql)
        if not m:
            raise _SoqlError("MALFORMED_QUERY", f"unexpected token: {soql!r}")
        obj = m["obj"]
        if obj not in self.objects:
            raise _SoqlError("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        o = self.objects[obj]
        fields = [f.strip() for f in m["fields"].split(",")]
        count = [f.upper() for f in fields] == ["COUNT()"]
        for f in ([] if count else fields) + ([m["field"]] if m["field"] else []):
            if f not in o.types:
                raise _SoqlError("INVALID_FIELD", f"No such column '{f}' on entity '{obj}'.")
        mask = pa.array(np.ones(o.table.num_rows, bool)) if include_deleted else pc.invert(o.table["IsDeleted"])
        if m["field"]:
            column = pc.cast(o.table[m["field"]], pa.timestamp("ms", "UTC"))
            literal = pa.scalar(datetime.fromisoformat(m["value"].replace("Z", "+00:00")), pa.timestamp("ms", "UTC"))
            mask = pc.and_(mask, _COMPARE[m["op"]](column, literal))
        rows = o.table.filter(mask)
        return obj, None if count else fields, rows if count else rows.select(fields)

    def _select_equal(self, soql: str, include_deleted: bool) -> tuple[str, list[str], pa.Table]:
        m = _EQUALS.fullmatch(soql)
        conditions = _CONDITION.findall(m["conds"]) if m else []
        if not m or not conditions or len(conditions) != len(re.split(r"\s+AND\s+", m["conds"], flags=re.IGNORECASE)):
            raise _SoqlError("MALFORMED_QUERY", f"unexpected token: {soql!r}")
        obj, fields = m["obj"], [f.strip() for f in m["fields"].split(",")]
        if obj not in self.objects:
            raise _SoqlError("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        o = self.objects[obj]
        for f in fields + [f for f, _ in conditions]:
            if f not in o.types:
                raise _SoqlError("INVALID_FIELD", f"No such column '{f}' on entity '{obj}'.")
        rows = [r for r in o.table.to_pylist() if include_deleted or not r["IsDeleted"]]
        for f, value in conditions:
            text = re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith("'") else value
            rows = [r for r in rows if str(r.get(f)) == text]
        rows = rows[: int(m["limit"])] if m["limit"] else rows
        return obj, fields, pa.Table.from_pylist([{f: r.get(f) for f in fields} for r in rows]) if rows else o.table.select(fields).slice(0, 0)

    def _query(self, req: Request, endpoint: str, action: str | None) -> _Response:
        obj, fields, rows = self._select(req.params.get("q", ""), include_deleted=endpoint == "queryAll")
        if fields is None:
            return _json({"totalSize": rows.num_rows + (action == "miscount"), "done": True, "records": []})
        cursor = f"01gFAKE{next(self._ids):010d}"
        self._cursors[cursor] = (obj, endpoint, rows)
        return self._page(cursor, 0)

    def _query_more(self, req: Request, endpoint: str, cursor: str, offset: str, action: str | None) -> _Response:
        if cursor not in self._cursors:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, int(offset))

    def _page(self, cursor: str, offset: int) -> _Response:
        obj, endpoint, rows = self._cursors[cursor]
        page = rows.slice(offset, PAGE_SIZE)
        end = offset + page.num_rows
        records = [
            {"attributes": {"type": obj, "url": f"/services/data/v{self.api_version}/sobjects/{obj}/{r.get('Id')}"}, **r}
            for r in page.to_pylist()
        ]
        out = {"totalSize": rows.num_rows, "done": end >= rows.num_rows, "records": records}
        if not out["done"]:
            out["nextRecordsUrl"] = f"/services/data/v{self.api_version}/{endpoint}/{cursor}-{end}"
        return _json(out)

    def _create(self, req: Request, obj: str, action: str | None) -> _Response:
        """Create one record (``POST sobjects/X/``): 201 with its new Id, or Salesforce's 400s."""
        fields, refused = self._body_fields(req, obj, action)
        if refused:
            return refused
        prefix = KEY_PREFIX.get(obj, "a00")
        new_id = f"{prefix}9Z{next(self._ids):010d}AAA"  # apart from the Ids of builders.sf_id
        record = {**fields, "Id": new_id, "CreatedDate": self.now, "LastModifiedDate": self.now, "SystemModstamp": self.now}
        if obj == "Contact":  # Name is compound, LastName required
            if not (fields.get("LastName") or "").strip():
                return _errors(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]")
            record["Name"] = f"{fields.get('FirstName') or ''} {fields['LastName']}".strip()
        problem = self._invalid(obj, record)
        if problem:
            return _errors(400, *problem)
        self.upsert(obj, [record])
        return _Response(201, json.dumps({"id": new_id, "success": True, "errors": []}).encode())

    def _update(self, req: Request, obj: str, record: str, action: str | None) -> _Response:
        """Update one record (``PATCH sobjects/X/Id``): 204, or Salesforce's 400s and 404s."""
        fields, refused = self._body_fields(req, obj, action)
        if refused:
            return refused
        problem = self._save(obj, record, fields)
        if problem:
            return _errors(404 if problem[0] in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400, *problem)
        return _Response(204, b"")

    def _update_collection(self, req: Request, action: str | None) -> _Response:
        """sObject Collections update (``PATCH composite/sobjects``): up to 200 records, one result
        each in order; all-or-none false saves each record on its own, true saves none if one fails."""
        try:
            body = json.loads(req.body)
            records = body["records"]
        except (ValueError, KeyError, TypeError):
            return _errors(400, "JSON_PARSER_ERROR", "the body is not a collection of records")
        if len(records) > COLLECTION_LIMIT:
            return _errors(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
        all_or_none = bool(body.get("allOrNone"))
        results, saves = [], []
        for r in records:
            obj, record_id = (r.get("attributes") or {}).get("type"), r.get("id")
            fields = {k: v for k, v in r.items() if k not in ("attributes", "id")}
            unknown = [f for f in fields if obj in self.objects and (f not in self.objects[obj].types or f in STANDARD)]
            if obj not in self.objects:
                problem = ("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
            elif unknown:
                problem = ("INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {obj}")
            elif action == "validation_error":
                problem = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Activity Date cannot be in the future")
            else:
                problem = self._save(obj, record_id, fields, dry_run=True)
            saves.append((obj, record_id, fields) if problem is None else None)
            results.append({"id": record_id, "success": True, "errors": []} if problem is None else
                           {"success": False, "errors": [{"statusCode": problem[0], "message": problem[1], "fields": []}]})  # fmt: skip
        if all_or_none and any(s is None for s in saves):
            rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}  # fmt: skip
            return _json([r if not r["success"] else {"success": False, "errors": [rolled]} for r in results])
        for save in saves:
            if save is not None:
                self._save(*save)
        return _json(results)

    def _body_fields(self, req: Request, obj: str, action: str | None) -> tuple[dict, _Response | None]:
        """The fields of a create or update body, or Salesforce's refusal of the request."""
        if obj not in self.objects:
            return {}, _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if action == "validation_error":
            return {}, _errors(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Activity Date cannot be in the future")
        try:
            fields = json.loads(req.body)
        except ValueError:
            return {}, _errors(400, "JSON_PARSER_ERROR", "the body is not JSON")
        types = self.objects[obj].types
        unknown = [f for f in fields if f not in types or f in STANDARD]
        if unknown:
            return {}, _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {obj}")
        return fields, None

    def _save(self, obj: str, record_id: str | None, fields: dict, dry_run: bool = False) -> tuple[str, str] | None:
        """Set ``fields`` of a record; (errorCode, message) when Salesforce would refuse it."""
        if not isinstance(record_id, str) or not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", record_id):
            return "MALFORMED_ID", f"{obj} ID: id value of incorrect type: {record_id}"
        current = self.record(obj, record_id)
        if current is None:
            return "NOT_FOUND", "The requested resource does not exist"
        if current["IsDeleted"]:
            return "ENTITY_IS_DELETED", "entity is deleted"
        record = {**current, **fields, "LastModifiedDate": self.now, "SystemModstamp": self.now}
        problem = self._invalid(obj, record)
        if problem is None and not dry_run:
            self.upsert(obj, [record])
        return problem

    def _invalid(self, obj: str, record: dict) -> tuple[str, str] | None:
        for check in self.rules.get(obj, []):
            message = check(record)
            if message:
                return "FIELD_CUSTOM_VALIDATION_EXCEPTION", message
        return None

    def _create_job(self, req: Request, action: str | None) -> _Response:
        spec = json.loads(req.body)
        if spec.get("operation") not in ("query", "queryAll"):
            return _errors(400, "INVALIDJOB", f"unsupported operation {spec.get('operation')!r}")
        obj, fields, rows = self._select(spec.get("query", ""), include_deleted=spec["operation"] == "queryAll")
        if fields is None:
            return _errors(400, "INVALIDJOB", "Aggregate queries are not supported in Bulk API 2.0")
        datetimes = [f for f in fields if self.objects[obj].types[f] == "datetime"]
        job = _Job(f"750FAKE{next(self._ids):011d}", obj, spec["operation"], rows, datetimes)
        self._jobs[job.id] = job
        return _json(self._job_state(job, "UploadComplete"))

    def _job_state(self, job: _Job, state: str) -> dict:
        return {"id": job.id, "operation": job.operation, "object": job.obj, "state": state,
                "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.api_version),
                "lineEnding": "LF", "columnDelimiter": "COMMA",
                "numberRecordsProcessed": job.table.num_rows if state == "JobComplete" else 0}  # fmt: skip

    def _job_info(self, req: Request, job: str, action: str | None) -> _Response:
        if job not in self._jobs:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        j = self._jobs[job]
        j.polls += 1
        return _json(self._job_state(j, "JobComplete" if j.polls > self.job_polls else "InProgress"))

    def _results(self, req: Request, job: str, action: str | None) -> _Response:
        j = self._jobs.get(job)
        if j is None or j.polls <= self.job_polls:
            return _errors(400, "INVALIDJOB", "the job is not complete")
        offset = int(req.params.get("locator") or 0)
        page = j.table.slice(offset, int(req.params.get("maxRecords") or 50_000))
        end = offset + page.num_rows
        for name in j.datetimes:  # the Bulk API writes UTC datetimes with a Z
            i = page.column_names.index(name)
            page = page.set_column(i, name, pc.replace_substring(page[name], "+0000", "Z"))
        out = io.BytesIO()
        broken = action == "break_row" and page.num_rows > 0
        pacsv.write_csv(page.slice(0, page.num_rows - broken), out, pacsv.WriteOptions(quoting_style="all_valid"))
        if broken:
            out.write(f'"{page["Id"][-1]}"\n'.encode())
        headers = {"Sforce-Locator": str(end) if end < j.table.num_rows else "null",
                   "Sforce-NumberOfRecords": str(page.num_rows)}  # fmt: skip
        return _Response(200, out.getvalue(), "text/csv", headers)


_SOAP_LOGIN = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">
<soapenv:Body><loginResponse><result><passwordExpired>false</passwordExpired><serverUrl>{server}</serverUrl>
<sessionId>{session}</sessionId></result></loginResponse></soapenv:Body></soapenv:Envelope>"""
_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com">
<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username,
password, security token; or user locked out.</faultstring><detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>
<sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage>
</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""


# --------------------------------------------------------------------------- the wire


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # clients keep tunnels open; never wait for them

    def __init__(self, fake: FakeSalesforce):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (a timeout) closed its connection: nothing to report."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """A proxy that only tunnels: after CONNECT, the same connection speaks TLS as the target."""

    protocol_version = "HTTP/1.1"
    server: _Server
    host = ""

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        self.send_response(200, "Connection Established")
        self.end_headers()
        try:
            tls = self.server.fake._tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        self.host = self.path.rsplit(":", 1)[0]
        self.close_connection = False  # http.client tunnels with HTTP/1.0, which would close it
        self.connection = tls
        self.rfile, self.wfile = tls.makefile("rb"), tls.makefile("wb")

    def do_GET(self) -> None:
        if not self.host:
            self.send_error(400, "only CONNECT tunnels are served")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        req = Request(self.command, self.host, url.path, dict(parse_qsl(url.query)), body)
        resp = self.server.fake.handle(req, self.headers.get("Authorization"))
        self.send_response(resp.status)
        for name, value in {**resp.headers, "Content-Type": resp.content_type}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if resp.drop:
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(resp.body)

    do_POST = do_PATCH = do_DELETE = do_GET

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.host:
                self.connection.close()


@contextlib.contextmanager
def serving(ca, monkeypatch, conn_id: str, tables: dict) -> Iterator[FakeSalesforce]:
    """A started fake holding ``tables``, reached as Airflow connection ``conn_id`` and trusted
    through ``REQUESTS_CA_BUNDLE``; ``ca`` is the conftest's (trustme CA, bundle path)."""
    authority, bundle = ca
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    sf = FakeSalesforce(authority)
    for obj, rows in tables.items():
        sf.add(obj, rows)
    with sf:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sf.connection())
        yield sf


# --------------------------------------------------------------------------- an org from a snapshot


def org_from_snapshot(folder: str | Path) -> dict[str, pa.Table]:
    """The tables of a snapshot written with API names (e.g. the demo org) as a Salesforce org.

    A snapshot has ``Event.AttendeeEmails``; an org has ``EventRelation`` rows instead, pointing
    at the user or contact with that e-mail, or at a lead made up for it.
    """
    folder = Path(folder)
    tables = {obj: pq.read_table(folder / f"{obj}.parquet") for obj in OBJECTS}
    events = tables["Event"]
    emails = pc.split_pattern(pc.fill_null(events["AttendeeEmails"], ""), ";")
    flat = pc.list_flatten(emails)
    event_ids = pc.take(events["Id"], pc.list_parent_indices(emails))
    pairs = pa.table({"EventId": event_ids, "Email": flat}).filter(pc.not_equal(flat, ""))
    known = pa.concat_tables([tables[o].select(["Id", "Email"]).filter(pc.is_valid(tables[o]["Email"]))
                              for o in ("User", "Contact")])  # fmt: skip
    known = known.group_by("Email", use_threads=False).aggregate([("Id", "min")]).rename_columns(["Email", "RelationId"])
    pairs = pairs.join(known, "Email", join_type="left outer")
    lead_emails = pc.unique(pairs.filter(pc.is_null(pairs["RelationId"]))["Email"])
    lead_ids = pa.array([f"00Q5e{n:010d}AAA" for n in range(len(lead_emails))], pa.string())
    leads = pa.table({"Id": lead_ids, "Email": lead_emails, "Name": lead_emails})
    pairs = pairs.join(leads.select(["Email", "Id"]), "Email", join_type="left outer")
    pairs = pairs.join(events.select(["Id", "SystemModstamp"]).rename_columns(["EventId", "SystemModstamp"]), "EventId")
    rel_ids = pa.array([f"0RE5e{n:010d}AAA" for n in range(pairs.num_rows)], pa.string())
    tables["EventRelation"] = pa.table({"Id": rel_ids, "EventId": pairs["EventId"],
                                        "RelationId": pc.coalesce(pairs["RelationId"], pairs["Id"]),
                                        "SystemModstamp": pairs["SystemModstamp"]})  # fmt: skip
    tables["Lead"] = leads.append_column("SystemModstamp", pa.array(["2026-01-05T09:00:00.000+0000"] * len(leads)))
    tables["Event"] = events.drop_columns(["AttendeeEmails"])
    return tables
