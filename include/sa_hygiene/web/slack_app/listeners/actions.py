"""Listeners of buttons and menus (Slack's ``block_actions``): a digest item's overflow menu
(snooze, not mine, open in Salesforce) and a meeting reminder's "Log it" button.

Each acknowledges at once; what it does (Slack and Salesforce calls, the state database)
runs as a Bolt lazy listener after the answer.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sa_hygiene.contract.schema import is_id_of
from sa_hygiene.delivery.blockkit import ITEM_MENU, LOG_IT, OPEN_LINK, esc, record_url
from sa_hygiene.delivery.digest import SNOOZE_DAYS
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import Item, accept, item_action, item_of, no_check, not_sent
from sa_hygiene.web.slack_app.log_form import meeting_of
from sa_hygiene.web.slack_app.people import REFUSAL, People, Person, Unidentified, actor, refuse
from sa_hygiene.web.slack_app.sent import refusal
from sa_hygiene.web.slack_app.views import form_view, marked

log = logging.getLogger(__name__)

NOT_SNOOZED = (":warning: Not snoozed: the app's database is unavailable, so nothing was changed. "
               "Please try again later; the operations channel has been told.")
BUSY = ":hourglass: The app is busy right now: nothing was changed. Please try again in a minute."

accept(actions={ITEM_MENU: item_action("snooze", "notmine", "open"), LOG_IT: item_action("log"), OPEN_LINK: no_check})


def ack_at_once(ack) -> None:
    ack()


def register(app, backends: Backends) -> None:
    """The action listeners of ``app``; ``backends``: what their work after the answer reaches."""
    cfg = backends.cfg

    def allowed(body: dict, client, item: Item) -> tuple[People, Person] | None:
        """(the snapshot's people, the clicking user) when ``item`` is one this app sent and theirs
        to act on; else None, and the user has been told why nothing happened."""
        container = body.get("container") or {}
        why = not_sent(user_alerts_of(cfg, backends, item), backends.snapshot(), item) or refusal(
            backends, client, item, container.get("channel_id") or "", container.get("message_ts") or "")
        if why:
            refuse(client, body, why)
            return None
        try:
            people, who = actor(backends, client, body)
        except Unidentified:
            return None
        if who is None or not people.may_act(who, item.recipient):
            refuse(client, body, REFUSAL)
            return None
        return people, who

    def snooze_or_not_mine(body, client):
        """Snooze the item, or say it is not the clicking user's (told to two channels, then snoozed)."""
        item = item_of(body)
        if item.kind == "open":
            return
        acting = allowed(body, client, item)
        if acting is None:
            return
        people, who = acting
        recipient = people.by_id(item.recipient)
        until = backends.today(recipient.timezone if recipient else who.timezone) + timedelta(days=SNOOZE_DAYS)
        slack_user = body["user"]["id"]
        why = f"Snoozed from Slack by {who.name}" if item.kind == "snooze" else f"Not mine / wrong Primary SA, said {who.name}"
        snoozed = snooze(backends, client, item, until, why, who.email or who.name)
        if item.kind == "snooze":
            if not snoozed:
                refuse(client, body, NOT_SNOOZED)
                return
            note = f":zzz: <@{slack_user}> snoozed this until {until:%a %d %b %Y}."
        else:
            tell_not_mine(backends, client, item, who, slack_user)
            note = (f":leftwards_arrow_with_hook: <@{slack_user}> says this is not theirs (wrong Primary SA); "
                    + (f"snoozed until {until:%a %d %b %Y} and reported." if snoozed else
                       "reported, but *not snoozed* (the app's database is unavailable): it may come back in the next digest."))  # fmt: skip
        container = body.get("container") or {}
        message = body.get("message") or {}
        blocks = marked(message.get("blocks") or [], (body["actions"][0] or {}).get("block_id"), note)
        client.chat_update(channel=container.get("channel_id"), ts=container.get("message_ts"),
                           text=message.get("text") or "SA hygiene", blocks=blocks)  # fmt: skip

    def open_log_form(body, client):
        """Open the log-it modal for the reminder's meeting."""
        item = item_of(body)
        acting = allowed(body, client, item)
        if acting is None:
            return
        people, who = acting
        container = body.get("container") or {}
        meeting = meeting_of(backends.snapshot(), item, container.get("channel_id") or "", container.get("message_ts") or "")
        client.views_open(trigger_id=body["trigger_id"], view=form_view(cfg, meeting))

    snooze_or_not_mine.busy = open_log_form.busy = tell_busy
    app.action(ITEM_MENU)(ack=ack_at_once, lazy=[snooze_or_not_mine])
    app.action(OPEN_LINK)(ack_at_once)  # the link opens in the browser: nothing to do
    app.action(LOG_IT)(ack=ack_at_once, lazy=[open_log_form])


def user_alerts_of(cfg, backends: Backends, item: Item):
    """The configuration with the stored user alerts when ``item`` is one of theirs (``ua-…``):
    their items are snoozed like any other."""
    from sa_hygiene.contract.user_alerts import ID_PREFIX

    if not item.workflow.startswith(ID_PREFIX) or item.workflow in cfg.workflows:
        return cfg
    from sa_hygiene.engine.user_alerts import rendering_config

    return rendering_config(cfg, backends.state_url)


def snooze(backends: Backends, client, item: Item, until, why: str, by: str) -> bool:
    """Snooze ``item`` in the alert state; False when its database failed (operations told once)."""
    from sa_hygiene.state.alerts import open_state
    from sa_hygiene.state.db import DatabaseError

    try:
        with open_state(backends.cfg, backends.state_url) as state:
            state.snooze(item.workflow, item.record_id, until=until, reason=why, by=by)
    except DatabaseError as exc:
        backends.state_failed(client, exc)
        return False
    backends.state_ok()
    return True


def tell_busy(body: dict, client) -> None:
    """When the work of a click cannot even be queued: the clicking user hears so, nothing changed."""
    refuse(client, body, BUSY)


def tell_not_mine(backends: Backends, client, item: Item, who: Person, slack_user: str) -> None:
    """Tell the item's regional channel and the operations channel that its Primary SA looks wrong."""
    from sa_hygiene.engine.routing import Directory

    cfg = backends.cfg
    directory = Directory(backends.snapshot()["User"], cfg)
    regional = directory.channel.get(item.recipient[:15], cfg.routing.unrouted_channel)
    url = record_url(cfg.salesforce.instance_url, "Opportunity" if is_id_of("Opportunity", item.record_id) else "Task", item.record_id)
    title = esc(cfg.workflows[item.workflow].title) if item.workflow in cfg.workflows else esc(item.workflow)
    text = (f":leftwards_arrow_with_hook: <@{slack_user}> ({esc(who.name)}) says <{url}|this record> "
            f"({title}) is not theirs: the Primary SA looks wrong. Please reassign it in Salesforce.")  # fmt: skip
    for name in dict.fromkeys([regional, cfg.channels.operations]):
        channel = backends.slack.channel_id(client, name)
        if channel:
            client.chat_postMessage(channel=channel, text=text)
        else:
            log.warning("not-mine note: no Slack channel %s", name)

