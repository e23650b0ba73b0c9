"""Slash commands over HTTP: ``/sa <words>`` answers with record cards (Log activity, Update
tech evaluation) from the snapshot, ``/sa-create`` offers Log activity and Create contact; what
they open writes to the fake Salesforce, for the person who asked only."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from slack_app_requests import (
    ACME,
    EVES_OPP,
    GLOBEX,
    KIM,
    OPP,
    PAT,
    SAM,
    eventually,
    send,
    signed,
    submission,
)

from sa_hygiene.web.slack_app.items import decode_item

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def dm(slack):
    """The conversation the commands are typed in."""
    slack.add_channel("dm-sam", "DSAM")


def command(http, name: str, text: str = "", slack_user: str = "USAM", channel: str = "DSAM"):
    body = urlencode({"command": name, "text": text, "user_id": slack_user, "channel_id": channel, "team_id": "T0FAKE",
                      "trigger_id": "9.9.trigger", "response_url": "https://hooks.slack.invalid/commands/1"})  # fmt: skip
    return http.post("/events", content=body, headers=signed(body))


def click(slack_user: str, button: dict, channel: str = "DSAM") -> dict:
    """A click on a button of an ephemeral answer."""
    return {"type": "block_actions", "user": {"id": slack_user}, "trigger_id": "1.2.trigger",
            "container": {"type": "message", "channel_id": channel, "message_ts": "5.5", "is_ephemeral": True},
            "channel": {"id": channel}, "actions": [{**button, "block_id": "b", "action_ts": "1.3"}]}  # fmt: skip


def buttons(note: dict) -> dict[tuple[str, str], dict]:
    blocks = note["blocks"] if isinstance(note["blocks"], list) else json.loads(note["blocks"])
    return {(e["action_id"], e["value"]): e for b in blocks if b["type"] == "actions" for e in b["elements"]}


def test_sa_answers_with_record_cards_only_to_the_person_who_asked(http, slack, salesforce):
    started = time.monotonic()
    assert command(http, "/sa", "globex").status_code == 200
    assert time.monotonic() - started < 3.0
    [note] = eventually(lambda: slack.ephemeral)
    assert (note["user"], note["channel"]) == ("USAM", "DSAM")
    found = buttons(note)
    assert ("sa_update_tech_eval", EVES_OPP["id"]) in found  # an opportunity's card: its id, for that listener
    acts = [decode_item(v) for a, v in found if a == "sa_log_activity"]
    assert {(i.kind, i.what_id, i.recipient) for i in acts} == {("act", EVES_OPP["id"], SAM["id"]), ("act", GLOBEX["id"], SAM["id"])}
    assert not [v for a, v in found if a == "sa_update_tech_eval" and v == GLOBEX["id"]]  # none on an account
    assert not salesforce.requests  # from the snapshot


def test_log_activity_from_a_card_opens_the_form_on_that_record_and_saves_a_task(http, slack, salesforce, cfg):
    command(http, "/sa", "acme ultimate")
    [note] = eventually(lambda: slack.ephemeral)
    [(key, button)] = [(k, b) for k, b in buttons(note).items() if k[0] == "sa_log_activity"]
    assert send(http, click("USAM", button)).status_code == 200
    [view] = eventually(lambda: list(slack.views.values()))
    assert view["title"]["text"] == "Log an activity"
    fields = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert fields["what"]["initial_option"]["value"] == OPP["id"]
    assert [o["value"] for g in fields["who"]["option_groups"] for o in g["options"]] == [KIM["id"], PAT["id"]]
    assert fields["date"]["initial_date"] == "2026-11-24"  # today, in the SA's time zone
    send(http, submission(view, subject="Pricing call"))
    eventually(lambda: salesforce.live("Task").num_rows == 1)
    [task] = salesforce.live("Task").to_pylist()
    f = cfg.fields["Task"]
    assert (task[f["what_id"]], task[f["owner_id"]], task[f["subject"]]) == (OPP["id"], SAM["id"], "Pricing call")


def test_someone_else_cannot_use_another_s_card_and_a_stranger_gets_no_cards(http, slack, salesforce):
    command(http, "/sa", "acme")
    [note] = eventually(lambda: slack.ephemeral)
    button = next(b for k, b in buttons(note).items() if k[0] == "sa_log_activity")
    send(http, click("UEVE", button))
    refused = eventually(lambda: [e for e in slack.ephemeral if e["user"] == "UEVE"])
    assert "not yours" in refused[0]["text"] and not slack.views
    slack.add_user("stranger@example.com", "USTRANGER")
    command(http, "/sa", "acme", slack_user="USTRANGER")
    told = eventually(lambda: [e for e in slack.ephemeral if e["user"] == "USTRANGER"])
    assert "could not find you in Salesforce" in told[0]["text"] and "blocks" not in told[0]


def test_sa_create_offers_log_activity_and_create_contact_which_creates_one(http, slack, salesforce):
    command(http, "/sa-create")
    [note] = eventually(lambda: slack.ephemeral)
    offered = {a: b for (a, _), b in buttons(note).items()}
    assert set(offered) == {"sa_log_activity", "sa_create_contact"}
    send(http, click("USAM", offered["sa_create_contact"]))
    [view] = eventually(lambda: list(slack.views.values()))
    assert view["callback_id"] == "sa_contact_form"
    state = {"new_name": {"new_name": {"type": "plain_text_input", "value": "Robin de Vries"}},
             "new_email": {"new_email": {"type": "email_text_input", "value": "robin@acme.com"}},
             "what": {"sa_related_to": {"type": "external_select", "selected_option": {"value": ACME["id"]}}}}  # fmt: skip
    payload = {"type": "view_submission", "user": {"id": "USAM"}, "view": {**view, "state": {"values": state}}}
    assert send(http, payload).json()["response_action"] == "update"
    assert send(http, payload).json()["response_action"] == "update"  # a double click
    created = eventually(lambda: [c for c in salesforce.live("Contact").to_pylist() if c["Email"] == "robin@acme.com"])
    time.sleep(0.5)
    assert len([c for c in salesforce.live("Contact").to_pylist() if c["Email"] == "robin@acme.com"]) == 1
    assert created[0]["AccountId"] == ACME["id"] and created[0]["LastName"] == "Vries"
    eventually(lambda: f"/Contact/{created[0]['Id']}/" in json.dumps(slack.views[view["id"]]))


def test_a_contact_without_a_name_or_an_account_is_refused_in_the_modal(http, slack, salesforce):
    command(http, "/sa-create")
    [note] = eventually(lambda: slack.ephemeral)
    send(http, click("USAM", next(b for k, b in buttons(note).items() if k[0] == "sa_create_contact")))
    [view] = eventually(lambda: list(slack.views.values()))
    state = {"new_email": {"new_email": {"type": "email_text_input", "value": "robin@"}}}
    payload = {"type": "view_submission", "user": {"id": "USAM"}, "view": {**view, "state": {"values": state}}}
    assert send(http, payload).json() == {"response_action": "errors", "errors": {
        "new_name": "The contact needs a name.", "new_email": "That is not an e-mail address.",
        "what": "Choose the contact's account."}}  # fmt: skip
    assert salesforce.live("Contact").num_rows == 0


@pytest.mark.parametrize("case", ["unknown_command", "no_user", "huge_text"])
def test_commands_that_are_not_ours_are_refused(http, slack, case):
    if case == "unknown_command":
        answer = command(http, "/delete-everything", "x")
    elif case == "huge_text":
        answer = command(http, "/sa", "a" * 1000)
    else:
        answer = command(http, "/sa", "acme", slack_user="")
    assert answer.status_code == 400
    time.sleep(0.3)
    assert not slack.ephemeral
