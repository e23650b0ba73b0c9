"""The log-it form's substance: the meeting it offers, how a submission is checked, the Task
it makes.

A submission is checked as what it will become: the one row the new Task adds to the
activities frame, derived by the engine's own ``activity_rows`` and judged by the engine's
predicates against the expectations of the workflow ``slack.log_form_workflow`` names. The
form therefore refuses exactly what a digest would flag, with the reasons' own wording, and a
handbook change in the YAML changes the form too; nothing is listed here a second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.schema import is_id_of
from sa_hygiene.engine.predicates import unmet
from sa_hygiene.engine.prepare import activity_rows
from sa_hygiene.web.slack_app.items import Item
from sa_hygiene.web.slack_app.records import account_contacts, record

# Each expectation reports on the form block (views.form_view) of the column it checks.
BLOCK_OF_COLUMN = {"what_prefix": "what", "what_id": "what", "who_id": "who", "who_prefix": "who",
                   "subject": "subject", "description": "description", "activity_types": "types",
                   "sentiment": "sentiment", "persona_levels": "persona"}  # fmt: skip
LIST_OF_TEXT = pd.ArrowDtype(pa.list_(pa.string()))  # a multi-select picklist, as a snapshot reads it


@dataclass
class Meeting:
    """What the form offers for one meeting: its records, read from the snapshot."""

    item: Item
    subject: str
    activity_date: str  # the meeting's start date in its owner's time zone
    related: list[tuple[str, str]]  # (Id, label) for Related To, the suggestion first
    contacts: list[tuple[str, str]]  # (Id, label) of the attendees known as contacts
    channel: str = ""  # where the reminder is, to reply in its thread and mark it done
    ts: str = ""
    account_contacts: list[tuple[str, str]] = field(default_factory=list)  # the account's other contacts


def meeting_of(snapshot, item: Item, channel: str = "", ts: str = "") -> Meeting:
    """The meeting of a reminder: subject, date, the records to relate it to, the attendees' contacts."""
    tables = snapshot.tables

    def row(obj: str, record_id: str | None) -> dict | None:
        if not isinstance(record_id, str) or obj not in tables:
            return None
        t = tables[obj]
        hit = t[t["key"] == record_id[:15]]
        return hit.iloc[0].to_dict() if len(hit) else None

    event = row("Event", item.record_id) or {}
    owner = row("User", item.recipient) or {}
    zone = owner.get("timezone") if isinstance(owner.get("timezone"), str) else "UTC"
    start = event.get("start")
    try:
        day = pd.Timestamp(start).tz_convert(ZoneInfo(zone)).date().isoformat()
    except Exception:  # no start, or an unknown zone: the UTC date
        day = pd.Timestamp(start).date().isoformat() if start is not None and not pd.isna(start) else date.today().isoformat()
    related: list[tuple[str, str]] = []
    suggested = item.what_id or (event.get("what_id") if isinstance(event.get("what_id"), str) else "")
    opp = row("Opportunity", suggested) if is_id_of("Opportunity", suggested) else None
    account_id = opp.get("account_id") if opp else (suggested if is_id_of("Account", suggested) else None)
    if suggested:
        rec = opp or row("Account", suggested) or {}
        related.append((suggested, str(rec.get("name") or suggested)))
    if isinstance(account_id, str):
        acc = row("Account", account_id)
        if acc and account_id[:15] != suggested[:15]:
            # The account itself: where a Ride Along is logged.
            related.append((acc["id"], f"{acc.get('name') or account_id} (account)"))
        opps = tables["Opportunity"]
        others = opps[(opps["account_id"].str.slice(0, 15) == account_id[:15]) & ~opps["is_closed"].astype(bool)]
        for o in others.sort_values("id").head(20).to_dict("records"):
            if o["key"] != suggested[:15]:
                related.append((o["id"], str(o.get("name") or o["id"])))
    emails = {e.lower() for e in (event.get("attendee_emails") or []) if isinstance(e, str)}
    c = tables["Contact"]
    known = c[c["email"].str.lower().isin(emails)] if len(c) and emails else c.iloc[0:0]
    contacts = [(r["id"], f"{r.get('name') or r['id']} <{r['email']}>") for r in known.sort_values("id").head(50).to_dict("records")]
    attendees = {cid[:15] for cid, _ in contacts}
    others = [(cid, label) for cid, label in account_contacts(snapshot, account_id if isinstance(account_id, str) else None)
              if cid[:15] not in attendees]  # fmt: skip
    return Meeting(item, str(event.get("subject") or "Meeting"), day, related, contacts, channel, ts, others)


def activity_of(snapshot, item: Item, day: str) -> Meeting:
    """What the form offers for an activity logged from a record card or ``/sa-create``: no
    meeting, the card's record (if any) as Related To, its account's contacts, ``day`` the date."""
    found = record(snapshot, item.what_id) if item.what_id else None
    related = [(found.id, found.label)] if found else []
    return Meeting(item, "", day, related, [], "", "", account_contacts(snapshot, found.account_id) if found else [])


def form_of(snapshot, item: Item, meta: dict) -> Meeting:
    """The form's offer again, for a submitted view's ``meta`` (private metadata)."""
    if item.kind == "act":
        return activity_of(snapshot, item, meta.get("date") or date.today().isoformat())
    meeting = meeting_of(snapshot, item, meta.get("channel") or "", meta.get("ts") or "")
    meeting.activity_date = meta.get("date") or meeting.activity_date
    return meeting


