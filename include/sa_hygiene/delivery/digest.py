"""Digests: a run's alerts as Slack Block Kit messages, one per recipient and slot.

The renderer works from alert records (what ``evaluate`` writes) and the snapshot
they came from, so the same code serves the DAGs and the ``digest`` command. Each
recipient gets one message per slot, never one per alert; a record appears once per
digest with every issue it has, under the first workflow that names it in the slot's
filing order (``Config.filing_order``: the root cause first), with the calls to action of its
other workflows; its headline counts records, per section the items listed under it, so the
numbers add up. Each record's item is written by
``items``; this module assembles the message around the items: titles, the sections'
headlines and calls to action, the fixed items, the Slack app's menus and buttons.

Slack refuses a message of more than 50 blocks or a section of more than 3,000
characters; a digest that does not fit continues as replies in its own thread, in
order, each reply saying which part it is. Nothing is dropped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from sa_hygiene.contract.config import FIX_THROUGH, FIXES, Config
from sa_hygiene.contract.recipients import as_recipient, encode
from sa_hygiene.contract.schema import is_id_of
from sa_hygiene.delivery.blockkit import (
    ITEM_MENU,
    LOG_IT,
    OPEN_LINK,
    Message,
    context,
    esc,
    fit_message,
    fix_button,
    is_salesforce_id,
    item_value,
    paginate,
    record_url,
    sections,
)
from sa_hygiene.delivery.items import DigestRecords, ItemWriter, oldest_age, plural
from sa_hygiene.delivery.manager_controls import leavers_notice, with_assign
from sa_hygiene.source.snapshot import Snapshot

# A digest item's "Snooze" menu option puts it away for this many days (the Slack app's snooze).
SNOOZE_DAYS = 7
# Fixed items named in a digest's opening line; the rest are counted.
FIXED_SHOWN = 10
SLOT_TITLES = {
    "sa_digest": "Your SA hygiene digest",
    "regional_digest": "SA hygiene",
    "channel_post": "SA hygiene",
    "meeting_reminder": "Log your meeting",
}


def _menu_option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


@dataclass
class _Group:
    """The alerts of one message: one recipient's in one slot (one meeting's for a reminder)."""

    slot: str
    recipient: dict
    alerts: list[dict] = field(default_factory=list)


class Renderer:
    """The messages of one run: digests (``blocks``) and meeting reminders (``meeting``)."""

    def __init__(self, cfg: Config, records: DigestRecords, as_of: date, notice: str | None = None,
                 fixed: dict[str, list[dict]] | None = None, snoozed: dict[str, dict[str, str]] | None = None):  # fmt: skip
        self.cfg = cfg
        self.snoozed = snoozed or {}
        self.records = records
        self.items = ItemWriter(cfg, records, as_of)
        self.as_of = as_of
        self.notice = notice
        self.fixed = fixed or {}
        self.fixing: dict[str, dict[str, str]] = {}  # {recipient: {record Id: who}}: fixed from Slack, pending

    def with_menu(self, block: dict, workflow: str, obj: str, record_id: str, recipient: str) -> dict:
        """A DM digest item with its menu for the Slack app: snooze it (hygiene items; news is
        announced once), say an opportunity is not yours, or open it in Salesforce."""
        if not (is_salesforce_id(record_id) and is_salesforce_id(recipient)):
            return block
        args = (workflow, record_id, recipient)
        url = record_url(self.cfg.salesforce.instance_url, obj, record_id)
        options = []
        if workflow not in self.cfg.news_workflows:
            options.append(_menu_option(f"Snooze {SNOOZE_DAYS} days", item_value("snooze", *args)))
        if obj == "Opportunity":
            options.append(_menu_option("Not mine / wrong Primary SA", item_value("notmine", *args)))
        options.append({**_menu_option("Open in Salesforce", item_value("open", *args)), "url": url})
        menu = {"type": "overflow", "action_id": ITEM_MENU, "options": options}
        if len(options) == 1:  # an overflow needs two options: a plain link button instead
            menu = {"type": "button", "action_id": OPEN_LINK, "text": {"type": "plain_text", "text": "Open"}, "url": url}
        return {**block, "block_id": f"item:{record_id}", "accessory": menu}

    def fix_actions(self, obj: str, record_id: str, alerts: list[dict]) -> list[dict]:
        """The fix buttons of a DM item (its workflows' ``fix``), in a block of their own under it:
        a section has one accessory, the menu's. A fix of the record the item's names (a POV's
        opportunity, ``FIX_THROUGH``) opens on that record."""
        fixes = list(dict.fromkeys(f for a in alerts for f in self.cfg.workflows[a["workflow"]].fix))
        if not fixes or not is_salesforce_id(record_id):
            return []
        buttons = []
        for f in fixes:
            target = record_id
            if FIXES[f] != obj:
                target = (self.records.row(obj, record_id) or {}).get(FIX_THROUGH.get((obj, FIXES[f]), ""))
            if is_salesforce_id(target):
                buttons.append(fix_button(f, target))
        return [{"type": "actions", "block_id": f"fix:{record_id}", "elements": buttons}] if buttons else []

    def meeting(self, alert: dict) -> list[dict]:
        e = self.records.row("Event", alert["record_id"]) or {}
        # Customers on generic mail domains are external too (WORKFLOWS.md); show names, not addresses.
        internal = {d.lower() for d in self.cfg.email_domains.company}
        attendees = [self.records.contact_name(x) for x in (e.get("attendee_emails") or [])
                     if x.lower().rsplit("@", 1)[-1] not in internal]  # fmt: skip
        zone = self.records.directory.users["timezone"].get(str(e.get("owner_id", ""))[:15]) or "UTC"
        try:
            ended = pd.Timestamp(e.get("end")).tz_convert(zone).strftime("%H:%M")
        except Exception:
            ended = pd.Timestamp(e.get("end")).strftime("%H:%M UTC") if e.get("end") is not None else ""
        text = (f"You just met *{esc(', '.join(attendees)) or 'a customer'}* "
                f"({self.records.link('Event', alert['record_id'], e.get('subject') or 'meeting')}, ended {ended}).")  # fmt: skip
        suggested = alert.get("suggested_what_id")
        obj, name = self.records.name_of(suggested)
        if obj:
            text += f"\nLog it on {self.records.link(obj, suggested, name)}: types, contact, sentiment and two or three sentences."
        else:
            text += "\nLog it on the opportunity it was about."
        obj, record_id = (obj, suggested) if obj and is_salesforce_id(suggested) else ("Event", alert["record_id"])
        if not is_salesforce_id(record_id):
            return sections(text)
        url = record_url(self.cfg.salesforce.instance_url, obj, record_id)
        link = {"type": "button", "action_id": OPEN_LINK, "text": {"type": "plain_text", "text": "Log it in Salesforce"}, "url": url}
        elements = [link]
        recipient = alert["recipient"] if isinstance(alert["recipient"], dict) else as_recipient(alert["recipient"])
        if is_salesforce_id(alert["record_id"]) and recipient.get("type") == "user" and is_salesforce_id(recipient.get("id")):
            # The Slack app's form: the suggested record pre-selected, the Task created from Slack.
            value = item_value("log", alert["workflow"], alert["record_id"], recipient["id"],
                               suggested if is_salesforce_id(suggested) else "")  # fmt: skip
            elements.insert(0, {"type": "button", "action_id": LOG_IT, "style": "primary",
                                "text": {"type": "plain_text", "text": "Log it"}, "value": value})  # fmt: skip
            wf = self.cfg.workflows.get(alert["workflow"])
            if wf is not None and obj == "Opportunity":  # the handbook's "Update Opportunity", "Add a Proof of Value"
                fixes = [f for f in wf.fix if FIXES[f] == "Opportunity" and not (f == "pov_add" and "Proof_of_Value__c" in self.records.absent)]
                elements[1:1] = [fix_button(f, record_id) for f in fixes]
        else:
            link["style"] = "primary"
        return [*sections(text), {"type": "actions", "elements": elements}]

    def whose(self, group: _Group, obj: str, ids: list[str]) -> str:
        """Whose items a section lists, for its message's ``{owner}``: "you" in the person's own
        digest, their names when it reached their manager because they are inactive."""
        mine = str(group.recipient.get("id") or "")[:15]
        field = "sa" if obj == "Opportunity" else "id" if obj == "User" else "owner_id"
        people = {str((self.records.row(obj, i) or {}).get(field) or "")[:15] for i in ids}
        others = sorted({self.records.user_name(p) for p in people if p and p != mine})
        names = (["you"] if mine in people or not others else []) + others
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    # ------------------------------------------------------------------ one digest
    def blocks(self, group: _Group) -> tuple[list[dict], list[dict], str]:
        """(preamble blocks, content blocks, summary) of one digest."""
        order = self.cfg.filing_order(group.slot)
        by_record: dict[str, list[dict]] = defaultdict(list)
        for a in group.alerts:
            by_record[a["record_id"]].append(a)
        listed: dict[str, list[str]] = defaultdict(list)  # records listed under each workflow
        for record_id, alerts in by_record.items():
            alerts.sort(key=lambda a: order.index(a["workflow"]))
            listed[alerts[0]["workflow"]].append(record_id)
        # The headline adds up: it counts records, per section the items listed under it.
        counts = [f"{esc(self.cfg.workflows[wid].title)}: {len(listed[wid])}" for wid in order if wid in listed]
        content: list[dict] = []
        told: set[str] = set(listed)  # workflows whose call to action the message already carries
        for wid in order:
            if wid not in listed:
                continue
            wf = self.cfg.workflows[wid]
            ids = listed[wid]
            message = wf.message.text.replace("{owner}", self.whose(group, wf.object, ids))
            content.append({"type": "divider"})
            content += sections(f"*{esc(wf.title)}* ({len(ids)})\n_{esc(message)}_" if message else f"*{esc(wf.title)}* ({len(ids)})")
            # A record filed here under its root cause still carries its other reasons' calls to
            # action (wf-12's under wf-13): once per message, under the first section holding it.
            also = [w for w in order if w not in told and any(a["workflow"] == w for i in ids for a in by_record[i])]
            for w in also:
                other = self.cfg.workflows[w]
                text = other.message.text.replace("{owner}", self.whose(group, other.object, ids))
                if text:
                    content.append(context(f"*{esc(other.title)}*: _{esc(text)}_"))
                told.add(w)
            for record_id in self._ordered(wf.object, ids, by_record, overdue="task_overdue" in wf.message.show):
                fixes = group.slot == "sa_digest" and group.recipient["type"] == "user"
                item = sections(self.items.render(wf.object, record_id, by_record[record_id], wid, fixes=fixes))
                if fixes:
                    item[0] = self.with_menu(item[0], wid, wf.object, record_id, group.recipient["id"])
                    item += self.fix_actions(wf.object, record_id, by_record[record_id])
                elif group.slot == "regional_digest" and group.recipient["type"] == "channel":  # managers: assign an SA
                    wfs = [a["workflow"] for a in by_record[record_id]]
                    item[0] = with_assign(self.cfg, self.records, item[0], record_id, wfs, group.recipient.get("name"))
                reopened = next((a["fix_reopened"] for a in by_record[record_id] if a.get("fix_reopened")), None)
                if reopened:  # a fix from Slack that the next evaluation did not confirm
                    item.append(context(f":leftwards_arrow_with_hook: Updated from Slack by {esc(reopened['by'])} on "
                                        f"{esc(reopened['on'])}, but the rules still flag it: reopened."))  # fmt: skip
                content += item
        line = self.snoozed_line(self.snoozed.get(encode(group.recipient), {}), by_record)
        if line:
            content.append(context(line))
        fixing = {r: by for r, by in self.fixing.get(encode(group.recipient), {}).items() if r not in by_record}
        if fixing:  # fixed from Slack, left out until the next snapshot confirms it: said, not silently gone
            content.append(context(f":white_check_mark: {plural(len(fixing), 'item')} updated from Slack "
                                   "(left out until the next snapshot confirms the fix)"))  # fmt: skip
        n = len(by_record)
        summary = f"{plural(n, 'record')} " + ("need you" if group.slot == "sa_digest" else "to look at") + ": " + " · ".join(counts)
        preamble = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title(group)}},
            context(summary),
        ]
        if group.slot == "sa_digest" and group.recipient["type"] == "user":  # a leaver's items, framed as such
            leavers = leavers_notice(self.records, group.alerts, group.recipient["id"])
            preamble += sections(leavers) if leavers else []
        fixed = self.fixed.get(encode(group.recipient))
        if fixed:
            preamble += sections(self.fixed_line(fixed))
        if self.notice:
            preamble += sections(f":warning: {esc(self.notice)}")
        if self.cfg.slack.report_url:
            preamble.append(context(f"<{self.cfg.slack.report_url}|Open the hygiene dashboard>"))
        return preamble, content, summary

    def _ordered(self, obj: str, ids: list[str], by_record: dict[str, list[dict]], overdue: bool = False) -> list[str]:
        """Oldest open items first (with alert memory), then the biggest opportunities;
        activities in the order they were created; overdue tasks by due date, the longest
        overdue first (what the SA should clear first)."""
        if obj == "Opportunity":
            return sorted(ids, key=lambda i: (-oldest_age(by_record[i]),
                                              -float((self.records.row("Opportunity", i) or {}).get("iacv") or 0)))  # fmt: skip
        if obj == "Task" and overdue:
            return sorted(ids, key=lambda i: (str((self.records.row("Task", i) or {}).get("activity_date")), i))
        if obj == "Task":
            return sorted(ids, key=lambda i: (-oldest_age(by_record[i]), str((self.records.row("Task", i) or {}).get("created"))))
        return ids

    @staticmethod
    def snoozed_line(snoozed: dict[str, str], shown: dict[str, list[dict]]) -> str | None:
        """A snoozed item is not silently gone: the digest ends with how many were put away, and
        until when (records the digest lists anyway, for another reason, are not counted)."""
        hidden = {r: until for r, until in snoozed.items() if r not in shown}
        if not hidden:
            return None
        by_date: dict[str, int] = defaultdict(int)
        for until in hidden.values():
            by_date[until] += 1
        dates = sorted(by_date)
        until = dates[0] if len(dates) == 1 else ", ".join(f"{d} ({by_date[d]})" for d in dates)
        return f":zzz: {plural(len(hidden), 'item')} snoozed until {until}"

    def fixed_line(self, fixed: list[dict]) -> str:
        """What the recipient fixed since their last digest, compactly (one mention per record):
        the good news first."""
        shown = FIXED_SHOWN
        by_record: dict[str, list[dict]] = defaultdict(list)
        for e in sorted(fixed, key=lambda e: (e["resolved_on"], e["record_id"])):
            by_record[e["record_id"]].append(e)
        names = []
        for record_id, done in list(by_record.items())[:shown]:
            obj = done[0]["object"]
            row = self.records.row(obj, record_id) or {}
            label = row.get("name") or row.get("subject") or record_id
            titles = "; ".join(esc(self.cfg.workflows[e["workflow"]].title) for e in done if e["workflow"] in self.cfg.workflows)
            names.append(f"{self.records.link(obj, record_id, label)}" + (f" ({titles})" if titles else ""))
        more = f" and {len(by_record) - shown} more" if len(by_record) > shown else ""
        # Counted as named: records (one record may have had several issues fixed).
        return f":white_check_mark: *{len(by_record)} fixed since your last digest*: " + ", ".join(names) + more

    def title(self, group: _Group) -> str:
        """The digest's name, escaped: it is the header, the notification and the replies' notifications."""
        when = f"{self.as_of:%a %d %b}"
        r = group.recipient
        if group.slot == "sa_digest" and r["type"] == "user":
            return esc(f"{SLOT_TITLES['sa_digest']} · {self.records.user_name(r['id'])} · {when}")
        if group.slot == "meeting_reminder" and group.alerts[0].get("object", "Event") != "Event":
            # A user alert's "DM now" (one message per record, as a reminder): named by its workflow.
            wf = self.records.cfg.workflows.get(group.alerts[0]["workflow"])
            return esc(f"{wf.title if wf else 'Alert'} · {self.records.user_name(r.get('id'))} · {when}")
        if group.slot == "meeting_reminder":
            event = self.records.row("Event", group.alerts[0]["record_id"]) or {}
            subject = event.get("subject") if isinstance(event.get("subject"), str) else None
            return esc(f"{SLOT_TITLES['meeting_reminder']} · {self.records.user_name(r.get('id'))} · {subject or 'meeting'}")
        return esc(f"{r.get('name')} · {SLOT_TITLES.get(group.slot, 'SA hygiene')} · {when}")


def fallbacks(recipient: dict, records: DigestRecords) -> tuple[dict, ...]:
    """Where a user's message goes when Slack does not know them: the active manager, then their region."""
    if recipient["type"] != "user":
        return ()
    d = records.directory
    key = recipient["id"][:15]
    out = []
    manager = d.manager_id.get(key)
    if isinstance(manager, str):
        out.append({"type": "user", "id": manager, "email": records.email(manager)})
    out.append({"type": "channel", "name": d.channel.get(key, records.cfg.routing.unrouted_channel)})
    return tuple(out)


def effective_slot(alert: dict) -> str:
    """The digest an alert goes into: a DM alert that fell back to a channel (its user and their
    manager are inactive; a manager's escalation about a user without one) joins that channel's
    regional digest."""
    recipient = alert["recipient"] if isinstance(alert["recipient"], dict) else as_recipient(alert["recipient"])
    if alert["slot"] in ("sa_digest", "manager_escalation") and recipient["type"] == "channel":
        return "regional_digest"
    return alert["slot"]


def reminder_key(recipient: str, event_id: str) -> str:
    """The delivery key of a meeting reminder (one per encoded recipient and Event): the ledger's
    proof, read by the Slack app, that this reminder was sent to this person."""
    return f"meeting_reminder|{recipient}|{event_id}"


def build_messages(
    alerts: list[dict],
    snapshot: Snapshot,
    cfg: Config,
    as_of: date,
    previous: Snapshot | None = None,
    slots: set[str] | None = None,
    notice: str | None = None,
    fixed: dict[str, list[dict]] | None = None,
    snoozed: dict[str, dict[str, str]] | None = None,
    fixing: dict[str, dict[str, str]] | None = None,
) -> list[Message]:
    """One message per recipient and slot (one per meeting for reminders), in a stable order.

    An alert meant for a DM digest that fell back to a channel (its user and their
    manager are inactive) joins that channel's regional digest.
    """
    records = DigestRecords(snapshot, cfg, previous)
    named = alerts + [e for episodes in (fixed or {}).values() for e in episodes]
    for obj in ("Opportunity", "Task", "Event", "Proof_of_Value__c"):
        ids = [a["record_id"] for a in named if a["object"] == obj]
        records.prepare(obj, ids)
    related = [a.get("suggested_what_id") for a in alerts] + [
        (records.row("Task", a["record_id"]) or {}).get("what_id") for a in alerts if a["object"] == "Task"
    ]
    opp_ids = [r for r in related if is_id_of("Opportunity", r)]
    opp_ids += [a["record_id"] for a in named if a["object"] == "Opportunity"]
    opp_ids += [(records.row("Proof_of_Value__c", a["record_id"]) or {}).get("opportunity_id")
                for a in named if a["object"] == "Proof_of_Value__c"]  # fmt: skip
    opp_ids = [o for o in opp_ids if isinstance(o, str)]
    records.prepare("Opportunity", opp_ids)
    accounts = [(records.row("Opportunity", o) or {}).get("account_id") for o in opp_ids]
    records.prepare("Account", [*accounts, *(r for r in related if is_id_of("Account", r))])

    renderer = Renderer(cfg, records, as_of, notice, fixed, snoozed)
    renderer.fixing = fixing or {}
    groups: dict[tuple, _Group] = {}
    for a in alerts:
        if cfg.posts_as_it_happens(a["workflow"]):
            continue  # spec v3: posted one by one as it happens (delivery.activity_posts), not in a digest
        slot = effective_slot(a)
        recipient = a["recipient"] if isinstance(a["recipient"], dict) else as_recipient(a["recipient"])
        if slots is not None and slot not in slots:
            continue
        gkey = (slot, encode(recipient)) + ((a["record_id"],) if slot == "meeting_reminder" else ())
        groups.setdefault(gkey, _Group(slot, recipient)).alerts.append(a)

    messages = []
    for gkey in sorted(groups):
        group = groups[gkey]
        title = renderer.title(group)
        if group.slot == "meeting_reminder":
            alert = group.alerts[0]
            blocks = [{"type": "header", "text": {"type": "plain_text", "text": title}}, *renderer.meeting(alert)]
            first, replies, text = blocks, [], title
            key = reminder_key(gkey[1], alert["record_id"])
        else:
            preamble, content, summary = renderer.blocks(group)
            first, replies = paginate(preamble, content, title)
            text = f"{title}: {summary}"  # both escaped
            key = f"{group.slot}|{gkey[1]}|{as_of.isoformat()}"
        email = records.email(group.recipient["id"]) if group.recipient["type"] == "user" else None
        messages.append(fit_message(Message(
            key=key, slot=group.slot, recipient=group.recipient, email=email, fallbacks=fallbacks(group.recipient, records),
            text=text, blocks=first, replies=replies, title=title)))  # fmt: skip
    return messages
