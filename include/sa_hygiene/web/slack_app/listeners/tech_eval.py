"""Listeners of the "Update tech evaluation" button and its modal (``tech_eval.py`` holds the
substance). The button is on every DM item of the workflows whose ``fix`` names ``tech_eval``, on
a meeting reminder whose suggested record is an opportunity, and on the ``/sa`` search's record
cards; its value is the opportunity's Id, so who may write is decided from the record itself:
its owner, its Primary SA, or anyone they report to, up the chain.

The submission's answer carries the rules' refusals (computed before the answer, from the
snapshot in memory: no I/O) or a "saving" view; the write runs after the answer, once per view
however often it is submitted (Slack's retries are answered by the route already). Salesforce's
refusal (a validation rule, an expired session it could not renew) puts the form back with
Salesforce's words and every value typed. A successful write marks the item in its message
("✓ updated by …") and records the fix as pending in the alert state, so that the fixer's next
digest does not nag about it; the next evaluation confirms or reopens it.
"""

from __future__ import annotations

import logging

from sa_hygiene.delivery.blockkit import UPDATE_TECH_EVAL, cut, esc, record_url
from sa_hygiene.source.salesforce import SalesforceError
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.web.slack_app import tech_eval as te
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import (
    TECH_EVAL_VIEW,
    accept,
    clicked_message,
    id_action,
    is_opportunity_id,
    view_meta,
)
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once, tell_busy
from sa_hygiene.web.slack_app.people import People, Person, Unidentified, actor, refuse
from sa_hygiene.web.slack_app.work import lane

log = logging.getLogger(__name__)

NOT_YOURS = ("Only the opportunity's owner or Primary SA, or someone they report to, can update its tech "
             "evaluation from Slack. Nothing was changed.")  # fmt: skip
NO_RECORD = "That opportunity is not in the latest snapshot, so it cannot be updated from Slack. Nothing was changed."
DB_DOWN = ("The app's database is unavailable: nothing was saved, your form is kept. "
           "Please try again later; the operations channel has been told.")  # fmt: skip
SLOW = "Salesforce is slow right now: your form is kept, nothing was saved. Please try again in a minute."
LOST = ("Salesforce did not answer, so it may have saved it. Your form is kept: sending it again writes the "
        "same values, never anything twice.")  # fmt: skip


def _view_problem(body: dict) -> str | None:
    """The modal carries the opportunity's Id and where its button was (``tech_eval.form_view``)."""
    meta = view_meta(body["view"])
    ok = meta is not None and is_opportunity_id(meta.get("opp"))
    return None if ok and all(isinstance(meta.get(k, ""), str) for k in ("channel", "ts")) else "malformed view"


# The button's value is an opportunity's Id, nothing more.
accept(actions={UPDATE_TECH_EVAL: id_action(is_opportunity_id)}, views={TECH_EVAL_VIEW: _view_problem})


