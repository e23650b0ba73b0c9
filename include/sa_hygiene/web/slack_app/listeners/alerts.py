"""``/sa-alert``: a person makes their own alert, sees what it would have sent, and saves it.

- ``/sa-alert``: the form (``alert_views.form_view``). Its submission is read before the answer
  (no I/O: a choice the form cannot read is an error under its block); the answer is a progress
  view, and after it the person is identified, the alert compiled (the configuration checker's
  refusal shown on the form, everything typed kept) and backtested over the stored snapshots of
  the last 30 days with the progress updated as it goes (``views.update``). The result shows
  messages per day, to whom, three example records with links, and Save: one click.
- Save: stored in the state database (``state.user_alerts``), within the per-person limit; an
  alert whose backtest sent more than the daily limit on any day has no Save (refused, said why).
- ``/sa-alert list``: the person's alerts, and a manager's team's, with pause / resume and delete.

A channel delivery is allowed only to a public channel the person is in (``conversations.info``,
``conversations.members``; the manifest's ``channels:read``).
"""

from __future__ import annotations

import json
import logging

from sa_hygiene.contract.user_alerts import ID_PREFIX, AlertDraftError, compile_alert, parse_alert
from sa_hygiene.engine.backtest import BacktestError, draft_config, plan, run_backtest, stored_snapshots
from sa_hygiene.engine.user_alerts import audiences
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.state.user_alerts import LimitReached, UserAlerts
from sa_hygiene.web.slack_app.alert_views import (
    ALERT_VIEW,
    DELETE_ALERT,
    LIST_VIEW,
    SAVE_ALERT,
    TOGGLE_ALERT,
    alert_spec,
    form_values,
    form_view,
    list_view,
    note_view,
    progress_view,
    result_view,
)
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import accept
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once
from sa_hygiene.web.slack_app.people import People, Person, Unidentified, actor

log = logging.getLogger(__name__)

COMMAND = "/sa-alert"
DAYS = 30
PROGRESS_EVERY = 5  # days between two progress updates (Slack rate-limits views.update)
UNKNOWN = "Your Slack e-mail matches no active Salesforce user: alerts are made by Salesforce users. Nothing was saved."
DB_DOWN = "The app's database is unavailable: nothing was saved. Please try again later."


