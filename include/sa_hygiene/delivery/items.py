"""One record's item in a digest: its own lines, the facts its workflows choose, its issues, its age.

Apart from the message around it (``digest``): an item is mrkdwn text made from the snapshot's
rows and the alerts of one record, and what it shows beyond the record's own lines is the
workflows' data (``message.show`` and ``message.when_closed``, ``contract.config.FACTS``), so
no line here names a workflow. Salesforce text is escaped for mrkdwn before it is placed, so
no record can ping a channel or hide a link.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pandas as pd

from sa_hygiene.contract.config import FACTS, Config
from sa_hygiene.contract.schema import object_of
from sa_hygiene.delivery.blockkit import cut, esc, is_salesforce_id, record_link
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.snapshot import Snapshot

URL = re.compile(r"https?://[^\s<>|]+")
# Links of a cut description shown beneath it, at most.
MAX_KEPT_LINKS = 3
# A Chorus call Id that can go into the recording's URL as it is.
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# The facts that show a field before and after (from the previous snapshot), in their order.
CHANGES = ("te_start_change", "te_close_change", "stage_change", "sa_change")


def money(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"${value:,.0f}"


def day_text(value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class DigestRecords:
    """The snapshot's rows of the records a run's messages name (and of the snapshot before it,
    for the changes), by Id key, and the names a message shows for users, contacts and related
    records. ``prepare`` indexes the few rows a run needs instead of a whole table."""

    def __init__(self, snapshot: Snapshot, cfg: Config, previous: Snapshot | None = None):
        self.cfg = cfg
        self.tables = snapshot.tables
        self.absent = snapshot.absent  # optional objects the org does not have (no POV buttons without POVs)
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

    def email(self, user_id: str) -> str | None:
        """The user's e-mail, by which the Slack sender finds them."""
        email = self.directory.users["email"].get(user_id[:15])
        return email if isinstance(email, str) else None

    def name_of(self, record_id: Any) -> tuple[str, str]:
        """(object, readable name) of a Related To / suggested record. A record the snapshot does
        not hold (deleted, or outside the extraction) is named for what it is, still linked: a raw
        Id in a sentence reads as a fault of the message."""
        if not isinstance(record_id, str):
            return "", ""
        obj = object_of(record_id, ("Opportunity", "Account", "Contact", "Lead"))
        row = self.row(obj, record_id) if obj in self.tables else None
        if row and isinstance(row.get("name"), str):
            return obj, row["name"]
        if not obj or not is_salesforce_id(record_id):
            return obj, record_id  # no Id to link: what the source holds, escaped where it is shown
        return obj, f"{'an' if obj[0] in 'AEIOU' else 'a'} {obj.lower()} not in the snapshot"

    def running_povs(self, user_id: Any) -> list[tuple[str, str]]:
        """(Id, name) of the Proofs of Value the user runs now (``proofs_of_value.running``)."""
        povs = self.tables.get("Proof_of_Value__c")
        if povs is None or not isinstance(user_id, str):
            return []
        mine = povs[(povs["owner_id"].str.slice(0, 15) == user_id[:15]) & povs["status"].isin(self.cfg.proofs_of_value.running)]
        return [(i, n if isinstance(n, str) else i) for i, n in zip(mine["id"], mine["name"], strict=True)]

    def link(self, obj: str, record_id: Any, label: Any) -> str:
        """The record's label, linked to it in Salesforce when its Id is one."""
        return record_link(self.cfg.salesforce.instance_url, obj or "Task", record_id, label)


def age_text(alerts: list[dict]) -> str | None:
    """How long the oldest of a record's alerts has been open (alert memory), or None without it;
    "yours since" when it reached this recipient later than it began (a reassignment): an item
    new to the person must not read as theirs for weeks."""
    ages = [a for a in alerts if a.get("first_seen") is not None]
    if not ages:
        return None
    oldest = max(ages, key=lambda a: a["age_days"])
    theirs = min(a.get("recipient_since") or a["first_seen"] for a in ages)
    yours = f"; yours since {theirs}" if theirs > oldest["first_seen"] else ""
    if oldest["first_seen"] == oldest.get("memory_began"):
        # Raised by the first evaluation the memory holds: older than we know, not new.
        if oldest["age_days"] == 0:
            return None
        return f"_open at least {plural(oldest['age_days'], 'day')} (since the alert memory began, {oldest['first_seen']}){yours}_"
    if oldest["age_days"] == 0:
        return "_new today_"
    return f"_open {plural(oldest['age_days'], 'day')}, since {oldest['first_seen']}{yours}_"


