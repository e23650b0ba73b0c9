"""The Slack app: act on a digest item or a meeting reminder from Slack itself (issue 13).

One Bolt for Python ``App`` serves three kinds of requests:

- the overflow menu of a DM digest item: "Snooze 7 days" (the alert memory's snooze; the
  message then says who snoozed it until when), "Not mine / wrong Primary SA" (told to the
  item's regional channel and to the operations channel, then snoozed), "Open in Salesforce";
- the "Log it" button of a wf-01 reminder, which opens a modal offering exactly the
  configured taxonomy, sentiments and persona levels;
- that modal's submission, validated with the act-fields workflow's own expectations (so a
  handbook change in the YAML changes the form too) and written to Salesforce as a Task.

Security comes before any handler: Bolt's request verification checks every HTTP request's
``v0`` signature and refuses timestamps more than five minutes old (401); the ASGI route
below refuses what cannot even be parsed (400), and a middleware refuses payloads that are
not ours (400: unknown action, undecodable value). The clicking Slack user is mapped to a
Salesforce user through the e-mail Slack has for them and the latest snapshot's User table,
and may act only on items addressed to them or to someone who reports to them; anyone else
gets an ephemeral refusal and nothing changes.

Slack wants an answer within three seconds. Every listener acknowledges first and does the
slow part (Slack and Salesforce calls) in a Bolt lazy listener after the answer. A modal's
submission is the one place the answer carries content: validation errors
(``response_action: errors``) are computed before the answer (pure Python, no I/O), and a
valid form is answered with a "saving" view; the Task is created afterwards and the view
updated to the result. A Salesforce error puts the form back with every typed value and the
message. Each view is claimed once in the state database before a Task is created, so a
double submit creates one Task.

Secrets (bot token, signing secret, app-level token) come from the Slack Airflow connection
or the environment and are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, update
from sqlalchemy.exc import SQLAlchemyError

from sa_hygiene.contract.config import Config
from sa_hygiene.delivery.blockkit import (
    ITEM_MENU,
    LOG_IT,
    OPEN_LINK,
    OPTION_VALUE_CHARS,
    cut,
    esc,
    is_salesforce_id,
    item_value,
    record_url,
)
from sa_hygiene.delivery.digest import SNOOZE_DAYS
from sa_hygiene.state.db import (
    DatabaseError,
    connect,
    ensure_schema,
    insert_ignoring_conflicts,
    reason,
    safe_url,
)

log = logging.getLogger(__name__)

LOG_VIEW = "sa_log_form"  # callback_id of the log-it modal
ACTIONS = {ITEM_MENU, LOG_IT, OPEN_LINK}
# What an item's value says to do. Overflow option values are limited to 150 characters:
# "kind|workflow|record Id|recipient User Id" takes about 50.
KINDS = {"snooze", "notmine", "open", "log"}
USER_CACHE_SECONDS = 600.0
# Fields of the form, by block id; each act-fields expectation reports on the block of its column.
BLOCK_OF_COLUMN = {"what_prefix": "what", "what_id": "what", "who_id": "who", "who_prefix": "who",
                   "subject": "subject", "description": "description", "activity_types": "types",
                   "sentiment": "sentiment", "persona_levels": "persona"}  # fmt: skip


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Credentials:
    """The app's secrets; ``repr`` shows none of them, so logging the object leaks nothing."""

    token: str = field(repr=False)
    signing_secret: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    base_url: str | None = None


class SlackAppError(RuntimeError):
    """The app cannot start: missing credentials or configuration; one line for an operator."""


