"""Slash commands and what their answers open (issue 23, "search and create from anywhere"):

- ``/sa <words>`` (the handbook's ``/rattle <search>``): record cards for the open opportunities
  and accounts whose names hold the words, from the latest snapshot with its changes, each with
  **Log activity** (the log form, opened on that record) and, on an opportunity, **Update tech
  evaluation** (``sa_update_tech_eval``, value the opportunity's Id: its modal is
  ``listeners/tech_eval.py``) and **Add a Proof of Value**; and cards for the Proofs of Value
  whose names hold the words, with **Update a Proof of Value** (``listeners/pov.py``);
- ``/sa-create``: **Log activity** (the form, Related To to search) and **Create contact**
  (name, e-mail, account: the handbook's "Creating a Contact").

Answers are ephemeral (only the person who typed the command sees them) and posted after the
acknowledgement. Only a Slack user known to Salesforce (by e-mail) gets cards; the buttons carry
that person as the item's recipient, and a click by anyone else is refused like any item's.
"""

from __future__ import annotations

import json
import logging

from sa_hygiene.delivery.blockkit import UPDATE_TECH_EVAL, cut, esc, record_url
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import (
    CONTACT_VIEW,
    CREATE_CONTACT,
    LOG_ACTIVITY,
    RELATED_TO,
    Item,
    accept,
    command_check,
    decode_item,
    item_action,
    item_of,
    item_view,
    not_sent,
)
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once
from sa_hygiene.web.slack_app.listeners.views import DB_DOWN
from sa_hygiene.web.slack_app.log_form import EMAIL, activity_of, contact_fields
from sa_hygiene.web.slack_app.people import REFUSAL, Unidentified, actor, refuse
from sa_hygiene.web.slack_app.pov import add_button, has_povs, pov_cards, search_povs
from sa_hygiene.web.slack_app.records import record, search
from sa_hygiene.web.slack_app.salesforce import SalesforceRefused, create_contact
from sa_hygiene.web.slack_app.views import _input, form_values, form_view, note_view
from sa_hygiene.web.slack_app.work import lane

log = logging.getLogger(__name__)

MAX_CARDS = 10
UNKNOWN = ("I could not find you in Salesforce by your Slack e-mail, so I cannot act for you. "
           "Please tell the SA hygiene operators.")  # fmt: skip

accept(commands={"/sa": command_check, "/sa-create": command_check}, views={CONTACT_VIEW: item_view},
       actions={LOG_ACTIVITY: item_action("act"), CREATE_CONTACT: item_action("contact")})  # fmt: skip


def _ephemeral(client, body: dict, text: str, blocks: list | None = None) -> None:
    client.chat_postEphemeral(channel=body["channel_id"], user=body["user_id"], text=text,
                              **({"blocks": blocks} if blocks else {}))  # fmt: skip


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict:
    b = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, "value": value}
    return {**b, "style": style} if style else b


def cards(cfg, found: list, user_id: str, povs: bool = False) -> list[dict]:
    """A card per record: its link, stage and account, Log activity, and Update tech evaluation
    on an opportunity, and Add a Proof of Value where the org has them (``povs``) (pure: records
    in, Block Kit out)."""
    blocks: list[dict] = []
    for f in found[:MAX_CARDS]:
        url = record_url(cfg.salesforce.instance_url, f.kind, f.id)
        detail = " · ".join(esc(x) for x in (f.kind, f.stage, f.account_name if f.kind == "Opportunity" else None) if x)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f"*<{url}|{esc(f.name)}>*\n{detail}", 3000)}})
        act = Item("act", cfg.slack.log_form_workflow, f.id, user_id, f.id).value()
        buttons = [_button("Log activity", LOG_ACTIVITY, act, "primary")]
        if f.kind == "Opportunity":
            buttons.append(_button("Update tech evaluation", UPDATE_TECH_EVAL, f.id))
            if povs:
                buttons.append(add_button(f.id))
        blocks.append({"type": "actions", "block_id": f"card:{f.id}", "elements": buttons})
    return blocks


def contact_view(item: Item, values: dict | None = None, error: str | None = None) -> dict:
    """The create-contact modal: name, e-mail, and the account (searched like Related To)."""
    v = values or {}
    account = {"type": "external_select", "action_id": RELATED_TO, "min_query_length": 0,
               "placeholder": {"type": "plain_text", "text": "Search accounts and opportunities"}}  # fmt: skip
    if v.get("what_id"):
        account["initial_option"] = {"text": {"type": "plain_text", "text": cut(v.get("what_label") or v["what_id"], 75)},
                                     "value": v["what_id"]}  # fmt: skip
    name = {"type": "plain_text_input", "max_length": 120, **({"initial_value": v["new_name"]} if v.get("new_name") else {})}
    email = {"type": "email_text_input", **({"initial_value": v["new_email"]} if v.get("new_email") else {})}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": cut(f":warning: {esc(error)}", 3000)}}] if error else []
    blocks += [_input("new_name", "Name", name), _input("new_email", "E-mail", email),
               _input("what", "Account", account, "The account, or one of its opportunities")]  # fmt: skip
    return {"type": "modal", "callback_id": CONTACT_VIEW, "title": {"type": "plain_text", "text": "Create a contact"},
            "submit": {"type": "plain_text", "text": "Create"}, "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": json.dumps({"item": item.value()}), "blocks": blocks}  # fmt: skip


def contact_errors(form: dict) -> dict[str, str]:
    errors = {}
    if not form.get("new_name"):
        errors["new_name"] = "The contact needs a name."
    if form.get("new_email") and not EMAIL.fullmatch(form["new_email"]):
        errors["new_email"] = "That is not an e-mail address."
    if not form.get("what_id"):
        errors["what"] = "Choose the contact's account."
    return errors


