"""Whether the item a request names is one this app actually sent to the person it names.

Slack's signature proves that Slack delivered a request, not that this app made the value in
it: a button's value, a menu option's, a view's metadata can be made up (issue 20, item 7). So
before acting, the app checks its own records of what went to whom:

- the **delivery ledger** holds the channel and ``ts`` of every message it posted and the
  message's delivery key, which names its recipient (and, for a meeting reminder, the Event):
  the clicked message must be one of them, addressed to the item's recipient;
- the **alert state** holds, per (workflow, record), the recipients its episodes were
  addressed to: a digest item must be one of them (another SA's opportunity is not). An item
  raised only since the snapshot (a Task logged this morning, in a 15-minute DM digest) has no
  episode yet: then the message itself, read back from Slack, must carry the item's value.

When the databases cannot be read, nothing could be verified and nothing could be written
either (a snooze and a Task claim need the same database): the request goes on to the check
that needs no database (``items.not_sent``, on the snapshot) and the action's own handling of
a database that is down, which tells the user what did not happen.
"""

from __future__ import annotations

import json
import logging

from sa_hygiene.contract.recipients import USER
from sa_hygiene.delivery.digest import reminder_key
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.web.slack_app.items import NOT_SENT, Item

log = logging.getLogger(__name__)

NO_MESSAGE = f"{NOT_SENT} (this app has no record of sending that message)"
NOT_THEIRS = f"{NOT_SENT} (that message was not addressed to the item's recipient)"
NO_REMINDER = f"{NOT_SENT} (no reminder of that meeting was sent to its recipient)"
NO_ITEM = f"{NOT_SENT} (no digest of its recipient carried that item)"


def _same_user(encoded: str, user_id: str) -> bool:
    """``user:<Id>`` names ``user_id`` (an 18-character Id and its 15-character prefix match)."""
    return encoded.startswith(USER) and encoded[len(USER) :][:15] == user_id[:15]


def carries(client, channel: str, ts: str, value: str) -> bool:
    """Whether the message Slack holds at (``channel``, ``ts``), a thread reply too, has a control
    whose value is ``value`` (``conversations.replies`` finds either; ``SlackApiError`` if not)."""
    cursor = None
    for _ in range(50):  # a digest's thread is a few pages at most
        page = client.conversations_replies(channel=channel, ts=ts, cursor=cursor, limit=200)
        for message in page.get("messages") or []:
            if message.get("ts") == ts:
                return f'"{value}"' in json.dumps(message.get("blocks") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False
    return False


def unsent(backends, item: Item, channel: str, ts: str, client=None) -> str | None:
    """Why ``item``, clicked in the message at (``channel``, ``ts``), is not one this app sent
    to ``item.recipient`` (the user is told; nothing is done), or None.

    Raises ``DatabaseError`` when the ledger or the alert state cannot be read."""
    from sa_hygiene.state.alerts import open_state
    from sa_hygiene.state.ledger import Ledger

    if item.kind in ("act", "contact"):
        return None  # nothing was sent: a card made for the person who asked (``people.may_act`` checks it)
    ledger = Ledger(backends.ledger_url)
    try:
        key = ledger.message_key(channel, ts) if channel and ts else None
    finally:
        ledger.close()
    if key is None:
        return NO_MESSAGE
    parts = key.split("|")
    if len(parts) < 3 or not _same_user(parts[1], item.recipient):
        return NOT_THEIRS
    if item.kind == "log":
        event = parts[2]
        if key != reminder_key(parts[1], event) or event[:15] != item.record_id[:15]:
            return NO_REMINDER
        return None
    with open_state(backends.cfg, backends.state_url) as state:
        if state.addressed(item.workflow, item.record_id, USER + item.recipient):
            return None
    if client is None:
        return NO_ITEM
    from slack_sdk.errors import SlackApiError

    try:
        return None if carries(client, channel, ts, item.value()) else NO_ITEM
    except SlackApiError as exc:
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        return f"{NOT_SENT} (it could not be checked: Slack's conversations.replies failed ({error or 'no answer'}))"


def refusal(backends, client, item: Item, channel: str, ts: str) -> str | None:
    """``unsent``, with a database that is down reported (operations told once) and let through
    to the checks that need none."""
    try:
        why = unsent(backends, item, channel, ts, client)
    except DatabaseError as exc:
        backends.state_failed(client, exc)
        log.warning("Slack app: could not check that %s was sent: %s", item.kind, exc)
        return None
    backends.state_ok()
    return why
