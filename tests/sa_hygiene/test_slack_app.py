"""The Slack app over HTTP: signed requests against the real ASGI route, the fake Slack Web API
and the fake Salesforce org; the alert memory in SQLite.

Every request goes through the same route Slack reaches (``POST /events``), signed the way
Slack signs (v0 HMAC-SHA256 over ``v0:timestamp:body``). The app's slow work runs after its
answer, so tests wait for its effects (``eventually``) and then also check that nothing else
happened.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import date, timedelta
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from builders import account, contact, event, opportunity, user, write_snapshot
from fakes.salesforce import serving
from fakes.slack import TOKEN, FakeSlack
from slack_sdk import WebClient

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.blockkit import Message, check_message, fit_message
from sa_hygiene.delivery.digest import Renderer
from sa_hygiene.delivery.items import DigestRecords
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.state.alerts import AlertState
from sa_hygiene.web.slack_app import (
    ITEM_MENU,
    LOG_IT,
    Credentials,
    Item,
    build_app,
    create_asgi_app,
    credentials,
    decode_item,
    salesforce_client,
    validate,
)

pytestmark = pytest.mark.integration

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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    for person, slack_id in ((SAM, "USAM"), (MIA, "UMIA"), (EVE, "UEVE")):
        fake.add_user(person["email"], slack_id)
    fake.add_channel("sa-hygiene-ops", "COPS")
    yield fake
    fake.stop()


@pytest.fixture
def salesforce(ca, monkeypatch):
    with serving(ca, monkeypatch, SF_CONN, {"Task": []}) as sf:
        yield sf


@pytest.fixture
def cfg():
    return load_config()


SNAPSHOT: list = []


@pytest.fixture
def snapshot(tmp_path, cfg):
    folder = write_snapshot(tmp_path / "snap", {"User": [SAM, MIA, EVE], "Account": [ACME], "Opportunity": [OPP],
                                                "Contact": [PAT], "Event": [MEETING]})  # fmt: skip
    SNAPSHOT[:] = [read_snapshot(folder, cfg)]
    return SNAPSHOT[0]


@pytest.fixture
def state_url(tmp_path):
    return f"sqlite:///{tmp_path}/state.sqlite"


@pytest.fixture
def app(cfg, slack, salesforce, snapshot, state_url):
    bolt = build_app(cfg, creds=Credentials(TOKEN, SECRET), client=WebClient(token=TOKEN, base_url=slack.base_url),
                     snapshot=lambda: snapshot, salesforce=salesforce_client(SF_CONN), state_url=state_url)  # fmt: skip
    bolt.svc.today = lambda zone: TODAY
    yield bolt
    bolt.svc.executor.shutdown(wait=True)


@pytest.fixture
def http(app):
    """The ASGI app served by uvicorn on 127.0.0.1, and an HTTP client for it."""
    server = uvicorn.Server(uvicorn.Config(create_asgi_app(app), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started and server.servers, timeout=10)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(10)


# --------------------------------------------------------------------------- helpers


def signed(body: str, secret: str = SECRET, ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
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
    return answer["message"]


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


ITEM = Item("snooze", "wf-07", OPP["id"], SAM["id"])


def snoozes(state_url: str) -> list[dict]:
    with AlertState(state_url) as state:
        return state.all_snoozes()


# --------------------------------------------------------------------------- security


def test_a_signed_snooze_snoozes_and_updates_the_message(http, slack, state_url):
    message = post_digest(slack, "DSAM", ITEM)
    answer = send(http, menu_click("USAM", "DSAM", message, ITEM))
    assert answer.status_code == 200
    updated = eventually(lambda: slack.calls("chat.update"))
    [row] = snoozes(state_url)
    assert (row["workflow"], row["record_key"], row["until"]) == ("wf-07", OPP["id"][:15], TODAY + timedelta(days=7))
    assert row["snoozed_by"] == "sam@gitlab.com"
    assert updated[0].args["channel"] == "DSAM" and updated[0].args["ts"] == message["ts"]
    [stored] = slack.posts("DSAM")
    item_block = stored["blocks"][1]
    assert "accessory" not in item_block
    assert item_block["text"]["text"] == "*Acme - Ultimate*\n:zzz: <@USAM> snoozed this until Tue 01 Dec 2026."
    assert slack.ephemeral == []


@pytest.mark.parametrize("tamper", ["forged", "stale", "unsigned", "other_secret"])
def test_forged_or_replayed_requests_are_refused_and_change_nothing(http, slack, state_url, tamper):
    message = post_digest(slack, "DSAM", ITEM)
    payload = menu_click("USAM", "DSAM", message, ITEM)
    body = urlencode({"payload": json.dumps(payload)})
    headers = signed(body)
    if tamper == "forged":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif tamper == "stale":
        headers = signed(body, ts=int(time.time()) - 301)  # correctly signed, six seconds too old
    elif tamper == "unsigned":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        headers = signed(body, secret="not-the-signing-secret")
    answer = http.post("/events", content=body, headers=headers)
    assert answer.status_code == 401
    time.sleep(0.3)
    assert snoozes(state_url) == []
    assert [r.method for r in slack.requests] == []
    assert "edited" not in slack.posts("DSAM")[0]


def test_a_body_tampered_after_signing_is_refused(http, slack, state_url):
    message = post_digest(slack, "DSAM", ITEM)
    body = urlencode({"payload": json.dumps(menu_click("USAM", "DSAM", message, ITEM))})
    headers = signed(body)
    other = Item("snooze", "wf-07", OPP["id"], EVE["id"])
    forged = urlencode({"payload": json.dumps(menu_click("USAM", "DSAM", message, other))})
    assert http.post("/events", content=forged, headers=headers).status_code == 401
    assert snoozes(state_url) == []


@pytest.mark.parametrize("case", ["not_json", "unknown_action", "bad_value", "no_user", "unknown_type", "foreign_view", "not_a_payload"])
def test_malformed_or_unknown_requests_get_4xx_and_change_nothing(http, slack, state_url, case):
    message = post_digest(slack, "DSAM", ITEM)
    payload = menu_click("USAM", "DSAM", message, ITEM)
    if case == "unknown_action":
        payload["actions"][0]["action_id"] = "delete_everything"
    elif case == "bad_value":
        payload["actions"][0]["selected_option"]["value"] = "snooze|wf-07|<!channel>|005"
    elif case == "no_user":
        del payload["user"]
    elif case == "unknown_type":
        payload["type"] = "dialog_submission"
    elif case == "foreign_view":
        payload = {"type": "view_submission", "user": {"id": "USAM"}, "view": {"id": "V1", "callback_id": "other"}}
    body = urlencode({"payload": json.dumps(payload)})
    if case == "not_json":
        body = urlencode({"payload": "{not json"})
    elif case == "not_a_payload":
        body = "\xff\xfe"
    answer = http.post("/events", content=body.encode("latin-1"), headers=signed(body))
    assert 400 <= answer.status_code < 500, answer.text
    time.sleep(0.3)
    assert snoozes(state_url) == []
    assert not slack.calls("chat.update", "chat.postEphemeral", "chat.postMessage", "views.open")


# --------------------------------------------------------------------------- who may act


def test_someone_else_is_refused_ephemerally_and_nothing_changes(http, slack, state_url):
    message = post_digest(slack, "DSAM", ITEM)
    assert send(http, menu_click("UEVE", "DSAM", message, ITEM)).status_code == 200
    [note] = eventually(lambda: slack.ephemeral)
    assert note["user"] == "UEVE" and note["channel"] == "DSAM"
    assert "not yours" in note["text"]
    assert snoozes(state_url) == []
    assert not slack.calls("chat.update")


def test_a_slack_user_unknown_to_salesforce_is_refused(http, slack, state_url):
    slack.add_user("stranger@example.com", "USTRANGER")
    message = post_digest(slack, "DSAM", ITEM)
    send(http, menu_click("USTRANGER", "DSAM", message, ITEM))
    eventually(lambda: slack.ephemeral)
    assert snoozes(state_url) == []


def test_the_manager_of_the_recipient_may_snooze(http, slack, state_url):
    message = post_digest(slack, "DSAM", ITEM)
    send(http, menu_click("UMIA", "DSAM", message, ITEM))
    eventually(lambda: slack.calls("chat.update"))
    assert [s["snoozed_by"] for s in snoozes(state_url)] == ["mia@gitlab.com"]


def test_not_mine_tells_the_regional_and_operations_channels_and_snoozes(http, slack, state_url, cfg, snapshot):
    regional = Directory(snapshot["User"], cfg).channel[SAM["id"][:15]]
    slack.add_channel(regional.lstrip("#"), "CREGION")
    item = Item("notmine", "wf-07", OPP["id"], SAM["id"])
    message = post_digest(slack, "DSAM", item)
    send(http, menu_click("USAM", "DSAM", message, item))
    eventually(lambda: slack.calls("chat.update"))
    told = {r.args["channel"]: r.args["text"] for r in slack.calls("chat.postMessage")}
    assert set(told) == {"CREGION", "COPS"}
    assert "<@USAM> (Sam Architect) says" in told["COPS"] and OPP["id"] in told["COPS"]
    [row] = snoozes(state_url)
    assert row["reason"] == "Not mine / wrong Primary SA, said Sam Architect"


# --------------------------------------------------------------------------- log it


LOG = Item("log", "wf-01", MEETING["id"], SAM["id"], OPP["id"])
REMINDER = {"workflow": "wf-01", "object": "Event", "record_id": MEETING["id"], "recipient": {"type": "user", "id": SAM["id"]},
            "suggested_what_id": OPP["id"]}  # fmt: skip


def reminder(slack: FakeSlack) -> dict:
    """The wf-01 reminder as the digest renderer makes it, posted to Sam's DM."""
    slack.add_channel("dm-sam", "DSAM")
    blocks = Renderer(load_config(), DigestRecords(SNAPSHOT[0], load_config()), TODAY).meeting(REMINDER)
    return slack._post({"channel": "DSAM", "text": "Log your meeting", "blocks": blocks})["message"]


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
        else:
            element = {"type": "plain_text_input", "value": value}
        state[block] = {block: element}
    return {"type": "view_submission", "user": {"id": "USAM"}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "view": {**view, "state": {"values": state}, "hash": "1.abc"}}  # fmt: skip


