"""The delivery ledger: what was posted where, and the Slack ids worth remembering.

Slack has no idempotency key, so the ledger is what makes a digest go out once.
Each message part (the first message of a digest and each of its thread replies)
has a row keyed by the digest's delivery key and the part number:

- ``pending``: a post was about to be sent, or was sent without its answer being
  recorded. Slack may hold the message; look (``marked_at`` bounds the search)
  before posting again.
- ``sent``: Slack answered with ``ts``; never post again.
- ``failed``: Slack refused it, or it never reached Slack; safe to post again.

The same tables cache Slack's user, DM and channel ids, so that a daily run does
not look up a few hundred e-mail addresses again. Every row is scoped by a
*workspace* (the sink's name) so that a demo run into the outbox never marks a real
digest as delivered, nor feeds made-up ids to a real Slack.

SQLAlchemy Core, one code path for SQLite (the default) and PostgreSQL. Times are
Unix seconds, directly comparable with Slack's ``ts``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
    create_engine,
    delete,
    insert,
    make_url,
    select,
    update,
)

PENDING, SENT, FAILED = "pending", "sent", "failed"

metadata = MetaData()

deliveries = Table(
    "slack_deliveries",
    metadata,
    Column("workspace", String(200), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("state", String(10), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("target", Text),  # the recipient actually used (JSON), after any fallback
    Column("channel", String(40)),
    Column("ts", String(40)),
    Column("marked_at", Float),  # first moment a post of this part may have reached Slack
    Column("updated_at", Float, nullable=False),
    Column("error", Text),
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


class Ledger:
    """Delivery states and Slack id caches in one SQL database (``sqlite:///...`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, cache_hours: float = 24.0) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url)
        self.cache_seconds = cache_hours * 3600
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ deliveries

    def parts(self, workspace: str, key: str) -> dict[int, Part]:
        query = select(deliveries).where(deliveries.c.workspace == workspace, deliveries.c.key == key)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {
            r["part"]: Part(
                part=r["part"],
                state=r["state"],
                target=json.loads(r["target"]) if r["target"] else None,
                channel=r["channel"],
                ts=r["ts"],
                marked_at=r["marked_at"],
                error=r["error"],
            )
            for r in rows
        }

    def mark_pending(
        self, workspace: str, key: str, part: int, *, run_id: str, target: dict, channel: str
    ) -> None:
        """Record that a post is about to be sent. An earlier ``pending`` mark keeps its time:
        a post from that earlier attempt may still be in Slack."""
        now = time.time()
        with self.engine.begin() as conn:
            previous = self._row(conn, workspace, key, part)
            marked_at = previous["marked_at"] if previous and previous["state"] == PENDING else now
            values = dict(
                state=PENDING, run_id=run_id, target=json.dumps(target, sort_keys=True),
                channel=channel, ts=None, marked_at=marked_at, updated_at=now, error=None,
            )  # fmt: skip
            self._upsert(conn, previous, workspace, key, part, values)

    def mark_sent(self, workspace: str, key: str, part: int, *, ts: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(self._where(workspace, key, part))
                .values(state=SENT, ts=ts, updated_at=time.time(), error=None)
            )

    def mark_failed(self, workspace: str, key: str, part: int, *, run_id: str, error: str) -> None:
        """Record a failure after which nothing of this part can be in Slack."""
        with self.engine.begin() as conn:
            previous = self._row(conn, workspace, key, part)
            values = dict(
                state=FAILED, run_id=run_id, ts=None, marked_at=None, updated_at=time.time(), error=error
            )
            self._upsert(conn, previous, workspace, key, part, values)

    @staticmethod
    def _where(workspace: str, key: str, part: int):
        c = deliveries.c
        return and_(c.workspace == workspace, c.key == key, c.part == part)

    def _row(self, conn: Connection, workspace: str, key: str, part: int):
        return conn.execute(select(deliveries).where(self._where(workspace, key, part))).mappings().first()

    def _upsert(self, conn: Connection, previous, workspace: str, key: str, part: int, values: dict) -> None:
        if previous is None:
            conn.execute(insert(deliveries).values(workspace=workspace, key=key, part=part, **values))
        else:
            conn.execute(update(deliveries).where(self._where(workspace, key, part)).values(**values))

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
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def _replace(self, table: Table, workspace: str, key_column: str, rows: dict[str, dict]) -> None:
        if not rows:
            return
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                delete(table).where(table.c.workspace == workspace, table.c[key_column].in_(list(rows)))
            )
            conn.execute(
                insert(table),
                [{"workspace": workspace, key_column: k, "cached_at": now, **v} for k, v in rows.items()],
            )
