"""What managers did from Slack: nudges (at most one a day per record), the writes to Salesforce
(who changed what, for the operations channel's daily summary) and the claims that keep a
"Reassign all" to one run however often Slack delivers the click.

In the state database beside the alert state, so every process serving the Slack app agrees.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, String, Table, delete, select

from sa_hygiene.state.db import Database, insert_ignoring_conflicts

metadata = MetaData()
nudges = Table(
    "slack_nudges",
    metadata,
    Column("record_key", String(15), primary_key=True),
    Column("day", Date, primary_key=True),  # the nudging manager's local date
    Column("nudged_by", String(255), nullable=False),
    Column("owner_id", String(18), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
writes = Table(
    "slack_writes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False, index=True),  # UTC date of the write
    Column("by", String(255), nullable=False),  # the Salesforce user who acted (name <e-mail>)
    Column("action", String(32), nullable=False),  # assign | reassign | reassign_all
    Column("object", String(40), nullable=False),
    Column("record_id", String(18), nullable=False),
    Column("field", String(80), nullable=False),
    Column("old", String(18)),
    Column("new", String(18)),
    Column("outcome", String(255), nullable=False),  # saved | refused: <Salesforce's words>
    Column("created_at", DateTime(timezone=True), nullable=False),
)
claims = Table(
    "slack_manager_claims",
    metadata,
    Column("key", String(120), primary_key=True),  # e.g. "reassign_all|<inactive user>|<message ts>"
    Column("created_at", DateTime(timezone=True), nullable=False),
)
COMPONENT = "slack_managers"
WHAT = "the managers' actions from Slack"


class ManagerActions(Database):
    """Nudges, writes and claims in the state database; every failure is a ``DatabaseError``."""

    what, component, metadata = WHAT, COMPONENT, metadata

    def nudge(self, record_id: str, day: date, by: str, owner_id: str) -> bool:
        """True for the first nudge of the record on ``day``; False when someone nudged it already."""
        row = {"record_key": record_id[:15], "day": day, "nudged_by": by[:255], "owner_id": owner_id,
               "created_at": datetime.now(UTC)}  # fmt: skip
        return self._run(lambda c: insert_ignoring_conflicts(c, nudges, row)) == 1

    def nudged(self, record_id: str, day: date) -> dict | None:
        found = self._run(lambda c: c.execute(select(nudges).where(nudges.c.record_key == record_id[:15],
                                                                   nudges.c.day == day)).mappings().first())  # fmt: skip
        return dict(found) if found else None

    def forget_nudge(self, record_id: str, day: date) -> None:
        """The nudge never reached the SA: it may be sent again today."""
        self._run(
            lambda c: c.execute(
                delete(nudges).where(nudges.c.record_key == record_id[:15], nudges.c.day == day)
            )
        )

    def claim(self, key: str) -> bool:
        """True the first time ``key`` is claimed: the work it names runs once."""
        return (
            self._run(
                lambda c: insert_ignoring_conflicts(
                    c, claims, {"key": key[:120], "created_at": datetime.now(UTC)}
                )
            )
            == 1
        )

    def release(self, key: str) -> None:
        """The claimed work did not run (nothing was written): it may be asked for again."""
        self._run(lambda c: c.execute(delete(claims).where(claims.c.key == key[:120])))

    def wrote(self, rows: list[dict]) -> None:
        """Log writes: each ``{by, action, object, record_id, field, old, new, outcome}``."""
        now = datetime.now(UTC)
        full = [{"day": now.date(), "created_at": now, **r, "outcome": str(r["outcome"])[:255]} for r in rows]
        if full:
            self._run(lambda c: c.execute(writes.insert(), full))

    def writes_on(self, day: date) -> list[dict]:
        """The writes of one (UTC) day, oldest first."""
        rows = self._run(
            lambda c: (
                c.execute(select(writes).where(writes.c.day == day).order_by(writes.c.id)).mappings().all()
            )
        )
        return [dict(r) for r in rows]


def write_line(row: dict) -> str:
    """One write, as the operations channel reads it: who, what, from what to what, saved or not."""
    return (f"• {row['by']}: {row['action']} {row['object']} {row['record_id']} {row['field']} "
            f"{row['old'] or '(blank)'} → {row['new'] or '(blank)'}: {row['outcome']}")  # fmt: skip
