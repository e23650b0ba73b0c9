"""Update Activity on an activity's post (spec v3), over HTTP against the fake Slack and the fake
Salesforce: the owner opens a modal pre-filled from the Task as Salesforce has it, the rules'
checks refuse a bad form before anything is written, a good one writes the Task and the post is
edited in place with "edited by …"; someone else is refused."""

from __future__ import annotations

import json
import time

import pytest
from fakes.salesforce import serving
from slack_app_requests import EVE, OPP, PAT, SAM, SF_CONN, TODAY, eventually, send, submission

from sa_hygiene.delivery.activity_posts import UPDATE_ACTIVITY, PostWriter, content_hash, post_key
from sa_hygiene.state.posts import ActivityPosts

pytestmark = pytest.mark.integration

TASK_ID = "00T5e0000000UPDAAA"
TASK = {"Id": TASK_ID, "OwnerId": SAM["id"], "WhatId": OPP["id"], "WhoId": PAT["id"], "Subject": "Acme demo",
        "Description": "Showed merge trains.", "ActivityDate": "2026-11-24", "SA_Activity_Type__c": "Demo",
        "Customer_Interaction_Sentiment__c": "Positive", "Persona_Levels__c": "Executive", "IsDeleted": False}  # fmt: skip
WORKSPACE = "slack:slack_api_default"


@pytest.fixture
def salesforce(ca, monkeypatch):
    with serving(ca, monkeypatch, SF_CONN, {"Task": [TASK]}) as sf:
        yield sf


def posted(slack, snapshot, cfg, state_url) -> dict:
    """The activity's post in #sa-activities-east-sa as the feed made it, and the posts' record of it."""
    slack.add_channel("sa-activities-east-sa", "CEAST")
    task = {"id": TASK_ID, "owner_id": SAM["id"], "what_id": OPP["id"], "who_id": PAT["id"], "subject": "Acme demo",
            "description": "Showed merge trains.", "activity_types": ["Demo"], "sentiment": "Positive"}  # fmt: skip
    text, blocks = PostWriter(cfg, snapshot, TODAY, [TASK_ID]).with_saved(TASK_ID, task).render("wf-02", TASK_ID)
    message = slack._post({"channel": "CEAST", "text": text, "blocks": blocks})["message"]
    posts = ActivityPosts(state_url)
    key = post_key({"type": "channel", "name": "#sa-activities-east-sa"}, TASK_ID)
    posts.remember(WORKSPACE, key, TASK_ID, "wf-02", "CEAST", message["ts"], content_hash(text, blocks))
    posts.close()
    return message


def click(http, message: dict, slack_user: str = "USAM") -> None:
    [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == UPDATE_ACTIVITY
    payload = {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
               "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": "CEAST",
                                                          "message_ts": message["ts"]},
               "channel": {"id": "CEAST"}, "message": message,
               "actions": [{"type": "button", "action_id": UPDATE_ACTIVITY, "block_id": "b", "value": button["value"],
                            "action_ts": "1.3"}]}  # fmt: skip
    assert send(http, payload).status_code == 200


def test_the_owner_updates_the_activity_and_the_post_says_edited_by(http, slack, salesforce, snapshot, cfg, state_url):
    message = posted(slack, snapshot, cfg, state_url)
    click(http, message)
    # The first Salesforce call logs in through the Airflow connection: slow on a busy machine.
    view = eventually(lambda: list(slack.views.values()), timeout=60)[0]
    # Pre-filled from the Task as Salesforce has it.
    blocks = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert blocks["subject"]["initial_value"] == "Acme demo"
    assert blocks["description"]["initial_value"] == "Showed merge trains."
    assert [o["value"] for o in blocks["types"]["initial_options"]] == ["Demo"]
    assert blocks["sentiment"]["initial_option"]["value"] == "Positive"
    assert blocks["what"]["initial_option"]["value"] == OPP["id"]

    # The rules' own checks, before anything is written.
    bad = send(http, submission(view, types=["Other"], description="Short."))
    assert bad.json() == {"response_action": "errors", "errors": {"description": cfg.reasons["other_too_vague"]}}
    time.sleep(0.3)
    assert salesforce.live("Task").to_pylist()[0]["Subject"] == "Acme demo"

    ok = send(http, submission(view, subject="Acme demo & <merge trains>", description="Showed merge trains: https://x.example/notes"))
    assert ok.json()["response_action"] == "update"
    eventually(lambda: salesforce.live("Task").to_pylist()[0]["Subject"] == "Acme demo & <merge trains>")
    edited = eventually(lambda: [m for m in slack.posts("CEAST") if m.get("edited")])[0]
    text = json.dumps(edited["blocks"])
    assert "edited by Sam Architect" in text and "Acme demo &amp; &lt;merge trains&gt;" in text
    assert "https://x.example/notes" in text
    # The posts' record follows: the next feed run has nothing to edit.
    posts = ActivityPosts(state_url)
    [row] = posts.of_records(WORKSPACE, [TASK_ID])
    posts.close()
    assert row.edited_by == "Sam Architect" and row.content == content_hash(edited["text"], edited["blocks"])


