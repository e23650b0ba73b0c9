"""Digests: a run's alerts as Slack Block Kit messages, one per recipient and slot.

The renderer works from alert records (what ``evaluate`` writes) and the snapshot
they came from, so the same code serves the DAGs and the ``digest`` command. Each
recipient gets one message per slot, never one per alert; a record appears once per
digest with every issue it has, under the first workflow that names it in the slot's
filing order (``Config.filing_order``: the root cause first), and its headline counts, per
workflow, the records of the message that have it. Salesforce text is escaped for mrkdwn before it is placed, so no
record can ping a channel or hide a link.

Slack refuses a message of more than 50 blocks or a section of more than 3,000
characters; a digest that does not fit continues as replies in its own thread, in
order, each reply saying which part it is. Nothing is dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from sa_hygiene.contract.config import FACTS, Config
from sa_hygiene.contract.recipients import as_recipient, encode
from sa_hygiene.delivery.blockkit import (
    ITEM_MENU,
    LOG_IT,
    MAX_BLOCKS,
    OPEN_LINK,
    SECTION_CHARS,
    Message,
    cut,
    esc,
    fit_message,
    is_salesforce_id,
    item_value,
    record_link,
    record_url,
    safe_end,
    units,
)
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.snapshot import Snapshot

# A digest item's "Snooze" menu option puts it away for this many days (the Slack app's snooze).
SNOOZE_DAYS = 7
# Fixed items named in a digest's opening line; the rest are counted.
FIXED_SHOWN = 10
URL = re.compile(r"https?://[^\s<>|]+")
# Links of a cut description shown beneath it, at most.
MAX_KEPT_LINKS = 3
# A Chorus call Id that can go into the recording's URL as it is.
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# A regional digest continues in its thread; replies open with one context block.
REPLY_HEAD = 1
SLOT_TITLES = {
    "sa_digest": "Your SA hygiene digest",
    "regional_digest": "SA hygiene",
    "channel_post": "SA hygiene",
    "meeting_reminder": "Log your meeting",
    "ops_summary": "sa-hygiene run summary",
    "escalation": "Open too long in your team",
}


def money(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"${value:,.0f}"


def day_text(value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _section(text: str) -> list[dict]:
    """Section blocks for ``text``, split at line breaks so that none exceeds Slack's limit."""
    blocks, chunk = [], ""
    for line in text.split("\n"):
        while units(line) > SECTION_CHARS:  # one enormous line: split it where no escape or link breaks
            end = max(1, safe_end(line, SECTION_CHARS))
            blocks.append(line[:end])
            line = line[end:]
        if chunk and units(chunk) + units(line) + 1 > SECTION_CHARS:
            blocks.append(chunk)
            chunk = line
        else:
            chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(chunk)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in blocks]


def _menu_option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


class Lookup:
    """Rows of the snapshot by Id key, for the records a run's alerts name."""

    def __init__(self, snapshot: Snapshot, cfg: Config, previous: Snapshot | None = None):
        self.cfg = cfg
        self.tables = snapshot.tables
        self.previous = previous.tables if previous is not None else None
        self.directory = Directory(snapshot["User"], cfg)
        self._cache: dict[tuple, pd.DataFrame] = {}
        self._contacts: dict[str, str] | None = None

    def prepare(self, obj: str, ids: list[str]) -> None:
        keys = pd.Index({str(i)[:15] for i in ids if isinstance(i, str)})
        for source, tables in (("current", self.tables), ("previous", self.previous)):
            if tables is None or obj not in tables:
                continue
            t = tables[obj]
            self._cache[(source, obj)] = t[t["key"].isin(keys)].set_index("key")

    def row(self, obj: str, record_id: Any, source: str = "current") -> dict | None:
        if not isinstance(record_id, str):
            return None
        frame = self._cache.get((source, obj))
        if frame is None:
            tables = self.tables if source == "current" else self.previous
            if tables is None:
                return None
            frame = tables[obj].set_index("key")
            self._cache[(source, obj)] = frame
        key = record_id[:15]
        return frame.loc[key].to_dict() if key in frame.index else None

    def contact_name(self, email: str) -> str:
        """The contact's name for an attendee's e-mail (case-insensitive), else the address in lower case."""
        if self._contacts is None:
            contacts = self.tables.get("Contact")
            self._contacts = {} if contacts is None else {
                str(e).lower(): n for e, n in zip(contacts["email"], contacts["name"], strict=True)
                if isinstance(e, str) and isinstance(n, str)
            }  # fmt: skip
        return self._contacts.get(email.lower(), email.lower())

    def user_name(self, user_id: Any) -> str:
        if not isinstance(user_id, str):
            return ""
        users = self.directory.users
        key = user_id[:15]
        return str(users.at[key, "name"]) if key in users.index and isinstance(users.at[key, "name"], str) else user_id

    def name_of(self, record_id: Any) -> tuple[str, str]:
        """(object, readable name) of a Related To / suggested record."""
        if not isinstance(record_id, str):
            return "", ""
        obj = {"006": "Opportunity", "001": "Account", "003": "Contact", "00Q": "Lead"}.get(record_id[:3], "")
        row = self.row(obj, record_id) if obj in self.tables else None
        return obj, (row.get("name") if row and isinstance(row.get("name"), str) else record_id)


