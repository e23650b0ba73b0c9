"""The org the Slack app's tests act on, and the requests Slack would send it.

Every request goes through the same route Slack reaches (``POST /events``), signed the way
Slack signs (v0 HMAC-SHA256 over ``v0:timestamp:body``). The app's slow work runs after its
answer, so tests wait for its effects (``eventually``) and then also check that nothing else
happened. The fixtures serving the app are in ``tests/sa_hygiene/web/slack_app/conftest.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import date
from urllib.parse import urlencode

from builders import account, contact, event, opportunity, user
from fakes.slack import FakeSlack

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.blockkit import ITEM_MENU, LOG_IT
from sa_hygiene.delivery.digest import Renderer, reminder_key
from sa_hygiene.delivery.items import DigestRecords
from sa_hygiene.state.alerts import AlertState
from sa_hygiene.web.slack_app.items import Item

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SF_CONN = "sf_slack_app_test"
TODAY = date(2026, 11, 24)

SAM = user(name="Sam Architect", email="sam@gitlab.com")
MIA = user(name="Mia Manager", email="mia@gitlab.com", role_type="SA Manager")
EVE = user(name="Eve Other", email="eve@gitlab.com")
SAM["manager_id"] = MIA["id"]
ACME = account(name="Acme <Corp>")
OPP = opportunity(name="Acme - Ultimate", account_id=ACME["id"], owner_id=EVE["id"], sa=SAM["id"], stage="3-Technical Evaluation")
PAT = contact(name="Pat Customer", email="pat@acme.com", account_id=ACME["id"])
MEETING = event(owner_id=SAM["id"], subject="Acme demo", attendee_emails="pat@acme.com;sam@gitlab.com",
                start="2026-11-23T15:00:00Z", end="2026-11-23T16:00:00Z")  # fmt: skip
GLOBEX = account(name="Globex")
EVES_OPP = opportunity(name="Globex - Premium", account_id=GLOBEX["id"], owner_id=EVE["id"], sa=EVE["id"],
                       stage="3-Technical Evaluation")  # fmt: skip
EVES_MEETING = event(owner_id=EVE["id"], subject="Globex sync", start="2026-11-23T17:00:00Z", end="2026-11-23T17:30:00Z")
KIM = contact(name="Kim Buyer", email="kim@acme.com", account_id=ACME["id"])  # Acme's, not at the meeting
ORG = {"User": [SAM, MIA, EVE], "Account": [ACME, GLOBEX], "Opportunity": [OPP, EVES_OPP], "Contact": [PAT, KIM],
       "Event": [MEETING, EVES_MEETING]}  # fmt: skip

ITEM = Item("snooze", "wf-07", OPP["id"], SAM["id"])
LOG = Item("log", "wf-01", MEETING["id"], SAM["id"], OPP["id"])
REMINDER = {"workflow": "wf-01", "object": "Event", "record_id": MEETING["id"], "recipient": {"type": "user", "id": SAM["id"]},
            "suggested_what_id": OPP["id"]}  # fmt: skip

SNAPSHOT: list = []  # the snapshot the app reads (the ``snapshot`` fixture sets it)
STATE: list = []  # the app's state database, also its delivery ledger (the ``state_url`` fixture sets it)


_SIGNED: set[tuple[str, int]] = set()


def signed(body: str, secret: str = SECRET, ts: int | None = None) -> dict:
    """Slack's headers for ``body``. Slack signs each delivery at its own second, so the same
    body sent twice by a test is signed at two (a second earlier each time): never a replay."""
    if ts is None:
        ts = int(time.time())
        while (body, ts) in _SIGNED:
            ts -= 1
        _SIGNED.add((body, ts))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip


def send(http, payload: dict, **sign):
    body = urlencode({"payload": json.dumps(payload)})
    return http.post("/events", content=body, headers=signed(body, **sign))


def eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "the app's work after the answer never happened"
        time.sleep(0.05)


def post_digest(slack: FakeSlack, channel: str, item: Item) -> dict:
    """A DM digest with one item, with the menu the digest renderer gives it; the stored message."""
    slack.add_channel(channel, channel) if channel not in slack.channels else None
    renderer = Renderer(load_config(), DigestRecords(SNAPSHOT[0], load_config()), TODAY)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "*Acme - Ultimate*"}}
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "Your SA hygiene digest"}},
              renderer.with_menu(section, item.workflow, "Opportunity", item.record_id, item.recipient)]  # fmt: skip
    answer = slack._post({"channel": channel, "text": "digest", "blocks": blocks})
    record_sent(answer["message"], channel, f"sa_digest|user:{item.recipient}|{TODAY}",
                [(item.workflow, item.record_id, item.recipient)])  # fmt: skip
    return answer["message"]


def record_sent(message: dict, channel: str, key: str, episodes: list[tuple[str, str, str]] = ()) -> None:
    """What delivery records when it posts ``message``: its ledger row (``key``, the channel,
    the ts) and the episodes (workflow, record Id, recipient User Id) of its items, which is how
    the app knows what it sent to whom. Nothing when the test's database is down."""
    from sqlalchemy import insert

    from sa_hygiene.state.alerts import episodes as table
    from sa_hygiene.state.db import DatabaseError
    from sa_hygiene.state.ledger import Ledger

    if not STATE:
        return
    try:
        ledger, workspace = Ledger(STATE[0]), f"slack:{message['ts']}"  # a reminder posted twice: two rows
        if ledger.claim(workspace, key, 0, owner="test", run_id="test").outcome == "claimed":  # else recorded already
            target = {"type": "channel", "name": channel}
            ledger.mark_pending(workspace, key, 0, owner="test", target=target, channel=channel)
            ledger.mark_sent(workspace, key, 0, ts=message["ts"])
        ledger.close()
        with AlertState(STATE[0]) as state, state.engine.begin() as conn:
            for workflow, record_id, recipient in episodes:
                conn.execute(insert(table).values(
                    workflow=workflow, record_key=record_id[:15], object="Opportunity", record_id=record_id,
                    first_seen=TODAY, last_seen=TODAY, recipients=json.dumps([f"user:{recipient}"])))  # fmt: skip
    except DatabaseError:
        pass


