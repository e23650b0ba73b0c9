"""The delivery ledger: what was posted where, who is posting it now, and the Slack ids worth remembering.

Slack has no idempotency key, so the ledger is what makes a digest go out once. Each
message part (the first message of a digest and each of its thread replies) has a row keyed
by the digest's delivery key and the part number:

- ``new``: claimed, never posted; nothing of it can be in Slack.
- ``pending``: a post was about to be sent, or was sent without its answer being recorded.
  Slack may hold the message; look (``marked_at`` bounds the search) before posting again.
- ``sent``: Slack answered with ``ts``; never post again.
- ``unconfirmed``: posted, but Slack never let us see the post (the app may post to a public
  channel it is not a member of and cannot read); never posted again, and the operations
  channel is told.
- ``failed``: Slack refused it, or it never reached Slack; safe to post again.

**Leases.** Two processes may deliver the same digests at once: a run by hand during the
scheduled one, a zombie task and its retry, two DAGs whose fallbacks reach one channel. A
process works on a part only while it holds the part's lease: ``owner`` (host, pid, a token
and the run) and ``lease_until``. Taking a lease is a compare-and-swap on the row, so exactly
one process wins it; the others leave that part to its holder. A lease ends when its part is
sent or given up, when it expires, or at once when its holder was a process of this host
that no longer exists (a killed task). Posting is fenced: a part is marked pending, the last
step before the post, only by the lease's current holder, so a process that lost its lease
while it stalled never posts.

The same tables cache Slack's user, DM and channel ids, so that a daily run does not look up a
few hundred e-mail addresses again. Every row is scoped by a *workspace* (the sink's name) so
that a demo run into the outbox never marks a real digest as delivered, nor feeds made-up ids
to a real Slack.

SQLAlchemy Core, one code path for SQLite (the default) and PostgreSQL (``sa_hygiene.state.db``).
Times are Unix seconds, directly comparable with Slack's ``ts``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    select,
    update,
)

from sa_hygiene.contract.recipients import USER
from sa_hygiene.state.db import Database, DatabaseError, insert_ignoring_conflicts, upsert

NEW, PENDING, SENT, UNCONFIRMED, FAILED = "new", "pending", "sent", "unconfirmed", "failed"
DONE = (SENT, UNCONFIRMED)
WHAT = "the delivery ledger"

metadata = MetaData()

deliveries = Table(
    "slack_deliveries",
    metadata,
    Column("workspace", String(200), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("state", String(12), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("target", Text),  # the recipient actually used (JSON), after any fallback
    Column("channel", String(40)),
    Column("ts", String(40)),
    Column("marked_at", Float),  # first moment a post of this part may have reached Slack
    Column("updated_at", Float, nullable=False),
    Column("error", Text),
    Column("owner", String(300)),  # the lease holder: host/pid/token
    Column("lease_until", Float),
    Column("checks", Integer, nullable=False, server_default="0"),  # searches that could not read the conversation
)

users = Table(
    "slack_users",
    metadata,
    Column("workspace", String(200), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("user_id", String(40), nullable=False),
    Column("dm_channel", String(40), nullable=False),
    Column("cached_at", Float, nullable=False),
)

channels = Table(
    "slack_channels",
    metadata,
    Column("workspace", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("channel_id", String(40), nullable=False),
    Column("cached_at", Float, nullable=False),
)


def _add_lease_columns(conn: Connection) -> None:
    """Version 2: leases (owner, lease_until) and the count of searches that could not read."""
    for ddl in ("owner VARCHAR(300)", "lease_until FLOAT", "checks INTEGER DEFAULT 0 NOT NULL"):
        conn.exec_driver_sql(f"ALTER TABLE slack_deliveries ADD COLUMN {ddl}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE slack_deliveries ALTER COLUMN state TYPE VARCHAR(12)")


UPGRADES = {2: _add_lease_columns}


class LedgerError(DatabaseError):
    """The ledger cannot be used (down, unreachable, not a database): delivery must stop, and retry."""


class LeaseLost(RuntimeError):
    """Another process took over a part whose lease this one let expire: it must not post."""


@dataclass(frozen=True)
class Part:
    """One ledger row: the state of one message part of a digest."""

    part: int
    state: str
    target: dict | None
    channel: str | None
    ts: str | None
    marked_at: float | None
    error: str | None
    owner: str | None = None
    lease_until: float | None = None
    checks: int = 0


@dataclass(frozen=True)
class Claim:
    """The outcome of asking for a part's lease: ``claimed`` (ours now), ``done`` (sent or
    unconfirmed: nothing to do) or ``held`` (another live process works on it)."""

    outcome: str
    part: Part


def new_owner(run_id: str) -> str:
    """A lease owner: unique per delivery run in this process, recognisable on its host."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"[:300]