def test_someone_else_is_refused_and_nothing_opens(http, slack, salesforce, snapshot, cfg, state_url):
    slack.add_user(EVE["email"], "UEVE")
    message = posted(slack, snapshot, cfg, state_url)
    click(http, message, slack_user="UEVE")
    eventually(lambda: slack.ephemeral, timeout=60)
    assert slack.views == {}


def test_an_act_fields_item_of_the_dm_is_updated_there_and_the_digest_is_not_redrawn(http, slack, salesforce, cfg, state_url):
    """An act-fields item in Sam's 16:00 DM carries "Update activity" (its workflow's ``fix``): the
    same modal writes the Task, the item says who updated it, the fix is pending in the alert
    state, and the digest stays a digest (the post's redraw is for the post's own message)."""
    from sa_hygiene.delivery.blockkit import fix_button
    from sa_hygiene.state.alerts import PENDING, AlertState

    assert "activity" in cfg.workflows["act-fields"].fix
    with AlertState(state_url) as state:  # the evaluation that raised the item
        state.record(TODAY, [{"workflow": "act-fields", "object": "Task", "record_id": TASK_ID,
                              "recipient": {"type": "user", "id": SAM["id"]}}])  # fmt: skip
    slack.add_channel("dm-sam", "DSAM")
    item = {"type": "section", "block_id": f"item:{TASK_ID}", "text": {"type": "mrkdwn", "text": "*Acme demo* · no contact"}}
    fix = {"type": "actions", "block_id": f"fix:{TASK_ID}", "elements": [fix_button("activity", TASK_ID)]}
    message = slack._post({"channel": "DSAM", "text": "digest", "blocks": [item, fix]})["message"]
    payload = {"type": "block_actions", "user": {"id": "USAM"}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
               "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": "DSAM", "message_ts": message["ts"]},
               "channel": {"id": "DSAM"}, "message": message,
               "actions": [{"type": "button", "action_id": UPDATE_ACTIVITY, "block_id": f"fix:{TASK_ID}", "value": TASK_ID,
                            "action_ts": "1.3"}]}  # fmt: skip
    assert send(http, payload).status_code == 200
    view = eventually(lambda: list(slack.views.values()), timeout=60)[0]
    ok = send(http, submission(view, subject="Acme demo, merge trains"))
    assert ok.json()["response_action"] == "update"
    eventually(lambda: salesforce.live("Task").to_pylist()[0]["Subject"] == "Acme demo, merge trains")
    eventually(lambda: "Saved in Salesforce" in json.dumps(slack.views[view["id"]]), timeout=60)  # the save is done
    [marked] = slack.posts("DSAM")
    text = json.dumps(marked["blocks"], ensure_ascii=False)
    assert "Activity updated by Sam Architect" in text and UPDATE_ACTIVITY not in text
    assert marked["blocks"][0] == item  # the item itself is kept
    assert "edited by" not in text  # not redrawn as the activity's post
    with AlertState(state_url) as state:
        [fixed] = state.fixes().values()
    assert (fixed["workflow"], fixed["status"], fixed["fixed_by"]) == ("act-fields", PENDING, "Sam Architect")


