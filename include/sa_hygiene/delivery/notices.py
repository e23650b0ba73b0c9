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


def escalation_messages(items: list[dict], snapshot: Snapshot, cfg: Config, days: dict[str, date],
                        leavers: list[dict] | None = None) -> list[Message]:  # fmt: skip
    """One DM per manager: their leavers' books first (``leavers``: ``leaver``, ``manager``,
    ``opportunities``), then their team's items open longer than the workflow's
    ``escalate_after_days``, grouped by SA and then by record: one entry per record with all
    its workflows and the SA's days on it, oldest first, each with Nudge, Snooze and Open.
    A leaver without an active manager goes to the operations channel.

    ``items``: open episodes with ``manager``, ``owner`` (the User Id of the SA or owner the
    item goes to), ``first_seen`` and ``age_days``; ``days``: each manager's local date.
    """
    from datetime import UTC, datetime

    from sa_hygiene.delivery.manager_controls import escalation_controls, leaver_blocks

    leavers = leavers or []
    records = DigestRecords(snapshot, cfg)
    books_opps = [o for book in leavers for o in book["opportunities"]]
    for obj in ("Opportunity", "Task", "Proof_of_Value__c"):  # one prepare per object: a second would replace the first
        records.prepare(obj, [i["record_id"] for i in items if i["object"] == obj] + (books_opps if obj == "Opportunity" else []))
    by_manager: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_manager[item["manager"]].append(item)
    books: dict[str | None, list[dict]] = defaultdict(list)
    for book in leavers:
        books[book["manager"]].append(book)
    messages = []
    for manager in sorted(set(by_manager) | {m for m in books if m is not None}):
        team = by_manager.get(manager, [])
        day = days[manager]
        name = records.user_name(manager)
        title = esc(f"{ESCALATION_TITLE} · {name} · {day:%a %d %b}")
        content: list[dict] = []
        for book in books.get(manager, []):
            content += leaver_blocks(cfg, records, book["leaver"], book["opportunities"], name)
        # A record once per message (Slack refuses a block id twice): in a leaver's book it is not
        # listed again; reassigned within the team, it is listed under whoever has had it longest.
        in_books = {o[:15] for book in books.get(manager, []) for o in book["opportunities"]}
        holder: dict[str, tuple[int, str]] = {}
        for item in team:
            rank = (item["age_days"], item["owner"])
            holder[item["record_id"]] = max(holder.get(item["record_id"], rank), rank)
        per_sa: dict[str, dict[tuple[str, str], list[dict]]] = defaultdict(lambda: defaultdict(list))
        for item in team:
            if item["record_id"][:15] not in in_books and holder[item["record_id"]][1] == item["owner"]:
                per_sa[item["owner"]][(item["object"], item["record_id"])].append(item)
        oldest = {o: max(i["age_days"] for entries in per_sa[o].values() for i in entries) for o in per_sa}
        for owner in sorted(per_sa, key=lambda o: (-oldest[o], records.user_name(o))):
            entries = per_sa[owner]
            content += [
                {"type": "divider"},
                *sections(f"*{esc(records.user_name(owner))}* ({plural(len(entries), 'record')})"),
            ]
            for (obj, record_id), its in sorted(
                entries.items(), key=lambda e: (-max(i["age_days"] for i in e[1]), e[0][1])
            ):
                row = records.row(obj, record_id) or {}
                label = row.get("name") or row.get("subject") or record_id
                age = max(i["age_days"] for i in its)
                since = min(i["first_seen"] for i in its)
                lines = [f"*{records.link(obj, record_id, label)}* · {esc(records.user_name(owner))}'s: "
                         f"open {plural(age, 'day')} (since {since})"]  # fmt: skip
                if obj == "User":  # about the person (pov-load): what they run now
                    running = records.running_povs(record_id)
                    lines.append(f"{plural(len(running), 'POV')} in progress" + (
                        ": " + ", ".join(records.link("Proof_of_Value__c", p, n) for p, n in running) if running else ""))
                for wid in dict.fromkeys(i["workflow"] for i in sorted(its, key=lambda i: -i["age_days"])):
                    lines.append(f"• {esc(cfg.workflows[wid].title if wid in cfg.workflows else wid)}")
                entry = sections("\n".join(lines))
                entry[0]["block_id"] = f"item:{record_id}"
                controls = escalation_controls(cfg, obj, record_id, owner)
                content += entry + ([controls] if controls else [])
        n_records = sum(len(e) for e in per_sa.values())
        people = "1 person" if len(per_sa) == 1 else f"{len(per_sa)} people"
        parts = (
            [f"{plural(n_records, 'record')} of {people} in your team open longer than their workflow allows"]
            if per_sa
            else []
        )
        parts += [f"{esc(records.user_name(b['leaver']))} is inactive: {len(b['opportunities'])} {'opportunity' if len(b['opportunities']) == 1 else 'opportunities'} "
                  "to reassign" for b in books.get(manager, [])]  # fmt: skip
        summary = "; ".join(parts)
        preamble = [{"type": "header", "text": {"type": "plain_text", "text": title}}, context(esc(summary))]
        first, replies = paginate(preamble, content, title)
        recipient = {"type": "user", "id": manager}
        messages.append(
            fit_message(
                Message(
                    key=f"escalation|{encode(recipient)}|{day.isoformat()}",
                    slot="escalation",
                    recipient=recipient,
                    email=records.email(manager),
                    fallbacks=fallbacks(recipient, records),
                    text=f"{title}: {esc(summary)}",
                    blocks=first,
                    replies=replies,
                    title=title,
                )
            )
        )
    for book in books.get(None, []):
        today = date.fromisoformat(book.get("day") or datetime.now(UTC).date().isoformat())
        title = esc(f"{records.user_name(book['leaver'])} is inactive · {today:%a %d %b}")
        first, replies = paginate([{"type": "header", "text": {"type": "plain_text", "text": title}}],
                                  leaver_blocks(cfg, records, book["leaver"], book["opportunities"], None), title)  # fmt: skip
        channel = {"type": "channel", "name": cfg.channels.operations}
        messages.append(
            fit_message(
                Message(
                    key=f"leaver|{encode(channel)}|{book['leaver']}|{today.isoformat()}",
                    slot="escalation",
                    recipient=channel,
                    email=None,
                    fallbacks=(),
                    text=title,
                    blocks=first,
                    replies=replies,
                    title=title,
                )
            )
        )
    return messages
