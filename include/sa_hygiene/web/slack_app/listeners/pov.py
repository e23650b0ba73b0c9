"""Listeners of "Add a Proof of Value" and "Update a Proof of Value" and their modals (``pov.py``
holds the substance).

- **Add** is on a meeting reminder whose suggested record is an opportunity (``fix: [pov_add]``
  on wf-01) and on the ``/sa`` cards of opportunities; its value is the opportunity's Id. The
  opportunity's owner, its Primary SA, or anyone they report to may add one; the person adding it
  owns it. The opportunity may be changed in the modal (a search like the log form's Related To),
  and the one chosen is checked the same way.
- **Update** is on every DM item of the workflows whose ``fix`` names ``pov`` and on the ``/sa``
  cards of POVs; its value is the POV's Id. Its owner, or anyone they report to, may update it.

As with every form: the answer carries the rules' refusals (computed from the snapshot in memory,
no I/O) or a "saving" view; the write runs after the answer, once per view however often it is
submitted; Salesforce's refusal or an expired session it could not renew puts the form back with
Salesforce's words and everything typed. An update marks the item in its message and records the
fix as pending in the alert state (``alert_fixes``), so the next digest does not nag about it.
"""

from __future__ import annotations

import logging

from sa_hygiene.delivery.blockkit import ADD_POV, UPDATE_POV, cut, esc, is_salesforce_id, record_url
from sa_hygiene.source.salesforce import SalesforceError
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.web.slack_app import pov as pv
from sa_hygiene.web.slack_app import tech_eval as te
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import accept, clicked_message, is_opportunity_id
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once, tell_busy
from sa_hygiene.web.slack_app.listeners.suggestions import SUGGESTING_VIEWS
from sa_hygiene.web.slack_app.listeners.tech_eval import DB_DOWN, LOST, SLOW, mark_message, pending_fields
from sa_hygiene.web.slack_app.people import People, Person, Unidentified, actor, refuse
from sa_hygiene.web.slack_app.salesforce import SalesforceRefused, create, soql_literal
from sa_hygiene.web.slack_app.work import lane

log = logging.getLogger(__name__)

NOT_YOURS_OPP = ("Only the opportunity's owner or Primary SA, or someone they report to, can add a Proof of Value "
                 "to it from Slack. Nothing was changed.")  # fmt: skip
NOT_YOURS = ("Only the Proof of Value's owner, or someone they report to, can update it from Slack. "
             "Nothing was changed.")  # fmt: skip
NO_OPP = "That opportunity is not in the latest snapshot, so no Proof of Value can be added to it from Slack. Nothing was changed."
NO_POV = "That Proof of Value is not in the latest snapshot, so it cannot be updated from Slack. Nothing was changed."
NO_OBJECT = "This Salesforce org has no Proofs of Value. Nothing was changed."


def _meta_problem(body: dict, keys: dict) -> str | None:
    try:
        meta = pv.metadata(body["view"])
    except (ValueError, TypeError):
        return "malformed view"
    if not isinstance(meta, dict) or not all(check(meta.get(k)) for k, check in keys.items()):
        return "malformed view"
    return None


def _text_or_blank(value) -> bool:
    return isinstance(value, str) or value is None


def _button_problem(check):
    def problem(body: dict) -> str | None:
        value = body["actions"][0].get("value")
        return None if check(value) and body.get("trigger_id") else "malformed action value"

    return problem


# What a request to these listeners may carry (``items.problem`` runs these before any listener).
accept(
    actions={ADD_POV: _button_problem(is_opportunity_id), UPDATE_POV: _button_problem(is_salesforce_id)},
    views={
        pv.ADD_VIEW: lambda body: _meta_problem(body, {"owner": is_salesforce_id}),
        pv.UPDATE_VIEW: lambda body: _meta_problem(body, {"pov": is_salesforce_id, "channel": _text_or_blank,
                                                          "ts": _text_or_blank}),
    },
)  # fmt: skip
SUGGESTING_VIEWS.add(pv.ADD_VIEW)  # its Opportunity menu searches like the log form's Related To