def _holder_is_gone(owner: str) -> bool:
    """True when ``owner`` was a process of this host that has exited (it cannot finish its post)."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _part(r) -> Part:
    return Part(
        part=r["part"], state=r["state"], target=json.loads(r["target"]) if r["target"] else None,
        channel=r["channel"], ts=r["ts"], marked_at=r["marked_at"], error=r["error"], owner=r["owner"],
        lease_until=r["lease_until"], checks=r["checks"] or 0,
    )  # fmt: skip


class Ledger(Database):
    """Delivery states, leases and Slack id caches in one SQL database (``sqlite:///...`` or
    ``postgresql+psycopg://...``)."""

    what, component, metadata, upgrades, error = WHAT, "ledger", metadata, UPGRADES, LedgerError

    def __init__(self, url: str, *, cache_hours: float = 24.0, lease_seconds: float = 300.0) -> None:
        self.cache_seconds = cache_hours * 3600
        self.lease_seconds = lease_seconds
        try:
            super().__init__(url)
        except DatabaseError as exc:
            raise LedgerError(str(exc)) from None

    # ------------------------------------------------------------------ deliveries

    def parts(self, workspace: str, key: str) -> dict[int, Part]:
        query = select(deliveries).where(deliveries.c.workspace == workspace, deliveries.c.key == key)
        with self._begin() as conn:
            rows = conn.execute(query).mappings().all()
        return {r["part"]: _part(r) for r in rows}

    def claim(self, workspace: str, key: str, part: int, *, owner: str, run_id: str) -> Claim:
        """Take the lease of one part, unless it is done or another live process holds it."""
        where = self._where(workspace, key, part)
        c = deliveries.c
        for _ in range(20):  # each lost race means another process changed the row: look again
            now = time.time()
            with self._begin() as conn:
                insert_ignoring_conflicts(
                    conn, deliveries,
                    dict(workspace=workspace, key=key, part=part, state=NEW, run_id=run_id, updated_at=now, checks=0),
                )  # fmt: skip
                row = _part(conn.execute(select(deliveries).where(where)).mappings().one())
                if row.state in DONE:
                    return Claim("done", row)
                held = row.owner not in (None, owner) and (row.lease_until or 0) >= now
                if held and not _holder_is_gone(row.owner):
                    return Claim("held", row)
                won = conn.execute(
                    update(deliveries)
                    .where(where, c.state == row.state, c.owner.is_not_distinct_from(row.owner),
                           c.lease_until.is_not_distinct_from(row.lease_until))
                    .values(owner=owner, lease_until=now + self.lease_seconds, run_id=run_id, updated_at=now)
                ).rowcount  # fmt: skip
                if won == 1:
                    return Claim("claimed", replace(row, owner=owner, lease_until=now + self.lease_seconds))
        return Claim("held", row)

    def mark_pending(self, workspace: str, key: str, part: int, *, owner: str, target: dict, channel: str) -> None:
        """The last step before a post, by the lease's holder only (else ``LeaseLost``); it renews
        the lease. An earlier ``pending`` mark keeps its time: a post of that attempt may be in Slack."""
        now = time.time()
        c = deliveries.c
        with self._begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(self._where(workspace, key, part), c.owner == owner, c.state.not_in(DONE))
                .values(state=PENDING, target=json.dumps(target, sort_keys=True), channel=channel, ts=None,
                        marked_at=case((c.state == PENDING, c.marked_at), else_=now),
                        lease_until=now + self.lease_seconds, updated_at=now, error=None)
            ).rowcount  # fmt: skip
        if done != 1:
            raise LeaseLost(f"{key} part {part}: another delivery took it over")

    def mark_sent(self, workspace: str, key: str, part: int, *, ts: str, state: str = SENT) -> None:
        """Slack holds the part (``ts``); whoever learns it first records it, and the lease ends."""
        with self._begin() as conn:
            conn.execute(
                update(deliveries)
                .where(self._where(workspace, key, part))
                .values(state=state, ts=ts, owner=None, lease_until=None, updated_at=time.time(), error=None)
            )

    def mark_unconfirmed(self, workspace: str, key: str, part: int) -> None:
        """Posted as far as anyone can tell, but Slack never showed it to us: never post it again."""
        self.mark_sent(workspace, key, part, ts=None, state=UNCONFIRMED)

    def count_check(self, workspace: str, key: str, part: int) -> int:
        """One more search that could not read the conversation; the count so far."""
        with self._begin() as conn:
            conn.execute(
                update(deliveries).where(self._where(workspace, key, part)).values(checks=deliveries.c.checks + 1)
            )
            return conn.execute(select(deliveries.c.checks).where(self._where(workspace, key, part))).scalar()

    def mark_failed(self, workspace: str, key: str, part: int, *, owner: str, run_id: str, error: str) -> None:
        """Record a failure after which nothing of this part can be in Slack, and end the lease."""
        c = deliveries.c
        with self._begin() as conn:
            conn.execute(
                update(deliveries)
                .where(self._where(workspace, key, part), c.owner == owner, c.state.not_in(DONE))
                .values(state=FAILED, run_id=run_id, ts=None, marked_at=None, updated_at=time.time(), error=error,
                        owner=None, lease_until=None)
            )  # fmt: skip

    def release(self, workspace: str, key: str, part: int, *, owner: str) -> None:
        """End this owner's lease on a part (it stays as it is: pending, failed or sent)."""
        c = deliveries.c
        with self._begin() as conn:
            conn.execute(
                update(deliveries)
                .where(self._where(workspace, key, part), c.owner == owner)
                .values(owner=None, lease_until=None, updated_at=time.time())
            )

    def message_key(self, channel: str, ts: str) -> str | None:
        """The delivery key of the message Slack holds at (``channel``, ``ts``) when this ledger
        posted it (sent, unconfirmed, or pending with that ts), in any workspace; else None. The
        Slack app reads it to tell a message it sent from a value someone made up."""
        c = deliveries.c
        query = select(c.key).where(c.channel == channel, c.ts == ts, c.state.in_((SENT, UNCONFIRMED, PENDING))).limit(1)
        with self._begin() as conn:
            return conn.execute(query).scalar()

    @staticmethod
    def _where(workspace: str, key: str, part: int):
        c = deliveries.c
        return and_(c.workspace == workspace, c.key == key, c.part == part)

    # ------------------------------------------------------------------ id caches

    def cached_dm(self, workspace: str, email: str) -> str | None:
        """The DM channel id of the Slack user with this e-mail, when looked up recently enough."""
        return self._cached(users, workspace, "email", email.lower(), "dm_channel")

    def cache_user(self, workspace: str, email: str, user_id: str, dm_channel: str) -> None:
        self._replace(
            users, workspace, "email", {email.lower(): {"user_id": user_id, "dm_channel": dm_channel}}
        )

    def cached_channel(self, workspace: str, name: str) -> str | None:
        return self._cached(channels, workspace, "name", name, "channel_id")

    def cache_channels(self, workspace: str, ids: dict[str, str]) -> None:
        """Remember channel name -> id, as ``conversations.list`` pages them."""
        self._replace(channels, workspace, "name", {name: {"channel_id": cid} for name, cid in ids.items()})

    def _cached(
        self, table: Table, workspace: str, key_column: str, key: str, value_column: str
    ) -> str | None:
        query = select(table.c[value_column]).where(
            table.c.workspace == workspace,
            table.c[key_column] == key,
            table.c.cached_at > time.time() - self.cache_seconds,
        )
        with self._begin() as conn:
            return conn.execute(query).scalar()

    def _replace(self, table: Table, workspace: str, key_column: str, rows: dict[str, dict]) -> None:
        """Concurrent runs cache the same ids: an upsert, so that both succeed."""
        if not rows:
            return
        now = time.time()
        with self._begin() as conn:
            upsert(conn, table, [{"workspace": workspace, key_column: k, "cached_at": now, **v} for k, v in rows.items()],
                   keys=["workspace", key_column])  # fmt: skip