@dataclass
class _Group:
    slot: str
    recipient: dict
    alerts: list[dict] = field(default_factory=list)


def age_text(alerts: list[dict]) -> str | None:
    """How long the oldest of a record's alerts has been open (alert memory), or None without it."""
    ages = [a for a in alerts if a.get("first_seen") is not None]
    if not ages:
        return None
    oldest = max(ages, key=lambda a: a["age_days"])
    if oldest["first_seen"] == oldest.get("memory_began"):
        # Raised by the first evaluation the memory holds: older than we know, not new.
        if oldest["age_days"] == 0:
            return None
        return f"_open at least {_plural(oldest['age_days'], 'day')} (since the alert memory began, {oldest['first_seen']})_"
    if oldest["age_days"] == 0:
        return "_new today_"
    return f"_open {_plural(oldest['age_days'], 'day')}, since {oldest['first_seen']}_"


def _age(alerts: list[dict]) -> int:
    return max((a.get("age_days") or 0 for a in alerts), default=0)


class Renderer:
    def __init__(self, cfg: Config, lookup: Lookup, as_of: date, notice: str | None = None,
                 fixed: dict[str, list[dict]] | None = None):  # fmt: skip
        self.cfg = cfg
        self.lookup = lookup
        self.as_of = as_of
        self.notice = notice
        self.fixed = fixed or {}
        self.order = list(cfg.workflows)

    # ------------------------------------------------------------------ links and facts
    def link(self, obj: str, record_id: Any, label: Any) -> str:
        return record_link(self.cfg.salesforce.instance_url, obj or "Task", record_id, label)

    def _what(self, what_id: Any) -> str:
        obj, name = self.lookup.name_of(what_id)
        return self.link(obj, what_id, name) if obj else "no related record"

    def _issues(self, alerts: list[dict], skip: str | None = None) -> list[str]:
        lines = []
        for a in alerts:
            wf = self.cfg.workflows[a["workflow"]]
            words = [self.cfg.reasons.get(r, r) for r in a.get("reasons") or []]
            if a["workflow"] == skip and not words:
                continue
            title = esc(wf.title)
            lines.append("• " + (f"{title}: " if a["workflow"] != skip else "") + esc("; ".join(words)) if words else f"• {title}")
        return lines

    def chosen_facts(self, alerts: list[dict], section_wf: str) -> set[str]:
        """The facts (``FACTS``) an item shows: those of the workflow it is listed under, and the
        "record" facts of every workflow it has an alert of."""
        shown = {f for f in self.cfg.workflows[section_wf].message.show if FACTS[f].scope == "listed"}
        for a in alerts:
            shown.update(f for f in self.cfg.workflows[a["workflow"]].message.show if FACTS[f].scope == "record")
        return shown

    def opportunity(self, record_id: str, alerts: list[dict], section_wf: str) -> str:
        o = self.lookup.row("Opportunity", record_id) or {}
        chosen = self.chosen_facts(alerts, section_wf)
        acc = self.lookup.row("Account", o.get("account_id")) if o else None
        head = f"*{self.link('Opportunity', record_id, o.get('name') or record_id)}*"
        if acc and isinstance(acc.get("name"), str):
            head += f"  ·  {esc(acc['name'])}"
        facts = [esc(o.get("stage")), f"IACV {money(o.get('iacv'))}", f"Owner {esc(self.lookup.user_name(o.get('owner_id')))}"]
        sa = o.get("sa")
        facts.append(f"SA {esc(self.lookup.user_name(sa))}" if isinstance(sa, str) else "*no Primary SA*")
        lines = [head, " · ".join(f for f in facts if f)]
        dates = []
        s3 = o.get("stage3_date")
        if s3 is not None and not pd.isna(s3):
            days = (pd.Timestamp(self.as_of) - pd.Timestamp(s3)).days
            dates.append(f"stage 3 since {day_text(s3)} ({_plural(days, 'day')})")
            overdue = days - self.cfg.thresholds.stage3_days
            if overdue >= 0 and "stage3_overdue" in chosen:
                dates.append(f"*{_plural(overdue, 'day')} overdue*")
        start, end = o.get("te_start"), o.get("te_end")
        has_start, has_end = start is not None and not pd.isna(start), end is not None and not pd.isna(end)
        if has_start or has_end:
            status = o.get("te_status")
            te = f"tech eval {day_text(start)} → {day_text(end)}" + (f" ({esc(status)})" if isinstance(status, str) else "")
            if has_start:
                te += f", started {_plural((pd.Timestamp(self.as_of) - pd.Timestamp(start)).days, 'day')} ago"
            dates.append(te)
        if dates:
            lines.append(" · ".join(dates))
        lines += self._changes(record_id, chosen)
        lines += self._issues(alerts, skip=section_wf)
        if o.get("is_closed") is True:
            closed = (self.cfg.workflows[a["workflow"]].message.when_closed for a in alerts)
            lines += [f"_{esc(text)}_" for text in dict.fromkeys(closed) if text]
        return "\n".join(self._with_age(lines, alerts))

    @staticmethod
    def _with_age(lines: list[str], alerts: list[dict]) -> list[str]:
        age = age_text(alerts)
        return [*lines, age] if age else lines

    def _changes(self, record_id: str, chosen: set[str]) -> list[str]:
        """Before → after of the changes an item shows, when the previous snapshot is at hand."""
        if not chosen & {"te_start_change", "te_close_change", "stage_change", "sa_change"}:
            return []
        now = self.lookup.row("Opportunity", record_id) or {}
        was = self.lookup.row("Opportunity", record_id, source="previous") or {}
        if self.lookup.previous is None:
            return []
        out = []
        if "te_start_change" in chosen:
            out.append(f"start date {day_text(was.get('te_start'))} → *{day_text(now.get('te_start'))}*")
        if "te_close_change" in chosen:
            out.append(f"end date {day_text(was.get('te_end'))} → *{day_text(now.get('te_end'))}*, "
                       f"close status {esc(was.get('te_status')) or '—'} → *{esc(now.get('te_status')) or '—'}*")  # fmt: skip
        if "stage_change" in chosen:
            out.append(f"{esc(self.lookup.user_name(now.get('owner_id')))} moved it from {esc(was.get('stage')) or 'nothing (new)'} "
                       f"to *{esc(now.get('stage'))}*")  # fmt: skip
        if "sa_change" in chosen:
            new = self.lookup.user_name(now.get("sa")) if isinstance(now.get("sa"), str) else "(cleared)"
            out.append(f"Primary SA {esc(self.lookup.user_name(was.get('sa')))} → *{esc(new)}*")
        return out

    def task(self, record_id: str, alerts: list[dict], section_wf: str) -> str:
        t = self.lookup.row("Task", record_id) or {}
        chosen = self.chosen_facts(alerts, section_wf)
        preview = self.cfg.thresholds.description_preview_chars
        types = ", ".join(t.get("activity_types") or []) if t else ""
        head = f"*{self.link('Task', record_id, t.get('subject') or 'No subject')}*"
        facts = [esc(types), esc(t.get("sentiment")), f"by {esc(self.lookup.user_name(t.get('owner_id')))}",
                 f"on {self._what(t.get('what_id'))}", day_text(t.get("activity_date"))]  # fmt: skip
        lines = [head, " · ".join(f for f in facts if f)]
        description = t.get("description")
        if isinstance(description, str) and "description" in chosen:
            # ``preview`` characters, then the ellipsis when there is more.
            shown = cut(esc(description), preview + 1)
            lines.append("> " + shown.replace("\n", "\n> "))
            # "More detailed notes are here: <link>" is what the handbook asks for: a cut keeps the links.
            cut_links = [u for u in dict.fromkeys(URL.findall(description)) if esc(u) not in shown]
            if cut_links:
                lines.append("> " + " · ".join(esc(u) for u in cut_links[:MAX_KEPT_LINKS]))
        recording = t.get("chorus_call_id")
        if "recording" in chosen and isinstance(recording, str) and SAFE_ID.fullmatch(recording):
            url = self.cfg.slack.recording_url.format(id=recording)
            lines.append(f":movie_camera: <{esc(url)}|Listen to the recording>")
        lines += self._issues(alerts, skip=section_wf)
        return "\n".join(self._with_age(lines, alerts))

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

    def meeting(self, alert: dict) -> list[dict]:
        e = self.lookup.row("Event", alert["record_id"]) or {}
        # Customers on generic mail domains are external too (WORKFLOWS.md); show names, not addresses.
        internal = {d.lower() for d in self.cfg.email_domains.company}
        attendees = [self.lookup.contact_name(x) for x in (e.get("attendee_emails") or [])
                     if x.lower().rsplit("@", 1)[-1] not in internal]  # fmt: skip
        zone = self.lookup.directory.users["timezone"].get(str(e.get("owner_id", ""))[:15]) or "UTC"
        try:
            ended = pd.Timestamp(e.get("end")).tz_convert(zone).strftime("%H:%M")
        except Exception:
            ended = pd.Timestamp(e.get("end")).strftime("%H:%M UTC") if e.get("end") is not None else ""
        text = (f"You just met *{esc(', '.join(attendees)) or 'a customer'}* "
                f"({self.link('Event', alert['record_id'], e.get('subject') or 'meeting')}, ended {ended}).")  # fmt: skip
        suggested = alert.get("suggested_what_id")
        obj, name = self.lookup.name_of(suggested)
        if obj:
            text += f"\nLog it on {self.link(obj, suggested, name)}: types, contact, sentiment and two or three sentences."
        else:
            text += "\nLog it on the opportunity it was about."
        obj, record_id = (obj, suggested) if obj and is_salesforce_id(suggested) else ("Event", alert["record_id"])
        if not is_salesforce_id(record_id):
            return _section(text)
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
        else:
            link["style"] = "primary"
        return [*_section(text), {"type": "actions", "elements": elements}]

    def whose(self, group: _Group, obj: str, ids: list[str]) -> str:
        """Whose items a section lists, for its message's ``{owner}``: "you" in the person's own
        digest, their names when it reached their manager because they are inactive."""
        mine = str(group.recipient.get("id") or "")[:15]
        field = "owner_id" if obj == "Task" else "sa"
        people = {str((self.lookup.row(obj, i) or {}).get(field) or "")[:15] for i in ids}
        others = sorted({self.lookup.user_name(p) for p in people if p and p != mine})
        names = (["you"] if mine in people or not others else []) + others
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    # ------------------------------------------------------------------ one digest
    def blocks(self, group: _Group) -> tuple[list[dict], list[dict], str]:
        """(preamble blocks, content blocks, summary) of one digest."""
        order = self.cfg.filing_order(group.slot)
        by_record: dict[str, list[dict]] = defaultdict(list)
        for a in group.alerts:
            by_record[a["record_id"]].append(a)
        sections: dict[str, list[str]] = defaultdict(list)
        holding: dict[str, int] = defaultdict(int)  # records of the message with each workflow
        for record_id, alerts in by_record.items():
            alerts.sort(key=lambda a: order.index(a["workflow"]))
            sections[alerts[0]["workflow"]].append(record_id)
            for wid in {a["workflow"] for a in alerts}:
                holding[wid] += 1
        counts = [f"{esc(self.cfg.workflows[wid].title)}: {holding[wid]}" for wid in order if wid in holding]
        content: list[dict] = []
        for wid in order:
            if wid not in sections:
                continue
            wf = self.cfg.workflows[wid]
            ids = sections[wid]
            message = wf.message.text.replace("{owner}", self.whose(group, wf.object, ids))
            content.append({"type": "divider"})
            content += _section(f"*{esc(wf.title)}* ({len(ids)})\n_{esc(message)}_" if message else f"*{esc(wf.title)}* ({len(ids)})")
            render = self.opportunity if wf.object == "Opportunity" else self.task
            for record_id in self._ordered(wf.object, ids, by_record):
                item = _section(render(record_id, by_record[record_id], wid))
                if group.slot == "sa_digest" and group.recipient["type"] == "user":
                    item[0] = self.with_menu(item[0], wid, wf.object, record_id, group.recipient["id"])
                content += item
        n = len(by_record)
        summary = f"{_plural(n, 'record')} " + ("need you" if group.slot == "sa_digest" else "to look at") + ": " + " · ".join(counts)
        preamble = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title(group)}},
            _context(summary),
        ]
        fixed = self.fixed.get(encode(group.recipient))
        if fixed:
            preamble += _section(self.fixed_line(fixed))
        if self.notice:
            preamble += _section(f":warning: {esc(self.notice)}")
        if self.cfg.slack.report_url:
            preamble.append(_context(f"<{self.cfg.slack.report_url}|Open the hygiene dashboard>"))
        return preamble, content, summary

    def _ordered(self, obj: str, ids: list[str], by_record: dict[str, list[dict]]) -> list[str]:
        """Oldest open items first (with alert memory), then the biggest opportunities;
        activities in the order they were created."""
        if obj == "Opportunity":
            return sorted(ids, key=lambda i: (-_age(by_record[i]),
                                              -float((self.lookup.row("Opportunity", i) or {}).get("iacv") or 0)))  # fmt: skip
        if obj == "Task":
            return sorted(ids, key=lambda i: (-_age(by_record[i]), str((self.lookup.row("Task", i) or {}).get("created"))))
        return ids

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
            row = self.lookup.row(obj, record_id) or {}
            label = row.get("name") or row.get("subject") or record_id
            titles = "; ".join(esc(self.cfg.workflows[e["workflow"]].title) for e in done if e["workflow"] in self.cfg.workflows)
            names.append(f"{self.link(obj, record_id, label)}" + (f" ({titles})" if titles else ""))
        more = f" and {len(by_record) - shown} more" if len(by_record) > shown else ""
        return f":white_check_mark: *{_plural(len(fixed), 'item')} fixed since your last digest*: " + ", ".join(names) + more

    def title(self, group: _Group) -> str:
        """The digest's name, escaped: it is the header, the notification and the replies' notifications."""
        when = f"{self.as_of:%a %d %b}"
        r = group.recipient
        if group.slot == "sa_digest" and r["type"] == "user":
            return esc(f"{SLOT_TITLES['sa_digest']} · {self.lookup.user_name(r['id'])} · {when}")
        if group.slot == "meeting_reminder":
            event = self.lookup.row("Event", group.alerts[0]["record_id"]) or {}
            subject = event.get("subject") if isinstance(event.get("subject"), str) else None
            return esc(f"{SLOT_TITLES['meeting_reminder']} · {self.lookup.user_name(r.get('id'))} · {subject or 'meeting'}")
        return esc(f"{r.get('name')} · {SLOT_TITLES.get(group.slot, 'SA hygiene')} · {when}")


