"""Listeners of searches in a modal's menus (Slack's ``block_suggestion``): the log form's
Related To, over open opportunities and accounts.

Answered in the acknowledgement itself (that is how Slack takes the options), from the latest
snapshot with its changes, which the app holds in memory: never from Salesforce, so within
Slack's three seconds. Only our own forms ask (``items.problem`` refuses any other view).
"""

from __future__ import annotations

import logging

from sa_hygiene.delivery.blockkit import cut, esc
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import CONTACT_VIEW, LOG_VIEW, RELATED_TO, accept
from sa_hygiene.web.slack_app.records import search

log = logging.getLogger(__name__)

MAX_OPTIONS = 100  # Slack's limit per menu
SUGGESTING_VIEWS = {LOG_VIEW, CONTACT_VIEW}  # the modals whose Related To menu searches


def _related_to_problem(body: dict) -> str | None:
    if (body.get("view") or {}).get("callback_id") not in SUGGESTING_VIEWS:
        return "unknown suggestion"
    return None if len(body.get("value") or "") <= 200 else "malformed suggestion"


accept(suggestions={RELATED_TO: _related_to_problem})


def _option(label: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": cut(esc(label), 75) or value}, "value": value}


def related_to_options(snapshot, query: str | None) -> list[dict]:
    """Option groups for Related To: open opportunities, then accounts, matching ``query``."""
    found = search(snapshot, query, limit=MAX_OPTIONS // 2)
    groups = []
    for kind, label in (("Opportunity", "Open opportunities"), ("Account", "Accounts")):
        options = [_option(f.label, f.id) for f in found if f.kind == kind]
        if options:
            groups.append({"label": {"type": "plain_text", "text": label}, "options": options})
    return groups


def register(app, backends: Backends) -> None:
    """The suggestion listeners of ``app``."""

    def related_to(ack, body):
        query = body.get("value") if isinstance(body.get("value"), str) else ""
        try:
            groups = related_to_options(backends.snapshot(), query[:200])
        except Exception as exc:  # no snapshot, or one that cannot be read: an empty menu, logged
            log.warning("Slack app: Related To search failed: %s", exc)
            groups = []
        ack(option_groups=groups) if groups else ack(options=[])

    app.options(RELATED_TO)(related_to)