def unknown_slack_users(ledger_url: str, since: datetime) -> dict:
    """Users Slack did not know by their Salesforce e-mail, from the delivery ledger's digests
    marked since ``since``: a digest whose first part went to someone else (their manager or
    their region) or nowhere. ``{"users": [...], "error": str | None}``; a ledger that cannot
    be read is reported, not raised: the report is still worth having without it."""
    from sqlalchemy import create_engine, inspect, make_url, select

    from sa_hygiene.state.ledger import deliveries

    try:
        url = make_url(ledger_url)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            return {"users": [], "error": None, "checked": False}
        engine = create_engine(url)
        try:
            if not inspect(engine).has_table(deliveries.name):
                return {"users": [], "error": None, "checked": False}
            query = select(deliveries.c.key, deliveries.c.target).where(
                deliveries.c.part == 0, deliveries.c.updated_at >= since.timestamp()
            )
            with engine.connect() as conn:
                rows = conn.execute(query).all()
        finally:
            engine.dispose()
    except Exception as exc:  # the ledger's database is someone else's: say what failed, keep the report
        return {"users": [], "error": f"{type(exc).__name__}: {exc}", "checked": False}
    found: dict[str, dict] = {}
    for key, target in rows:
        parts = key.split("|")
        if len(parts) < 2 or not parts[1].startswith(USER):
            continue
        user_id = parts[1][len(USER) :]
        went = json.loads(target) if target else None
        if went == {"type": "user", "id": user_id}:
            continue
        entry = found.setdefault(user_id, {"user_id": user_id, "digests": 0, "sent_to": set()})
        entry["digests"] += 1
        entry["sent_to"].add((went or {}).get("name") or (went or {}).get("id") or "nobody")
    users = [{**u, "sent_to": ", ".join(sorted(u["sent_to"]))} for u in found.values()]
    return {"users": sorted(users, key=lambda u: -u["digests"]), "error": None, "checked": True}
