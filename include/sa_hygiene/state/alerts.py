"""Alert memory: how long each hygiene alert has been open, what got fixed, who snoozed what.

An **episode** is one (workflow, record) alert raised by consecutive evaluations: it starts
on the first evaluation date that raises it and ends (``resolved_on``) on the first later
evaluation date that does not. Days without an evaluation neither extend nor end one, so a
weekend without snapshots is not a fix. News workflows (a new activity, a stage move) are
announcements, not problems: they have no episodes (CONTRACT.md § 2b).

An episode ends **fixed** or **gone** (spec v3): the evaluation hands over the keys in each
workflow's scope, and a record that is still in scope without its alert was fixed; one that left
the scope or the data is gone, which is no news for anyone. A record quarantined on the day keeps
its episode open. Each recipient's since-date makes ages fair to a person an item was reassigned to.

Evaluating the date already recorded last replaces that day: its effects are undone (one
level is all that is needed, since only the latest day can be replaced) and it is recorded
again, so a re-run changes nothing. An earlier date is answered from the episodes without
writing: history is not rewritten by a late backfill.

The state lives beside the delivery ledger (SQLite by default, PostgreSQL in a deployment)
and one transaction records a day, serialised against other writers (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL), so two runs of the same day cannot interleave.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from sa_hygiene.contract.recipients import encode
from sa_hygiene.state.db import Database, upsert

COMPONENT = "alert_state"
WHAT = "the alert state"

metadata = MetaData()
episodes = Table(
    "alert_episodes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(60), nullable=False),
    # The 15-character Id: an 18-character Id and its prefix name the same record.
    Column("record_key", String(15), nullable=False),
    Column("object", String(60), nullable=False),
    Column("record_id", String(18), nullable=False),
    Column("first_seen", Date, nullable=False),
    # The last evaluation date that raised it, kept once it is resolved; an open episode was
    # raised by the latest evaluation, so a day that continues it writes nothing to its row.
    Column("last_seen", Date, nullable=False),
    Column("resolved_on", Date),
    # JSON lists of encoded recipients: the latest ones, and those before the latest change (undo).
    Column("recipients", Text, nullable=False),
    Column("prev_recipients", Text),
    Column("recipients_changed_on", Date),
    # How it ended (spec v3): "fixed" (still in the workflow's scope, and passes) or "gone" (left
    # the scope or the data). NULL: ended before version 3 recorded it, told as gone.
    Column("how", String(10)),
    # JSON {encoded recipient: date it became theirs}, and the one before the latest change
    # (undo). NULL: recorded before version 3, every recipient's since the episode began.
    Column("recipients_since", Text),
    Column("prev_recipients_since", Text),
    UniqueConstraint("workflow", "record_key", "first_seen", name="uq_alert_episode"),
    Index("ix_alert_episodes_open", "resolved_on"),
)
evaluations = Table(
    "alert_evaluations",
    metadata,
    Column("as_of", Date, primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("alerts", Integer, nullable=False),
)
snoozes = Table(
    "alert_snoozes",
    metadata,
    Column("workflow", String(60), primary_key=True),
    Column("record_key", String(15), primary_key=True),
    Column("until", Date, nullable=False),
    Column("reason", Text, nullable=False),
    Column("snoozed_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
digest_marks = Table(
    "alert_digest_marks",
    metadata,
    Column("recipient", String(200), primary_key=True),
    Column("kind", String(40), primary_key=True),
    # The local date of the recipient's latest digest, and of the one before it (a re-run of
    # the same day still counts from the day before).
    Column("last_on", Date, nullable=False),
    Column("previous_on", Date),
)

# Where each feed's last posted window ended (wf-02 per region, wf-09 in the fixed channels): the
# next window starts there and ends where that run's data was taken, so that what was created
# between the snapshot and a digest's local 08:00 is posted by the next one, not lost.
feed_windows = Table(
    "feed_windows",
    metadata,
    Column("feed", String(200), primary_key=True),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# Fixes made from the Slack app (spec: "a fix counts at once"): written to Salesforce, not yet
# seen by an evaluation. Pending, a fix keeps its item out of the fixer's digests; the first
# evaluation of a later date settles it: "fixed" (the alert is gone) or "reopened" (still raised,
# and the digest says so).
fixes = Table(
    "alert_fixes",
    metadata,
    Column("workflow", String(60), primary_key=True),
    Column("record_key", String(15), primary_key=True),
    Column("record_id", String(18), nullable=False),
    Column("fixed_by", String(200), nullable=False),
    Column("fixed_at", DateTime(timezone=True), nullable=False),
    Column("fixed_on", Date, nullable=False),  # the UTC date of fixed_at: evaluations after it settle it
    Column("fields", Text, nullable=False),  # JSON: what was written (logical names)
    Column("status", String(10), nullable=False),  # pending | fixed | reopened
    Column("settled_on", Date),  # the evaluation date that settled it
)
PENDING, REOPENED = "pending", "reopened"


def _add_fixes(conn: Connection) -> None:
    fixes.create(conn, checkfirst=True)


def _add_feed_windows(conn: Connection) -> None:
    feed_windows.create(conn, checkfirst=True)


def _add_how_and_since(conn: Connection) -> None:
    """Version 3: how an episode ended, and since when each recipient has had it. Episodes that
    ended before have no ``how``: nobody can tell now whether they were fixed, so they are told
    as gone (never claimed as fixes); open ones count their recipients from ``first_seen``."""
    from sqlalchemy import inspect

    have = {c["name"] for c in inspect(conn).get_columns("alert_episodes")}
    for name, kind in (("how", "VARCHAR(10)"), ("recipients_since", "TEXT"), ("prev_recipients_since", "TEXT")):
        if name not in have:  # a state made by this version's tables already has them
            conn.exec_driver_sql(f"ALTER TABLE alert_episodes ADD COLUMN {name} {kind}")


# version: step from the version before. Version 1 is the first schema.
UPGRADES: dict = {2: _add_feed_windows, 3: _add_how_and_since, 4: _add_fixes}

FIXED, GONE = "fixed", "gone"


def key_of(record_id: str) -> str:
    return str(record_id)[:15]


@dataclass
class Memory:
    """What an evaluation date adds to its alerts."""

    alerts: list[dict]
    resolved: list[dict] = field(default_factory=list)
    recorded: bool = True


class AlertState(Database):
    what, component, metadata, upgrades = WHAT, COMPONENT, metadata, UPGRADES

    def __init__(self, url: str, news: Iterable[str] = ()):
        self.news = set(news)
        super().__init__(url)

    def _lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({zlib.crc32(COMPONENT.encode())})")

    # ------------------------------------------------------------------ episodes

    def record(self, as_of: date, alerts: list[dict], scope: Mapping[str, Collection[str]] | None = None,
               quarantined: Collection[str] = ()) -> Memory:
        """Record one evaluation date's alerts (CONTRACT.md § 2b); an earlier date than the
        latest recorded one is only read.

        ``scope``: {workflow: keys of the records in its scope on this date}, which tells an
        episode that ends "fixed" from one that is "gone" (WORKFLOWS.md "Alert memory"); without
        it nobody can tell, and an ending is "gone" (never a fix claimed unseen). ``quarantined``:
        keys of records that could not be read on this date: their episodes stay open.
        """
        try:
            with self.engine.begin() as conn:
                self._lock(conn)
                latest = conn.execute(select(func.max(evaluations.c.as_of))).scalar()
                if latest is not None and as_of < latest:
                    return self._read(conn, as_of, alerts)
                if latest == as_of:
                    self._undo(conn, as_of)
                return self._apply(conn, as_of, alerts, scope, {key_of(k) for k in quarantined})
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None

    def annotate(self, as_of: date, alerts: list[dict]) -> Memory:
        """The ages of an evaluation's alerts without recording anything (digests of a date the
        snapshot's own evaluation already recorded)."""
        try:
            with self.engine.connect() as conn:
                return self._read(conn, as_of, alerts)
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None

    def _hygiene(self, alerts: list[dict]) -> dict[tuple[str, str], dict]:
        today: dict[tuple[str, str], dict] = {}
        for a in alerts:
            if a["workflow"] in self.news:
                continue
            k = (a["workflow"], key_of(a["record_id"]))
            entry = today.setdefault(k, {"object": a["object"], "record_id": a["record_id"], "recipients": []})
            r = encode(a["recipient"])
            if r not in entry["recipients"]:
                entry["recipients"].append(r)
        return today

    def _undo(self, conn: Connection, day: date) -> None:
        conn.execute(delete(episodes).where(episodes.c.first_seen == day))
        conn.execute(update(episodes).where(episodes.c.resolved_on == day).values(resolved_on=None, how=None))
        conn.execute(
            update(episodes)
            .where(episodes.c.recipients_changed_on == day)
            .values(recipients=episodes.c.prev_recipients, prev_recipients=None, recipients_changed_on=None,
                    recipients_since=episodes.c.prev_recipients_since, prev_recipients_since=None)
        )
        conn.execute(delete(evaluations).where(evaluations.c.as_of == day))
        conn.execute(update(fixes).where(fixes.c.settled_on == day).values(status=PENDING, settled_on=None))

    def _apply(self, conn: Connection, day: date, alerts: list[dict], scope: Mapping[str, Collection[str]] | None,
               quarantined: set[str]) -> Memory:  # fmt: skip
        today = self._hygiene(alerts)
        open_rows = conn.execute(
            select(episodes.c.id, episodes.c.workflow, episodes.c.record_key, episodes.c.object,
                   episodes.c.record_id, episodes.c.first_seen, episodes.c.recipients, episodes.c.recipients_since)
            .where(episodes.c.resolved_on.is_(None))
        ).all()  # fmt: skip
        known = {(r.workflow, r.record_key): r for r in open_rows}
        before = conn.execute(select(func.max(evaluations.c.as_of))).scalar()
        continued, started, first_seen, since = [], [], {}, {}
        for k, entry in today.items():
            row = known.get(k)
            recipients = json.dumps(entry["recipients"])
            if row is not None:
                old_since = _since(row.recipients_since, row.recipients, row.first_seen)
                since[k] = {r: old_since.get(r, day) for r in entry["recipients"]}
                if recipients != row.recipients:  # an SA assigned, say: the only write a continuing day makes
                    continued.append({"eid": row.id, "recipients": recipients, "prev": row.recipients,
                                      "since": _since_json(since[k]), "prev_since": row.recipients_since})  # fmt: skip
                first_seen[k] = row.first_seen
            else:
                since[k] = dict.fromkeys(entry["recipients"], day)
                started.append({"workflow": k[0], "record_key": k[1], "object": entry["object"],
                                "record_id": entry["record_id"], "first_seen": day, "last_seen": day,
                                "recipients": recipients, "recipients_since": _since_json(since[k])})  # fmt: skip
                first_seen[k] = day
        # A record that could not be read today is neither fixed nor gone: its episode stays open.
        ended = [row for k, row in known.items() if k not in today and row.record_key not in quarantined]
        how = {row.id: _how(row.workflow, row.record_key, scope) for row in ended}
        if continued:
            conn.execute(
                update(episodes).where(episodes.c.id == bindparam("eid"))
                .values(recipients=bindparam("recipients"), prev_recipients=bindparam("prev"), recipients_changed_on=day,
                        recipients_since=bindparam("since"), prev_recipients_since=bindparam("prev_since")),
                continued,
            )  # fmt: skip
        if started:
            conn.execute(insert(episodes), started)
        if ended:
            conn.execute(
                update(episodes).where(episodes.c.id == bindparam("eid"))
                .values(resolved_on=day, last_seen=before, how=bindparam("how_ended")),
                [{"eid": row.id, "how_ended": how[row.id]} for row in ended],
            )  # fmt: skip
        conn.execute(insert(evaluations).values(as_of=day, recorded_at=datetime.now(UTC), alerts=len(alerts)))
        self._settle(conn, day, today)
        resolved = [_resolved(row.workflow, row.object, row.record_id, row.recipients, row.first_seen, day, how[row.id])
                    for row in ended]  # fmt: skip
        return Memory(self._annotated(alerts, first_seen, day, since), [r for rs in resolved for r in rs])

    def _settle(self, conn: Connection, day: date, today: Mapping[tuple[str, str], dict]) -> None:
        """The pending fixes made before ``day`` are confirmed (the alert is gone) or reopened (it
        is still raised): the first evaluation of a later date has seen the write."""
        pending = conn.execute(select(fixes.c.workflow, fixes.c.record_key)
                               .where(and_(fixes.c.status == PENDING, fixes.c.fixed_on < day))).all()  # fmt: skip
        for status in (FIXED, REOPENED):
            keys = [{"w": r.workflow, "k": r.record_key} for r in pending if ((r.workflow, r.record_key) in today) == (status == REOPENED)]
            if keys:
                conn.execute(update(fixes).where(and_(fixes.c.workflow == bindparam("w"), fixes.c.record_key == bindparam("k")))
                             .values(status=status, settled_on=day), keys)  # fmt: skip

    # ------------------------------------------------------------------ fixes from Slack

    def mark_fixed(self, workflows: Iterable[str], record_id: str, by: str, fields: Mapping[str, Any],
                   at: datetime | None = None) -> list[str]:  # fmt: skip
        """Record a fix written from Slack as pending, for each of ``workflows`` with an episode
        open on the record (a fix of what was never raised settles nothing); returns those
        workflows. A second fix of the same item replaces the first."""
        at = _utc(at or datetime.now(UTC))
        try:
            with self.engine.begin() as conn:
                open_for = conn.execute(select(episodes.c.workflow).where(and_(
                    episodes.c.record_key == key_of(record_id), episodes.c.resolved_on.is_(None),
                    episodes.c.workflow.in_(list(workflows))))).scalars().all()  # fmt: skip
                rows = [{"workflow": w, "record_key": key_of(record_id), "record_id": record_id, "fixed_by": by,
                         "fixed_at": at, "fixed_on": at.date(), "fields": json.dumps(dict(fields), default=str),
                         "status": PENDING, "settled_on": None} for w in sorted(set(open_for))]  # fmt: skip
                upsert(conn, fixes, rows, ["workflow", "record_key"])
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return [r["workflow"] for r in rows]

    def fixes(self, status: str | None = None) -> dict[tuple[str, str], dict]:
        """{(workflow, record key): fix} of the fixes from Slack (of one ``status``, or all)."""
        try:
            with self.engine.connect() as conn:
                query = select(fixes) if status is None else select(fixes).where(fixes.c.status == status)
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        out = {}
        for r in rows:
            d = dict(r._mapping)
            d["fields"], d["fixed_at"] = json.loads(d["fields"]), _utc(d["fixed_at"])
            out[(r.workflow, r.record_key)] = d
        return out

    def _read(self, conn: Connection, day: date, alerts: list[dict]) -> Memory:
        today = self._hygiene(alerts)
        covering = conn.execute(
            select(episodes.c.workflow, episodes.c.record_key, episodes.c.first_seen, episodes.c.recipients,
                   episodes.c.recipients_since).where(
                and_(episodes.c.first_seen <= day,
                     (episodes.c.resolved_on.is_(None)) | (episodes.c.resolved_on > day))
            )
        ).all()  # fmt: skip
        first_seen = {(r.workflow, r.record_key): r.first_seen for r in covering if (r.workflow, r.record_key) in today}
        since = {(r.workflow, r.record_key): _since(r.recipients_since, r.recipients, r.first_seen)
                 for r in covering if (r.workflow, r.record_key) in today}  # fmt: skip
        gone = conn.execute(select(episodes).where(episodes.c.resolved_on == day)).all()
        resolved = [_resolved(r.workflow, r.object, r.record_id, r.recipients, r.first_seen, day, r.how) for r in gone]
        return Memory(self._annotated(alerts, first_seen, day, since), [r for rs in resolved for r in rs], recorded=False)

    def _annotated(self, alerts: list[dict], first_seen: dict, day: date, since: dict | None = None) -> list[dict]:
        """The alerts with ``first_seen``/``age_days`` (the record's episode) and, when the alert's
        recipient got it later than the episode began (a reassignment), ``recipient_since``: the
        digest says "yours since" and escalation counts from then."""
        out = []
        for a in alerts:
            k = (a["workflow"], key_of(a["record_id"]))
            seen = day if a["workflow"] in self.news else first_seen.get(k, day)
            rec = {**a, "first_seen": seen.isoformat(), "age_days": (day - seen).days}
            theirs = (since or {}).get(k, {}).get(encode(a["recipient"]))
            if theirs is not None and theirs > seen:
                rec["recipient_since"] = theirs.isoformat()
            out.append(rec)
        return out

    def first_recorded(self) -> date | None:
        """The first evaluation date the memory holds: what was open then is older than it knows."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(select(func.min(evaluations.c.as_of))).scalar()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None

    def latest_recorded(self) -> tuple[date, datetime] | None:
        """(as_of, recorded at) of the latest evaluation date recorded, or None."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(evaluations.c.as_of, evaluations.c.recorded_at).order_by(evaluations.c.as_of.desc()).limit(1)
                ).first()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        if row is None:
            return None
        at = row.recorded_at
        return row.as_of, (at if at.tzinfo else at.replace(tzinfo=UTC))

    def open_episodes(self) -> list[dict]:
        """Every open episode (the report's age bands, escalation)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(episodes).where(episodes.c.resolved_on.is_(None))).all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return [_episode(r) for r in rows]

    def history(self, since: date) -> tuple[list[dict], list[date]]:
        """(episodes open on or after ``since``, evaluation dates from ``since``): the report's
        ages, times to fix and trend."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(episodes).where(episodes.c.resolved_on.is_(None) | (episodes.c.resolved_on >= since))
                ).all()
                days = conn.execute(
                    select(evaluations.c.as_of).where(evaluations.c.as_of >= since).order_by(evaluations.c.as_of)
                ).scalars().all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return [_episode(r) for r in rows], list(days)

    def resolved_between(self, start: date | None, end: date) -> list[dict]:
        """Episodes resolved in ``(start, end]`` (all before ``end`` when ``start`` is None)."""
        cond = episodes.c.resolved_on <= end
        if start is not None:
            cond = and_(cond, episodes.c.resolved_on > start)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(episodes).where(cond)).all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return [_episode(r) for r in rows]

    def addressed(self, workflow: str, record_id: str, recipient: str) -> bool:
        """Whether an episode of (workflow, record) was ever addressed to ``recipient`` (an encoded
        recipient, ``user:005...``; 15- and 18-character Ids match): the Slack app acts on an item
        only when this memory says it went to that person."""
        want = recipient[: recipient.index(":") + 16] if ":" in recipient else recipient
        query = select(episodes.c.recipients, episodes.c.prev_recipients).where(
            episodes.c.workflow == workflow, episodes.c.record_key == key_of(record_id))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return any(r[: len(want)] == want and len(r) - len(want) in (0, 3)
                   for row in rows for text in row if text for r in json.loads(text))  # fmt: skip

    # ------------------------------------------------------------------ snoozes

    def snooze(self, workflow: str, record_id: str, until: date, reason: str, by: str) -> dict:
        """Snooze one (workflow, record) until a date: digests leave it out before that date.
        A new snooze of the same item replaces the old one (e.g. extended, or ended early)."""
        row = {"workflow": workflow, "record_key": key_of(record_id), "until": until, "reason": reason,
               "snoozed_by": by, "created_at": datetime.now(UTC)}  # fmt: skip
        try:
            with self.engine.begin() as conn:
                upsert(conn, snoozes, [row], ["workflow", "record_key"])
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return row

    def snoozed(self, on: date) -> dict[tuple[str, str], dict]:
        """{(workflow, record key): snooze} of the snoozes still running on ``on``."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(snoozes).where(snoozes.c.until > on)).all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return {(r.workflow, r.record_key): dict(r._mapping) for r in rows}

    def all_snoozes(self) -> list[dict]:
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(select(snoozes)).all()]
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None

    # ------------------------------------------------------------------ digests

    def last_digest(self, recipient: str, kind: str, on: date) -> date | None:
        """The local date of the recipient's digest before ``on`` (a re-run of ``on`` counts
        from the same day as the first run did)."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(digest_marks).where(and_(digest_marks.c.recipient == recipient, digest_marks.c.kind == kind))
                ).first()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        if row is None:
            return None
        return row.previous_on if row.last_on >= on else row.last_on

    def mark_digests(self, recipients: Iterable[str], kind: str, on: date) -> None:
        """Remember that these recipients got their ``kind`` digest of local date ``on``."""
        recipients = sorted(set(recipients))
        if not recipients:
            return
        try:
            with self.engine.begin() as conn:
                current = {
                    r.recipient: r for r in conn.execute(
                        select(digest_marks).where(and_(digest_marks.c.kind == kind,
                                                        digest_marks.c.recipient.in_(recipients)))
                    ).all()
                }  # fmt: skip
                rows = []
                for rcpt in recipients:
                    old = current.get(rcpt)
                    if old is None:
                        rows.append({"recipient": rcpt, "kind": kind, "last_on": on, "previous_on": None})
                    elif old.last_on < on:
                        rows.append({"recipient": rcpt, "kind": kind, "last_on": on, "previous_on": old.last_on})
                upsert(conn, digest_marks, rows, ["recipient", "kind"])
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None


    # ------------------------------------------------------------------ feed windows

    def feed_window_end(self, feed: str) -> datetime | None:
        """Where the feed's last delivered window ended (UTC), or None before its first."""
        try:
            with self.engine.connect() as conn:
                end = conn.execute(select(feed_windows.c.window_end).where(feed_windows.c.feed == feed)).scalar()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return None if end is None else _utc(end)

    def advance_feed(self, feed: str, window_end: datetime) -> datetime:
        """Move the feed's window end forward to ``window_end`` (never back: a late re-run of an
        older window must not post a newer one again); returns the end now recorded."""
        window_end = _utc(window_end)
        try:
            with self.engine.begin() as conn:
                self._lock(conn)
                old = conn.execute(select(feed_windows.c.window_end).where(feed_windows.c.feed == feed)).scalar()
                if old is not None and _utc(old) >= window_end:
                    return _utc(old)
                upsert(conn, feed_windows, [{"feed": feed, "window_end": window_end, "updated_at": datetime.now(UTC)}], ["feed"])
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        return window_end


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _how(workflow: str, key: str, scope: Mapping[str, Collection[str]] | None) -> str:
    """Fixed when the record is still in the workflow's scope (so it passes now); else gone."""
    return FIXED if scope is not None and key in scope.get(workflow, ()) else GONE