def _paginate(preamble: list[dict], content: list[dict], title: str) -> tuple[list[dict], list[list[dict]]]:
    """The first message and its thread replies: every block kept, at most 50 per message.
    ``title`` is escaped already."""
    first_room = MAX_BLOCKS - len(preamble)
    first, rest = preamble + content[:first_room], content[first_room:]
    chunks = [rest[i : i + MAX_BLOCKS - REPLY_HEAD] for i in range(0, len(rest), MAX_BLOCKS - REPLY_HEAD)]
    total = len(chunks) + 1
    replies = [[_context(f"{title}, continued ({n + 2}/{total})"), *chunk] for n, chunk in enumerate(chunks)]
    return first, replies


def _fallbacks(recipient: dict, lookup: Lookup) -> tuple[dict, ...]:
    """Where a user's digest goes when Slack does not know them: the active manager, then their region."""
    if recipient["type"] != "user":
        return ()
    d = lookup.directory
    key = recipient["id"][:15]
    out = []
    manager = d.manager_id.get(key)
    if isinstance(manager, str):
        email = d.users["email"].get(manager[:15])
        out.append({"type": "user", "id": manager, "email": email if isinstance(email, str) else None})
    out.append({"type": "channel", "name": d.channel.get(key, lookup.cfg.routing.unrouted_channel)})
    return tuple(out)