def _meta(body: dict) -> dict:
    try:
        meta = json.loads((body.get("view") or {}).get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _view_problem(body: dict) -> str | None:
    return None if _meta(body).get("step") in ("form", "result", "note", "list") else "malformed view"


def _save_problem(body: dict) -> str | None:
    view = body.get("view")
    if not isinstance(view, dict) or view.get("callback_id") != ALERT_VIEW or not view.get("id"):
        return "malformed block action"
    spec = _meta(body).get("spec")
    return None if _meta(body).get("step") == "result" and isinstance(spec, dict) else "malformed view"


def _manage_problem(body: dict) -> str | None:
    view = body.get("view")
    if not isinstance(view, dict) or view.get("callback_id") != LIST_VIEW or not view.get("id"):
        return "malformed block action"
    kind, _, alert_id = str(body["actions"][0].get("value") or "").partition("|")
    ok = kind in ("pause", "resume", "delete") and alert_id.isalnum() and len(alert_id) <= 32
    return None if ok else "malformed action value"


def _command_problem(body: dict) -> str | None:
    return None if body.get("user_id") and body.get("trigger_id") else "malformed command"


accept(views={ALERT_VIEW: _view_problem, LIST_VIEW: _view_problem}, commands={COMMAND: _command_problem},
       actions={SAVE_ALERT: _save_problem, TOGGLE_ALERT: _manage_problem, DELETE_ALERT: _manage_problem})  # fmt: skip


def register(app, backends: Backends) -> None:
    """``/sa-alert`` and its modals' listeners."""
    cfg = backends.cfg

    def who_is(client, body) -> tuple[People, Person | None]:
        if "user" not in body and body.get("user_id"):  # a slash command says user_id
            body = {**body, "user": {"id": body["user_id"]}, "channel": {"id": body.get("channel_id")}}
        try:
            return actor(backends, client, body)
        except Unidentified:
            return People(backends.snapshot()["User"]), None

    def team_of(people: People, me: Person) -> list[str]:
        """Me and everyone below me, every level (a manager sees their team's alerts)."""
        who = audiences(backends.snapshot(), cfg, {me.id})[me.id]
        return [me.id, *who.team]

    def may_post(client, name: str, slack_user: str) -> None:
        """A channel delivery goes only to a public channel the person is in (AlertDraftError if not)."""
        channel = backends.slack.channel_id(client, name)
        info = client.conversations_info(channel=channel)["channel"] if channel else None
        if info is None or info.get("is_private") or info.get("is_im"):
            raise AlertDraftError(f"channel: {name} is no public channel: pick one you are in")
        members, cursor = set(), None
        while True:
            page = client.conversations_members(channel=channel, limit=1000, cursor=cursor)
            members.update(page.get("members") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        if slack_user not in members:
            raise AlertDraftError(f"channel: you are not in {name}: an alert posts only where you may")

    def open_command(body, client):
        """``/sa-alert`` opens the form; ``/sa-alert list`` the list."""
        if (body.get("text") or "").strip().lower() == "list":
            people, me = who_is(client, body)
            if me is None:
                client.views_open(trigger_id=body["trigger_id"], view=note_view("Your alerts", UNKNOWN, LIST_VIEW))
                return
            client.views_open(trigger_id=body["trigger_id"], view=my_list(people, me))
            return
        client.views_open(trigger_id=body["trigger_id"], view=form_view())

    def my_list(people: People, me: Person) -> dict:
        names = {k: p.name for k, p in people._by_key.items()}
        with UserAlerts(backends.state_url) as store:
            alerts = store.list(owners=_spellings(team_of(people, me)))
        return list_view(alerts, names, me.id)

    def check_form(ack, body):
        """Before the answer, no I/O: a form that cannot be read shows its errors; else "trying it"."""
        if _meta(body).get("step") != "form":
            ack()
            return
        try:
            alert_spec(form_values(body["view"]))
        except AlertDraftError as exc:
            block, _, why = str(exc).partition(": ")
            ack(response_action="errors", errors={block if block in _BLOCKS else "name": why or str(exc)})
            return
        ack(response_action="update", view=progress_view(0, DAYS))

    def try_alert(body, client):
        """After the answer: identify, compile, backtest with progress, show the result."""
        if _meta(body).get("step") != "form":
            return
        view_id = body["view"]["id"]
        values = form_values(body["view"])
        people, me = who_is(client, body)
        if me is None:
            client.views_update(view_id=view_id, view=note_view("Not saved", UNKNOWN))
            return
        spec = alert_spec(values, owner=me.id)
        try:
            alert = parse_alert(spec)
            who = audiences(backends.snapshot(), cfg, {me.id})
            merged, _ = compile_alert(alert, cfg, who[me.id], ID_PREFIX + "draft")
            if alert.delivery == "channel":
                may_post(client, alert.channel or "", body["user"]["id"])
            days = plan(stored_snapshots(cfg), DAYS)
        except (AlertDraftError, BacktestError) as exc:
            client.views_update(view_id=view_id, view=form_view(values, error=str(exc)))
            return

        def progress(done: int, total: int, _day) -> None:
            if done and done % PROGRESS_EVERY == 0:
                client.views_update(view_id=view_id, view=progress_view(done, total))

        results = list(run_backtest(draft_config(merged, [ID_PREFIX + "draft"]), days, progress))
        cap = cfg.user_alerts.max_messages_per_day
        busiest = max((d.messages for d in results), default=0)
        # The per-alert count: "DM now" sends one message per record, digests one per recipient.
        per_day = max((len(d.lines) if alert.delivery == "dm_now" else d.messages for d in results), default=0)
        refused = (f"It would have sent {max(per_day, busiest)} messages on its busiest day, more than the "
                   f"{cap} a day an alert may send: narrow it and try again.") if max(per_day, busiest) > cap else None  # fmt: skip
        names = {k: p.name for k, p in people._by_key.items()}
        client.views_update(view_id=view_id, view=result_view(spec, results, days.skipped, cfg.salesforce.instance_url,
                                                              refused, names))  # fmt: skip

    def save(body, client):
        view_id = body["view"]["id"]
        spec = _meta(body)["spec"]
        _, me = who_is(client, body)
        if me is None or spec.get("owner", "")[:15] != me.key:
            client.views_update(view_id=view_id, view=note_view("Not saved", UNKNOWN if me is None else
                                                                "This alert was tried by someone else. Nothing was saved."))  # fmt: skip
            return
        try:
            parse_alert(spec)
            with UserAlerts(backends.state_url) as store:
                store.add(me.id, spec["name"], spec, cfg.user_alerts.max_per_user)
        except (AlertDraftError, LimitReached) as exc:
            client.views_update(view_id=view_id, view=note_view("Not saved", f":no_entry: {exc}. Nothing was saved."))
            return
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            client.views_update(view_id=view_id, view=note_view("Not saved", DB_DOWN))
            return
        client.views_update(view_id=view_id, view=note_view("Saved", f":white_check_mark: *{spec['name']}* is on. "
                                                            "`/sa-alert list` pauses or deletes it."))  # fmt: skip

    def manage(body, client):
        view_id = body["view"]["id"]
        kind, _, alert_id = body["actions"][0]["value"].partition("|")
        people, me = who_is(client, body)
        if me is None:
            client.views_update(view_id=view_id, view=note_view("Your alerts", UNKNOWN, LIST_VIEW))
            return
        try:
            with UserAlerts(backends.state_url) as store:
                alert = store.get(alert_id)
                if alert is None or alert.owner[:15] not in {k[:15] for k in team_of(people, me)}:
                    client.views_update(view_id=view_id, view=note_view(
                        "Your alerts", "That alert is not yours or your team's (or is gone). Nothing was changed.", LIST_VIEW))  # fmt: skip
                    return
                if kind == "delete":
                    store.delete(alert_id)
                elif kind == "pause":
                    store.pause(alert_id, f"paused by {me.name}", notify=False)
                else:
                    store.resume(alert_id)
            client.views_update(view_id=view_id, view=my_list(people, me))
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            client.views_update(view_id=view_id, view=note_view("Your alerts", DB_DOWN, LIST_VIEW))

    app.command(COMMAND)(ack=ack_at_once, lazy=[open_command])
    app.view(ALERT_VIEW)(ack=check_form, lazy=[try_alert])
    app.view(LIST_VIEW)(ack_at_once)
    app.view_closed(ALERT_VIEW)(ack_at_once)
    app.view_closed(LIST_VIEW)(ack_at_once)
    app.action(SAVE_ALERT)(ack=ack_at_once, lazy=[save])
    app.action(TOGGLE_ALERT)(ack=ack_at_once, lazy=[manage])
    app.action(DELETE_ALERT)(ack=ack_at_once, lazy=[manage])


_BLOCKS = {"name", "field", "trigger", "value", "scope", "delivery", "channel"}


def _spellings(ids: list[str]) -> list[str]:
    """Each User Id as stored: 18 characters, and its 15-character key."""
    return list(dict.fromkeys(s for i in ids for s in (i, i[:15])))
