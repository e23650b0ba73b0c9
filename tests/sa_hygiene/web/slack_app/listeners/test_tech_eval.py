"""The "Update tech evaluation" button and modal over HTTP, against the fake Slack and the fake
Salesforce: the digest item's button opens the form pre-filled from the record; the rules refuse
what they would flag, in their own words; a valid form writes the Opportunity once, marks the
item in its message and records the fix as pending; a closed opportunity becomes a Chatter post;
only the record's people (and their managers, up the chain) may write; Salesforce's refusals keep
the form."""

from __future__ import annotations

import json
import time

import pytest
from builders import opportunity, user
from fakes.salesforce import serving
from slack_app_requests import EVE, MIA, SAM, SF_CONN, SNAPSHOT, TODAY, eventually, form_submission, send

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.blockkit import UPDATE_TECH_EVAL
from sa_hygiene.delivery.digest import Renderer
from sa_hygiene.delivery.items import DigestRecords
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.state.alerts import PENDING, AlertState
from sa_hygiene.web.slack_app.items import TECH_EVAL_VIEW

pytestmark = pytest.mark.integration
WAIT = 60.0  # seconds the work after an answer may take on a busy machine

BOSS = user(name="Bea Director", email="bea@gitlab.com", role_type="SA Manager")
MIA_UP = {**MIA, "manager_id": BOSS["id"]}  # Sam -> Mia -> Bea: Bea leads Sam two levels up
OPEN = opportunity(name="Acme <!channel> - Ultimate", owner_id=EVE["id"], sa=SAM["id"], stage="5-Negotiating",
                   iacv="50000", te_start="2026-10-01", stage3_date="2026-09-20")  # fmt: skip
CLOSED = opportunity(name="Globex - Premium", owner_id=EVE["id"], sa=SAM["id"], stage="Closed Won", is_closed="true",
                     is_won="true", iacv="30000", te_start="2026-09-01", stage3_date="2026-08-20")  # fmt: skip
ORG = {"User": [SAM, MIA_UP, EVE, BOSS], "Opportunity": [OPEN, CLOSED]}


def api(record: dict) -> dict:
    """A builders record by the org's API names."""
    names = load_config().fields["Opportunity"]
    return {names[k]: (v if v != "" else None) for k, v in record.items() if k in names}


@pytest.fixture
def snapshot(tmp_path, cfg):
    from builders import write_snapshot

    SNAPSHOT[:] = [read_snapshot(write_snapshot(tmp_path / "snap", ORG), cfg)]
    return SNAPSHOT[0]


@pytest.fixture
def salesforce(ca, monkeypatch):
    with serving(ca, monkeypatch, SF_CONN, {"Opportunity": [api(OPEN), api(CLOSED)], "FeedItem": []}) as sf:
        yield sf


@pytest.fixture
def slack(slack):
    slack.add_user(BOSS["email"], "UBEA")
    slack.add_channel("dm-sam", "DSAM")
    return slack


def digest(slack, record: dict, workflow: str = "wf-06") -> dict:
    """Sam's DM digest holding ``record`` under ``workflow``, as the renderer makes it; the stored message."""
    from sa_hygiene.delivery.digest import _Group

    cfg = load_config()
    alert = {"workflow": workflow, "object": "Opportunity", "record_id": record["id"], "slot": "sa_digest",
             "recipient": {"type": "user", "id": SAM["id"]}, "reasons": []}  # fmt: skip
    preamble, content, _ = Renderer(cfg, DigestRecords(SNAPSHOT[0], cfg), TODAY).blocks(
        _Group("sa_digest", {"type": "user", "id": SAM["id"]}, [alert]))  # fmt: skip
    return slack._post({"channel": "DSAM", "text": "digest", "blocks": preamble + content})["message"]