def register(app, backends: Backends) -> None:
    """The button's and the modal's listeners; ``backends``: what their work after the answer reaches."""
    cfg = backends.cfg

    def writer(body: dict, client, record: te.Record) -> tuple[People, Person] | None:
        """(the people, the clicking user) when they may write ``record``, else None; ``Unidentified``
        when Slack could not say who they are (they have been told)."""
        people, who = actor(backends, client, body)
        if who is None or not people.may_write(who, record.owner_id, record.values.get("sa")):
            return None
        return people, who

    def open_form(body, client):
        """Open the modal for the button's opportunity, pre-filled from the record."""
        opp_id = body["actions"][0]["value"]
        record = te.record_of(cfg, backends.snapshot(), opp_id, pending_fields(backends, opp_id))
        if record is None:
            refuse(client, body, NO_RECORD)
            return
        try:
            acting = writer(body, client, record)
        except Unidentified:
            return
        if acting is None:
            refuse(client, body, NOT_YOURS)
            return
        channel, ts = clicked_message(body)
        view = te.form_view(cfg, record, actor_id=acting[1].id, channel=channel, ts=ts)
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def today(opp_id: str):
        """The rules' date for the record: today where its Primary SA (else its owner) is, as their digest has it."""
        snapshot = backends.snapshot()
        opp = te._row(snapshot, "Opportunity", opp_id)
        zone = None
        for f in ("sa", "owner_id"):
            holder = opp.iloc[0][f] if not opp.empty else None
            user = te._row(snapshot, "User", holder if isinstance(holder, str) else None)
            if not user.empty and isinstance(user.iloc[0].get("timezone"), str):
                zone = user.iloc[0]["timezone"]
                break
        return backends.today(zone)

    def check_form(ack, body):
        """Before the answer: the fix workflows' rules on the record as it will be (no I/O)."""
        view = body["view"]
        form, meta = te.form_values(view), te.metadata(view)
        if te.record_of(cfg, backends.snapshot(), meta["opp"]) is None:
            ack(response_action="update", view=te.note_view("Not saved", NO_RECORD))
            return
        errors = te.refusals(cfg, backends.snapshot(), meta["opp"], form, today(meta["opp"]))
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=te.note_view("Tech evaluation", ":hourglass_flowing_sand: Saving it in Salesforce…"))

    def form_back(body: dict, client, record: te.Record, error: str) -> None:
        """The form again, every value typed kept, with ``error`` above it."""
        view = body["view"]
        meta = te.metadata(view)
        client.views_update(view_id=view["id"], view=te.form_view(cfg, record, te.form_values(view), channel=meta.get("channel", ""),
                                                                  ts=meta.get("ts", ""), error=error))  # fmt: skip

    @lane("salesforce")
    def save_form(body, client):
        """Write the record once per view (or post the Chatter request), then say so everywhere."""
        view = body["view"]
        form, meta = te.form_values(view), te.metadata(view)
        opp_id = meta["opp"]
        snapshot = backends.snapshot()
        record = te.record_of(cfg, snapshot, opp_id, pending_fields(backends, opp_id))
        if record is None or te.refusals(cfg, snapshot, opp_id, form, today(opp_id)):
            return  # answered already
        try:
            claimed = backends.submissions.claim(view["id"])
        except DatabaseError as exc:  # no claim, no write: an unclaimed write could happen twice
            backends.state_failed(client, exc)
            form_back(body, client, record, DB_DOWN)
            return
        backends.state_ok()
        if not claimed:
            return  # a second submit of the same form: the first one writes
        try:
            acting = writer(body, client, record)
        except Unidentified:  # told already; the form may be sent again
            backends.release(client, view["id"])
            return
        if acting is None:
            backends.release(client, view["id"])
            client.views_update(view_id=view["id"], view=te.note_view("Not yours", NOT_YOURS))
            return
        people, who = acting
        changed = te.changes(cfg, record, form)
        if not changed:
            backends.release(client, view["id"])
            client.views_update(view_id=view["id"], view=te.note_view("Nothing to change",
                                ":information_source: The form holds the record's own values: nothing was written."))  # fmt: skip
            return
        if record.is_closed:
            ask_sales_support(body, client, record, changed, people, who)
            return
        try:
            backends.salesforce.update("Opportunity", record.id, te.api_fields(cfg, changed))
        except SalesforceError as exc:
            backends.release(client, view["id"])
            # Salesforce's own words (a validation rule, a session it would not renew); no answer at all: maybe saved.
            form_back(body, client, record, f"{exc.code}: {exc.message or exc}" if exc.code else LOST)
            return
        try:
            backends.submissions.done(view["id"], opp_id)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
        written = {**{f: record.values.get(f) for f in te.FIELDS}, **changed}
        pending = backends.record_fix(client, te.fix_workflows(cfg), record.id, who.name, written)
        url = record_url(cfg.salesforce.instance_url, "Opportunity", record.id)
        link = f"<{url}|{cut(esc(record.name), 200)}>"
        note = f":white_check_mark: Saved in Salesforce: {link}."
        if pending is None:
            note += " (The app's database is unavailable: your next digest may still list it until the next snapshot.)"
        client.views_update(view_id=view["id"], view=te.note_view("Tech evaluation", note))
        mark_message(client, meta, record.id, f":white_check_mark: Tech evaluation updated by {esc(who.name)}")

    def ask_sales_support(body, client, record: te.Record, changed: dict, people: People, who: Person) -> None:
        """A closed opportunity: the handbook's Chatter request, posted as a FeedItem on its feed;
        where the org refuses that, the text to copy and a link to the feed."""
        view = body["view"]
        meta = te.metadata(view)
        names = {uid[:15]: name for uid, name in record.sa_options}
        text = te.chatter_post(record, changed, names)
        url = record_url(cfg.salesforce.instance_url, "Opportunity", record.id)
        try:
            backends.salesforce.create("FeedItem", te.feed_item(record, text))
        except SalesforceError as exc:
            backends.release(client, view["id"])
            why = f"{exc.code}: {exc.message}" if exc.code else exc.message
            client.views_update(view_id=view["id"], view=te.note_view("Post it yourself", (
                f":warning: Salesforce did not take the Chatter post ({esc(cut(why, 300))}). Copy this into "
                f"<{url}|the opportunity's feed> (type the @ yourself):\n```{esc(text)}```")))  # fmt: skip
            return
        try:
            backends.submissions.done(view["id"], record.id)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
        client.views_update(view_id=view["id"], view=te.note_view("Asked Sales Support", (
            f":speech_balloon: Posted in <{url}|{cut(esc(record.name), 200)}>'s Chatter feed:\n>{esc(text)}")))  # fmt: skip
        mark_message(client, meta, record.id, f":speech_balloon: Sales Support asked in Chatter by {esc(who.name)}")

    open_form.busy = tell_busy
    save_form.busy = lambda body, client: client.views_update(view_id=body["view"]["id"], view=te.note_view("Not saved", SLOW))
    app.action(UPDATE_TECH_EVAL)(ack=ack_at_once, lazy=[open_form])
    app.view(TECH_EVAL_VIEW)(ack=check_form, lazy=[save_form])
    app.view_closed(TECH_EVAL_VIEW)(ack_at_once)