def credentials(conn_id: str | None) -> Credentials:
    """Secrets from the environment (``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``,
    ``SLACK_APP_TOKEN``), else from the Slack provider's connection ``conn_id``: the token in
    its password, ``signing_secret`` and ``app_token`` in its extra (``base_url`` too, as the
    provider's hook reads it)."""
    token, secret, app = (os.environ.get(k) or None for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"))
    base_url = None
    if conn_id and not (token and secret):
        from airflow.providers.slack.hooks.slack import SlackHook

        try:
            conn = SlackHook.get_connection(conn_id)
        except Exception as exc:  # AirflowNotFoundException, whatever its module in this Airflow
            raise SlackAppError(f"no usable Airflow connection {conn_id!r}: {type(exc).__name__}") from None
        extra = conn.extra_dejson or {}
        token = token or conn.password or None
        secret = secret or extra.get("signing_secret") or None
        app = app or extra.get("app_token") or None
        base_url = extra.get("base_url") or None
    if not token:
        raise SlackAppError(f"no bot token: set SLACK_BOT_TOKEN or the password of connection {conn_id!r}")
    if not secret:
        raise SlackAppError(f"no signing secret: set SLACK_SIGNING_SECRET or 'signing_secret' in the extra of {conn_id!r}")
    return Credentials(token, secret, app, base_url)


# --------------------------------------------------------------------------- item values


@dataclass(frozen=True)
class Item:
    """What a button or menu option acts on; carried in its value, ``|``-separated."""

    kind: str
    workflow: str
    record_id: str
    recipient: str  # the Salesforce User Id the item was addressed to
    what_id: str = ""  # log: the suggested Related To record

    def value(self) -> str:
        return item_value(self.kind, self.workflow, self.record_id, self.recipient, self.what_id)


_WORKFLOW = re.compile(r"[A-Za-z0-9_.-]{1,60}")


def decode_item(value: Any) -> Item | None:
    """The item of a value, or None when it is not one of ours (a forged or damaged request)."""
    if not isinstance(value, str) or len(value) > OPTION_VALUE_CHARS:  # Slack's limit for a menu option
        return None
    parts = value.split("|")
    if len(parts) not in (4, 5) or parts[0] not in KINDS or not _WORKFLOW.fullmatch(parts[1]):
        return None
    if not all(is_salesforce_id(p) for p in parts[2:4]) or (len(parts) == 5 and not is_salesforce_id(parts[4])):
        return None
    return Item(*parts)


def problem(body: dict) -> str | None:
    """Why a (verified) request is not one this app answers, or None when it is."""
    kind = body.get("type")
    user = (body.get("user") or {}).get("id")
    if kind == "block_actions":
        actions = body.get("actions")
        if not user or not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
            return "malformed block action"
        a = actions[0]
        if a.get("action_id") not in ACTIONS:
            return "unknown action"
        if a["action_id"] == OPEN_LINK:
            return None
        value = (a.get("selected_option") or {}).get("value") if a["action_id"] == ITEM_MENU else a.get("value")
        item = decode_item(value)
        if item is None or (item.kind == "log") != (a["action_id"] == LOG_IT):
            return "malformed action value"
        if item.kind != "open" and not body.get("trigger_id" if item.kind == "log" else "container"):
            return "malformed block action"
        return None
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not user or not isinstance(view, dict) or view.get("callback_id") != LOG_VIEW or not view.get("id"):
            return "unknown view"
        try:
            meta = json.loads(view.get("private_metadata") or "")
        except ValueError:
            return "malformed view"
        if not isinstance(meta, dict) or decode_item(meta.get("item")) is None:
            return "malformed view"
        return None
    return "unknown request type"


# --------------------------------------------------------------------------- who may act


@dataclass(frozen=True)
class Person:
    id: str
    key: str
    name: str
    email: str
    manager_key: str | None
    timezone: str | None


class People:
    """The Salesforce users of a snapshot, by e-mail and Id: who a Slack user is, and whom they lead."""

    def __init__(self, users: pd.DataFrame):
        self._by_key: dict[str, Person] = {}
        self._by_email: dict[str, Person] = {}
        for row in users.to_dict("records"):
            if not isinstance(row.get("id"), str):
                continue
            manager = row.get("manager_id")
            person = Person(row["id"], row["id"][:15], str(row.get("name") or row["id"]), str(row.get("email") or ""),
                            manager[:15] if isinstance(manager, str) and manager else None,
                            row.get("timezone") if isinstance(row.get("timezone"), str) else None)  # fmt: skip
            self._by_key[person.key] = person
            active = row.get("is_active")
            if person.email and active is not False and str(active).lower() != "false":
                # Two users with one e-mail (a sandbox copy, a re-hire): the first active one wins.
                self._by_email.setdefault(person.email.lower(), person)

    def by_email(self, email: str | None) -> Person | None:
        return self._by_email.get(email.lower()) if email else None

    def by_id(self, user_id: str | None) -> Person | None:
        return self._by_key.get(user_id[:15]) if isinstance(user_id, str) else None

    def may_act(self, actor: Person, recipient_id: str) -> bool:
        """The item was addressed to the actor, or to someone who reports to them (``ManagerId``)."""
        if recipient_id[:15] == actor.key:
            return True
        recipient = self.by_id(recipient_id)
        return recipient is not None and recipient.manager_key == actor.key


# --------------------------------------------------------------------------- the org as the snapshot knows it


class LatestSnapshot:
    """The newest snapshot of the store, read again only when a newer one is committed."""

    OBJECTS = ("User", "Account", "Opportunity", "Contact", "Event")

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._name: str | None = None
        self._snapshot = None

    def __call__(self):
        from sa_hygiene.source.snapshot import SnapshotStore, read_snapshot

        ref = SnapshotStore(self.cfg.store.url, keep=self.cfg.store.keep).latest()
        if ref is None:
            raise SlackAppError("no snapshot yet: the app knows users and meetings from the latest snapshot")
        with self._lock:
            if ref.name != self._name:
                self._snapshot = read_snapshot(ref.url, self.cfg)
                self._name = ref.name
            return self._snapshot


# --------------------------------------------------------------------------- the log-it form


def _option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": cut(esc(text), 75) or value}, "value": value}


def _input(block_id: str, label: str, element: dict, hint: str | None = None) -> dict:
    block = {"type": "input", "block_id": block_id, "optional": True, "label": {"type": "plain_text", "text": label},
             "element": {**element, "action_id": block_id}}  # fmt: skip
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


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


def meeting_of(cfg: Config, snapshot, item: Item, channel: str = "", ts: str = "") -> Meeting:
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
    opp = row("Opportunity", suggested) if suggested.startswith("006") else None
    account_id = opp.get("account_id") if opp else (suggested if suggested.startswith("001") else None)
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
    return Meeting(item, str(event.get("subject") or "Meeting"), day, related, contacts, channel, ts)


def form_view(cfg: Config, meeting: Meeting, values: dict | None = None, error: str | None = None) -> dict:
    """The log-it modal; ``values`` (a previous submission) are filled in again, ``error`` shown on top."""
    v = values or {}
    tax = cfg.taxonomy
    groups = [{"label": {"type": "plain_text", "text": cut(group, 75)},
               "options": [_option(t, t) for t in types]} for group, types in tax.activity_types.items()]  # fmt: skip
    types = {"type": "multi_static_select", "option_groups": groups, "placeholder": {"type": "plain_text", "text": "Choose"}}
    if v.get("activity_types"):
        types["initial_options"] = [_option(t, t) for t in v["activity_types"] if t in tax.all_activity_types]
    sentiment = {"type": "static_select", "options": [_option(s, s) for s in tax.sentiments]}
    if v.get("sentiment") in tax.sentiments:
        sentiment["initial_option"] = _option(v["sentiment"], v["sentiment"])
    persona = {"type": "multi_static_select", "options": [_option(p, p) for p in tax.persona_levels]}
    if v.get("persona_levels"):
        persona["initial_options"] = [_option(p, p) for p in v["persona_levels"] if p in tax.persona_levels]
    related = meeting.related or [(meeting.item.record_id, meeting.subject)]
    what = {"type": "static_select", "options": [_option(label, rid) for rid, label in related]}
    chosen = v.get("what_id", related[0][0] if meeting.related else None)
    first = next((o for o in what["options"] if o["value"] == chosen), None)
    if first:
        what["initial_option"] = first
    if meeting.contacts:
        who = {"type": "static_select", "options": [_option(label, cid) for cid, label in meeting.contacts]}
        picked = next((o for o in who["options"] if o["value"] == v.get("who_id")), None)
        if picked:
            who["initial_option"] = picked
    else:
        who = {"type": "plain_text_input", "placeholder": {"type": "plain_text", "text": "003…"}}
        if v.get("who_id"):
            who["initial_value"] = v["who_id"]
    subject = {"type": "plain_text_input", "max_length": 255, "initial_value": v.get("subject", meeting.subject)[:255]}
    description = {"type": "plain_text_input", "multiline": True, "max_length": 3000}
    if v.get("description"):
        description["initial_value"] = v["description"][:3000]
    blocks: list[dict] = []
    if error:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f":warning: *Salesforce did not save it:* {esc(error)}", 3000)}})
    blocks += [
        _input("types", "Activity types", types),
        _input("sentiment", "Sentiment", sentiment),
        _input("persona", "Persona levels", persona, "Optional if unknown"),
        _input("what", "Related to", what, f"{tax.ride_along_type}: the account"),
        _input("who", "Contact", who, "Among the meeting's attendees" if meeting.contacts else "The contact's Salesforce Id"),
        _input("subject", "Subject", subject),
        _input("description", "Description", description,
               f"{tax.other_type} needs {cfg.thresholds.other_min_chars} characters or more; "
               f"{tax.csp_type} needs a link to the plan"),
    ]  # fmt: skip
    meta = {"item": meeting.item.value(), "channel": meeting.channel, "ts": meeting.ts, "date": meeting.activity_date}
    return {"type": "modal", "callback_id": LOG_VIEW, "title": {"type": "plain_text", "text": "Log the meeting"},
            "submit": {"type": "plain_text", "text": "Log it"}, "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": json.dumps(meta), "blocks": blocks}  # fmt: skip