def click(http, message: dict, slack_user: str = "USAM", record: dict = OPEN):
    [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == UPDATE_TECH_EVAL and e["value"] == record["id"]]  # fmt: skip
    payload = {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
               "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": "DSAM", "message_ts": message["ts"]},
               "channel": {"id": "DSAM"}, "message": message,
               "actions": [{"type": "button", "action_id": UPDATE_TECH_EVAL, "block_id": f"fix:{record['id']}",
                            "value": button["value"], "action_ts": "1.3"}]}  # fmt: skip
    return send(http, payload)


def opened(http, slack, record: dict = OPEN, slack_user: str = "USAM") -> dict:
    message = digest(slack, record)
    assert click(http, message, slack_user, record).status_code == 200
    return eventually(lambda: list(slack.views.values()), timeout=WAIT)[0]


def submit(view: dict, slack_user: str = "USAM", **values) -> dict:
    return form_submission(view, ("sa", "te_start", "te_end", "te_status", "te_details"), ("te_start", "te_end"),
                           ("sa", "te_status"), slack_user, **values)  # fmt: skip


def fields_of(view: dict) -> dict:
    return {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}


def sf_field(name: str) -> str:
    return load_config().api_name("Opportunity", name)


GOOD = {"sa": SAM["id"], "te_start": "2026-10-01", "te_end": "2026-11-20", "te_status": "Win",
        "te_details": "Merge trains <!here> met their release SLA."}  # fmt: skip


def test_the_button_opens_the_form_pre_filled_from_the_record(http, slack):
    view = opened(http, slack)
    assert view["callback_id"] == TECH_EVAL_VIEW
    f = fields_of(view)
    assert f["te_start"]["initial_date"] == "2026-10-01" and "initial_date" not in f["te_end"]
    assert f["sa"]["initial_option"]["value"] == SAM["id"]
    assert [o["value"] for o in f["te_status"]["options"]] == ["Win", "Loss", "Stalled"]
    assert "&lt;!channel&gt;" in view["blocks"][0]["text"]["text"]  # the record's name, inert


def test_the_rules_refuse_what_they_would_flag_in_the_handbooks_words(http, slack, salesforce, cfg):
    view = opened(http, slack)
    answer = send(http, submit(view, sa=SAM["id"], te_start="2026-10-01", te_end="2026-12-20", te_status="Won"))
    assert answer.status_code == 200
    assert answer.json() == {"response_action": "errors", "errors": {
        "te_end": cfg.reasons["end_date_in_future"],
        "te_status": cfg.reasons["invalid_close_status"],
        "te_details": cfg.reasons["close_details_missing"],
    }}  # fmt: skip
    answer = send(http, submit(view, sa=SAM["id"], te_start="2026-10-01", te_end="2026-11-20", te_status="Win"))
    assert answer.json()["errors"] == {"te_details": cfg.reasons["close_details_missing"]}
    answer = send(http, submit(view, sa=SAM["id"], te_start="2026-10-01"))  # stage 5: wf-06 and wf-15 want the close
    assert answer.json()["errors"] == {"te_end": cfg.workflows["wf-06"].message.text, "te_status": cfg.workflows["wf-15"].message.text}
    time.sleep(0.3)
    assert not [r for r in salesforce.data_requests() if r.method == "PATCH"]