def register(app, backends: Backends) -> None:
    """The command listeners of ``app``, and the buttons and modal their answers open."""
    cfg = backends.cfg

    def who_asked(body: dict, client):
        """The Salesforce user who typed the command, or None (they have been told)."""
        as_action = {"type": "block_actions", "user": {"id": body["user_id"]}, "channel": {"id": body["channel_id"]}}
        try:
            _, who = actor(backends, client, as_action)
        except Unidentified:
            return None
        if who is None:
            _ephemeral(client, body, UNKNOWN)
        return who

    def search_records(body, client):
        """``/sa <words>``: record cards, ephemerally."""
        words = (body.get("text") or "").strip()
        if not words:
            _ephemeral(client, body, "Search opportunities and accounts: `/sa <words>`, e.g. `/sa acme`.")
            return
        who = who_asked(body, client)
        if who is None:
            return
        snapshot = backends.snapshot()
        found = search(snapshot, words, limit=MAX_CARDS)
        with_povs = has_povs(cfg, snapshot)
        povs = search_povs(cfg, snapshot, words, limit=MAX_CARDS) if with_povs else []  # POVs by name too
        if not found and not povs:
            _ephemeral(client, body, f"No open opportunity, account or Proof of Value matches “{esc(words[:100])}”.")
            return
        more = "" if len(found) <= MAX_CARDS else f" (the first {MAX_CARDS})"
        head = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Matches for “{esc(words[:100])}”{more}:"}]}
        blocks = [head, *cards(cfg, found, who.id, with_povs), *pov_cards(cfg, snapshot, povs)][:50]  # Slack's most blocks
        _ephemeral(client, body, f"Matches for {esc(words[:100])}", blocks)

    def offer_create(body, client):
        """``/sa-create``: Log activity and Create contact."""
        who = who_asked(body, client)
        if who is None:
            return
        wf = cfg.slack.log_form_workflow
        buttons = [_button("Log activity", LOG_ACTIVITY, Item("act", wf, who.id, who.id).value(), "primary"),
                   _button("Create contact", CREATE_CONTACT, Item("contact", wf, who.id, who.id).value())]  # fmt: skip
        _ephemeral(client, body, "Create in Salesforce", [
            {"type": "section", "text": {"type": "mrkdwn", "text": "What would you like to create in Salesforce?"}},
            {"type": "actions", "elements": buttons}])  # fmt: skip

    def open_modal(body, client):
        """Log activity (the log form on the card's record) or Create contact, for the card's owner."""
        item = item_of(body)
        why = not_sent(cfg, backends.snapshot(), item)
        if why:
            refuse(client, body, why)
            return
        try:
            people, who = actor(backends, client, body)
        except Unidentified:
            return
        if who is None or not people.may_act(who, item.recipient):
            refuse(client, body, REFUSAL)
            return
        if item.kind == "contact":
            client.views_open(trigger_id=body["trigger_id"], view=contact_view(item))
            return
        day = backends.today(who.timezone).isoformat()
        client.views_open(trigger_id=body["trigger_id"], view=form_view(cfg, activity_of(backends.snapshot(), item, day)))

    def check_contact(ack, body):
        errors = contact_errors(form_values(body["view"]))
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=note_view("Create a contact", ":hourglass_flowing_sand: Creating it in Salesforce…"))

    @lane("salesforce")
    def save_contact(body, client):
        view = body["view"]
        form = form_values(view)
        if contact_errors(form):
            return
        item = decode_item(json.loads(view["private_metadata"])["item"])  # checked by items.problem already
        try:
            people, who = actor(backends, client, body)
        except Unidentified:
            return
        if who is None or not people.may_act(who, item.recipient):
            client.views_update(view_id=view["id"], view=note_view("Not yours", REFUSAL))
            return
        found = record(backends.snapshot(), form["what_id"])
        if found is None or not found.account_id:
            client.views_update(view_id=view["id"], view=contact_view(item, form, "Choose an account, or an opportunity with one."))
            return
        try:
            if not backends.submissions.claim(view["id"]):
                return  # a second submit of the same form: the first one creates the contact
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            client.views_update(view_id=view["id"], view=contact_view(item, form, DB_DOWN))
            return
        try:
            contact_id = create_contact(backends.salesforce, contact_fields(cfg, form, found.account_id),
                                        cfg.api_name("Contact", "email"), cfg.api_name("Contact", "account_id"))  # fmt: skip
        except SalesforceRefused as exc:
            backends.submissions.release(view["id"])
            client.views_update(view_id=view["id"], view=contact_view(item, form, f"Salesforce did not save it: {exc}"))
            return
        backends.submissions.done(view["id"], contact_id)
        url = record_url(cfg.salesforce.instance_url, "Contact", contact_id)
        client.views_update(view_id=view["id"], view=note_view("Contact created", f":white_check_mark: Created in Salesforce: "
                                                                                   f"<{url}|{esc(form['new_name'])}>"))  # fmt: skip

    for fn in (search_records, offer_create, open_modal):
        fn.busy = lambda body, client: None  # nothing typed to keep; the log has it
    app.command("/sa")(ack=ack_at_once, lazy=[search_records])
    app.command("/sa-create")(ack=ack_at_once, lazy=[offer_create])
    app.action(LOG_ACTIVITY)(ack=ack_at_once, lazy=[open_modal])
    app.action(CREATE_CONTACT)(ack=ack_at_once, lazy=[open_modal])
    app.view(CONTACT_VIEW)(ack=check_contact, lazy=[save_contact])
    app.view_closed(CONTACT_VIEW)(ack_at_once)
