"""Where a workspace's activity posts start: recorded once by the first run, read by every later
one; a database from before the start was kept has started already (its posts stand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from sa_hygiene.state.posts import ActivityPosts

pytestmark = pytest.mark.unit

NOON = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_the_first_run_records_the_start_and_later_ones_read_it(tmp_path):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    with ActivityPosts(url) as posts:
        assert posts.start("slack", NOON) == (NOON, True)
        assert posts.start("slack", NOON + timedelta(hours=1)) == (NOON, False)
        assert posts.start("outbox", NOON + timedelta(hours=2)) == (NOON + timedelta(hours=2), True)
    with ActivityPosts(url) as posts:  # another process
        assert posts.start("slack", NOON + timedelta(days=1)) == (NOON, False)


def test_a_database_that_posted_before_the_start_was_kept_has_started(tmp_path):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    with ActivityPosts(url) as posts:
        posts.remember("slack", "activity_post|channel:#c|00T5e0000001T01", "00T5e0000001T01AAA", "wf-02", "C1", "1.0", "h")
        with posts.engine.begin() as conn:  # as version 1 left it
            conn.execute(text("DROP TABLE slack_activity_posts_start"))
            conn.execute(text("UPDATE sa_hygiene_schema SET version = 1 WHERE component = 'activity_posts'"))
    with ActivityPosts(url) as posts:
        assert posts.start("slack", NOON) == (datetime.fromtimestamp(0, UTC), False)
        assert posts.start("outbox", NOON) == (NOON, True)  # a workspace that never posted starts now
        with posts.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM sa_hygiene_schema WHERE component = 'activity_posts'")).scalar() == 2