def test_a_valid_form_writes_once_marks_the_item_and_records_a_pending_fix(http, slack, salesforce, state_url):
    with AlertState(state_url) as state:  # the evaluation that raised the item
        state.record(TODAY, [{"workflow": "wf-06", "object": "Opportunity", "record_id": OPEN["id"],
                              "recipient": {"type": "user", "id": SAM["id"]}}])  # fmt: skip
    view = opened(http, slack)
    body = submit(view, **GOOD)
    first, second = send(http, body), send(http, body)  # a double click on Save
    assert first.json()["response_action"] == "update" and second.json()["response_action"] == "update"
    done = eventually(lambda: slack.calls("chat.update"), timeout=WAIT)
    time.sleep(0.5)
    patches = [r for r in salesforce.data_requests() if r.method == "PATCH"]
    assert len(patches) == 1
    assert json.loads(patches[0].body) == {sf_field("te_end"): "2026-11-20", sf_field("te_status"): "Win",
                                           sf_field("te_details"): GOOD["te_details"]}  # fmt: skip
    stored = salesforce.record("Opportunity", OPEN["id"])
    assert stored[sf_field("te_status")] == "Win" and stored[sf_field("te_end")] == "2026-11-20"
    blocks = done[0].args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert "Tech evaluation updated by Sam Architect" in json.dumps(blocks)
    assert UPDATE_TECH_EVAL not in json.dumps(blocks)
    assert "Saved in Salesforce" in json.dumps(slack.views[view["id"]])
    # What was typed (``<!here>`` in the details) reaches no channel, escaped or not, and no view raw.
    assert not any("!here" in json.dumps(c.args) for c in slack.calls("chat.postMessage", "chat.update", "chat.postEphemeral"))
    assert "<!here>" not in json.dumps(slack.views[view["id"]])
    with AlertState(state_url) as state:
        [fix] = state.fixes().values()
    assert (fix["workflow"], fix["status"], fix["fixed_by"]) == ("wf-06", PENDING, "Sam Architect")
    assert fix["fields"]["te_status"] == "Win"