def test_log_it_opens_the_form_with_the_taxonomy_and_the_suggestion(http, slack, cfg):
    view = opened_form(http, slack)
    assert slack.calls("views.open")[0].args["trigger_id"] == "1.2.trigger"
    blocks = {b["block_id"]: b["element"] for b in view["blocks"]}
    offered = [o["value"] for g in blocks["types"]["option_groups"] for o in g["options"]]
    assert offered == cfg.taxonomy.all_activity_types
    assert [o["value"] for o in blocks["sentiment"]["options"]] == cfg.taxonomy.sentiments
    assert [o["value"] for o in blocks["persona"]["options"]] == cfg.taxonomy.persona_levels
    assert blocks["what"]["initial_option"]["value"] == OPP["id"]
    assert [o["value"] for o in blocks["what"]["options"]] == [OPP["id"], ACME["id"]]
    assert blocks["what"]["options"][1]["text"]["text"] == "Acme &lt;Corp&gt; (account)"  # escaped
    assert [o["value"] for o in blocks["who"]["options"]] == [PAT["id"]]
    assert blocks["subject"]["initial_value"] == "Acme demo"


def test_someone_else_cannot_open_the_form(http, slack):
    click_log_it(http, slack, "UEVE")
    eventually(lambda: slack.ephemeral)
    assert slack.views == {}