def note_view(title: str, text: str) -> dict:
    return {"type": "modal", "callback_id": LOG_VIEW, "title": {"type": "plain_text", "text": title[:24]},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}]}  # fmt: skip


def form_values(view: dict) -> dict:
    """The submitted form, by field: lists for the multi-selects, stripped text (None when blank)."""
    state = (view.get("state") or {}).get("values") or {}

    def element(block: str) -> dict:
        found = state.get(block) or {}
        return found.get(block) or next(iter(found.values()), {}) if isinstance(found, dict) else {}

    def text(block: str) -> str | None:
        e = element(block)
        value = e.get("value") if "value" in e else (e.get("selected_option") or {}).get("value")
        return value.strip() or None if isinstance(value, str) else None

    def many(block: str) -> list[str]:
        return [o.get("value") for o in element(block).get("selected_options") or [] if isinstance(o, dict)]

    return {"activity_types": many("types"), "sentiment": text("sentiment"), "persona_levels": many("persona"),
            "what_id": text("what"), "who_id": text("who"), "subject": text("subject"),
            "description": text("description")}  # fmt: skip


def validate(cfg: Config, form: dict) -> dict[str, str]:
    """{block id: message} of the act-fields rules the form breaks; empty when it may be saved.

    The rules are the act-fields workflow's expectations themselves, read from the
    configuration and applied to the form as one row of the ``activities`` frame, with the
    reasons' own wording; nothing is listed here a second time.
    """
    tax = cfg.taxonomy
    description = form.get("description")
    types = form.get("activity_types") or []
    row = {
        **form,
        "what_prefix": (form.get("what_id") or "")[:3],
        "who_prefix": (form.get("who_id") or "")[:3],
        "has_ride_along": tax.ride_along_type in types,
        "has_csp": tax.csp_type in types,
        "has_other": tax.other_type in types,
        "has_subject": form.get("subject") is not None,
        "has_description": description is not None,
        "has_who": form.get("who_id") is not None,
        "description_has_link": bool(re.search(r"https?://", description or "")),
        "description_length": len(description or ""),
        "created_in_window": True,
        "created_in_review_period": True,
    }
    params = cfg.params()
    frame = pd.DataFrame([{k: (v if not isinstance(v, list) else tuple(v)) for k, v in row.items()}])
    errors: dict[str, str] = {}
    if not types:
        # An SA activity is a Task with a type: without one, it is not an SA activity at all.
        errors["types"] = cfg.reasons.get("activity_type_missing", "choose at least one activity type")
    for e in cfg.workflows["act-fields"].expect:
        if e.when and not bool(frame.eval(e.when, local_dict=params, engine="python").iloc[0]):
            continue
        if not _meets(e, row.get(e.column), params):
            block = BLOCK_OF_COLUMN.get(e.column, "description")
            errors.setdefault(block, cfg.reasons.get(e.reason or "", e.reason or e.expectation))
    return errors


