"""``/sa-alert`` over signed requests against the fake Slack: the form, its backtest with progress,
Save, and the list's pause and delete."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

import pytest
from builders import write_snapshot
from slack_app_requests import EVE, OPP, ORG, SAM, TODAY, eventually, send, signed

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.store import SnapshotStore
from sa_hygiene.state.user_alerts import UserAlerts
from sa_hygiene.web.slack_app.alert_views import ALERT_VIEW, DELETE_ALERT, LIST_VIEW, SAVE_ALERT, TOGGLE_ALERT

pytestmark = pytest.mark.integration


@pytest.fixture
def cfg(tmp_path):
    """The store holds the last three days of the org (one day missing)."""
    store = tmp_path / "store"
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {{url: {store}}}\nuser_alerts: {{max_per_user: 2, max_messages_per_day: 5}}\n")
    folder = write_snapshot(tmp_path / "org", ORG)
    for back in (0, 1, 3):
        day = TODAY - timedelta(days=back)
        SnapshotStore(str(store)).commit_folder(folder, datetime.combine(day, time(4), UTC))
    return load_config(path)


def command(http, user="USAM", text=""):
    body = urlencode({"command": "/sa-alert", "text": text, "user_id": user, "trigger_id": "1.2.trigger",
                      "team_id": "T0FAKE", "channel_id": "CSOME", "response_url": "https://hooks.invalid/x"})  # fmt: skip
    return http.post("/events", content=body, headers=signed(body))


def submit(view: dict, user="USAM", **values) -> dict:
    form = {"name": "TE start missing", "field": "Opportunity|te_start", "trigger": "condition:blank", "value": None,
            "scope": "mine", "delivery": "digest", "channel": None} | values  # fmt: skip
    state = {}
    for block, value in form.items():
        if block in ("field", "trigger", "scope", "delivery"):
            state[block] = {block: {"type": "static_select", "selected_option": {"value": value} if value else None}}
        else:
            state[block] = {block: {"type": "plain_text_input", "value": value}}
    return {"type": "view_submission", "user": {"id": user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "view": {**view, "state": {"values": state}}}  # fmt: skip


def click(view: dict, action_id: str, value: str, user="USAM") -> dict:
    return {"type": "block_actions", "user": {"id": user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "trigger_id": "1.2.trigger", "container": {"type": "view", "view_id": view["id"]}, "view": view,
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "1.3"}]}  # fmt: skip


def opened(http, slack, text=""):
    assert command(http, text=text).status_code == 200
    return eventually(lambda: list(slack.views.values()))[-1]


def test_a_user_tries_an_alert_on_last_month_and_saves_it_in_one_click(http, slack, state_url):
    form = opened(http, slack)
    assert form["callback_id"] == ALERT_VIEW
    answer = send(http, submit(form))
    assert answer.status_code == 200 and answer.json()["response_action"] == "update"
    assert ":hourglass_flowing_sand:" in json.dumps(answer.json()["view"])  # the progress, within the answer
    result = eventually(lambda: (v := slack.views[form["id"]]) and "would have sent" in json.dumps(v) and v, timeout=90)
    assert SAVE_ALERT in json.dumps(result), result
    text = json.dumps(result, ensure_ascii=False)
    # Three snapshots of the last 30 days, the opportunity (Sam's, no start date) each day: one digest a day.
    assert "would have sent *3 messages* over 3 days" in text and "Sam Architect (3 items)" in text
    assert f"/lightning/r/Opportunity/{OPP['id']}/view|{OPP['id']}>" in text
    assert "No snapshot on 27 days" in text
    send(http, click(result, SAVE_ALERT, "save"))
    eventually(lambda: "is on" in json.dumps(slack.views[form["id"]]), timeout=30)
    with UserAlerts(state_url) as store:
        [saved] = store.list()
    assert saved.owner == SAM["id"] and saved.spec["trigger"] == {"kind": "condition", "field": "te_start", "op": "blank"}


def test_the_form_refuses_what_it_cannot_read_before_the_answer_and_the_checker_s_refusal_after(http, slack):
    form = opened(http, slack)
    answer = send(http, submit(form, trigger=None))
    assert answer.json() == {"response_action": "errors", "errors": {"trigger": "pick what the field does"}}
    answer = send(http, submit(form, trigger="condition:more_than", value="lots"))
    assert answer.json() == {"response_action": "errors", "errors": {"value": "'lots' is not a number"}}
    send(http, submit(form, field="Opportunity|te_status", trigger="condition:equals", value="Maybe"))
    back = eventually(lambda: (v := slack.views[form["id"]]) and "Maybe" in json.dumps(v) and v, timeout=60)
    assert "'Maybe' is not a value of te_status" in json.dumps(back) and back["callback_id"] == ALERT_VIEW
    assert back["blocks"][1]["element"]["initial_value"] == "TE start missing"  # what was typed is kept


def test_the_list_pauses_resumes_and_deletes_and_others_cannot(http, slack, state_url):
    with UserAlerts(state_url) as store:
        mine = store.add(SAM["id"], "Mine", {"name": "Mine"}, 5)
        theirs = store.add(EVE["id"], "Eve's", {"name": "Eve's"}, 5)
    listed = opened(http, slack, text="list")
    assert listed["callback_id"] == LIST_VIEW
    assert "Mine" in json.dumps(listed) and "Eve's" not in json.dumps(listed)
    send(http, click(listed, TOGGLE_ALERT, f"pause|{mine}"))
    eventually(lambda: "paused: paused by Sam Architect" in json.dumps(slack.views[listed["id"]]), timeout=30)
    send(http, click(listed, TOGGLE_ALERT, f"pause|{theirs}"))
    eventually(lambda: "not yours or your team" in json.dumps(slack.views[listed["id"]]), timeout=30)
    send(http, click(listed, DELETE_ALERT, f"delete|{mine}"))
    eventually(lambda: "No alerts yet" in json.dumps(slack.views[listed["id"]]), timeout=30)
    with UserAlerts(state_url) as store:
        assert [a.alert_id for a in store.list()] == [theirs] and store.get(theirs).active


def test_a_forged_list_action_is_refused_before_bolt(http, slack):
    listed = opened(http, slack, text="list")
    assert send(http, click(listed, DELETE_ALERT, "delete|../../x")).status_code == 400


def test_a_user_alert_s_item_is_snoozed_like_any_other(http, slack, state_url):
    from slack_app_requests import menu_click, post_digest, snoozes

    from sa_hygiene.web.slack_app.items import Item

    spec = {"name": "TE start missing", "owner": SAM["id"], "object": "Opportunity", "scope": "mine", "delivery": "digest",
            "trigger": {"kind": "condition", "field": "te_start", "op": "blank"}}  # fmt: skip
    with UserAlerts(state_url) as store:
        alert_id = store.add(SAM["id"], spec["name"], spec, 5)
    item = Item("snooze", f"ua-{alert_id}", OPP["id"], SAM["id"])
    message = post_digest(slack, "DSAM", item)
    assert send(http, menu_click("USAM", "DSAM", message, item)).status_code == 200
    eventually(lambda: slack.calls("chat.update"), timeout=30)
    [row] = snoozes(state_url)
    assert (row["workflow"], row["record_key"]) == (f"ua-{alert_id}", OPP["id"][:15]) and slack.ephemeral == []


@pytest.mark.parametrize(
    "channel, words",
    [
        ("#secret", "#secret is no public channel"),
        ("#elsewhere", "you are not in #elsewhere"),
        ("#nowhere", "#nowhere is no public channel"),
    ],
)
def test_a_channel_delivery_goes_only_to_a_public_channel_the_person_is_in(http, slack, channel, words):
    slack.add_channel("secret", "CSECRET", private=True, members=("USAM",))
    slack.add_channel("elsewhere", "CELSE", members=("UEVE",))
    form = opened(http, slack)
    send(http, submit(form, delivery="channel", channel=channel))
    back = eventually(lambda: (v := slack.views[form["id"]]) and "warning" in json.dumps(v) and v, timeout=60)
    assert words in json.dumps(back) and SAVE_ALERT not in json.dumps(back)
