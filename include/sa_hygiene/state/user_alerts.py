"""The alerts people made themselves (``contract/user_alerts.py``), kept in the state database.

They live beside the alert state (the same database: ``Config.state_url``) as a component of
their own in ``sa_hygiene_schema`` (``user_alerts``, version 1), so that adding them never
touches the alert state's version. An alert is stored as the form's choices (JSON), not as its
compiled workflow: it is compiled again at each evaluation against the configuration of the
day, so an upgrade that drops a field pauses the alert (with a notice to its owner) instead of
running a stale workflow or failing the evaluation.

Guard rails kept here, where every process that saves an alert passes: at most
``user_alerts.max_per_user`` alerts per person (paused ones count, they can be resumed). A
paused alert carries why, and whether its owner has been told (``notices``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)

from sa_hygiene.state.db import Database

COMPONENT = "user_alerts"
WHAT = "the user alerts"

metadata = MetaData()
user_alerts = Table(
    "sa_user_alerts",
    metadata,
    Column("alert_id", String(32), primary_key=True),
    Column("owner", String(18), nullable=False, index=True),  # the maker's User Id
    Column("name", String(80), nullable=False),
    Column("spec", Text, nullable=False),  # the form's choices, JSON (contract.user_alerts.UserAlert)
    Column("status", String(16), nullable=False),  # active | paused
    Column("paused_reason", Text),
    Column("notified", Boolean, nullable=False, default=True),  # owner told of the pause
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class LimitReached(ValueError):
    """A person already has as many alerts as the configuration allows."""


@dataclass(frozen=True)
class StoredAlert:
    alert_id: str
    owner: str
    name: str
    spec: dict
    status: str
    paused_reason: str | None

    @property
    def active(self) -> bool:
        return self.status == "active"


class UserAlerts(Database):
    """People's own alerts, in the state database; every failure is a ``DatabaseError``."""

    what, component, metadata = WHAT, COMPONENT, metadata

    def add(self, owner: str, name: str, spec: dict, max_per_user: int) -> str:
        """Save a new alert; LimitReached when ``owner`` has ``max_per_user`` already."""
        now = datetime.now(UTC)
        alert_id = uuid.uuid4().hex[:12]

        def add(c: Connection) -> str:
            # Counted and inserted in one transaction (SQLite: BEGIN IMMEDIATE holds the lock).
            have = c.execute(select(func.count()).select_from(user_alerts).where(user_alerts.c.owner == owner)).scalar()
            if have >= max_per_user:
                raise LimitReached(f"you have {have} alerts, the most allowed ({max_per_user}): delete one first")
            c.execute(user_alerts.insert().values(alert_id=alert_id, owner=owner, name=name, spec=json.dumps(spec),
                                                  status="active", paused_reason=None, notified=True,
                                                  created_at=now, updated_at=now))  # fmt: skip
            return alert_id

        return self._run(add)

    def list(self, owners: Iterable[str] | None = None) -> list[StoredAlert]:
        """All alerts, or those of ``owners`` (a manager's team), oldest first."""
        q = select(user_alerts).order_by(user_alerts.c.created_at, user_alerts.c.alert_id)
        if owners is not None:
            q = q.where(user_alerts.c.owner.in_(list(owners)))
        rows = self._run(lambda c: c.execute(q).mappings().all())
        return [StoredAlert(r["alert_id"], r["owner"], r["name"], json.loads(r["spec"]), r["status"], r["paused_reason"])
                for r in rows]  # fmt: skip

    def get(self, alert_id: str) -> StoredAlert | None:
        return next((a for a in self.list() if a.alert_id == alert_id), None)

    def pause(self, alert_id: str, why: str, *, notify: bool) -> bool:
        """Pause an alert; ``notify``: its owner is still to be told (a pause they did not ask for)."""
        stmt = (update(user_alerts).where(user_alerts.c.alert_id == alert_id, user_alerts.c.status == "active")
                .values(status="paused", paused_reason=why, notified=not notify, updated_at=datetime.now(UTC)))  # fmt: skip
        return self._run(lambda c: c.execute(stmt).rowcount) == 1

    def resume(self, alert_id: str) -> bool:
        stmt = (update(user_alerts).where(user_alerts.c.alert_id == alert_id)
                .values(status="active", paused_reason=None, notified=True, updated_at=datetime.now(UTC)))  # fmt: skip
        return self._run(lambda c: c.execute(stmt).rowcount) == 1

    def delete(self, alert_id: str) -> bool:
        return self._run(lambda c: c.execute(delete(user_alerts).where(user_alerts.c.alert_id == alert_id)).rowcount) == 1

    def notices(self) -> list[StoredAlert]:
        """Alerts paused by the system whose owners have not been told yet."""
        return [a for a in self.list() if a.status == "paused" and a.alert_id in self._unnotified()]

    def _unnotified(self) -> set[str]:
        q = select(user_alerts.c.alert_id).where(user_alerts.c.notified.is_(False))
        return set(self._run(lambda c: c.execute(q).scalars().all()))

    def mark_notified(self, alert_ids: Iterable[str]) -> None:
        ids = list(alert_ids)
        if ids:
            stmt = update(user_alerts).where(user_alerts.c.alert_id.in_(ids)).values(notified=True)
            self._run(lambda c: c.execute(stmt))