def menu_click(slack_user: str, channel: str, message: dict, item: Item) -> dict:
    """The click Slack sends for ``item``'s option of the message's menu (a forger may send any value)."""
    options = message["blocks"][1]["accessory"]["options"]
    option = next((o for o in options if o["value"] == item.value()), {"value": item.value()})
    return {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": channel,
                                                       "message_ts": message["ts"]},
            "channel": {"id": channel}, "message": message,
            "actions": [{"type": "overflow", "action_id": ITEM_MENU, "block_id": message["blocks"][1]["block_id"],
                         "selected_option": {"value": option["value"]}, "action_ts": "1.3"}]}  # fmt: skip


def snoozes(state_url: str) -> list[dict]:
    with AlertState(state_url) as state:
        return state.all_snoozes()


def reminder(slack: FakeSlack) -> dict:
    """The wf-01 reminder as the digest renderer makes it, posted to Sam's DM."""
    slack.add_channel("dm-sam", "DSAM")
    blocks = Renderer(load_config(), DigestRecords(SNAPSHOT[0], load_config()), TODAY).meeting(REMINDER)
    message = slack._post({"channel": "DSAM", "text": "Log your meeting", "blocks": blocks})["message"]
    record_sent(message, "DSAM", reminder_key(f"user:{SAM['id']}", MEETING["id"]))
    return message


def click_log_it(http, slack, slack_user: str = "USAM") -> dict:
    message = reminder(slack)
    [button] = [e for e in message["blocks"][-1]["elements"] if e["action_id"] == LOG_IT]
    payload = {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
               "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": "DSAM",
                                                          "message_ts": message["ts"]},
               "channel": {"id": "DSAM"}, "message": message,
               "actions": [{"type": "button", "action_id": LOG_IT, "block_id": "b", "value": button["value"],
                            "action_ts": "1.3"}]}  # fmt: skip
    assert send(http, payload).status_code == 200
    return message


def opened_form(http, slack) -> dict:
    click_log_it(http, slack)
    return eventually(lambda: list(slack.views.values()))[0]


def suggestion(view: dict, words: str, slack_user: str = "USAM") -> dict:
    """What Slack sends while someone types ``words`` into the form's Related To search."""
    from sa_hygiene.web.slack_app.items import RELATED_TO

    return {"type": "block_suggestion", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "container": {"type": "view", "view_id": view["id"]}, "action_id": RELATED_TO, "block_id": "what",
            "value": words, "view": view}  # fmt: skip


def submission(view: dict, **values) -> dict:
    form = {"types": ["Demo"], "sentiment": "Positive", "persona": ["Executive"], "what": OPP["id"], "who": PAT["id"],
            "subject": "Acme demo", "description": "Showed merge trains to the platform team."} | values  # fmt: skip
    state: dict = {}
    for block, value in form.items():
        if value is None:
            element = {"type": "plain_text_input", "value": None}
        elif isinstance(value, list):
            element = {"type": "multi_static_select", "selected_options": [{"value": v} for v in value]}
        elif block in ("sentiment", "what", "who"):
            element = {"type": "static_select", "selected_option": {"value": value}}
        elif block == "date":
            element = {"type": "datepicker", "selected_date": value}
        else:
            element = {"type": "plain_text_input", "value": value}
        state[block] = {block: element}
    return {"type": "view_submission", "user": {"id": "USAM"}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "view": {**view, "state": {"values": state}, "hash": "1.abc"}}  # fmt: skip


def form_submission(view: dict, fields, dates=(), selects=(), slack_user: str = "USAM", **values) -> dict:
    """What Slack sends when a modal is saved with ``values`` by block (each block's element has
    the block's id): ``dates`` are datepickers, ``selects`` single selects, the rest text."""
    state = {}
    for f in fields:
        v = values.get(f)
        if f in dates:
            element = {"type": "datepicker", "selected_date": v}
        elif f in selects:
            element = {"type": "static_select", "selected_option": {"value": v} if v else None}
        else:
            element = {"type": "plain_text_input", "value": v}
        state[f] = {f: element}
    return {"type": "view_submission", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "view": {**view, "state": {"values": state}, "hash": "1.abc"}}  # fmt: skip
