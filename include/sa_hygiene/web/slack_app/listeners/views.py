"""Listeners of modals (Slack's ``view_submission`` and ``view_closed``): the log-it form.

A submission's answer is the one answer that carries content: the form's errors
(``response_action: errors``, computed before the answer without I/O), or a "saving" view.
The Task is created after the answer, once per view however often it is submitted, and the
view, the reminder and its thread then say where it is.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from sa_hygiene.delivery.blockkit import cut, esc, record_url
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import LOG_VIEW, accept, decode_item, item_view, not_sent
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once
from sa_hygiene.web.slack_app.log_form import Meeting, check, contact_fields, form_of, task_fields
from sa_hygiene.web.slack_app.people import REFUSAL, Unidentified, actor
from sa_hygiene.web.slack_app.records import record
from sa_hygiene.web.slack_app.salesforce import SalesforceRefused, create_contact, create_task, find_task
from sa_hygiene.web.slack_app.sent import refusal
from sa_hygiene.web.slack_app.views import form_values, form_view, marked, note_view
from sa_hygiene.web.slack_app.work import lane

DB_DOWN = ("The app's database is unavailable: nothing was saved, your form is kept. "
           "Please try again later; the operations channel has been told.")
LOST = ("Salesforce did not answer, so it may have saved it. Your form is kept: send it again and the app "
        "looks in Salesforce first, so the meeting is never logged twice.")
NO_ACCOUNT = ("A new contact is created on the account of Related To: choose an opportunity or an account there "
              "(nothing was saved, your form is kept).")
SLOW = "Salesforce is slow right now: your form is kept, nothing was saved. Please try again in a minute."

accept(views={LOG_VIEW: item_view})


def submitted(view: dict) -> tuple[dict, dict]:
    """(the form's values, its private metadata: the item, the reminder's place, the meeting's date)."""
    return form_values(view), json.loads(view["private_metadata"])


def errors_of(backends: Backends, view: dict) -> dict[str, str]:
    """What the log form's workflow flags in a submitted view, by block (empty: it may be saved)."""
    form, meta = submitted(view)
    return check(backends.cfg, form, decode_item(meta["item"]).recipient, meta.get("date") or None,
                 has_who="who" in meta.get("blocks", ["who"]))  # fmt: skip


def register(app, backends: Backends) -> None:
    """The view listeners of ``app``; ``backends``: what their work after the answer reaches."""
    cfg = backends.cfg

    def check_log_form(ack, body):
        """Before the answer: the form's workflow's rules (no I/O); a valid form shows "saving"."""
        errors = errors_of(backends, body["view"])
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=note_view("Log the meeting", ":hourglass_flowing_sand: Saving it in Salesforce…"))

    def form_back(body: dict, client, error: str, form: dict | None = None, created: tuple[str, str] | None = None) -> None:
        """The form again, everything typed kept (``form``: as the save left it), with ``error``
        above it; ``created``: a contact saved before the Task failed, now chosen in the form."""
        view = body["view"]
        typed, meta = submitted(view)
        meeting = form_of(backends.snapshot(), decode_item(meta["item"]), meta)
        if created:
            meeting.contacts.insert(0, created)
        client.views_update(view_id=view["id"], view=form_view(cfg, meeting, form or typed, error=error))

    def find(fields: dict) -> str | None:
        keys = [cfg.api_name("Task", f) for f in ("owner_id", "what_id", "who_id", "activity_date", "subject")]
        return find_task(backends.salesforce, fields, keys, cfg.api_name("Task", "activity_date"))

    def already(held: dict) -> dict:
        """What the second form for a meeting says: logged (with the link) or being logged."""
        if held["status"] == "done" and held.get("task_id"):
            url = record_url(cfg.salesforce.instance_url, "Task", held["task_id"])
            return note_view("Already logged", f":white_check_mark: This meeting is already logged in Salesforce: "
                                               f"<{url}|the Task>. Nothing was saved twice.")  # fmt: skip
        return note_view("Being logged", ":hourglass_flowing_sand: Someone is logging this meeting right now, "
                                         "so nothing was saved twice. Its reminder will show the link.")  # fmt: skip

    def keep(client, record, *args) -> None:
        """Record in the state database what already happened; if it fails now, the user still
        hears what happened and operations hear about the database."""
        try:
            record(*args)
        except DatabaseError as exc:
            backends.state_failed(client, exc)

    @lane("salesforce")
    def save_log_form(body, client):
        """Create the Task, once per view, and say where it is (or put the form back with Salesforce's message)."""
        view = body["view"]
        if errors_of(backends, view):
            return  # answered with the errors already
        try:
            claimed = backends.submissions.claim(view["id"])
        except DatabaseError as exc:  # no claim, no Task: a Task saved unclaimed could be saved twice
            backends.state_failed(client, exc)
            form_back(body, client, DB_DOWN)
            return
        backends.state_ok()
        if not claimed:
            return  # a second submit of the same form: the first one creates the Task
        form, meta = submitted(view)
        item = decode_item(meta["item"])
        try:
            people, who = actor(backends, client, body)
        except Unidentified:  # told already; the form may be sent again
            keep(client, backends.submissions.release, view["id"])
            return
        if who is None or not people.may_act(who, item.recipient):
            keep(client, backends.submissions.release, view["id"])
            client.views_update(view_id=view["id"], view=note_view("Not yours", REFUSAL))
            return
        why = not_sent(cfg, backends.snapshot(), item) or refusal(backends, client, item, meta.get("channel") or "",
                                                                  meta.get("ts") or "")  # fmt: skip
        if why:
            keep(client, backends.submissions.release, view["id"])
            client.views_update(view_id=view["id"], view=note_view("Not logged", why))
            return
        meeting = form_of(backends.snapshot(), item, meta)
        meeting.activity_date = form.get("activity_date") or meeting.activity_date
        new_contact = bool(form.get("new_name")) and not form.get("who_id")
        account = (found.account_id if (found := record(backends.snapshot(), form.get("what_id"))) else None)
        if new_contact and not account:
            keep(client, backends.submissions.release, view["id"])
            form_back(body, client, NO_ACCOUNT)
            return
        fields = task_fields(cfg, item.recipient, meeting.activity_date, form)
        try:
            # One Task per meeting; an activity without one is one Task per form (the view's claim).
            held = backends.submissions.claim_meeting(item.record_id, view["id"]) if item.kind == "log" else None
        except DatabaseError as exc:
            keep(client, backends.submissions.release, view["id"])
            backends.state_failed(client, exc)
            form_back(body, client, DB_DOWN)
            return
        if held is not None and held["status"] != "unsure":  # another form has or had this meeting
            keep(client, backends.submissions.release, view["id"])
            client.views_update(view_id=view["id"], view=already(held))
            return
        task_id = find(fields) if held is not None else None  # a lost answer before: look first
        created = None
        if task_id is None:
            try:
                if new_contact:
                    contact = contact_fields(cfg, form, account)
                    who_id = create_contact(backends.salesforce, contact, cfg.api_name("Contact", "email"),
                                            cfg.api_name("Contact", "account_id"))  # fmt: skip
                    created = (who_id, esc(form["new_name"]))
                    form = {**form, "who_id": who_id, "new_name": None, "new_email": None}
                    fields = task_fields(cfg, item.recipient, meeting.activity_date, form)
                task_id = create_task(backends.salesforce, fields)
            except SalesforceRefused as exc:
                task_id = find(fields) if exc.maybe_saved else None
                if task_id is None:
                    keep(client, backends.submissions.release, view["id"])
                    if item.kind != "log":
                        pass
                    elif exc.maybe_saved:
                        keep(client, backends.submissions.meeting, item.record_id, "unsure")
                    else:
                        keep(client, backends.submissions.release_meeting, item.record_id)
                    if created:
                        meeting.contacts.insert(0, created)
                    client.views_update(view_id=view["id"], view=form_view(cfg, meeting, form,
                                        error=LOST if exc.maybe_saved else str(exc)))  # fmt: skip
                    return
        keep(client, backends.submissions.done, view["id"], task_id)
        if item.kind == "log":
            keep(client, backends.submissions.meeting, item.record_id, "done", task_id)
        url = record_url(cfg.salesforce.instance_url, "Task", task_id)
        link = f"<{url}|{cut(esc(form['subject']), 200)}>"
        client.views_update(view_id=view["id"], view=note_view("Logged", f":white_check_mark: Logged in Salesforce: {link}"))
        if meeting.channel and meeting.ts:
            slack_user = body["user"]["id"]
            client.chat_postMessage(channel=meeting.channel, thread_ts=meeting.ts,
                                    text=f":white_check_mark: <@{slack_user}> logged it: {link}")  # fmt: skip
            at = datetime.now(ZoneInfo(who.timezone or "UTC")).strftime("%H:%M")
            mark_reminder_done(client, meeting, f":white_check_mark: Logged by {esc(who.name)} at {at} — {link}")

    save_log_form.busy = lambda body, client: form_back(body, client, SLOW)
    app.view(LOG_VIEW)(ack=check_log_form, lazy=[save_log_form])
    app.view_closed(LOG_VIEW)(ack_at_once)


def mark_reminder_done(client, meeting: Meeting, note: str) -> None:
    """The reminder loses its buttons and says it is logged (``conversations.history`` finds its blocks)."""
    found = client.conversations_history(channel=meeting.channel, latest=meeting.ts, inclusive=True, limit=1)
    message = next((m for m in found.get("messages") or [] if m.get("ts") == meeting.ts), None)
    if message is None:
        return
    blocks = marked(message.get("blocks") or [], None, note, drop_actions=True)
    client.chat_update(channel=meeting.channel, ts=meeting.ts, text=message.get("text") or "Logged", blocks=blocks)