def oldest_age(alerts: list[dict]) -> int:
    """Days the oldest of a record's alerts has been open (0 without alert memory)."""
    return max((a.get("age_days") or 0 for a in alerts), default=0)


class ItemWriter:
    """The mrkdwn text of one record's item: an opportunity or a task, with ``alerts`` (the
    record's alerts in the message, in filing order) and ``section_wf`` (the workflow it is
    listed under)."""

    def __init__(self, cfg: Config, records: DigestRecords, as_of: date):
        self.cfg = cfg
        self.records = records
        self.as_of = as_of

    def _what(self, what_id: Any) -> str:
        obj, name = self.records.name_of(what_id)
        return self.records.link(obj, what_id, name) if obj else "no related record"

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
        """The facts (``FACTS``) an item shows: the "listed" ones of the workflow it is listed
        under, and the "record" ones of every workflow it has an alert of."""
        chosen = {f for f in self.cfg.workflows[section_wf].message.show if FACTS[f].scope == "listed"}
        for a in alerts:
            chosen.update(f for f in self.cfg.workflows[a["workflow"]].message.show if FACTS[f].scope == "record")
        return chosen

    def opportunity(self, record_id: str, alerts: list[dict], section_wf: str, fixes: bool = True) -> str:
        o = self.records.row("Opportunity", record_id) or {}
        chosen = self.chosen_facts(alerts, section_wf)
        acc = self.records.row("Account", o.get("account_id")) if o else None
        head = f"*{self.records.link('Opportunity', record_id, o.get('name') or record_id)}*"
        if acc and isinstance(acc.get("name"), str):
            head += f"  ·  {esc(acc['name'])}"
        facts = [esc(o.get("stage")), f"IACV {money(o.get('iacv'))}", f"Owner {esc(self.records.user_name(o.get('owner_id')))}"]
        sa = o.get("sa")
        facts.append(f"SA {esc(self.records.user_name(sa))}" if isinstance(sa, str) else "*no Primary SA*")
        lines = [head, " · ".join(f for f in facts if f)]
        dates = []
        s3 = o.get("stage3_date")
        if s3 is not None and not pd.isna(s3):
            days = (pd.Timestamp(self.as_of) - pd.Timestamp(s3)).days
            rank = o.get("rank")
            if rank == 3:
                dates.append(f"stage 3 since {day_text(s3)} ({plural(days, 'day')})")
            else:  # already past stage 3 (or closed): the date it entered, not a stay that ended
                dates.append(f"entered stage 3 on {day_text(s3)} ({plural(days, 'day')} ago)")
            overdue = days - self.cfg.thresholds.stage3_days
            if overdue >= 0 and "stage3_overdue" in chosen:
                dates.append(f"*{plural(overdue, 'day')} overdue*")
        start, end = o.get("te_start"), o.get("te_end")
        has_start, has_end = start is not None and not pd.isna(start), end is not None and not pd.isna(end)
        if has_start or has_end:
            status = o.get("te_status")
            te = f"tech eval {day_text(start)} → {day_text(end)}" + (f" ({esc(status)})" if isinstance(status, str) else "")
            if has_start:
                te += f", started {plural((pd.Timestamp(self.as_of) - pd.Timestamp(start)).days, 'day')} ago"
            dates.append(te)
        if dates:
            lines.append(" · ".join(dates))
        lines += self._changes(record_id, chosen)
        lines += self._issues(alerts, skip=section_wf)
        if o.get("is_closed") is True:
            workflows = [self.cfg.workflows[a["workflow"]] for a in alerts]
            closed = (wf.message.when_closed for wf in workflows if fixes or not wf.fix)
            lines += [f"_{esc(text)}_" for text in dict.fromkeys(closed) if text]
        return "\n".join(self._with_age(lines, alerts))

    @staticmethod
    def _with_age(lines: list[str], alerts: list[dict]) -> list[str]:
        age = age_text(alerts)
        return [*lines, age] if age else lines

    def _changes(self, record_id: str, chosen: set[str]) -> list[str]:
        """Before → after of the changes an item shows, when the previous snapshot is at hand."""
        if not chosen.intersection(CHANGES):
            return []
        now = self.records.row("Opportunity", record_id) or {}
        was = self.records.row("Opportunity", record_id, source="previous") or {}
        if self.records.previous is None:
            return []
        name = self.records.user_name
        out = []
        if "te_start_change" in chosen:
            out.append(f"start date {day_text(was.get('te_start'))} → *{day_text(now.get('te_start'))}*")
        if "te_close_change" in chosen:
            out.append(f"end date {day_text(was.get('te_end'))} → *{day_text(now.get('te_end'))}*, "
                       f"close status {esc(was.get('te_status')) or '—'} → *{esc(now.get('te_status')) or '—'}*")  # fmt: skip
        if "stage_change" in chosen:
            out.append(f"{esc(name(now.get('owner_id')))} moved it from {esc(was.get('stage')) or 'nothing (new)'} "
                       f"to *{esc(now.get('stage'))}*")  # fmt: skip
        if "sa_change" in chosen:
            new = name(now.get("sa")) if isinstance(now.get("sa"), str) else "(cleared)"
            out.append(f"Primary SA {esc(name(was.get('sa')))} → *{esc(new)}*")
        return out

    def render(self, obj: str, record_id: str, alerts: list[dict], section_wf: str, *, fixes: bool = True) -> str:
        """The item of a record of ``obj`` (an opportunity, a task, a Proof of Value, a user);
        ``fixes``: it carries its workflows' fix buttons (a DM's item), which ``when_closed`` may name."""
        if obj == "Opportunity":
            return self.opportunity(record_id, alerts, section_wf, fixes)
        writers = {"Proof_of_Value__c": self.proof_of_value, "User": self.user}
        return writers.get(obj, self.task)(record_id, alerts, section_wf)

    def proof_of_value(self, record_id: str, alerts: list[dict], section_wf: str) -> str:
        """A POV (spec v3): its opportunity, status, dates against the 8-week guideline, result and
        success criteria; every text from Salesforce escaped."""
        p = self.records.row("Proof_of_Value__c", record_id) or {}
        head = f"*{self.records.link('Proof_of_Value__c', record_id, p.get('name') or record_id)}*"
        opp_id = p.get("opportunity_id")
        if isinstance(opp_id, str):
            opp = self.records.row("Opportunity", opp_id) or {}
            head += f"  ·  {self.records.link('Opportunity', opp_id, opp.get('name') or opp_id)}"
            if opp.get("is_closed") is True:
                head += " (closed)"
        else:
            head += "  ·  *no opportunity*"
        facts = [esc(p.get("status")), f"by {esc(self.records.user_name(p.get('owner_id')))}"]
        start, end = p.get("start_date"), p.get("end_date")
        if start is not None and not pd.isna(start):
            days = (pd.Timestamp(self.as_of) - pd.Timestamp(start)).days
            facts.append(f"{day_text(start)} → {day_text(end)}" + (f", week {days // 7 + 1}" if days >= 0 else ""))
        result = p.get("result")
        facts.append(f"result {esc(result)}" if isinstance(result, str) else "no result")
        lines = [head, " · ".join(f for f in facts if f)]
        criteria = p.get("success_criteria")
        if isinstance(criteria, str):
            lines.append("> " + cut(esc(criteria), self.cfg.thresholds.description_preview_chars + 1).replace("\n", "\n> "))
        lines += self._issues(alerts, skip=section_wf)
        return "\n".join(self._with_age(lines, alerts))

    def user(self, record_id: str, alerts: list[dict], section_wf: str) -> str:
        """A person an alert is about (pov-load): their name and the POVs they run now."""
        running = self.records.running_povs(record_id)
        lines = [f"*{esc(self.records.user_name(record_id))}*"]
        if running:
            lines.append(" · ".join(self.records.link("Proof_of_Value__c", i, n) for i, n in running))
        lines += self._issues(alerts, skip=section_wf)
        return "\n".join(self._with_age(lines, alerts))

    def task(self, record_id: str, alerts: list[dict], section_wf: str) -> str:
        t = self.records.row("Task", record_id) or {}
        chosen = self.chosen_facts(alerts, section_wf)
        preview = self.cfg.thresholds.description_preview_chars
        types = ", ".join(t.get("activity_types") or []) if t else ""
        head = f"*{self.records.link('Task', record_id, t.get('subject') or 'No subject')}*"
        facts = [esc(types), esc(t.get("sentiment")), f"by {esc(self.records.user_name(t.get('owner_id')))}",
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
        due = t.get("activity_date")
        if "task_overdue" in chosen and due is not None and not pd.isna(due):
            days = (pd.Timestamp(self.as_of) - pd.Timestamp(due)).days
            lines.append(f"*overdue {plural(days, 'day')}*" + (" (due today)" if days == 0 else ""))
        recording = t.get("chorus_call_id")
        if "recording" in chosen and isinstance(recording, str) and SAFE_ID.fullmatch(recording):
            url = self.cfg.slack.recording_url.format(id=recording)
            lines.append(f":movie_camera: <{esc(url)}|Listen to the recording>")
        lines += self._issues(alerts, skip=section_wf)
        return "\n".join(self._with_age(lines, alerts))
