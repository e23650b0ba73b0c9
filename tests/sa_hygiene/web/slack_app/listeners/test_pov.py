"""Add and Update a Proof of Value over HTTP, against the fake Slack and the fake Salesforce: the
meeting reminder's and the /sa cards' Add opens the form on the opportunity; a DM item's and a POV
card's Update opens it pre-filled; the pov-* rules refuse what they would flag, on the field, with
everything typed kept; a valid form writes once however often it is sent; another SA's POV is
refused with an ephemeral message and nothing changes."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from builders import pov, write_snapshot
from fakes.salesforce import serving
from slack_app_requests import (
    EVE,
    EVES_OPP,
    MIA,
    OPP,
    ORG,
    SAM,
    SF_CONN,
    SNAPSHOT,
    TODAY,
    eventually,
    form_submission,
    reminder,
    send,
    signed,
)

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.blockkit import ADD_POV, UPDATE_POV, UPDATE_TECH_EVAL
from sa_hygiene.delivery.digest import Renderer, _Group
from sa_hygiene.delivery.items import DigestRecords
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.state.alerts import PENDING, AlertState
from sa_hygiene.web.slack_app.items import TECH_EVAL_VIEW
from sa_hygiene.web.slack_app.pov import ADD_FIELDS, ADD_VIEW, POV, UPDATE_FIELDS, UPDATE_VIEW

pytestmark = pytest.mark.integration
WAIT = 60.0  # seconds the work after an answer may take on a busy machine

SAMS = pov(name="Acme <!here> CI POV", owner_id=SAM["id"], opportunity_id=OPP["id"], start_date="2026-11-01", success_criteria="")
EVES = pov(name="Globex POV", owner_id=EVE["id"], opportunity_id=EVES_OPP["id"])
RUNNING = [pov(name=f"Run {i}", owner_id=SAM["id"], opportunity_id=OPP["id"]) for i in range(2)]  # Sam runs 3 with SAMS


def api(record: dict) -> dict:
    names = load_config().fields[POV]
    return {names[k]: (v if v != "" else None) for k, v in record.items() if k in names}


@pytest.fixture
def snapshot(tmp_path, cfg):
    folder = write_snapshot(tmp_path / "snap", {**ORG, POV: [SAMS, EVES, *RUNNING]})
    SNAPSHOT[:] = [read_snapshot(folder, cfg)]
    return SNAPSHOT[0]


@pytest.fixture
def salesforce(ca, monkeypatch):
    with serving(ca, monkeypatch, SF_CONN, {POV: [api(p) for p in (SAMS, EVES, *RUNNING)], "Task": [], "Contact": []}) as sf:
        yield sf


@pytest.fixture
def slack(slack):
    slack.add_channel("dm-sam", "DSAM")
    return slack


def click(http, message: dict, action_id: str, value: str, slack_user: str = "USAM"):
    payload = {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
               "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": "DSAM", "message_ts": message["ts"]},
               "channel": {"id": "DSAM"}, "message": message,
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "1.3"}]}  # fmt: skip
    return send(http, payload)


def buttons(message: dict, action_id: str) -> list[dict]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id]


def digest(slack, record: dict, workflow: str = "pov-criteria") -> dict:
    """Sam's DM digest holding the POV ``record`` under ``workflow``, as the renderer makes it."""
    cfg = load_config()
    alert = {"workflow": workflow, "object": POV, "record_id": record["id"], "slot": "sa_digest",
             "recipient": {"type": "user", "id": SAM["id"]}, "reasons": []}  # fmt: skip
    preamble, content, _ = Renderer(cfg, DigestRecords(SNAPSHOT[0], cfg), TODAY).blocks(
        _Group("sa_digest", {"type": "user", "id": SAM["id"]}, [alert]))  # fmt: skip
    return slack._post({"channel": "DSAM", "text": "digest", "blocks": preamble + content})["message"]


def submit(view: dict, fields: tuple[str, ...], slack_user: str = "USAM", **values) -> dict:
    return form_submission(view, fields, ("start_date", "end_date", "planned_end"), ("status", "result", "opportunity_id"),
                           slack_user, **values)  # fmt: skip


def fields_of(view: dict) -> dict:
    return {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}


def posts(salesforce) -> list:
    return [r for r in salesforce.data_requests() if r.method == "POST" and f"/sobjects/{POV}" in r.path]