def _since(since_json: str | None, recipients_json: str, first_seen: date) -> dict[str, date]:
    """{recipient: date it became theirs}; before version 3, every recipient's since the start."""
    if since_json:
        return {r: date.fromisoformat(d) for r, d in json.loads(since_json).items()}
    return dict.fromkeys(json.loads(recipients_json), first_seen)


def _since_json(since: dict[str, date]) -> str:
    return json.dumps({r: d.isoformat() for r, d in since.items()})


def _resolved(workflow, obj, record_id, recipients_json, first_seen: date, day: date, how: str | None) -> list[dict]:
    from sa_hygiene.contract.recipients import as_recipient

    return [
        {"workflow": workflow, "object": obj, "record_id": record_id, "recipient": as_recipient(r),
         "first_seen": first_seen.isoformat(), "resolved_on": day.isoformat(), "how": how or GONE}
        for r in json.loads(recipients_json)
    ]  # fmt: skip


def _episode(row) -> dict:
    """An episode as the report and digests read it: ``how`` is "gone" when it ended before
    version 3 recorded how (nobody can tell now; a fix is never claimed unseen)."""
    d = dict(row._mapping)
    d["recipients"] = json.loads(d["recipients"])
    d["recipients_since"] = {r: s.isoformat() for r, s in
                             _since(d.pop("recipients_since"), row.recipients, d["first_seen"]).items()}  # fmt: skip
    if d["resolved_on"] is not None and d["how"] is None:
        d["how"] = GONE
    d.pop("prev_recipients", None)
    d.pop("prev_recipients_since", None)
    d.pop("recipients_changed_on", None)
    return d


def open_state(cfg, url: str | None = None) -> AlertState:
    """The alert state of a configuration (``state.url``, else beside the ledger)."""
    return AlertState(url or cfg.state_url, news=cfg.news_workflows)