def effective_slot(alert: dict) -> str:
    """The digest an alert goes into: a DM alert that fell back to a channel (its user and their
    manager are inactive) joins that channel's regional digest."""
    recipient = alert["recipient"] if isinstance(alert["recipient"], dict) else as_recipient(alert["recipient"])
    if alert["slot"] == "sa_digest" and recipient["type"] == "channel":
        return "regional_digest"
    return alert["slot"]


def build_messages(
    alerts: list[dict],
    snapshot: Snapshot,
    cfg: Config,
    as_of: date,
    previous: Snapshot | None = None,
    slots: set[str] | None = None,
    notice: str | None = None,
    fixed: dict[str, list[dict]] | None = None,
) -> list[Message]:
    """One message per recipient and slot (one per meeting for reminders), in a stable order.

    An alert meant for a DM digest that fell back to a channel (its user and their
    manager are inactive) joins that channel's regional digest.
    """
    lookup = Lookup(snapshot, cfg, previous)
    named = alerts + [e for episodes in (fixed or {}).values() for e in episodes]
    for obj in ("Opportunity", "Task", "Event"):
        ids = [a["record_id"] for a in named if a["object"] == obj]
        lookup.prepare(obj, ids)
    related = [a.get("suggested_what_id") for a in alerts] + [
        (lookup.row("Task", a["record_id"]) or {}).get("what_id") for a in alerts if a["object"] == "Task"
    ]
    opp_ids = [r for r in related if isinstance(r, str) and r.startswith("006")]
    opp_ids += [a["record_id"] for a in named if a["object"] == "Opportunity"]
    lookup.prepare("Opportunity", opp_ids)
    accounts = [(lookup.row("Opportunity", o) or {}).get("account_id") for o in opp_ids]
    lookup.prepare("Account", [*accounts, *(r for r in related if isinstance(r, str) and r.startswith("001"))])

    renderer = Renderer(cfg, lookup, as_of, notice, fixed)
    groups: dict[tuple, _Group] = {}
    for a in alerts:
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
            key = f"meeting_reminder|{gkey[1]}|{alert['record_id']}"
        else:
            preamble, content, summary = renderer.blocks(group)
            first, replies = _paginate(preamble, content, title)
            text = f"{title}: {summary}"  # both escaped
            key = f"{group.slot}|{gkey[1]}|{as_of.isoformat()}"
        email = None
        if group.recipient["type"] == "user":
            e = lookup.directory.users["email"].get(group.recipient["id"][:15])
            email = e if isinstance(e, str) else None
        messages.append(fit_message(Message(
            key=key, slot=group.slot, recipient=group.recipient, email=email, fallbacks=_fallbacks(group.recipient, lookup),
            text=text, blocks=first, replies=replies, title=title)))  # fmt: skip
    return messages


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
        lines.append(f"*{_plural(len(quarantine), 'row')} quarantined* (not evaluated, fix them in Salesforce):")
        lines += [f"• {esc(obj)} {esc(reason)}: {n}" for (obj, reason), n in counts.items()]
    if unrouted:
        lines.append(f"*{_plural(unrouted, 'alert')} had no region* (no routing rule matched the user) and came here.")
    if unknown_users:
        lines.append(f"*{_plural(len(unknown_users), 'user')} unknown to Slack* by their Salesforce e-mail:")
        lines += [f"• {esc(u.email or u.recipient.get('id'))} → sent to {esc((u.delivered_to or {}).get('name') or (u.delivered_to or {}).get('id') or 'nobody')}"
                  for u in unknown_users]  # fmt: skip
    if failed:
        lines.append(f"*{_plural(len(failed), 'digest')} not delivered* (retried on the next run):")
        lines += [f"• {esc(k)}: {esc(v)}" for k, v in failed.items()]
    if unconfirmed:
        lines.append(f"*{_plural(len(unconfirmed), 'message part')} posted but never confirmed*: Slack did not let "
                     "the app read the conversation (invite it, or grant `channels:join`); not posted again:")
        lines += [f"• {esc(p)}" for p in unconfirmed]
    if not lines:
        return None
    channel = cfg.channels.operations
    title = esc(f"{SLOT_TITLES['ops_summary']} · {run} · {as_of:%a %d %b}")
    content = _section("\n".join(lines))
    first, replies = _paginate([{"type": "header", "text": {"type": "plain_text", "text": title}}], content, title)
    return fit_message(Message(key=f"ops_summary|channel:{channel}|{as_of.isoformat()}|{run}", slot="ops_summary",
                   recipient={"type": "channel", "name": channel}, email=None, fallbacks=(), text=title,
                   blocks=first, replies=replies, title=title))  # fmt: skip