def patches(salesforce) -> list:
    return [r for r in salesforce.data_requests() if r.method == "PATCH"]


ADD = {"opportunity_id": OPP["id"], "name": "Acme security POV", "start_date": "2026-11-24", "planned_end": "2026-12-22",
       "success_criteria": "SAST replaces the incumbent scanner on two repositories"}  # fmt: skip


def opened_add(http, slack) -> dict:
    message = reminder(slack)
    [button] = buttons(message, ADD_POV)
    assert button["value"] == OPP["id"] and button["text"]["text"] == "Add a Proof of Value"
    assert click(http, message, ADD_POV, button["value"]).status_code == 200
    return eventually(lambda: list(slack.views.values()), timeout=WAIT)[0]


def test_the_reminders_add_opens_the_form_on_its_opportunity_with_the_guidelines(http, slack):
    view = opened_add(http, slack)
    assert view["callback_id"] == ADD_VIEW
    f = fields_of(view)
    assert f["opportunity_id"]["initial_option"]["value"] == OPP["id"] and f["opportunity_id"]["type"] == "external_select"
    text = json.dumps(view)
    assert "1 to 8 weeks" in text and "at most 3 POVs at a time: you run 3 now" in text


def test_the_rules_refuse_on_the_field_and_nothing_is_created(http, slack, salesforce, cfg):
    view = opened_add(http, slack)
    answer = send(http, submit(view, ADD_FIELDS, **{**ADD, "planned_end": "2027-01-19", "success_criteria": None}))  # day 56
    assert answer.json() == {"response_action": "errors", "errors": {
        "planned_end": cfg.workflows["pov-overdue"].message.text, "success_criteria": cfg.workflows["pov-criteria"].message.text,
        "start_date": cfg.workflows["pov-load"].title}}  # fmt: skip  # Sam runs 3: a 4th from today is one too many
    answer = send(http, submit(view, ADD_FIELDS, **{**ADD, "start_date": "2026-11-30", "planned_end": "2027-01-24"}))  # day 55, planned
    assert answer.json()["response_action"] == "update"
    eventually(lambda: posts(salesforce), timeout=WAIT)
    time.sleep(0.3)
    assert len(posts(salesforce)) == 1


def test_a_valid_add_creates_the_pov_once_however_often_it_is_sent(http, slack, salesforce, snapshot, cfg):
    view = opened_add(http, slack)
    body = submit(view, ADD_FIELDS, **{**ADD, "start_date": "2026-11-30"})
    first, second = send(http, body), send(http, body)  # a double click on Save
    assert first.json()["response_action"] == "update" and second.json()["response_action"] == "update"
    eventually(lambda: "Created in Salesforce" in json.dumps(slack.views[view["id"]]), timeout=WAIT)
    time.sleep(0.5)
    [created] = posts(salesforce)
    assert json.loads(created.body) == {"Name": ADD["name"], "Opportunity__c": OPP["id"], "Account__c": OPP["account_id"],
                                        "OwnerId": SAM["id"], "Status__c": "Planned", "Start_Date__c": "2026-11-30",
                                        "Success_Criteria__c": ADD["success_criteria"]}  # fmt: skip


def test_a_pov_made_since_the_snapshot_counts_toward_the_load_when_saving(http, slack, salesforce, snapshot, cfg):
    """The snapshot is up to a feed's interval old: a POV Sam added a minute ago (from this very
    form) is in Salesforce, not in it. The form passes the snapshot's check, and the save asks
    Salesforce for the POVs Sam runs now before creating a fourth."""
    table = snapshot.tables[POV]
    snapshot.tables[POV] = table[table["id"] != RUNNING[1]["id"]].reset_index(drop=True)  # made after the snapshot
    view = opened_add(http, slack)
    assert "you run 2 now" in json.dumps(view)
    answer = send(http, submit(view, ADD_FIELDS, **ADD))  # starts today: a third by the snapshot, a fourth in fact
    assert answer.json()["response_action"] == "update"
    shown = eventually(lambda: json.dumps(slack.views[view["id"]]) if "Not saved" in json.dumps(slack.views[view["id"]]) else None,
                       timeout=WAIT)  # fmt: skip
    assert cfg.workflows["pov-load"].title in shown and ADD["success_criteria"] in shown  # why, and what was typed kept
    assert posts(salesforce) == []