def test_a_slack_retry_of_the_submission_writes_once(http, slack, salesforce):
    from urllib.parse import urlencode

    from slack_app_requests import signed

    view = opened(http, slack)
    raw = urlencode({"payload": json.dumps(submit(view, **GOOD))})
    headers = signed(raw)
    assert http.post("/events", content=raw, headers=headers).status_code == 200
    retried = http.post("/events", content=raw, headers={**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retried.status_code == 200
    eventually(lambda: slack.calls("chat.update"), timeout=WAIT)
    time.sleep(0.5)
    assert len([r for r in salesforce.data_requests() if r.method == "PATCH"]) == 1


def test_a_validation_rule_keeps_the_form_open_with_everything_typed(http, slack, salesforce):
    salesforce.rule("Opportunity", lambda r: "Close details need a ticket number" if r.get(sf_field("te_status")) == "Win" else None)
    view = opened(http, slack)
    send(http, submit(view, **GOOD))
    shown = eventually(lambda: [c for c in slack.calls("views.update") if "Salesforce did not save it" in json.dumps(c.args)], timeout=WAIT)
    form = shown[0].args["view"]
    form = json.loads(form) if isinstance(form, str) else form
    assert "Close details need a ticket number" in json.dumps(form["blocks"])
    f = fields_of(form)
    assert f["te_end"]["initial_date"] == "2026-11-20" and f["te_status"]["initial_option"]["value"] == "Win"
    assert f["te_details"]["initial_value"] == GOOD["te_details"]
    assert salesforce.record("Opportunity", OPEN["id"])[sf_field("te_status")] is None
    assert not slack.calls("chat.update")


def test_an_expired_session_is_renewed_and_the_write_goes_through_once(http, slack, salesforce):
    view = opened(http, slack)
    salesforce.fail("expire_session", when=lambda r: r.method == "PATCH")
    send(http, submit(view, **GOOD))
    eventually(lambda: salesforce.record("Opportunity", OPEN["id"])[sf_field("te_status")] == "Win", timeout=WAIT)
    eventually(lambda: slack.calls("chat.update"), timeout=WAIT)


def test_a_session_that_cannot_be_renewed_keeps_the_form_with_salesforces_words(http, app, slack, salesforce, monkeypatch):
    from fakes.salesforce import INSTANCE

    from sa_hygiene.source.salesforce import SalesforceClient

    extra = {"instance_url": f"https://{INSTANCE}", "proxies": {"https": salesforce.proxy_url}}
    monkeypatch.setenv("AIRFLOW_CONN_SF_DIRECT_SESSION", json.dumps({"conn_type": "salesforce", "extra": extra}))
    app.backends.salesforce = SalesforceClient("sf_direct_session", session_id=salesforce.new_session(), backoff_seconds=0)
    view = opened(http, slack)
    salesforce.fail("expire_session", when=lambda r: r.method == "PATCH")
    send(http, submit(view, **GOOD))
    shown = eventually(lambda: [c for c in slack.calls("views.update") if "INVALID_SESSION_ID" in json.dumps(c.args)], timeout=WAIT)
    form = shown[0].args["view"]
    form = json.loads(form) if isinstance(form, str) else form
    assert "the session expired" in json.dumps(form["blocks"][1])
    assert fields_of(form)["te_details"]["initial_value"] == GOOD["te_details"]
    assert salesforce.record("Opportunity", OPEN["id"])[sf_field("te_status")] is None
    assert not slack.calls("chat.update")


def test_a_closed_opportunity_becomes_a_chatter_post_to_sales_support(http, slack, salesforce):
    view = opened(http, slack, CLOSED)
    assert view["submit"]["text"] == "Post to Chatter"
    send(http, submit(view, sa=SAM["id"], te_start="2026-09-01", te_end="2026-10-14", te_status="Win",
                      te_details="Passed the security review."))  # fmt: skip
    posts = eventually(lambda: salesforce.live("FeedItem").to_pylist(), timeout=WAIT)
    assert [(p["ParentId"], p["Type"]) for p in posts] == [(CLOSED["id"], "TextPost")]
    assert posts[0]["Body"] == (
        "@Sales-Support please update the SA Validated Tech Evaluation End Date to 10/14/2026, SA Validated Tech "
        "Evaluation Close Status to Win, and SA Validated Tech Evaluation Close Details to Passed the security "
        "review. on this closed opportunity (Globex - Premium).")  # fmt: skip
    assert not [r for r in salesforce.data_requests() if r.method == "PATCH"]  # the SA cannot edit it
    eventually(lambda: any("Sales Support asked in Chatter by Sam Architect" in json.dumps(c.args) for c in slack.calls("chat.update")), timeout=WAIT)


def test_where_the_org_refuses_the_post_the_text_to_copy_and_a_link_are_shown(http, slack, salesforce, cfg):
    del salesforce.objects["FeedItem"]  # an org whose API user may not post to feeds
    view = opened(http, slack, CLOSED)
    send(http, submit(view, sa=SAM["id"], te_start="2026-09-01", te_end="2026-10-14", te_status="Loss",
                      te_details="<!channel> chose *another* tool"))  # fmt: skip
    shown = eventually(lambda: [c for c in slack.calls("views.update") if "Post it yourself" in json.dumps(c.args)], timeout=WAIT)
    text = json.dumps(shown[0].args)
    assert f"lightning/r/Opportunity/{CLOSED['id']}/view" in text
    assert "&lt;!channel&gt; chose *another* tool" in text and "<!channel>" not in text


def test_only_the_records_people_and_their_managers_up_the_chain_may_write(http, slack, salesforce):
    message = digest(slack, OPEN)
    slack.add_user("stranger@gitlab.com", "USTRANGER")
    click(http, message, "USTRANGER")
    refused = eventually(lambda: slack.calls("chat.postEphemeral"), timeout=WAIT)
    assert "Only the opportunity's owner or Primary SA" in refused[0].args["text"] and not slack.views
    click(http, message, "UBEA")  # Sam's manager's manager
    eventually(lambda: slack.views, timeout=WAIT)


def test_a_forged_button_value_is_refused(http):
    payload = {"type": "block_actions", "user": {"id": "USAM"}, "trigger_id": "1.2", "container": {"channel_id": "DSAM", "message_ts": "1.1"},
               "actions": [{"type": "button", "action_id": UPDATE_TECH_EVAL, "value": "00T000000000001AAA|<x>"}]}  # fmt: skip
    assert send(http, payload).status_code == 400