def test_invalid_forms_come_back_as_modal_errors_and_create_nothing(http, slack, salesforce, cfg):
    view = opened_form(http, slack)
    answer = send(http, submission(view, types=["Other"], description="Short.", sentiment="Ecstatic", who=None))
    assert answer.status_code == 200
    assert answer.json() == {"response_action": "errors", "errors": {
        "description": cfg.reasons["other_too_vague"],
        "sentiment": cfg.reasons["sentiment_invalid"],
        "who": cfg.reasons["contact_missing"],
    }}  # fmt: skip
    time.sleep(0.5)
    assert salesforce.live("Task").num_rows == 0


def test_a_ride_along_must_be_related_to_the_account(http, slack, cfg):
    view = opened_form(http, slack)
    answer = send(http, submission(view, types=["Ride Along"]))
    assert answer.json()["errors"] == {"what": cfg.reasons["ride_along_not_account"]}
    assert send(http, submission(view, types=["Ride Along"], what=ACME["id"])).json()["response_action"] == "update"


def test_validation_follows_the_configuration(tmp_path):
    (tmp_path / "c.yaml").write_text("thresholds: {other_min_chars: 10}\n")
    form = {"activity_types": ["Other"], "sentiment": "Neutral", "persona_levels": [], "what_id": OPP["id"],
            "who_id": PAT["id"], "subject": "x", "description": "Twelve chars"}  # fmt: skip
    assert validate(load_config(tmp_path / "c.yaml"), form) == {}
    assert set(validate(load_config(), form)) == {"description"}