def test_a_pov_is_added_only_to_an_opportunity_of_ones_own(http, slack, salesforce, cfg):
    view = opened_add(http, slack)
    answer = send(http, submit(view, ADD_FIELDS, **{**ADD, "opportunity_id": EVES_OPP["id"]}))
    assert list(answer.json()["errors"]) == ["opportunity_id"]
    message = reminder(slack)
    slack.add_user("stranger@gitlab.com", "USTRANGER")
    click(http, message, ADD_POV, OPP["id"], "USTRANGER")
    refused = eventually(lambda: slack.calls("chat.postEphemeral"), timeout=WAIT)
    assert "can add a Proof of Value" in refused[0].args["text"]
    assert not posts(salesforce)


def test_an_items_update_opens_pre_filled_and_a_valid_form_writes_once(http, slack, salesforce, state_url, cfg):
    with AlertState(state_url) as state:  # the evaluation that raised the item
        state.record(TODAY, [{"workflow": "pov-criteria", "object": POV, "record_id": SAMS["id"],
                              "recipient": {"type": "user", "id": SAM["id"]}}])  # fmt: skip
    message = digest(slack, SAMS)
    [button] = buttons(message, UPDATE_POV)
    assert button["value"] == SAMS["id"]
    click(http, message, UPDATE_POV, SAMS["id"])
    view = eventually(lambda: list(slack.views.values()), timeout=WAIT)[0]
    f = fields_of(view)
    assert view["callback_id"] == UPDATE_VIEW and f["status"]["initial_option"]["value"] == "In Progress"
    assert f["start_date"]["initial_date"] == "2026-11-01" and "initial_value" not in f["success_criteria"]
    assert [o["value"] for o in f["status"]["options"]] == cfg.proofs_of_value.statuses
    assert "&lt;!here&gt;" in json.dumps(view["blocks"][0]) and "<!here>" not in json.dumps(view)
    values = {"status": "In Progress", "start_date": "2026-11-01"}
    answer = send(http, submit(view, UPDATE_FIELDS, **values))
    assert answer.json()["errors"] == {"success_criteria": cfg.workflows["pov-criteria"].message.text}
    body = submit(view, UPDATE_FIELDS, **values, success_criteria="Merge trains green for a week")
    send(http, body), send(http, body)
    done = eventually(lambda: slack.calls("chat.update"), timeout=WAIT)
    time.sleep(0.5)
    [patch] = patches(salesforce)
    assert json.loads(patch.body) == {"Success_Criteria__c": "Merge trains green for a week"}
    assert salesforce.record(POV, SAMS["id"])["Success_Criteria__c"] == "Merge trains green for a week"
    marked = json.dumps(done[0].args["blocks"])
    assert "Proof of Value updated by Sam Architect" in marked and UPDATE_POV not in marked
    with AlertState(state_url) as state:
        [fix] = state.fixes().values()
    assert (fix["workflow"], fix["status"], fix["fields"]["success_criteria"]) == ("pov-criteria", PENDING, "Merge trains green for a week")


def test_a_pov_without_its_opportunitys_tech_evaluation_is_put_right_on_the_opportunity(http, slack):
    """pov-tech-eval asks for the opportunity's tech-evaluation start date: its item offers the
    opportunity's tech-evaluation form, not the POV's (which has no such field)."""
    message = digest(slack, SAMS, "pov-tech-eval")
    assert buttons(message, UPDATE_POV) == []
    [button] = buttons(message, UPDATE_TECH_EVAL)
    assert button["value"] == OPP["id"] and button["text"]["text"] == "Update tech evaluation"
    click(http, message, UPDATE_TECH_EVAL, OPP["id"])
    view = eventually(lambda: list(slack.views.values()), timeout=WAIT)[0]
    assert view["callback_id"] == TECH_EVAL_VIEW and OPP["name"] in json.dumps(view)


def test_another_sas_pov_is_refused_and_a_manager_may_update(http, slack, salesforce):
    message = digest(slack, SAMS)
    click(http, message, UPDATE_POV, SAMS["id"], "UEVE")
    refused = eventually(lambda: slack.calls("chat.postEphemeral"), timeout=WAIT)
    assert "Only the Proof of Value's owner" in refused[0].args["text"] and not slack.views
    assert MIA["id"] == SAM["manager_id"]
    click(http, message, UPDATE_POV, SAMS["id"], "UMIA")
    eventually(lambda: slack.views, timeout=WAIT)
    assert not patches(salesforce)


