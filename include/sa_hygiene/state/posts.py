"""The activity posts in Slack (spec v3, "as it happens"): where each is, and what it now says.

The ledger (``state.ledger``) makes each post go out once; a post also changes afterwards: the
activity is updated from Slack ("edited by …"), edited or deleted in Salesforce. This table keeps,
per post, its conversation and ``ts`` (to ``chat.update`` it), a hash of the content Slack holds
and whether it is marked deleted, so that a feed run edits a post only when what it would show
differs from what Slack shows: re-runs and overlapping runs make no call, and two runs that edit
at once agree (the change is a compare-and-swap on the hash).

Rows are scoped by the sink's workspace like the ledger's, in the same database.

**Where posts start.** A deployment posts what happens from its first run on, not the day's
backlog (a channel flooded with a hundred old activities at once is noise nobody reads): each
workspace's first run records its data time as the start (``start``), and no run posts anything
created before it. A database upgraded from before the start was kept has started already.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Float, MetaData, String, Table, literal, select, update

from sa_hygiene.state.db import Database, insert_ignoring_conflicts

WHAT = "the activity posts"
LIVE, DELETED = "live", "deleted"

metadata = MetaData()
activity_posts = Table(
    "slack_activity_posts",
    metadata,
    Column("workspace", String(200), primary_key=True),
    Column("key", String(400), primary_key=True),  # the post's delivery key (the ledger's)
    Column("record_key", String(15), nullable=False, index=True),  # the Task's 15-character Id
    Column("record_id", String(18), nullable=False),  # as the alert named it, for links and buttons
    Column("workflow", String(100), nullable=False),  # whose message it is (its title and words)
    Column("channel", String(40), nullable=False),
    Column("ts", String(40), nullable=False),
    Column("content", String(64), nullable=False),  # sha256 of what Slack shows
    Column("state", String(12), nullable=False),  # live | deleted
    Column("edited_by", String(200)),  # who last updated it from Slack
    Column("updated_at", Float, nullable=False),
)
starts = Table(
    "slack_activity_posts_start",
    metadata,
    Column("workspace", String(200), primary_key=True),
    Column("started_at", Float, nullable=False),  # Unix seconds: the data time of the first run
)


def _add_starts(conn: Connection) -> None:
    """Version 2: where posts start; a workspace that posted before it was kept started long ago."""
    starts.create(conn, checkfirst=True)
    posted = select(activity_posts.c.workspace, literal(0.0)).distinct()
    conn.execute(starts.insert().from_select(["workspace", "started_at"], posted))


@dataclass(frozen=True)
class Post:
    key: str
    record_key: str
    record_id: str
    workflow: str
    channel: str
    ts: str
    content: str
    state: str
    edited_by: str | None


class ActivityPosts(Database):
    """Posts by delivery key and by record, in the ledger's database."""

    what, component, metadata, upgrades = WHAT, "activity_posts", metadata, {2: _add_starts}

    def start(self, workspace: str, at: datetime) -> tuple[datetime, bool]:
        """(where the workspace's posts start, whether this call started them): the first call
        records ``at``; every later one, in any process, reads what the first recorded."""
        row = {"workspace": workspace, "started_at": at.timestamp()}

        def claim(conn: Connection) -> tuple[float, bool]:
            first = insert_ignoring_conflicts(conn, starts, row) == 1
            return conn.execute(select(starts.c.started_at).where(starts.c.workspace == workspace)).scalar_one(), first

        started, first = self._run(claim)
        return datetime.fromtimestamp(started, UTC), first

    def remember(self, workspace: str, key: str, record_id: str, workflow: str, channel: str, ts: str,
                 content: str) -> None:  # fmt: skip
        """A post the ledger says is in Slack; a row already there (another run's) stands."""
        row = {"workspace": workspace, "key": key, "record_key": record_id[:15], "record_id": record_id,
               "workflow": workflow,
               "channel": channel, "ts": ts,
               "content": content, "state": LIVE, "edited_by": None, "updated_at": time.time()}  # fmt: skip
        self._run(lambda conn: insert_ignoring_conflicts(conn, activity_posts, row))

    def of_records(self, workspace: str, record_keys: Iterable[str]) -> list[Post]:
        keys = sorted({k[:15] for k in record_keys})
        if not keys:
            return []
        t = activity_posts.c

        def read(conn: Connection) -> list[Post]:
            out = []
            for i in range(0, len(keys), 500):
                query = select(activity_posts).where(t.workspace == workspace, t.record_key.in_(keys[i : i + 500]))
                out += [_post(r) for r in conn.execute(query).mappings()]
            return out

        return self._run(read)

    def get(self, workspace: str, key: str) -> Post | None:
        t = activity_posts.c
        query = select(activity_posts).where(t.workspace == workspace, t.key == key)
        row = self._run(lambda conn: conn.execute(query).mappings().first())
        return _post(row) if row else None

    def replace(self, workspace: str, post: Post, content: str, state: str, edited_by: str | None) -> bool:
        """Record new content for a post, only if it still holds ``post.content`` (False: another
        run changed it first, and its content stands)."""
        t = activity_posts.c
        stmt = (
            update(activity_posts)
            .where(t.workspace == workspace, t.key == post.key, t.content == post.content)
            .values(content=content, state=state, edited_by=edited_by, updated_at=time.time())
        )
        return self._run(lambda conn: conn.execute(stmt).rowcount) == 1


def _post(r) -> Post:
    return Post(r["key"], r["record_key"], r["record_id"], r["workflow"], r["channel"], r["ts"], r["content"], r["state"], r["edited_by"])
