"""The messages that are not digests: the operations channel's run summary and the managers'
escalation DMs.

Both are lists rather than items to act on one by one: the summary says what a run could not do
(quarantined rows, unrouted alerts, users Slack does not know, digests not delivered), an
escalation names each of a team's items open longer than its workflow allows, per person. They
share the digests' records, fallbacks and threads (``digest``, ``blockkit``), not their items.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date

import pandas as pd

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.recipients import encode
from sa_hygiene.delivery.blockkit import Message, context, esc, fit_message, paginate, sections
from sa_hygiene.delivery.digest import fallbacks
from sa_hygiene.delivery.items import DigestRecords, plural
from sa_hygiene.source.snapshot import Snapshot

OPS_TITLE = "sa-hygiene run summary"
ESCALATION_TITLE = "Open too long in your team"


def ops_summary(
    cfg: Config,
    as_of: date,
    run: str,
    quarantine: pd.DataFrame | None = None,
    unrouted: int = 0,
    unknown_users: list | None = None,
    failed: dict[str, str] | None = None,
    notes: list[str] | None = None,
    unconfirmed: list[str] | None = None,
) -> Message | None:
    """The operations channel's summary of a run; None when there is nothing to say."""
    lines = [esc(note) for note in notes or []]
    if quarantine is not None and len(quarantine):
        counts = quarantine.groupby(["object", "reason"]).size()
        lines.append(f"*{plural(len(quarantine), 'row')} quarantined* (not evaluated, fix them in Salesforce):")
        lines += [f"• {esc(obj)} {esc(reason)}: {n}" for (obj, reason), n in counts.items()]
    if unrouted:
        lines.append(f"*{plural(unrouted, 'alert')} had no region* (no routing rule matched the user) and came here.")
    if unknown_users:
        lines.append(f"*{plural(len(unknown_users), 'user')} unknown to Slack* by their Salesforce e-mail:")
        lines += [f"• {esc(u.email or u.recipient.get('id'))} → sent to {esc((u.delivered_to or {}).get('name') or (u.delivered_to or {}).get('id') or 'nobody')}"
                  for u in unknown_users]  # fmt: skip
    if failed:
        lines.append(f"*{plural(len(failed), 'digest')} not delivered* (retried on the next run):")
        lines += [f"• {esc(k)}: {esc(v)}" for k, v in failed.items()]
    if unconfirmed:
        lines.append(f"*{plural(len(unconfirmed), 'message part')} posted but never confirmed*: Slack did not let "
                     "the app read the conversation (invite it, or grant `channels:join`); not posted again:")
        lines += [f"• {esc(p)}" for p in unconfirmed]
    if not lines:
        return None
    channel = cfg.channels.operations
    title = esc(f"{OPS_TITLE} · {run} · {as_of:%a %d %b}")
    content = sections("\n".join(lines))
    first, replies = paginate([{"type": "header", "text": {"type": "plain_text", "text": title}}], content, title)
    # Keyed by what it says, not by the run: Airflow's retries and a day's re-runs share a run id,
    # so a summary carrying a new note (an unconfirmable post) would be skipped as already sent;
    # the same summary again is still sent once.
    said = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return fit_message(Message(key=f"ops_summary|channel:{channel}|{as_of.isoformat()}|{said}", slot="ops_summary",
                   recipient={"type": "channel", "name": channel}, email=None, fallbacks=(), text=title,
                   blocks=first, replies=replies, title=title))  # fmt: skip


def escalation_messages(items: list[dict], snapshot: Snapshot, cfg: Config, days: dict[str, date]) -> list[Message]:
    """One DM per manager: their team's items open longer than the workflow's
    ``escalate_after_days``, grouped by SA, oldest first.

    ``items``: open episodes with ``manager``, ``owner`` (the User Id of the SA or owner the
    item goes to), ``first_seen`` and ``age_days``; ``days``: each manager's local date.
    """
    records = DigestRecords(snapshot, cfg)
    for obj in ("Opportunity", "Task", "Proof_of_Value__c"):
        records.prepare(obj, [i["record_id"] for i in items if i["object"] == obj])
    by_manager: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_manager[item["manager"]].append(item)
    messages = []
    for manager in sorted(by_manager):
        team = by_manager[manager]
        day = days[manager]
        name = records.user_name(manager)
        title = esc(f"{ESCALATION_TITLE} · {name} · {day:%a %d %b}")
        per_sa: dict[str, list[dict]] = defaultdict(list)
        for item in team:
            per_sa[item["owner"]].append(item)
        content: list[dict] = []
        for owner in sorted(per_sa, key=lambda o: (-max(i["age_days"] for i in per_sa[o]), records.user_name(o))):
            lines = [f"*{esc(records.user_name(owner))}* ({len(per_sa[owner])})"]
            for i in sorted(per_sa[owner], key=lambda i: (-i["age_days"], i["record_id"])):
                row = records.row(i["object"], i["record_id"]) or {}
                label = row.get("name") or row.get("subject") or i["record_id"]
                title_wf = cfg.workflows[i["workflow"]].title if i["workflow"] in cfg.workflows else i["workflow"]
                line = f"• {records.link(i['object'], i['record_id'], label)}: {esc(title_wf)}, "
                if i["object"] == "User":  # about the person (pov-load): what they run now
                    running = records.running_povs(i["record_id"])
                    line += f"{plural(len(running), 'POV')} in progress"
                    line += (": " + ", ".join(records.link("Proof_of_Value__c", p, n) for p, n in running)) if running else ""
                    line += f" (since {i['first_seen']})"
                else:
                    line += f"open {plural(i['age_days'], 'day')} (since {i['first_seen']})"
                lines.append(line)
            content += [{"type": "divider"}, *sections("\n".join(lines))]
        people = "1 person" if len(per_sa) == 1 else f"{len(per_sa)} people"
        summary = f"{plural(len(team), 'item')} of {people} in your team open longer than their workflow allows"
        preamble = [{"type": "header", "text": {"type": "plain_text", "text": title}}, context(esc(summary))]
        first, replies = paginate(preamble, content, title)
        recipient = {"type": "user", "id": manager}
        messages.append(fit_message(Message(
            key=f"escalation|{encode(recipient)}|{day.isoformat()}", slot="escalation", recipient=recipient,
            email=records.email(manager), fallbacks=fallbacks(recipient, records),
            text=f"{title}: {esc(summary)}", blocks=first, replies=replies, title=title)))
    return messages