def test_a_validation_rule_keeps_the_form_open_with_everything_typed(http, slack, salesforce):
    salesforce.rule(POV, lambda r: "Result needs a debrief link" if r.get("Result__c") == "Successful" else None)
    click(http, digest(slack, SAMS), UPDATE_POV, SAMS["id"])
    view = eventually(lambda: list(slack.views.values()), timeout=WAIT)[0]
    typed = {"status": "Completed", "start_date": "2026-11-01", "end_date": "2026-11-20", "result": "Successful",
             "success_criteria": "Merge trains green"}  # fmt: skip
    assert send(http, submit(view, UPDATE_FIELDS, **typed)).json()["response_action"] == "update"
    shown = eventually(lambda: [c for c in slack.calls("views.update") if "Result needs a debrief link" in json.dumps(c.args)], timeout=WAIT)
    form = shown[0].args["view"]
    f = fields_of(json.loads(form) if isinstance(form, str) else form)
    assert f["status"]["initial_option"]["value"] == "Completed" and f["end_date"]["initial_date"] == "2026-11-20"
    assert f["success_criteria"]["initial_value"] == "Merge trains green"
    assert salesforce.record(POV, SAMS["id"])["Status__c"] == "In Progress"


def test_sa_search_finds_povs_by_name_and_offers_add_on_opportunities(http, slack):
    body = urlencode({"command": "/sa", "text": "acme", "user_id": "USAM", "channel_id": "DSAM", "team_id": "T0FAKE",
                      "trigger_id": "9.9.trigger", "response_url": "https://hooks.slack.invalid/commands/1"})  # fmt: skip
    assert http.post("/events", content=body, headers=signed(body)).status_code == 200
    [answer] = eventually(lambda: slack.calls("chat.postEphemeral"), timeout=WAIT)
    blocks = answer.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    values = {(e["action_id"], e["value"]) for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert (ADD_POV, OPP["id"]) in values and (UPDATE_POV, SAMS["id"]) in values
    assert "Acme &lt;!here&gt; CI POV" in json.dumps(blocks)


def test_a_forged_value_is_refused(http):
    payload = {"type": "block_actions", "user": {"id": "USAM"}, "trigger_id": "1.2", "container": {"channel_id": "DSAM", "message_ts": "1.1"},
               "actions": [{"type": "button", "action_id": ADD_POV, "value": SAMS["id"]}]}  # fmt: skip
    assert send(http, payload).status_code == 400
    payload["actions"][0].update(action_id=UPDATE_POV, value="a0P|<x>")
    assert send(http, payload).status_code == 400


def test_an_expired_session_is_renewed_and_the_pov_created_once(http, slack, salesforce):
    view = opened_add(http, slack)
    salesforce.fail("expire_session", when=lambda r: r.method == "POST" and f"/sobjects/{POV}" in r.path)
    send(http, submit(view, ADD_FIELDS, **{**ADD, "start_date": "2026-11-30"}))
    eventually(lambda: "Created in Salesforce" in json.dumps(slack.views[view["id"]]), timeout=WAIT)
    assert salesforce.live(POV).num_rows == 4 + 1
    assert salesforce.live(POV).to_pylist()[-1]["Name"] == ADD["name"]


def test_a_creation_whose_answer_was_lost_is_found_not_made_twice(http, slack, salesforce):
    view = opened_add(http, slack)
    salesforce.fail("drop", when=lambda r: r.method == "POST" and f"/sobjects/{POV}" in r.path)
    send(http, submit(view, ADD_FIELDS, **{**ADD, "start_date": "2026-11-30"}))
    eventually(lambda: "Created in Salesforce" in json.dumps(slack.views[view["id"]]), timeout=WAIT)
    assert [r["Name"] for r in salesforce.live(POV).to_pylist()].count(ADD["name"]) == 1
    assert any(f"FROM {POV} WHERE" in q for q in salesforce.soql())  # looked up, not created again


def test_the_add_forms_opportunity_search_answers(http, slack):
    from slack_app_requests import suggestion

    answer = send(http, suggestion(opened_add(http, slack), "acme"))
    assert answer.status_code == 200
    assert OPP["id"] in json.dumps(answer.json())