def _resolved(value: Any, params: dict) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return params[value[1:]]
    return value


def _meets(e, value: Any, params: dict) -> bool:
    """One expectation on one value, as the engine's GX expectations judge a row: set checks
    skip a blank value (``not_null`` is what refuses it), text checks count it as empty."""
    blank = value is None or (isinstance(value, str) and not value.strip())
    match e.expectation:
        case "not_null":
            return not blank
        case "in_set":
            return blank or value in _resolved(e.values, params)
        case "not_in_set":
            return blank or value not in _resolved(e.values, params)
        case "each_in_set":
            allowed = _resolved(e.values, params)
            return all(v in allowed for v in value or [])
        case "match_regex":
            return re.search(e.regex, value or "") is not None
        case "min_length":
            return len(value or "") >= float(_resolved(e.min, params))
    return True  # expectations that compare columns have nothing to compare in a form


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
    return {k: v for k, v in fields.items() if v is not None}


# --------------------------------------------------------------------------- one Task per form


metadata = MetaData()
submissions = Table(
    "slack_log_submissions",
    metadata,
    # Slack's view id: one modal, one Task, however often its submit button is pressed.
    Column("view_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # saving | done
    Column("task_id", String(18)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
COMPONENT = "slack_app"
WHAT = "the Slack app's submissions"


class Submissions:
    """Claims on modal views in the state database, so that each creates at most one Task."""

    def __init__(self, url: str):
        self.url = url
        self.engine = connect(url, WHAT)
        ensure_schema(self.engine, WHAT, COMPONENT, metadata, {})

    def _run(self, fn):
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"{WHAT} {safe_url(self.url)}: {reason(exc)}") from None

    def claim(self, view_id: str) -> bool:
        """True for the first claim of a view; False while another submission holds it or after it is done."""
        row = {"view_id": view_id, "status": "saving", "created_at": datetime.now(UTC)}
        return self._run(lambda c: insert_ignoring_conflicts(c, submissions, row)) == 1

    def release(self, view_id: str) -> None:
        """The Task was not created: the same form may be submitted again."""
        self._run(lambda c: c.execute(delete(submissions).where(submissions.c.view_id == view_id)))

    def done(self, view_id: str, task_id: str) -> None:
        self._run(lambda c: c.execute(update(submissions).where(submissions.c.view_id == view_id)
                                      .values(status="done", task_id=task_id)))  # fmt: skip

    def close(self) -> None:
        self.engine.dispose()


# --------------------------------------------------------------------------- Salesforce


class SalesforceRefused(RuntimeError):
    """Salesforce did not create the Task; the message is Salesforce's own, for the form."""


def salesforce_client(conn_id: str) -> Callable[[], Any]:
    """A simple-salesforce client through the provider's hook, made on first use and kept
    (simple-salesforce logs in again by itself when a REST call finds the session expired)."""
    lock = threading.Lock()
    client: list = []

    def get():
        with lock:
            if not client:
                from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

                client.append(SalesforceHook(salesforce_conn_id=conn_id).get_conn())
            return client[0]

    return get


def create_task(sf, fields: dict) -> str:
    """The new Task's Id; ``SalesforceRefused`` with Salesforce's message otherwise."""
    from simple_salesforce.exceptions import SalesforceError

    try:
        result = sf.Task.create(fields)
    except SalesforceError as exc:
        content = exc.content
        if isinstance(content, list) and content and isinstance(content[0], dict):
            raise SalesforceRefused(f"{content[0].get('errorCode', '')}: {content[0].get('message', '')}") from None
        raise SalesforceRefused(f"{type(exc).__name__} ({getattr(exc, 'status', '')})") from None
    except Exception as exc:  # the network: the form stays open and may be sent again
        raise SalesforceRefused(f"Salesforce could not be reached ({type(exc).__name__})") from None
    if not isinstance(result, dict) or not result.get("id"):
        raise SalesforceRefused(f"unexpected answer: {str(result)[:200]}")
    return result["id"]


# --------------------------------------------------------------------------- the app


@dataclass
class Services:
    """What the handlers use, made once per app; tests pass their own local servers' clients."""

    cfg: Config
    snapshot: Callable[[], Any]
    salesforce: Callable[[], Any]
    state_url: str
    today: Callable[[str | None], date] = lambda zone: datetime.now(ZoneInfo(zone or "UTC")).date()
    verifier: Any = field(default=None, repr=False)  # holds the signing secret
    executor: Any = None
    _emails: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    _channels: dict[str, str] = field(default_factory=dict)
    _submissions: Submissions | None = None

    @property
    def submissions(self) -> Submissions:
        if self._submissions is None:
            self._submissions = Submissions(self.state_url)
        return self._submissions

    def email_of(self, client, slack_user: str) -> str | None:
        """The e-mail Slack has for a user (``users.info``; needs ``users:read.email``), cached a while."""
        hit = self._emails.get(slack_user)
        if hit and time.monotonic() - hit[0] < USER_CACHE_SECONDS:
            return hit[1]
        from slack_sdk.errors import SlackApiError

        try:
            profile = (client.users_info(user=slack_user).get("user") or {}).get("profile") or {}
        except SlackApiError:
            return None
        email = profile.get("email") if isinstance(profile.get("email"), str) else None
        self._emails[slack_user] = (time.monotonic(), email)
        return email

    def channel_id(self, client, name: str) -> str | None:
        """A channel's id by name (``#sa-amer``), from ``conversations.list``."""
        name = name.lstrip("#")
        if name not in self._channels:
            cursor = None
            while True:
                page = client.conversations_list(exclude_archived=True, types="public_channel,private_channel",
                                                 limit=200, cursor=cursor)  # fmt: skip
                for c in page.get("channels") or []:
                    self._channels.setdefault(c.get("name"), c.get("id"))
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        return self._channels.get(name)


def _actor(svc: Services, client, body: dict):
    """(People, the clicking user as a Salesforce user or None)."""
    people = People(svc.snapshot()["User"])
    return people, people.by_email(svc.email_of(client, body["user"]["id"]))


def _refuse(client, body: dict, text: str) -> None:
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
    if channel:
        client.chat_postEphemeral(channel=channel, user=body["user"]["id"], text=text)


def _item_of(body: dict) -> Item:
    a = body["actions"][0]
    return decode_item((a.get("selected_option") or {}).get("value") if a["action_id"] == ITEM_MENU else a.get("value"))


REFUSAL = "That item is not yours: only the person it was sent to, or their manager, can act on it. Nothing was changed."


def _marked(blocks: list[dict], block_id: str | None, note: str, drop_actions: bool = False) -> list[dict]:
    """The message's blocks with ``note`` under the acted-on block and its menu removed."""
    out = []
    for b in blocks:
        if drop_actions and b.get("type") == "actions":
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
            continue
        if block_id and b.get("block_id") == block_id:
            b = {k: v for k, v in b.items() if k != "accessory"}
            if b.get("type") == "section" and isinstance((b.get("text") or {}).get("text"), str):
                b["text"] = {**b["text"], "text": cut(f"{b['text']['text']}\n{note}", 3000)}
        out.append(b)
    return out


def _ours_only_class():
    from slack_bolt import BoltResponse
    from slack_bolt.middleware import Middleware

    class OursOnly(Middleware):
        """After the signature check: a payload this app did not make is refused (400), unanswered.
        A class, not a function middleware: Bolt's argument injection reads the payload before a
        function middleware runs and fails on some malformed ones."""

        def process(self, *, req, resp, next):  # noqa: A002 - Bolt's name for it
            if req.body.get("type") in ("block_actions", "view_submission", "view_closed"):
                why = problem(req.body)
                if why:
                    log.warning("refused a Slack request: %s", why)
                    return BoltResponse(status=400, body=why)
            return next()

    return OursOnly


def build_app(cfg: Config, *, creds: Credentials | None = None, client=None, snapshot: Callable[[], Any] | None = None,
              salesforce: Callable[[], Any] | None = None, state_url: str | None = None):  # fmt: skip
    """The Bolt app. Credentials default to ``credentials(cfg.slack.conn_id)``; ``client`` (a
    ``slack_sdk.WebClient``), ``snapshot`` and ``salesforce`` default to the real ones."""
    from slack_bolt import App
    from slack_sdk import WebClient

    creds = creds or credentials(cfg.slack.conn_id)
    if client is None:
        client = WebClient(token=creds.token, **({"base_url": creds.base_url} if creds.base_url else {}))
    svc = Services(cfg, snapshot or LatestSnapshot(cfg), salesforce or salesforce_client(cfg.salesforce.conn_id),
                   state_url or cfg.state_url)  # fmt: skip
    # Listeners and their lazy work run here, after the answer; ``svc.executor.shutdown`` waits for them.
    svc.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sa-hygiene-slack")
    app = App(client=client, signing_secret=creds.signing_secret, request_verification_enabled=True,
              token_verification_enabled=False, process_before_response=False,
              listener_executor=svc.executor)  # fmt: skip
    from slack_sdk.signature import SignatureVerifier

    svc.verifier = SignatureVerifier(creds.signing_secret)  # v0 HMAC, five-minute window
    app.svc = svc  # for the HTTP route, tests and the CLI

    app.use(_ours_only_class()())

    def ack_now(ack):
        ack()

    # ------------------------------------------------------------------ snooze / not mine
    def act_on_item(body, client):
        item = _item_of(body)
        if item.kind == "open":
            return
        people, actor = _actor(svc, client, body)
        if actor is None or not people.may_act(actor, item.recipient):
            _refuse(client, body, REFUSAL)
            return
        recipient = people.by_id(item.recipient)
        until = svc.today(recipient.timezone if recipient else actor.timezone) + timedelta(days=SNOOZE_DAYS)
        slack_user = body["user"]["id"]
        if item.kind == "snooze":
            why = f"Snoozed from Slack by {actor.name}"
            note = f":zzz: <@{slack_user}> snoozed this until {until:%a %d %b %Y}."
        else:
            why = f"Not mine / wrong Primary SA, said {actor.name}"
            note = f":leftwards_arrow_with_hook: <@{slack_user}> says this is not theirs (wrong Primary SA); snoozed until {until:%a %d %b %Y} and reported."
            _tell_not_mine(svc, client, people, item, actor, slack_user)
        from sa_hygiene.state.alerts import open_state

        with open_state(cfg, svc.state_url) as state:
            state.snooze(item.workflow, item.record_id, until=until, reason=why, by=actor.email or actor.name)
        container = body.get("container") or {}
        message = body.get("message") or {}
        blocks = _marked(message.get("blocks") or [], (body["actions"][0] or {}).get("block_id"), note)
        client.chat_update(channel=container.get("channel_id"), ts=container.get("message_ts"),
                           text=message.get("text") or "SA hygiene", blocks=blocks)  # fmt: skip

    app.action(ITEM_MENU)(ack=ack_now, lazy=[act_on_item])
    app.action(OPEN_LINK)(ack_now)

    # ------------------------------------------------------------------ log it
    def open_form(body, client):
        item = _item_of(body)
        people, actor = _actor(svc, client, body)
        if actor is None or not people.may_act(actor, item.recipient):
            _refuse(client, body, REFUSAL)
            return
        container = body.get("container") or {}
        meeting = meeting_of(cfg, svc.snapshot(), item, container.get("channel_id") or "", container.get("message_ts") or "")
        client.views_open(trigger_id=body["trigger_id"], view=form_view(cfg, meeting))

    app.action(LOG_IT)(ack=ack_now, lazy=[open_form])

    def check_form(ack, body):
        """Before the answer: the act-fields rules (pure Python, no I/O); a valid form shows "saving"."""
        errors = validate(cfg, form_values(body["view"]))
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=note_view("Log the meeting", ":hourglass_flowing_sand: Saving it in Salesforce…"))

    def save_form(body, client):
        view = body["view"]
        form = form_values(view)
        if validate(cfg, form):
            return  # answered with the errors already
        if not svc.submissions.claim(view["id"]):
            return  # a second submit of the same form: the first one creates the Task
        meta = json.loads(view["private_metadata"])
        item = decode_item(meta["item"])
        people, actor = _actor(svc, client, body)
        if actor is None or not people.may_act(actor, item.recipient):
            svc.submissions.release(view["id"])
            client.views_update(view_id=view["id"], view=note_view("Not yours", REFUSAL))
            return
        meeting = meeting_of(cfg, svc.snapshot(), item, meta.get("channel") or "", meta.get("ts") or "")
        meeting.activity_date = meta.get("date") or meeting.activity_date
        try:
            task_id = create_task(svc.salesforce(), task_fields(cfg, item.recipient, meeting.activity_date, form))
        except SalesforceRefused as exc:
            svc.submissions.release(view["id"])
            client.views_update(view_id=view["id"], view=form_view(cfg, meeting, form, error=str(exc)))
            return
        svc.submissions.done(view["id"], task_id)
        url = record_url(cfg.salesforce.instance_url, "Task", task_id)
        link = f"<{url}|{cut(esc(form['subject']), 200)}>"
        client.views_update(view_id=view["id"], view=note_view("Logged", f":white_check_mark: Logged in Salesforce: {link}"))
        if meeting.channel and meeting.ts:
            slack_user = body["user"]["id"]
            client.chat_postMessage(channel=meeting.channel, thread_ts=meeting.ts,
                                    text=f":white_check_mark: <@{slack_user}> logged it: {link}")  # fmt: skip
            _mark_reminder_done(client, meeting, f":white_check_mark: Logged by <@{slack_user}>: {link}")

    app.view(LOG_VIEW)(ack=check_form, lazy=[save_form])
    app.view_closed(LOG_VIEW)(ack_now)
    return app


def _mark_reminder_done(client, meeting: Meeting, note: str) -> None:
    """The reminder loses its buttons and says it is logged (``conversations.history`` finds its blocks)."""
    found = client.conversations_history(channel=meeting.channel, latest=meeting.ts, inclusive=True, limit=1)
    message = next((m for m in found.get("messages") or [] if m.get("ts") == meeting.ts), None)
    if message is None:
        return
    blocks = _marked(message.get("blocks") or [], None, note, drop_actions=True)
    client.chat_update(channel=meeting.channel, ts=meeting.ts, text=message.get("text") or "Logged", blocks=blocks)


def _tell_not_mine(svc: Services, client, people: People, item: Item, actor: Person, slack_user: str) -> None:
    """Tell the item's regional channel and the operations channel that its Primary SA looks wrong."""
    from sa_hygiene.engine.routing import Directory

    cfg = svc.cfg
    directory = Directory(svc.snapshot()["User"], cfg)
    regional = directory.channel.get(item.recipient[:15], cfg.routing.unrouted_channel)
    url = record_url(cfg.salesforce.instance_url, "Opportunity" if item.record_id.startswith("006") else "Task", item.record_id)
    title = esc(cfg.workflows[item.workflow].title) if item.workflow in cfg.workflows else esc(item.workflow)
    text = (f":leftwards_arrow_with_hook: <@{slack_user}> ({esc(actor.name)}) says <{url}|this record> "
            f"({title}) is not theirs: the Primary SA looks wrong. Please reassign it in Salesforce.")  # fmt: skip
    for name in dict.fromkeys([regional, cfg.channels.operations]):
        channel = svc.channel_id(client, name)
        if channel:
            client.chat_postMessage(channel=channel, text=text)
        else:
            log.warning("not-mine note: no Slack channel %s", name)


# --------------------------------------------------------------------------- two ways in


def create_asgi_app(bolt_app=None, cfg: Config | None = None):
    """The HTTP endpoint: ``POST /events`` (Slack's Request URL for interactivity).

    The signature is checked first, before the body is parsed (401); a body that is no Slack
    payload is 400; Bolt then checks the signature again and dispatches. Bolt's sync ``App``
    runs in a worker thread, so a slow listener never blocks the api-server's event loop.
    """
    from fastapi import FastAPI
    from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response

    state: dict = {"app": bolt_app}
    lock = threading.Lock()

    def the_app():
        with lock:
            if state["app"] is None:
                from sa_hygiene.contract.config import load_config

                state["app"] = build_app(cfg or load_config())
            return state["app"]

    api = FastAPI(title="sa-hygiene Slack app", docs_url=None, redoc_url=None, openapi_url=None)

    async def events(request: Request) -> Response:
        app = await run_in_threadpool(the_app)
        raw = await request.body()
        try:
            body = raw.decode("utf-8")  # Slack signs UTF-8 text; anything else is no Slack request
        except UnicodeDecodeError:
            return Response(status_code=400, content="malformed payload")
        if not app.svc.verifier.is_valid_request(body, dict(request.headers)):
            return Response(status_code=401, content="invalid signature")
        try:
            bolt_request = to_bolt_request(request, raw)
        except ValueError:  # JSONDecodeError is a ValueError
            return Response(status_code=400, content="malformed payload")
        if not isinstance(bolt_request.body, dict):
            return Response(status_code=400, content="malformed payload")
        why = problem(bolt_request.body)
        if why:  # before Bolt, which itself stumbles on some malformed payloads (a 500)
            return Response(status_code=400, content=why)
        response = await run_in_threadpool(app.dispatch, bolt_request)
        return to_starlette_response(response)

    # A plain Starlette route: the handler reads the raw body itself (the signature covers its bytes).
    api.router.add_route("/events", events, methods=["POST"])
    return api


def run_socket_mode(cfg: Config) -> None:
    """Socket Mode: the same app over a WebSocket Slack opens to us (no public URL needed)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    creds = credentials(cfg.slack.conn_id)
    if not creds.app_token:
        raise SlackAppError("Socket Mode needs an app-level token: set SLACK_APP_TOKEN or 'app_token' in the connection's extra")
    SocketModeHandler(build_app(cfg, creds=creds), creds.app_token).start()
