"""As it happens (spec v3): one Slack post per new activity, in the handbook's shape.

The handbook's activity channels are a place to collaborate: "When anyone logs an activity,
Rattle will provide the update in a team Slack channel", so that feedback can be given "as an
asynchronous comment". So each record of a workflow that posts as it happens
(``schedule.as_it_happens``: wf-02 to the region channel of the task's owner, wf-09 to
``#sa-chorus-calls``) is its own message, with its own thread: who logged what on which
opportunity, the types, the sentiment, the description with its links, a link to the record
(for a Chorus call, the recording), and the workflow's own words. An SA activity's post carries
the handbook's "Update Activity" button.

A post's delivery key names the channel and the record, not a day: the ledger then posts each
activity once whatever is retried, re-run or overlaps. Pure rendering, like ``digest``: the
pipeline step (``pipeline.activity_posts``) delivers and edits.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.recipients import as_recipient, encode
from sa_hygiene.contract.schema import is_id_of
from sa_hygiene.delivery.blockkit import (
    UPDATE_ACTIVITY,
    Message,
    context,
    cut,
    esc,
    fit_block,
    fit_message,
    is_salesforce_id,
    sections,
)
from sa_hygiene.delivery.items import DigestRecords, ItemWriter
from sa_hygiene.source.snapshot import Snapshot

POST_SLOT = "activity_post"
# The handbook's "Update Activity" button of an SA activity's post (``blockkit.UPDATE_ACTIVITY``):
# the Slack app opens a modal pre-filled from the Task (web/slack_app/listeners/activity.py),
# writes it, and edits the post.
BUTTON_TEXT = "Update Activity"


def post_key(recipient: dict, record_id: str) -> str:
    """The delivery key of a record's post: one per channel and record (15-character Id), ever."""
    return f"{POST_SLOT}|{encode(recipient)}|{record_id[:15]}"


def content_hash(text: str, blocks: list[dict]) -> str:
    """What a post shows, as a short hash: an edit is made only when it changes."""
    return hashlib.sha256(json.dumps([text, blocks], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _Records(DigestRecords):
    """The snapshot's rows, with Tasks as they were just saved from Slack (``saved``), which the
    snapshot learns only at the next feed run."""

    def __init__(self, snapshot: Snapshot, cfg: Config):
        super().__init__(snapshot, cfg)
        self.saved: dict[str, dict] = {}

    def row(self, obj: str, record_id, source: str = "current") -> dict | None:
        found = super().row(obj, record_id, source)
        if obj == "Task" and source == "current" and isinstance(record_id, str) and record_id[:15] in self.saved:
            return {**(found or {}), **self.saved[record_id[:15]]}
        return found


class PostWriter:
    """The text and blocks of activity posts, from a snapshot's rows."""

    def __init__(self, cfg: Config, snapshot: Snapshot, as_of: date, record_ids: list[str]):
        self.cfg = cfg
        self.records = _Records(snapshot, cfg)
        self.records.prepare("Task", record_ids)
        whats = [(self.records.row("Task", r) or {}).get("what_id") for r in record_ids]
        opps = [w for w in whats if is_id_of("Opportunity", w)]
        self.records.prepare("Opportunity", opps)
        accounts = [(self.records.row("Opportunity", o) or {}).get("account_id") for o in opps]
        self.records.prepare("Account", [*accounts, *(w for w in whats if is_id_of("Account", w))])
        self.items = ItemWriter(cfg, self.records, as_of)

    def render(self, workflow: str, record_id: str, edited_by: str | None = None) -> tuple[str, list[dict]]:
        """(notification text, blocks) of a record's post; ``edited_by``: who last updated it from Slack."""
        wf = self.cfg.workflows[workflow]
        t = self.records.row("Task", record_id) or {}
        who = self.records.user_name(t.get("owner_id")) or "Someone"
        subject = t.get("subject") if isinstance(t.get("subject"), str) else "an activity"
        text = esc(cut(f"{wf.title}: {who} · {subject}", 300))
        blocks = [*sections(f":memo: *{esc(wf.title)}*\n" + self.items.task(record_id, [{"workflow": workflow}], workflow))]
        notes = [esc(wf.message.text)] + ([f"_edited by {esc(edited_by)}_"] if edited_by else [])
        blocks.append(context("  ·  ".join(n for n in notes if n)))
        if self.is_sa_activity(t) and is_salesforce_id(record_id):
            button = {"type": "button", "action_id": UPDATE_ACTIVITY, "value": record_id,
                      "text": {"type": "plain_text", "text": BUTTON_TEXT}}  # fmt: skip
            blocks.append({"type": "actions", "elements": [button]})
        return text, [fit_block(b) for b in blocks]

    def with_saved(self, record_id: str, fields: dict) -> PostWriter:
        """Render ``record_id`` with these Task fields (logical names) as just saved."""
        self.records.saved[record_id[:15]] = dict(fields)
        return self

    @staticmethod
    def is_sa_activity(task: dict) -> bool:
        """WORKFLOWS.md: an activity type is set and it is not a Chorus recording."""
        return bool(task.get("activity_types")) and not isinstance(task.get("chorus_call_id"), str)

    def render_deleted(self, workflow: str, record_id: str) -> tuple[str, list[dict]]:
        """A post whose record was deleted in Salesforce: marked so, its link and button gone."""
        wf = self.cfg.workflows[workflow]
        text = esc(f"{wf.title}: deleted in Salesforce")
        blocks = sections(f":wastebasket: ~{esc(wf.title)}~\n_This activity was deleted in Salesforce ({esc(record_id)})._")
        return text, [fit_block(b) for b in blocks]


def build_posts(alerts: list[dict], snapshot: Snapshot, cfg: Config, as_of: date) -> list[Message]:
    """One message per alert of a workflow that posts as it happens, oldest activity first."""
    alerts = [a for a in alerts if cfg.posts_as_it_happens(a["workflow"])]
    writer = PostWriter(cfg, snapshot, as_of, [a["record_id"] for a in alerts])

    def created(a: dict) -> str:
        t = writer.records.row("Task", a["record_id"]) or {}
        return str(t.get("created") or "")

    messages, seen = [], set()
    for a in sorted(alerts, key=lambda a: (created(a), a["record_id"])):
        recipient = a["recipient"] if isinstance(a["recipient"], dict) else as_recipient(a["recipient"])
        key = post_key(recipient, a["record_id"])
        if key in seen:
            continue
        seen.add(key)
        text, blocks = writer.render(a["workflow"], a["record_id"])
        title = text
        messages.append(fit_message(Message(key=key, slot=POST_SLOT, recipient=recipient, email=None, fallbacks=(),
                                            text=text, blocks=blocks, replies=[], title=title)))  # fmt: skip
    return messages
