"""The DM that tells a person one of their own alerts was paused, and why.

An alert is paused without its owner's say when it no longer compiles (a field or a value gone
from the configuration after an upgrade) or when it sent more messages in a day than the
configuration allows: its owner hears it once, in a DM of its own (not buried in a digest),
with how to resume it. Keyed by the alert and the pause's reason, so a retried run tells once.
"""

from __future__ import annotations

import hashlib
from datetime import date

from sa_hygiene.contract.config import Config
from sa_hygiene.delivery.blockkit import Message, esc, fit_message, sections
from sa_hygiene.delivery.digest import fallbacks
from sa_hygiene.delivery.items import DigestRecords
from sa_hygiene.source.snapshot import Snapshot

NOTICE_TITLE = "Your alert was paused"


def pause_notices(paused: list, snapshot: Snapshot, cfg: Config, as_of: date) -> list[Message]:
    """One DM per paused alert (``state.user_alerts.StoredAlert`` with a ``paused_reason``)."""
    records = DigestRecords(snapshot, cfg)
    out = []
    for alert in paused:
        recipient = {"type": "user", "id": alert.owner}
        title = esc(f"{NOTICE_TITLE}: {alert.name}")
        text = (f"*{esc(alert.name)}* is paused: {esc(alert.paused_reason or 'no reason recorded')}.\n"
                "Change it or resume it with `/sa-alert list`.")  # fmt: skip
        said = hashlib.sha256(f"{alert.alert_id}|{alert.paused_reason}".encode()).hexdigest()[:16]
        blocks = [{"type": "header", "text": {"type": "plain_text", "text": title}}, *sections(text)]
        out.append(fit_message(Message(
            key=f"user_alert_paused|user:{alert.owner}|{alert.alert_id}|{as_of.isoformat()}|{said}", slot="user_alert_notice",
            recipient=recipient, email=records.email(alert.owner), fallbacks=fallbacks(recipient, records),
            text=title, blocks=blocks, replies=[], title=title)))  # fmt: skip
    return out
