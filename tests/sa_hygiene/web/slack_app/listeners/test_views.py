"""The log-it form's submission over HTTP: errors come back in the modal before anything is
created, a valid form creates one Task however often it is sent, a Salesforce error keeps what
was typed, and the answer never waits for Salesforce."""

from __future__ import annotations

import json
import re
import time

import pytest
from slack_app_requests import ACME, OPP, PAT, SAM, eventually, opened_form, send, submission

pytestmark = pytest.mark.integration


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
    assert re.search(r"Logged by Sam Architect at \d\d:\d\d \\u2014 <https://", json.dumps(done[0].args["blocks"]))


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


def test_a_person_not_in_salesforce_is_created_as_a_contact_and_the_task_names_them(http, slack, salesforce, cfg):
    view = opened_form(http, slack)
    answer = send(http, submission(view, who=None, new_name="Robin de Vries", new_email="robin@acme.com",
                                   functions=["Security"], products=["Ultimate", "Duo Pro"], date="2026-11-22"))  # fmt: skip
    assert answer.json()["response_action"] == "update", answer.text
    eventually(lambda: salesforce.live("Task").num_rows == 1)
    [created] = [c for c in salesforce.live("Contact").to_pylist() if c["Email"] == "robin@acme.com"]
    assert (created["FirstName"], created["LastName"], created["AccountId"]) == ("Robin de", "Vries", ACME["id"])
    [task] = salesforce.live("Task").to_pylist()
    f = cfg.fields["Task"]
    assert task[f["who_id"]] == created["Id"] and task[f["activity_date"]] == "2026-11-22"
    assert task[f["products"]] == "Ultimate;Duo Pro" and task[f["persona_functions"]] == "Security"


@pytest.mark.parametrize(("values", "errors"), [
    ({"new_name": "Robin", "who": PAT["id"]}, {"new_name": "Choose a contact or create one, not both."}),
    ({"who": None, "new_email": "robin@acme.com"}, {"new_name": "The new contact needs a name."}),
    ({"who": None, "new_name": "Robin", "new_email": "not-an-address"}, {"new_email": "That is not an e-mail address."}),
])  # fmt: skip
def test_a_new_contact_must_be_whole_and_alone(http, slack, salesforce, values, errors):
    view = opened_form(http, slack)
    answer = send(http, submission(view, **values))
    assert answer.json() == {"response_action": "errors", "errors": errors}
    time.sleep(0.3)
    assert salesforce.live("Task").num_rows == 0 and salesforce.live("Contact").num_rows == 0


def test_an_expired_salesforce_session_is_renewed_and_the_task_saved_once(http, slack, salesforce):
    view = opened_form(http, slack)
    salesforce.fail("expire_session", when=lambda r: r.method == "POST" and "/sobjects/Task" in r.path)
    send(http, submission(view))
    eventually(lambda: salesforce.live("Task").num_rows == 1)
    time.sleep(0.5)
    assert salesforce.live("Task").num_rows == 1


def test_a_submission_slack_retries_writes_once(http, slack, salesforce):
    from urllib.parse import urlencode

    from slack_app_requests import signed

    view = opened_form(http, slack)
    body = urlencode({"payload": json.dumps(submission(view))})
    assert http.post("/events", content=body, headers=signed(body)).status_code == 200
    for n in (1, 2):  # Slack did not see the answer in time: it sends the same request again
        retry = {**signed(body), "X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}
        assert http.post("/events", content=body, headers=retry).status_code == 200
    eventually(lambda: salesforce.live("Task").num_rows == 1)
    time.sleep(1.0)
    assert salesforce.live("Task").num_rows == 1
    assert len([r for r in salesforce.requests if r.method == "POST" and "/sobjects/Task" in r.path]) == 1


def test_a_refused_new_contact_keeps_the_form_with_everything_typed(http, slack, salesforce):
    view = opened_form(http, slack)
    salesforce.rule("Contact", lambda r: "Contacts need a phone number" if r.get("Email", "").endswith("acme.com") else None)
    typed = {"who": None, "new_name": "Robin de Vries", "new_email": "robin@acme.com", "products": ["Ultimate"],
             "functions": ["Security"], "date": "2026-11-22"}  # fmt: skip
    send(http, submission(view, **typed))
    shown = eventually(lambda: [c for c in slack.calls("views.update") if "Contacts need a phone number" in json.dumps(c.args)])
    form = shown[0].args["view"]
    form = json.loads(form) if isinstance(form, str) else form
    fields = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
    assert fields["new_name"]["initial_value"] == "Robin de Vries" and fields["new_email"]["initial_value"] == "robin@acme.com"
    assert [o["value"] for o in fields["products"]["initial_options"]] == ["Ultimate"]
    assert [o["value"] for o in fields["functions"]["initial_options"]] == ["Security"]
    assert fields["date"]["initial_date"] == "2026-11-22" and "submit" in form
    assert salesforce.live("Task").num_rows == 0 and salesforce.live("Contact").num_rows == 0