def pending_fields(backends: Backends, record_id: str) -> dict:
    """What this app wrote to the record since the snapshot (a form shows it, not the stale value)."""
    from sa_hygiene.state.alerts import key_of, open_state

    try:
        with open_state(backends.cfg, backends.state_url) as state:
            made = [f for (_, k), f in state.fixes().items() if k == key_of(record_id)]
    except DatabaseError:
        return {}
    latest = max(made, key=lambda f: f["fixed_at"], default=None)
    return latest["fields"] if latest else {}


def mark_message(client, meta: dict, record_id: str, note: str, action_id: str = UPDATE_TECH_EVAL) -> None:
    """The item in its message says what was done, in place (``chat.update``); the button goes."""
    channel, ts = meta.get("channel"), meta.get("ts")
    if not channel or not ts:
        return
    try:
        found = client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
        message = next((m for m in found.get("messages") or [] if m.get("ts") == ts), None)
        if message is None:
            return
        client.chat_update(channel=channel, ts=ts, text=message.get("text") or "SA hygiene",
                           blocks=marked_fixed(message.get("blocks") or [], record_id, note, action_id))  # fmt: skip
    except Exception as exc:  # the write is done and the modal says so: a stale message is no failure
        log.warning("%s: could not mark the message: %s", action_id, type(exc).__name__)


def marked_fixed(blocks: list[dict], record_id: str, note: str, action_id: str = UPDATE_TECH_EVAL) -> list[dict]:
    """The message's blocks with the record's fix buttons replaced by ``note``: a digest item's
    ``fix:<Id>`` block becomes the note; a reminder loses the button and gets the note under it."""
    out: list[dict] = []
    for b in blocks:
        if b.get("block_id") == f"fix:{record_id}":
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
            continue
        if b.get("type") == "actions":
            elements = [e for e in b.get("elements") or []
                        if not (e.get("action_id") == action_id and e.get("value") == record_id)]  # fmt: skip
            if len(elements) != len(b.get("elements") or []):
                if elements:
                    out.append({**b, "elements": elements})
                out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
                continue
        out.append(b)
    return out
