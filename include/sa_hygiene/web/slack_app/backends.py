"""What the Slack app's listeners reach besides the Slack client they are given: the latest
snapshot (who people are, what a meeting was), Salesforce, the state database (snoozes, form
claims) and two Slack look-ups worth caching (a user's e-mail, a channel's id).

Made once per app (``Backends``); tests pass clients of their own local servers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sa_hygiene.contract.config import Config
from sa_hygiene.state.forms import FormSubmissions

log = logging.getLogger(__name__)

USER_CACHE_SECONDS = 600.0


class SlackAppError(RuntimeError):
    """The app cannot start: missing credentials or configuration; one line for an operator."""


class LookupFailed(RuntimeError):
    """Slack could not say who a user is; the message says which call failed and why."""


class LatestSnapshot:
    """The newest snapshot of the store with its latest changes (what was booked or logged since
    it was taken: a meeting booked this morning has a subject and a date), read again only when a
    newer snapshot or changes version is committed. Changes that cannot be read are logged and
    the snapshot is used without them."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._name: str | None = None
        self._snapshot = None

    def __call__(self):
        from sa_hygiene.source.snapshot import SnapshotError, read_snapshot
        from sa_hygiene.source.store import SnapshotStore, latest_changes

        store = SnapshotStore(self.cfg.store.url, keep=self.cfg.store.keep)
        ref = store.latest()
        if ref is None:
            raise SlackAppError("no snapshot yet: the app knows users and meetings from the latest snapshot")
        changes = latest_changes(store, ref)
        version = f"{ref.name}@{changes['version'] if changes else 0}"
        with self._lock:
            if version != self._name:
                try:
                    self._snapshot = read_snapshot(ref.url, self.cfg, changes=changes["folder"] if changes else None)
                except SnapshotError as exc:
                    log.warning("Slack app: the snapshot's changes cannot be read, using the snapshot alone: %s", exc)
                    self._snapshot = read_snapshot(ref.url, self.cfg)
                self._name = version
            return self._snapshot


@dataclass
class SlackDirectory:
    """Slack users' e-mails and channels' ids, asked of Slack once and kept a while."""

    _emails: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    _channels: dict[str, str] = field(default_factory=dict)

    def email_of(self, client, slack_user: str) -> str | None:
        """The e-mail Slack has for a user (``users.info``; needs ``users:read.email``), cached a while."""
        hit = self._emails.get(slack_user)
        if hit and time.monotonic() - hit[0] < USER_CACHE_SECONDS:
            return hit[1]
        from slack_sdk.errors import SlackApiError

        try:
            profile = (client.users_info(user=slack_user).get("user") or {}).get("profile") or {}
        except SlackApiError as exc:  # e.g. missing_scope: not "not yours", but "could not tell"
            error = exc.response.get("error") if hasattr(exc.response, "get") else None
            raise LookupFailed(f"Slack's users.info failed ({error or 'no answer'})") from None
        email = profile.get("email") if isinstance(profile.get("email"), str) else None
        self._emails[slack_user] = (time.monotonic(), email)
        return email

    def channel_id(self, client, name: str) -> str | None:
        """A channel's id by name (``#sa-amer``), from ``conversations.list``."""
        name = name.lstrip("#")
        if name not in self._channels:
            cursor = None
            while True:
                page = client.conversations_list(exclude_archived=True, types="public_channel,private_channel",
                                                 limit=200, cursor=cursor)  # fmt: skip
                for c in page.get("channels") or []:
                    self._channels.setdefault(c.get("name"), c.get("id"))
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        return self._channels.get(name)


def today_in(zone: str | None) -> date:
    """Today's date in an IANA time zone (UTC when none is known)."""
    return datetime.now(ZoneInfo(zone or "UTC")).date()


@dataclass
class Backends:
    """What the listeners use besides Slack's client, made once per app."""

    cfg: Config
    snapshot: Callable[[], Any]  # the latest snapshot
    salesforce: Any  # sa_hygiene.source.salesforce.SalesforceClient: logs in on first use
    state_url: str
    today: Callable[[str | None], date] = today_in
    ledger_url: str | None = None  # the delivery ledger (what was sent where); default: slack.ledger_url
    slack: SlackDirectory = field(default_factory=SlackDirectory)
    _submissions: FormSubmissions | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.ledger_url = self.ledger_url or self.cfg.slack.ledger_url

    @property
    def submissions(self) -> FormSubmissions:
        """Made on first use, once: two first submissions at once must share one engine."""
        with self._lock:
            if self._submissions is None:
                self._submissions = FormSubmissions(self.state_url)
            return self._submissions

    _state_down: bool = False

    def state_failed(self, client, exc: Exception) -> None:
        """The state database failed: the operations channel hears it once per outage (not once
        per click; ``state_ok`` ends the outage), the log every time."""
        log.warning("Slack app: the state database failed: %s", exc)
        with self._lock:
            if self._state_down:
                return
            self._state_down = True
        try:
            channel = self.slack.channel_id(client, self.cfg.channels.operations)
            if channel:
                client.chat_postMessage(channel=channel, text=(
                    f":rotating_light: The SA hygiene Slack app cannot use its state database ({exc}). "
                    "Until it is back, snoozes and meeting logs from Slack are refused and users are told so."))  # fmt: skip
        except Exception as failed:  # the operations channel is out of reach too: the log has it
            log.warning("Slack app: could not tell the operations channel: %s", type(failed).__name__)

    def state_ok(self) -> None:
        self._state_down = False

    def release(self, client, key: str) -> None:
        """Nothing was written: the form (or click) claimed as ``key`` may be sent again."""
        from sa_hygiene.state.db import DatabaseError

        try:
            self.submissions.release(key)
        except DatabaseError as exc:
            self.state_failed(client, exc)

    def record_fix(self, client, workflows, record_id: str, by: str, fields: dict) -> list[str] | None:
        """A fix written from Slack, pending in the alert state for ``workflows`` until an
        evaluation confirms it (``AlertState.mark_fixed``); None when the database failed."""
        from sa_hygiene.state.alerts import open_state
        from sa_hygiene.state.db import DatabaseError

        try:
            with open_state(self.cfg, self.state_url) as state:
                return state.mark_fixed(workflows, record_id, by, fields)
        except DatabaseError as exc:
            self.state_failed(client, exc)
            return None

    def close(self) -> None:
        if self._submissions is not None:
            self._submissions.close()