def dm_item(slack, fix: str) -> dict:
    """Sam's DM digest holding the Task's item and its ``fix`` button (digest.fix_actions' block)."""
    from sa_hygiene.delivery.blockkit import fix_button

    slack.add_channel("dm-sam", "DSAM")
    item = {"type": "section", "block_id": f"item:{TASK_ID}", "text": {"type": "mrkdwn", "text": "*Acme demo* · overdue 3 days"}}
    block = {"type": "actions", "block_id": f"fix:{TASK_ID}", "elements": [fix_button(fix, TASK_ID)]}
    return slack._post({"channel": "DSAM", "text": "digest", "blocks": [item, block]})["message"]


def click_item(http, message: dict, action_id: str, slack_user: str = "USAM", action_ts: str = "1.3") -> None:
    payload = {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
               "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": "DSAM", "message_ts": message["ts"]},
               "channel": {"id": "DSAM"}, "message": message,
               "actions": [{"type": "button", "action_id": action_id, "block_id": f"fix:{TASK_ID}", "value": TASK_ID,
                            "action_ts": action_ts}]}  # fmt: skip
    assert send(http, payload).status_code == 200


def test_mark_complete_closes_a_task_due_once_and_the_item_says_who(http, slack, salesforce, cfg, state_url):
    """A wf-11 item ("Tasks due or overdue") carries Mark complete: one click sets the Task's
    status to Completed (a double click writes once), the item says who completed it, and the
    fix is pending until an evaluation sees the Task closed."""
    from sa_hygiene.delivery.blockkit import COMPLETE_TASK
    from sa_hygiene.state.alerts import PENDING, AlertState

    assert "task_done" in cfg.workflows["wf-11"].fix
    with AlertState(state_url) as state:
        state.record(TODAY, [{"workflow": "wf-11", "object": "Task", "record_id": TASK_ID,
                              "recipient": {"type": "user", "id": SAM["id"]}}])  # fmt: skip
    message = dm_item(slack, "task_done")
    click_item(http, message, COMPLETE_TASK)
    click_item(http, message, COMPLETE_TASK, action_ts="1.4")  # a double click
    eventually(lambda: "Completed by Sam Architect" in json.dumps(slack.posts("DSAM")[0]["blocks"]), timeout=60)
    time.sleep(0.5)
    patches = [r for r in salesforce.data_requests() if r.method == "PATCH"]
    assert len(patches) == 1 and json.loads(patches[0].body) == {"Status": "Completed"}
    [marked] = slack.posts("DSAM")
    assert COMPLETE_TASK not in json.dumps(marked["blocks"]) and marked["blocks"][0]["block_id"] == f"item:{TASK_ID}"
    with AlertState(state_url) as state:
        [fixed] = state.fixes().values()
    assert (fixed["workflow"], fixed["status"], fixed["fixed_by"]) == ("wf-11", PENDING, "Sam Architect")


def test_mark_complete_by_someone_else_or_on_a_closed_task_writes_nothing(http, slack, salesforce, cfg):
    from sa_hygiene.delivery.blockkit import COMPLETE_TASK

    slack.add_user(EVE["email"], "UEVE")
    message = dm_item(slack, "task_done")
    click_item(http, message, COMPLETE_TASK, slack_user="UEVE")
    eventually(lambda: slack.ephemeral, timeout=60)
    salesforce.objects["Task"].table = salesforce.objects["Task"].table.set_column(
        salesforce.objects["Task"].table.schema.get_field_index("IsClosed"), "IsClosed", __import__("pyarrow").array([True]))
    click_item(http, message, COMPLETE_TASK, action_ts="1.5")
    eventually(lambda: "Already completed in Salesforce" in json.dumps(slack.posts("DSAM")[0]["blocks"]), timeout=60)
    assert not [r for r in salesforce.data_requests() if r.method == "PATCH"]


def test_a_double_click_on_save_writes_the_activity_once(http, slack, salesforce, snapshot, cfg, state_url):
    message = posted(slack, snapshot, cfg, state_url)
    click(http, message)
    view = eventually(lambda: list(slack.views.values()), timeout=60)[0]
    body = submission(view, subject="Acme demo, merge trains")
    first, second = send(http, body), send(http, body)
    assert first.json()["response_action"] == "update" and second.json()["response_action"] == "update"
    eventually(lambda: "Saved in Salesforce" in json.dumps(slack.views[view["id"]]), timeout=60)
    time.sleep(0.5)
    assert len([r for r in salesforce.data_requests() if r.method == "PATCH"]) == 1
