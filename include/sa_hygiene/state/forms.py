"""Slack form submissions: one claim per modal view, and one per meeting, so that a meeting
gets at most one Task however many forms are sent for it.

Slack sends a view's submission again when its submit button is pressed twice, or when an
answer is slow; the Slack app claims the view here before it creates anything in Salesforce.
The claims live in the state database (table ``slack_log_submissions``) beside the alert
state, so every process serving the app (the api-server's workers, Socket Mode) shares them.

Two forms for one meeting (two clicks, two devices, the SA and their manager) are two views,
so the meeting is claimed too (table ``slack_log_meetings``, keyed by the Event's Id): the
second is told the meeting is being or was logged, with the link. When Salesforce's answer to
a creation is lost, the meeting stays claimed as ``unsure``: the next form for it looks the
Task up in Salesforce before creating one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, delete, select, update

from sa_hygiene.state.db import Database, insert_ignoring_conflicts

metadata = MetaData()
submissions = Table(
    "slack_log_submissions",
    metadata,
    # Slack's view id: one modal, one Task, however often its submit button is pressed.
    Column("view_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # saving | done
    Column("task_id", String(18)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
meetings = Table(
    "slack_log_meetings",
    metadata,
    Column("meeting_id", String(18), primary_key=True),  # the Event's Id
    Column("view_id", String(64), nullable=False),  # the form that holds it
    Column("status", String(16), nullable=False),  # saving | done | unsure (the answer was lost)
    Column("task_id", String(18)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
# Requests already answered, for Slack's five-minute signature window: a signature used twice is
# a replay (refused), a body seen before under ``X-Slack-Retry-Num`` a retry (answered, not redone).
requests_seen = Table(
    "slack_requests_seen",
    metadata,
    Column("key", String(80), primary_key=True),  # "sig:v0=…" or "body:<sha256>"
    Column("seen_at", DateTime(timezone=True), nullable=False),
)
SEEN_SECONDS = 600  # twice the signature window: older rows could not be replayed anyway
COMPONENT = "slack_app"  # its row in sa_hygiene_schema: kept as the first databases recorded it
WHAT = "the Slack app's submissions"


class FormSubmissions(Database):
    """Claims on modal views in the state database, so that each creates at most one Task."""

    what, component, metadata = WHAT, COMPONENT, metadata

    def claim(self, view_id: str) -> bool:
        """True for the first claim of a view; False while another submission holds it or after it is done."""
        row = {"view_id": view_id, "status": "saving", "created_at": datetime.now(UTC)}
        return self._run(lambda c: insert_ignoring_conflicts(c, submissions, row)) == 1

    def release(self, view_id: str) -> None:
        """The Task was not created: the same form may be submitted again."""
        self._run(lambda c: c.execute(delete(submissions).where(submissions.c.view_id == view_id)))

    def done(self, view_id: str, task_id: str) -> None:
        self._run(lambda c: c.execute(update(submissions).where(submissions.c.view_id == view_id)
                                      .values(status="done", task_id=task_id)))  # fmt: skip

    def first_use(self, key: str) -> bool:
        """True the first time ``key`` is seen (within ``SEEN_SECONDS``); rows older than that go."""
        now = datetime.now(UTC)

        def use(c: Connection) -> bool:
            c.execute(delete(requests_seen).where(requests_seen.c.seen_at < now - timedelta(seconds=SEEN_SECONDS)))
            return insert_ignoring_conflicts(c, requests_seen, {"key": key[:80], "seen_at": now}) == 1

        return self._run(use)

    def claim_meeting(self, meeting_id: str, view_id: str) -> dict | None:
        """None when ``view_id`` now holds the meeting (first claim, or taking over an ``unsure``
        one: look the Task up first); else the meeting's row (``status``, ``task_id``, ``view_id``)."""
        row = {"meeting_id": meeting_id, "view_id": view_id, "status": "saving", "created_at": datetime.now(UTC)}

        def claim(c: Connection) -> dict | None:
            if insert_ignoring_conflicts(c, meetings, row) == 1:
                return None
            taken = c.execute(update(meetings).where(meetings.c.meeting_id == meeting_id, meetings.c.status == "unsure")
                              .values(status="saving", view_id=view_id)).rowcount  # fmt: skip
            if taken == 1:
                return {"status": "unsure", "task_id": None, "view_id": view_id}
            found = c.execute(select(meetings).where(meetings.c.meeting_id == meeting_id)).mappings().first()
            return dict(found) if found else None

        return self._run(claim)

    def meeting(self, meeting_id: str, status: str, task_id: str | None = None) -> None:
        """Record how the meeting's save ended: ``done`` (with its Task) or ``unsure``."""
        self._run(lambda c: c.execute(update(meetings).where(meetings.c.meeting_id == meeting_id)
                                      .values(status=status, task_id=task_id)))  # fmt: skip

    def release_meeting(self, meeting_id: str) -> None:
        """Salesforce refused the Task: the meeting may be logged by any form again."""
        self._run(lambda c: c.execute(delete(meetings).where(meetings.c.meeting_id == meeting_id)))