def test_a_submitted_form_creates_one_task_even_when_submitted_twice(http, slack, salesforce, cfg):
    view = opened_form(http, slack)
    first = send(http, submission(view))
    second = send(http, submission(view))
    assert first.json()["response_action"] == "update" and second.json()["response_action"] == "update"
    done = eventually(lambda: [c for c in slack.calls("chat.update") if c.args.get("channel") == "DSAM"])
    time.sleep(0.5)
    tasks = salesforce.live("Task").to_pylist()
    assert len(tasks) == 1
    task = tasks[0]
    f = cfg.fields["Task"]
    assert task[f["owner_id"]] == SAM["id"] and task[f["what_id"]] == OPP["id"] and task[f["who_id"]] == PAT["id"]
    assert task[f["activity_date"]] == "2026-11-23" and task[f["status"]] == "Completed"
    assert task[f["activity_types"]] == "Demo" and task[f["sentiment"]] == "Positive"
    assert task[f["persona_levels"]] == "Executive" and task[f["subject"]] == "Acme demo"
    url = f"{cfg.salesforce.instance_url}/lightning/r/Task/{task['Id']}/view"
    [reply] = [m for m in slack.posts("DSAM") if m.get("thread_ts")]
    assert url in reply["text"]
    assert url in json.dumps(slack.views[view["id"]])
    assert "actions" not in [b["type"] for b in slack.posts("DSAM")[0]["blocks"]]
    assert "Logged by <@USAM>" in json.dumps(done[0].args["blocks"])


def test_a_salesforce_error_keeps_the_form_open_with_everything_typed(http, slack, salesforce):
    view = opened_form(http, slack)
    salesforce.fail("validation_error", when=lambda r: r.method == "POST" and "/sobjects/Task" in r.path)
    description = "Walked through the security dashboard with their CISO."
    send(http, submission(view, description=description, types=["Demo", "Technical Deep Dive"]))
    shown = eventually(lambda: [c for c in slack.calls("views.update") if "Salesforce did not save it" in json.dumps(c.args)])
    form = json.loads(shown[0].args["view"]) if isinstance(shown[0].args["view"], str) else shown[0].args["view"]
    assert "Activity Date cannot be in the future" in form["blocks"][0]["text"]["text"]
    fields = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
    assert fields["description"]["initial_value"] == description
    assert [o["value"] for o in fields["types"]["initial_options"]] == ["Demo", "Technical Deep Dive"]
    assert fields["who"]["initial_option"]["value"] == PAT["id"]
    assert salesforce.live("Task").num_rows == 0
    send(http, submission(view, description=description))  # sent again: now it is saved
    eventually(lambda: salesforce.live("Task").num_rows == 1)