def escalation_messages(items: list[dict], snapshot: Snapshot, cfg: Config, days: dict[str, date]) -> list[Message]:
    """One DM per manager: their team's items open longer than the workflow's
    ``escalate_after_days``, grouped by SA, oldest first.

    ``items``: open episodes with ``manager``, ``owner`` (the User Id of the SA or owner the
    item goes to), ``first_seen`` and ``age_days``; ``days``: each manager's local date.
    """
    lookup = Lookup(snapshot, cfg)
    for obj in ("Opportunity", "Task"):
        lookup.prepare(obj, [i["record_id"] for i in items if i["object"] == obj])
    renderer = Renderer(cfg, lookup, min(days.values(), default=date.today()))
    by_manager: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_manager[item["manager"]].append(item)
    messages = []
    for manager in sorted(by_manager):
        team = by_manager[manager]
        day = days[manager]
        name = lookup.user_name(manager)
        title = esc(f"{SLOT_TITLES['escalation']} · {name} · {day:%a %d %b}")
        per_sa: dict[str, list[dict]] = defaultdict(list)
        for item in team:
            per_sa[item["owner"]].append(item)
        content: list[dict] = []
        for owner in sorted(per_sa, key=lambda o: (-max(i["age_days"] for i in per_sa[o]), lookup.user_name(o))):
            lines = [f"*{esc(lookup.user_name(owner))}* ({len(per_sa[owner])})"]
            for i in sorted(per_sa[owner], key=lambda i: (-i["age_days"], i["record_id"])):
                row = lookup.row(i["object"], i["record_id"]) or {}
                label = row.get("name") or row.get("subject") or i["record_id"]
                title_wf = cfg.workflows[i["workflow"]].title if i["workflow"] in cfg.workflows else i["workflow"]
                lines.append(f"• {renderer.link(i['object'], i['record_id'], label)}: {esc(title_wf)}, "
                             f"open {_plural(i['age_days'], 'day')} (since {i['first_seen']})")  # fmt: skip
            content += [{"type": "divider"}, *_section("\n".join(lines))]
        people = "1 person" if len(per_sa) == 1 else f"{len(per_sa)} people"
        summary = f"{_plural(len(team), 'item')} of {people} in your team open longer than their workflow allows"
        preamble = [{"type": "header", "text": {"type": "plain_text", "text": title}}, _context(esc(summary))]
        first, replies = _paginate(preamble, content, title)
        recipient = {"type": "user", "id": manager}
        email = lookup.directory.users["email"].get(manager[:15])
        messages.append(fit_message(Message(
            key=f"escalation|{encode(recipient)}|{day.isoformat()}", slot="escalation", recipient=recipient,
            email=email if isinstance(email, str) else None, fallbacks=_fallbacks(recipient, lookup),
            text=f"{title}: {esc(summary)}", blocks=first, replies=replies, title=title)))
    return messages