def form_row(cfg: Config, form: dict, owner_id: str | None = None, activity_date: str | None = None) -> pd.DataFrame:
    """The row the form's Task will add to the activities frame: an SA activity (it has a type)
    created now, so within the review period and the window of a digest to come. Its account
    is Salesforce's to derive from Related To: unknown here."""

    def text(value: str | None) -> pd.Series:
        return pd.Series([value], dtype="str")

    task = pd.DataFrame({
        "id": text(None), "owner_id": text(owner_id), "what_id": text(form.get("what_id")),
        "who_id": text(form.get("who_id")), "account_id": text(None), "subject": text(form.get("subject")),
        "description": text(form.get("description")),
        "activity_date": pd.to_datetime(pd.Series([activity_date], dtype="str"), errors="coerce").astype("datetime64[us]"),
        "created": pd.Series([pd.Timestamp.now(UTC)], dtype="datetime64[us, UTC]"),
        "activity_types": pd.Series([list(form.get("activity_types") or [])], dtype=LIST_OF_TEXT),
        "persona_levels": pd.Series([list(form.get("persona_levels") or [])], dtype=LIST_OF_TEXT),
        "sentiment": text(form.get("sentiment")),
    })  # fmt: skip
    return activity_rows(task, cfg.taxonomy, created_in_window=True, created_in_review_period=True,
                         is_sa_activity=True, untyped_call=False)  # fmt: skip


def validate(cfg: Config, form: dict, owner_id: str | None = None, activity_date: str | None = None) -> dict[str, str]:
    """{block id: message} of what the form's workflow flags in it; empty when it may be saved.

    ``owner_id`` and ``activity_date``: the Task's owner and date, as the form will save them."""
    errors: dict[str, str] = {}
    if not form.get("activity_types"):
        # An SA activity is a Task with a type: without one, it is not an SA activity at all.
        errors["types"] = cfg.reasons.get("activity_type_missing", "choose at least one activity type")
    row = form_row(cfg, form, owner_id, activity_date)
    params = {**cfg.params(), "as_of": pd.Timestamp(datetime.now(UTC).date())}
    for e in unmet(row, cfg.workflows[cfg.slack.log_form_workflow], params).get(row.index[0], []):
        block = BLOCK_OF_COLUMN.get(e.column, "description")
        errors.setdefault(block, cfg.reasons.get(e.reason or "", e.reason or e.expectation))
    return errors


def task_fields(cfg: Config, owner_id: str, activity_date: str, form: dict) -> dict[str, Any]:
    """The Task to create, by API name (the configured field map)."""
    name = lambda f: cfg.api_name("Task", f)  # noqa: E731
    fields = {name("owner_id"): owner_id, name("what_id"): form["what_id"], name("who_id"): form["who_id"],
              name("activity_date"): activity_date, name("status"): "Completed", name("subject"): form["subject"],
              name("description"): form.get("description"),
              name("activity_types"): ";".join(form["activity_types"]),
              name("sentiment"): form["sentiment"]}  # fmt: skip
    if form.get("persona_levels"):
        fields[name("persona_levels")] = ";".join(form["persona_levels"])
    for key, offered in (("products", cfg.taxonomy.products), ("persona_functions", cfg.taxonomy.persona_functions)):
        chosen = [v for v in form.get(key) or [] if v in offered]
        if chosen:
            fields[name(key)] = ";".join(chosen)
    return {k: v for k, v in fields.items() if v is not None}


# What the rules see as the contact of a form whose contact is still to be created: a Contact's
# Id (prefix 003) that names none; the Task is written with the new Contact's real Id.
NEW_CONTACT = "003000000000000AAA"
EMAIL = re.compile(r"[^@\s<>|]+@[^@\s<>|]+\.[^@\s<>|]+")


def check(cfg: Config, form: dict, owner_id: str | None, activity_date: str | None, has_who: bool = True) -> dict[str, str]:
    """{block id: message} of everything wrong with a submitted form: the rules of the form's
    workflow (``validate``, one meaning with the digests), on the Task it will make, plus what
    only a form can get wrong (a contact both chosen and created, a new contact without a name
    or with an e-mail that is none, no date). ``has_who``: the form offered contacts to choose
    from (else a missing contact is said at the new contact's name)."""
    errors: dict[str, str] = {}
    new = bool(form.get("new_name") or form.get("new_email"))
    if new:
        if form.get("who_id"):
            errors["new_name"] = "Choose a contact or create one, not both."
        elif not form.get("new_name"):
            errors["new_name"] = "The new contact needs a name."
        if form.get("new_email") and not EMAIL.fullmatch(form["new_email"]):
            errors["new_email"] = "That is not an e-mail address."
    date_text = form.get("activity_date") or activity_date
    if not date_text:
        errors["date"] = "Choose the date of the activity."
    rules_form = {**form, "who_id": form.get("who_id") or (NEW_CONTACT if new else None)}
    for block, why in validate(cfg, rules_form, owner_id, date_text).items():
        errors.setdefault("new_name" if block == "who" and not has_who else block, why)  # no list: create one
    return errors


def contact_fields(cfg: Config, form: dict, account_id: str | None) -> dict[str, Any]:
    """The Contact to create (the handbook's "Creating a Contact": name, e-mail, account)."""
    first, _, last = (form.get("new_name") or "").strip().rpartition(" ")
    fields = {"FirstName": first.strip() or None, "LastName": last.strip(),
              cfg.api_name("Contact", "email"): form.get("new_email"),
              cfg.api_name("Contact", "account_id"): account_id}  # fmt: skip
    return {k: v for k, v in fields.items() if v}