def answer(ack, errors: dict[str, str], callback_id: str, saving: str) -> None:
    """A submission's answer: the refusals on their fields (the modal stays open with everything
    typed), else a view saying the write is under way."""
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack(response_action="update", view=pv.note_view(callback_id, "Proof of Value", f":hourglass_flowing_sand: {saving}"))


def register(app, backends: Backends) -> None:
    """The buttons' and the modals' listeners; ``backends``: what their work after the answer reaches."""
    cfg = backends.cfg

    def today(user_id: str | None):
        """The rules' date for a POV: today where its owner is, as their digest has it."""
        user = te._row(backends.snapshot(), "User", user_id)
        zone = user.iloc[0].get("timezone") if not user.empty else None
        return backends.today(zone if isinstance(zone, str) else None)

    def acting(body: dict, client, *holders: str | None) -> tuple[People, Person] | None:
        """(the people, the clicking user) when they may write a record ``holders`` hold, else None;
        ``Unidentified`` when Slack could not say who they are (they have been told)."""
        people, who = actor(backends, client, body)
        if who is None or not people.may_write(who, *holders):
            return None
        return people, who

    def claim(client, view: dict, form_back) -> bool | None:
        """Claim the view once (a double click or a retry writes once); None when the database is
        down (the form is back with why: an unclaimed write could happen twice)."""
        try:
            claimed = backends.submissions.claim(view["id"])
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            form_back(DB_DOWN)
            return None
        backends.state_ok()
        return claimed

    def done(client, view_id: str, record_id: str) -> None:
        try:
            backends.submissions.done(view_id, record_id)
        except DatabaseError as exc:
            backends.state_failed(client, exc)

    def link(record_id: str, name: str) -> str:
        return f"<{record_url(cfg.salesforce.instance_url, pv.POV, record_id)}|{cut(esc(name), 200)}>"

    # ------------------------------------------------------------------ Add a Proof of Value

    def open_add(body, client):
        """Open the Add modal on the button's opportunity, for its people."""
        snapshot = backends.snapshot()
        if pv.POV in snapshot.absent:
            refuse(client, body, NO_OBJECT)
            return
        opp = te.record_of(cfg, snapshot, body["actions"][0]["value"])
        if opp is None:
            refuse(client, body, NO_OPP)
            return
        try:
            found = acting(body, client, opp.owner_id, opp.values.get("sa"))
        except Unidentified:
            return
        if found is None:
            refuse(client, body, NOT_YOURS_OPP)
            return
        client.views_open(trigger_id=body["trigger_id"], view=pv.add_view(cfg, snapshot, found[1].id, {"opportunity_id": opp.id}))

    def add_refusals(owner: str, form: dict) -> dict[str, str]:
        """The Add form's refusals: the chosen opportunity must be one the owner may write, then the rules."""
        snapshot = backends.snapshot()
        opp = te.record_of(cfg, snapshot, form["opportunity_id"]) if form.get("opportunity_id") else None
        people = People(snapshot["User"])
        who = people.by_id(owner)
        if opp is not None and (who is None or not people.may_write(who, opp.owner_id, opp.values.get("sa"))):
            return {"opportunity_id": NOT_YOURS_OPP.replace(" Nothing was changed.", "")}
        return pv.add_refusals(cfg, snapshot, owner, form, today(owner))

    def check_add(ack, body):
        view = body["view"]
        form, owner = pv.form_values(view, pv.ADD_FIELDS), pv.metadata(view)["owner"]
        answer(ack, add_refusals(owner, form), pv.ADD_VIEW, "Creating it in Salesforce…")

    @lane("salesforce")
    def save_add(body, client):
        """Create the POV once per view, owned by the person who adds it."""
        view = body["view"]
        form, owner = pv.form_values(view, pv.ADD_FIELDS), pv.metadata(view)["owner"]
        snapshot = backends.snapshot()
        if add_refusals(owner, form):
            return  # answered already

        def form_back(error: str) -> None:
            client.views_update(view_id=view["id"], view=pv.add_view(cfg, snapshot, owner, form, error=error))

        claimed = claim(client, view, form_back)
        if not claimed:
            return  # the database is down (the form says so), or a second submit: the first one writes
        opp = te.record_of(cfg, snapshot, form["opportunity_id"])
        try:
            found = acting(body, client, opp.owner_id, opp.values.get("sa"))
        except Unidentified:
            backends.release(client, view["id"])
            return
        if found is None or found[1].key != owner[:15]:
            backends.release(client, view["id"])
            client.views_update(view_id=view["id"], view=pv.note_view(pv.ADD_VIEW, "Not yours", NOT_YOURS_OPP))
            return
        live = live_povs(found[1].id)
        refused = pv.add_refusals(cfg, pv.with_live_povs(snapshot, found[1].id, live), found[1].id, form, today(owner)) if live is not None else {}
        if refused:  # a POV made since the snapshot (a minute ago, from this form) counts toward the load
            backends.release(client, view["id"])
            form_back(" ".join(dict.fromkeys(refused.values())))
            return
        fields = pv.api_fields(cfg, pv.new_pov(cfg, snapshot, found[1].id, form, today(owner)))
        try:
            new_id = create(backends.salesforce, pv.POV, fields)
        except SalesforceRefused as exc:
            new_id = existing(fields) if exc.maybe_saved else None
            if new_id is None:
                backends.release(client, view["id"])
                form_back(LOST if exc.maybe_saved else str(exc))
                return
        done(client, view["id"], new_id)
        client.views_update(view_id=view["id"], view=pv.note_view(pv.ADD_VIEW, "Proof of Value", (
            f":white_check_mark: Created in Salesforce: {link(new_id, form['name'])}, {esc(fields[cfg.api_name(pv.POV, 'status')])}.")))  # fmt: skip

    def live_povs(owner_id: str) -> dict[str, str | None] | None:
        """{Id: status} of the POVs ``owner_id`` owns in Salesforce now; None when it cannot say
        (the creation that follows then says what Salesforce answers)."""
        status, owner = cfg.api_name(pv.POV, "status"), cfg.api_name(pv.POV, "owner_id")
        soql = f"SELECT Id, {status} FROM {pv.POV} WHERE {owner} = {soql_literal(owner_id)}"
        try:
            pages = list(backends.salesforce.pages(soql, what="read the POVs their owner runs now"))
        except SalesforceError:
            return None
        return {r["Id"]: r.get(status) for page in pages for r in page if r.get("Id")}

    def existing(fields: dict) -> str | None:
        """The POV a creation whose answer was lost left behind (same name, opportunity, owner and
        start), so that sending the form again never makes a second; None when there is none or
        Salesforce cannot say."""
        keys = [cfg.api_name(pv.POV, f) for f in ("name", "opportunity_id", "owner_id", "start_date")]
        date_field = cfg.api_name(pv.POV, "start_date")
        where = " AND ".join(f"{k} = {soql_literal(fields[k], k == date_field)}" for k in keys if fields.get(k))
        try:
            answer = backends.salesforce.query(f"SELECT Id FROM {pv.POV} WHERE {where} LIMIT 1", what="look up a POV the app may have created")
        except SalesforceError:
            return None
        records = answer.get("records") or []
        return records[0].get("Id") if records else None

    # ------------------------------------------------------------------ Update a Proof of Value

    def open_update(body, client):
        """Open the Update modal on the button's POV, pre-filled from the record, for its people."""
        pov_id = body["actions"][0]["value"]
        snapshot = backends.snapshot()
        pov = pv.pov_of(snapshot, pov_id, pending_fields(backends, pov_id)) if pv.POV in snapshot.tables else None
        if pov is None:
            refuse(client, body, NO_POV)
            return
        try:
            found = acting(body, client, pov.owner_id)
        except Unidentified:
            return
        if found is None:
            refuse(client, body, NOT_YOURS)
            return
        channel, ts = clicked_message(body)
        client.views_open(trigger_id=body["trigger_id"], view=pv.update_view(cfg, snapshot, pov, channel=channel, ts=ts))

    def check_update(ack, body):
        view = body["view"]
        form, meta = pv.form_values(view, pv.UPDATE_FIELDS), pv.metadata(view)
        snapshot = backends.snapshot()
        pov = pv.pov_of(snapshot, meta["pov"]) if pv.POV in snapshot.tables else None  # no I/O before the answer
        if pov is None:
            ack(response_action="update", view=pv.note_view(pv.UPDATE_VIEW, "Not saved", NO_POV))
            return
        answer(ack, pv.update_refusals(cfg, snapshot, pov, form, today(pov.owner_id)), pv.UPDATE_VIEW, "Saving it in Salesforce…")

    @lane("salesforce")
    def save_update(body, client):
        """Write the POV once per view, then say so in the modal, the message and the alert state."""
        view = body["view"]
        form, meta = pv.form_values(view, pv.UPDATE_FIELDS), pv.metadata(view)
        snapshot = backends.snapshot()
        pov = pv.pov_of(snapshot, meta["pov"], pending_fields(backends, meta["pov"])) if pv.POV in snapshot.tables else None
        if pov is None or pv.update_refusals(cfg, snapshot, pov, form, today(pov.owner_id)):
            return  # answered already

        def form_back(error: str) -> None:
            client.views_update(view_id=view["id"], view=pv.update_view(cfg, snapshot, pov, form, channel=meta.get("channel") or "",
                                                                        ts=meta.get("ts") or "", error=error))  # fmt: skip

        if not claim(client, view, form_back):
            return
        try:
            found = acting(body, client, pov.owner_id)
        except Unidentified:
            backends.release(client, view["id"])
            return
        if found is None:
            backends.release(client, view["id"])
            client.views_update(view_id=view["id"], view=pv.note_view(pv.UPDATE_VIEW, "Not yours", NOT_YOURS))
            return
        changed = pv.changes(pov, form)
        if not changed:
            backends.release(client, view["id"])
            client.views_update(view_id=view["id"], view=pv.note_view(pv.UPDATE_VIEW, "Nothing to change",
                                ":information_source: The form holds the record's own values: nothing was written."))  # fmt: skip
            return
        try:
            backends.salesforce.update(pv.POV, pov.id, pv.api_fields(cfg, changed))
        except SalesforceError as exc:
            backends.release(client, view["id"])
            form_back(f"{exc.code}: {exc.message or exc}" if exc.code else LOST)
            return
        done(client, view["id"], pov.id)
        who = found[1]
        note = f":white_check_mark: Saved in Salesforce: {link(pov.id, pov.name)}."
        if backends.record_fix(client, pv.fix_workflows(cfg), pov.id, who.name, {**pov.values, **changed}) is None:
            note += " (The app's database is unavailable: your next digest may still list it until the next snapshot.)"
        client.views_update(view_id=view["id"], view=pv.note_view(pv.UPDATE_VIEW, "Proof of Value", note))
        mark_message(client, meta, pov.id, f":white_check_mark: Proof of Value updated by {esc(who.name)}", UPDATE_POV)

    open_add.busy = open_update.busy = tell_busy
    save_add.busy = lambda body, client: client.views_update(view_id=body["view"]["id"], view=pv.note_view(pv.ADD_VIEW, "Not saved", SLOW))
    save_update.busy = lambda body, client: client.views_update(view_id=body["view"]["id"], view=pv.note_view(pv.UPDATE_VIEW, "Not saved", SLOW))
    app.action(ADD_POV)(ack=ack_at_once, lazy=[open_add])
    app.action(UPDATE_POV)(ack=ack_at_once, lazy=[open_update])
    app.view(pv.ADD_VIEW)(ack=check_add, lazy=[save_add])
    app.view(pv.UPDATE_VIEW)(ack=check_update, lazy=[save_update])
    app.view_closed(pv.ADD_VIEW)(ack_at_once)
    app.view_closed(pv.UPDATE_VIEW)(ack_at_once)