def test_the_answer_comes_within_three_seconds_while_salesforce_is_slow(http, slack, salesforce):
    view = opened_form(http, slack)
    salesforce.create_delay = 4.0
    started = time.monotonic()
    answer = send(http, submission(view))
    took = time.monotonic() - started
    assert answer.status_code == 200 and answer.json()["response_action"] == "update"
    assert took < 3.0, took
    assert salesforce.live("Task").num_rows == 0  # still being created
    eventually(lambda: salesforce.live("Task").num_rows == 1, timeout=20)


# --------------------------------------------------------------------------- units


def test_item_values_are_compact_and_checked():
    value = LOG.value()
    assert len(value) <= 150 and decode_item(value) == LOG
    assert decode_item(ITEM.value()) == ITEM
    for bad in ("", "snooze|wf-07", "drop|wf-07|" + OPP["id"] + "|" + SAM["id"], "snooze|wf 07|" + OPP["id"] + "|" + SAM["id"],
                "snooze|wf-07|" + OPP["id"] + "|<@U1>", None, "x" * 151):
        assert decode_item(bad) is None


def test_credentials_come_from_the_connection_and_never_show(monkeypatch):
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_APP_TEST", json.dumps(
        {"conn_type": "slack", "password": "xoxb-secret-token", "extra": {"signing_secret": "s3cret", "app_token": "xapp-1"}}))
    creds = credentials("slack_app_test")
    assert (creds.token, creds.signing_secret, creds.app_token) == ("xoxb-secret-token", "s3cret", "xapp-1")
    assert "secret" not in repr(creds) and "xapp" not in repr(creds)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "env-secret")
    assert credentials("slack_app_test").signing_secret == "env-secret"


def test_digest_items_and_reminders_carry_the_app_s_controls_within_slack_s_limits(snapshot, cfg):
    renderer = Renderer(cfg, DigestRecords(snapshot, cfg), TODAY)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "item"}}
    opp = renderer.with_menu(section, "wf-07", "Opportunity", OPP["id"], SAM["id"])
    menu = opp["accessory"]
    assert menu["action_id"] == ITEM_MENU and opp["block_id"] == f"item:{OPP['id']}"
    assert [o["text"]["text"] for o in menu["options"]] == ["Snooze 7 days", "Not mine / wrong Primary SA", "Open in Salesforce"]
    assert [decode_item(o["value"]).kind for o in menu["options"]] == ["snooze", "notmine", "open"]
    assert menu["options"][2]["url"] == f"{cfg.salesforce.instance_url}/lightning/r/Opportunity/{OPP['id']}/view"
    # News is announced once: nothing to snooze; a task is nobody's "wrong Primary SA".
    news = renderer.with_menu(section, "wf-02", "Task", "00T5e0000000001AAA", SAM["id"])["accessory"]
    assert news["type"] == "button" and "url" in news
    assert renderer.with_menu(section, "wf-07", "Opportunity", "<!channel>", SAM["id"]) == section
    blocks = renderer.meeting(REMINDER)
    log_it, link = blocks[-1]["elements"]
    assert decode_item(log_it["value"]) == LOG and log_it["action_id"] == LOG_IT
    assert link["url"] == f"{cfg.salesforce.instance_url}/lightning/r/Opportunity/{OPP['id']}/view"
    message = fit_message(Message(key="k", slot="sa_digest", recipient={"type": "user", "id": SAM["id"]}, email=None,
                                  fallbacks=(), text="t", blocks=[opp, *blocks], replies=[], title="t"))  # fmt: skip
    check_message(message)
    too_many = {**opp, "accessory": {**menu, "options": menu["options"] * 2}}
    with pytest.raises(ValueError, match="options"):
        check_message(Message(key="k", slot="sa_digest", recipient={}, email=None, fallbacks=(), text="t",
                              blocks=[too_many], replies=[], title="t"))  # fmt: skip


def test_socket_mode_command_without_credentials_says_what_is_missing(monkeypatch, capsys):
    from sa_hygiene.cli import main

    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps({"conn_type": "slack", "password": "xoxb-t",
                                                                     "extra": {"signing_secret": "s"}}))  # fmt: skip
    assert main(["slack-app"]) == 2
    err = capsys.readouterr().err
    assert "app-level token" in err and "xoxb-t" not in err
