"""Slack form submissions: one claim per modal view, so that a form creates at most one Task.

Slack sends a view's submission again when its submit button is pressed twice, or when an
answer is slow; the Slack app claims the view here before it creates anything in Salesforce.
The claims live in the state database (table ``slack_log_submissions``) beside the alert
state, so every process serving the app (the api-server's workers, Socket Mode) shares them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, delete, update
from sqlalchemy.exc import SQLAlchemyError

from sa_hygiene.state.db import (
    DatabaseError,
    connect,
    ensure_schema,
    insert_ignoring_conflicts,
    reason,
    safe_url,
)

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
COMPONENT = "slack_app"  # its row in sa_hygiene_schema: kept as the first databases recorded it
WHAT = "the Slack app's submissions"


class FormSubmissions:
    """Claims on modal views in the state database, so that each creates at most one Task."""

    def __init__(self, url: str):
        self.url = url
        self.engine = connect(url, WHAT)
        ensure_schema(self.engine, WHAT, COMPONENT, metadata, {})

    def _run(self, fn: Callable[[Connection], Any]) -> Any:
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"{WHAT} {safe_url(self.url)}: {reason(exc)}") from None

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

    def close(self) -> None:
        self.engine.dispose()
