"""Managers acting from Slack over HTTP, against the fake Slack and the fake Salesforce: Assign
Primary SA on a regional digest item, Reassign all on a leaver's book, Nudge and Snooze on an
escalated record; who may do it (the manager chain of the record's SA or owner, or the region's
manager group) and who is refused with nothing changed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from builders import opportunity, user, write_snapshot
from slack_app_requests import MIA, SAM, SF_CONN, SNAPSHOT, TODAY, eventually, send

from sa_hygiene.contract.config import ManagerSettings, load_config
from sa_hygiene.delivery.digest import build_messages
from sa_hygiene.delivery.manager_controls import ASSIGN_SA, NUDGE, REASSIGN_ALL, SNOOZE_RECORD
from sa_hygiene.delivery.notices import escalation_messages
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.state.alerts import AlertState
from sa_hygiene.state.manager_actions import ManagerActions
from sa_hygiene.web.slack_app.managing import MANAGER_REFUSAL

pytestmark = pytest.mark.integration

# SAM -> MIA -> DAN (deactivated) -> DIR: MIA and DIR manage Sam; DAN no longer counts.
DIR = user(name="Dee Director", email="dee@gitlab.com", role_type="SA Director")
DAN = user(name="Dan Departed", email="dan@gitlab.com", role_type="SA Manager", is_active="false", manager_id=DIR["id"])
PEER = user(name="Pete Peer", email="pete@gitlab.com", manager_id=MIA["id"])
LEO = user(name="Leo Leaver", email="leo@gitlab.com", is_active="false", manager_id=MIA["id"])
GAIL = user(name="Gail Group", email="gail@gitlab.com", role_type="SA Manager")  # in east-sa's manager group
WES = user(name="Wes West", email="wes@gitlab.com", region="West")
AE = user(name="Ann Owner", email="ann@gitlab.com", role_type="AE")
MIA_ = {**MIA, "manager_id": DAN["id"]}
NOSA = opportunity(name="Globex - Premium", owner_id=AE["id"], stage="3-Technical Evaluation", iacv="50000",
                   stage3_date="2026-11-01")  # fmt: skip
SAMS = opportunity(name="Initech <Renewal>", owner_id=AE["id"], sa=SAM["id"], stage="4-Proposal", te_start="2026-10-01")
BOOK = [opportunity(name=f"Leo's {n}", owner_id=AE["id"], sa=LEO["id"], stage="3-Technical Evaluation") for n in range(14)]
USERS = [SAM, MIA_, DIR, DAN, PEER, LEO, GAIL, WES, AE]
ORG = {"User": USERS, "Opportunity": [NOSA, SAMS, *BOOK]}
SLACK_IDS = {"sam": "USAM", "mia": "UMIA", "dee": "UDEE", "dan": "UDAN", "pete": "UPETE", "gail": "UGAIL", "wes": "UWES"}
API = {"id": "Id", "name": "Name", "owner_id": "OwnerId", "sa": "Solution_Architect__c", "stage": "StageName",
       "is_closed": "IsClosed"}  # fmt: skip


@pytest.fixture
def cfg():
    return load_config().model_copy(update={"managers": ManagerSettings(snooze_days=[7, 14, 30], groups={"east-sa": ["Gail@gitlab.com"]})})


@pytest.fixture
def snapshot(tmp_path, cfg):
    SNAPSHOT[:] = [read_snapshot(write_snapshot(tmp_path / "snap", ORG), cfg)]
    return SNAPSHOT[0]


@pytest.fixture
def salesforce(ca, monkeypatch):
    from fakes.salesforce import serving

    rows = [{API[k]: (v == "true" if k == "is_closed" else v or None) for k, v in o.items() if k in API}
            for o in ORG["Opportunity"]]  # fmt: skip
    with serving(ca, monkeypatch, SF_CONN, {"Task": [], "Opportunity": rows}) as sf:
        yield sf


@pytest.fixture
def people(slack):
    for email, slack_id in SLACK_IDS.items():
        slack.add_user(f"{email}@gitlab.com", slack_id)
    return slack


def post(slack, channel: str, message) -> dict:
    slack.add_channel(channel, channel) if channel not in slack.channels else None
    return slack._post({"channel": channel, "text": message.text, "blocks": message.blocks})["message"]


def click(slack_user: str, channel: str, message: dict, action_id: str, *, block: str | None = None, option: str | None = None) -> dict:
    """What Slack sends for a click on ``action_id`` (in ``block``), choosing the option whose value ends with ``option``."""
    for b in message["blocks"]:
        if block and b.get("block_id") != block:
            continue
        for element in [b.get("accessory") or {}, *(b.get("elements") or [])]:
            if element.get("action_id") != action_id:
                continue
            action = {"type": element["type"], "action_id": action_id, "block_id": b.get("block_id"), "action_ts": "1.3"}
            if element["type"] == "static_select":
                chosen = next(o for o in element["options"] if o["value"].endswith(option))
                action["selected_option"] = {"value": chosen["value"], "text": chosen["text"]}
            else:
                action["value"] = element["value"]
            return {"type": "block_actions", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
                    "trigger_id": "1.2.trigger", "container": {"type": "message", "channel_id": channel,
                                                               "message_ts": message["ts"]},
                    "channel": {"id": channel}, "message": message, "actions": [action]}  # fmt: skip
    raise AssertionError(f"no {action_id} in the message")


def regional_digest(cfg, snapshot) -> object:
    alerts = [{"workflow": wf, "object": "Opportunity", "record_id": NOSA["id"], "slot": "regional_digest",
               "recipient": {"type": "channel", "name": "#sa-activities-east-sa"}, "reasons": []}
              for wf in ("wf-13", "wf-12")]  # fmt: skip
    [message] = build_messages(alerts, snapshot, cfg, TODAY)
    return message


def escalation(cfg, snapshot, state_url) -> object:
    """Mia's escalation DM: Sam's opportunity open under two workflows, and Leo's book."""
    items = [{"manager": MIA["id"], "owner": SAM["id"], "workflow": wf, "object": "Opportunity", "record_id": SAMS["id"],
              "first_seen": "2026-11-10", "age_days": age} for wf, age in (("wf-15", 14), ("te-stalled", 9))]  # fmt: skip
    with AlertState(state_url) as state:
        state.record(TODAY, [{"workflow": i["workflow"], "object": "Opportunity", "record_id": SAMS["id"],
                              "recipient": {"type": "user", "id": SAM["id"]}} for i in items])  # fmt: skip
    leavers = [{"leaver": LEO["id"], "manager": MIA["id"], "opportunities": [o["id"] for o in BOOK]}]
    [message] = escalation_messages(items, snapshot, cfg, {MIA["id"]: TODAY}, leavers)
    return message


def writes(state_url) -> list[dict]:
    with ManagerActions(state_url) as actions:
        return actions.writes_on(datetime.now(UTC).date())


# --------------------------------------------------------------------------- the messages


def test_the_escalation_dm_has_one_entry_per_record_with_all_its_reasons_and_controls(cfg, snapshot, state_url):
    message = escalation(cfg, snapshot, state_url)
    entries = [b for b in message.blocks if b.get("block_id") == f"item:{SAMS['id']}"]
    assert len(entries) == 1  # one opportunity, two workflows: one entry
    text = entries[0]["text"]["text"]
    assert "Initech &lt;Renewal&gt;" in text and "Sam Architect's: open 14 days (since 2026-11-10)" in text
    assert cfg.workflows["wf-15"].title in text and cfg.workflows["te-stalled"].title in text
    [controls] = [b for b in message.blocks if b.get("block_id") == f"esc:{SAMS['id']}"]
    assert [e["text"]["text"] for e in controls["elements"]] == ["Nudge", "Snooze", "Open"]
    leaver = next(b for b in message.blocks if b.get("block_id") == f"leaver:{LEO['id']}")
    assert "Leo Leaver is inactive — 14 opportunities need a new Primary SA" in leaver["text"]["text"]
    assert leaver["accessory"]["action_id"] == REASSIGN_ALL and leaver["accessory"]["confirm"]
    # The region's active SAs only: not Leo (inactive), not Wes (West), not the managers.
    assert [o["text"]["text"] for o in leaver["accessory"]["options"]] == ["Pete Peer", "Sam Architect"]
    assert message.text.endswith("; Leo Leaver is inactive: 14 opportunities to reassign")


def test_a_regional_item_without_an_sa_offers_the_regions_active_sas(cfg, snapshot):
    message = regional_digest(cfg, snapshot)
    [item] = [b for b in message.blocks if b.get("block_id") == f"item:{NOSA['id']}"]
    assert item["accessory"]["action_id"] == ASSIGN_SA
    assert [o["value"] for o in item["accessory"]["options"]] == [f"assign|{NOSA['id']}|{PEER['id']}",
                                                                    f"assign|{NOSA['id']}|{SAM['id']}"]  # fmt: skip


# --------------------------------------------------------------------------- assign


def test_a_group_manager_assigns_a_primary_sa_from_the_regional_digest(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    assert send(http, click("UGAIL", "CEAST", message, ASSIGN_SA, option=SAM["id"])).status_code == 200
    eventually(lambda: slack.calls("chat.update"))
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] == SAM["id"]
    [stored] = slack.posts("CEAST")
    [item] = [b for b in stored["blocks"] if b.get("block_id") == f"item:{NOSA['id']}"]
    assert "accessory" not in item and item["text"]["text"].endswith(":white_check_mark: Sam Architect assigned by Gail Group")
    [dm] = eventually(lambda: slack.posts("DSAM"))
    assert dm["text"].startswith(":briefcase: Gail Group made you the Primary SA of <") and "Globex - Premium" in dm["text"]
    [w] = writes(state_url)
    assert (w["by"], w["action"], w["record_id"], w["field"], w["old"], w["new"], w["outcome"]) == (
        "Gail Group <gail@gitlab.com>", "assign", NOSA["id"], "Solution_Architect__c", None, SAM["id"], "saved")
    assert slack.ephemeral == []


def test_an_assignment_salesforce_refuses_is_said_and_kept_as_it_was(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    salesforce.rule("Opportunity", lambda r: "The SA must be certified for PS deals" if r["Solution_Architect__c"] else None)
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    send(http, click("UGAIL", "CEAST", message, ASSIGN_SA, option=SAM["id"]))
    [note] = eventually(lambda: slack.ephemeral)
    assert note["user"] == "UGAIL" and "Salesforce did not save it" in note["text"]
    assert "The SA must be certified for PS deals" in note["text"] and note["text"].endswith("Nothing was changed.")
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] is None
    assert not slack.calls("chat.update") and slack.posts("DSAM") == []
    [w] = writes(state_url)
    assert w["outcome"] == "refused: FIELD_CUSTOM_VALIDATION_EXCEPTION"


def test_a_second_assignment_from_the_same_old_message_changes_nothing(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    stale = copy.deepcopy(message)  # a second manager's copy, from before the first click
    send(http, click("UGAIL", "CEAST", message, ASSIGN_SA, option=SAM["id"]))
    eventually(lambda: slack.calls("chat.update"))
    send(http, click("UGAIL", "CEAST", stale, ASSIGN_SA, option=PEER["id"]))  # the snapshot still says "no SA"
    [note] = eventually(lambda: slack.ephemeral)
    assert note["text"].startswith("Salesforce now shows Sam Architect as the Primary SA")
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] == SAM["id"]
    assert len(writes(state_url)) == 1


@pytest.mark.parametrize("who", ["UPETE", "UWES", "UDAN", "USAM"], ids=["peer SA", "SA of another region", "deactivated", "the SA"])
def test_anyone_but_a_manager_is_refused_and_nothing_changes(http, people, salesforce, cfg, snapshot, state_url, who):
    slack = people
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    send(http, click(who, "CEAST", message, ASSIGN_SA, option=SAM["id"]))
    [note] = eventually(lambda: slack.ephemeral)
    assert note["user"] == who and note["text"] == MANAGER_REFUSAL
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] is None
    assert not slack.calls("chat.update") and writes(state_url) == []
    assert not [r for r in salesforce.data_requests() if r.method == "PATCH"]


def test_the_manager_hears_when_the_new_sa_cannot_be_told(http, people, salesforce, cfg, snapshot):
    slack = people
    slack.users.pop("pete@gitlab.com")  # Slack has no user with Pete's Salesforce e-mail
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    send(http, click("UGAIL", "CEAST", message, ASSIGN_SA, option=PEER["id"]))
    [note] = eventually(lambda: slack.ephemeral)
    assert note["text"] == ("Saved in Salesforce, but Slack does not know Pete Peer by their Salesforce e-mail: "
                            "please tell them yourself.")  # fmt: skip
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] == PEER["id"]


def test_an_sa_the_select_never_offered_is_not_assigned(http, people, salesforce, cfg, snapshot):
    slack = people
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    payload = click("UGAIL", "CEAST", message, ASSIGN_SA, option=SAM["id"])
    payload["actions"][0]["selected_option"]["value"] = f"assign|{NOSA['id']}|{WES['id']}"  # forged: a West SA
    send(http, payload)
    [note] = eventually(lambda: slack.ephemeral)
    assert "SA of another region" in note["text"]
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] is None


# --------------------------------------------------------------------------- a region of many SAs


def search(slack_user: str, channel: str, message: dict, action_id: str, block: str, words: str) -> dict:
    """What Slack sends while someone types ``words`` into a search menu of ``message``."""
    return {"type": "block_suggestion", "user": {"id": slack_user}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
            "container": {"type": "message", "channel_id": channel, "message_ts": message["ts"]},
            "channel": {"id": channel}, "action_id": action_id, "block_id": block, "value": words}  # fmt: skip


def test_a_region_of_more_sas_than_a_select_holds_gets_a_search_that_offers_each(tmp_path, cfg):
    """Slack shows at most 100 options: the 101st SA of a region would never be offered."""
    many = [user(name=f"Sa {k:03d}", email=f"sa{k}@gitlab.com") for k in range(101)]
    snap = read_snapshot(write_snapshot(tmp_path / "many", {**ORG, "User": [*USERS, *many]}), cfg)
    message = regional_digest(cfg, snap)
    [item] = [b for b in message.blocks if b.get("block_id") == f"item:{NOSA['id']}"]
    assert item["accessory"]["type"] == "external_select" and item["accessory"]["action_id"] == ASSIGN_SA
    assert "options" not in item["accessory"] and item["accessory"]["min_query_length"] == 0


def test_the_search_of_sas_offers_the_region_s_active_sas_whose_names_match(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "CEAST", regional_digest(cfg, snapshot))
    item = f"item:{NOSA['id']}"
    answer = send(http, search("UGAIL", "CEAST", message, ASSIGN_SA, item, ""))
    assert answer.status_code == 200
    # The region's active SAs only (not Wes of the West, not Leo who left, not the managers).
    assert [(o["text"]["text"], o["value"]) for o in answer.json()["options"]] == [
        ("Pete Peer", f"assign|{NOSA['id']}|{PEER['id']}"), ("Sam Architect", f"assign|{NOSA['id']}|{SAM['id']}")]
    chosen = send(http, search("UGAIL", "CEAST", message, ASSIGN_SA, item, "ARCH sam")).json()["options"]
    assert [o["value"] for o in chosen] == [f"assign|{NOSA['id']}|{SAM['id']}"]
    assert send(http, search("UGAIL", "CEAST", message, ASSIGN_SA, item, "nobody")).json() == {"options": []}
    leaver = send(http, search("UMIA", "DMIA", message, REASSIGN_ALL, f"leaver:{LEO['id']}", "pe")).json()["options"]
    assert [o["value"] for o in leaver] == [f"all|{LEO['id']}|{PEER['id']}"]
    # What is chosen in the search is assigned as a static select's choice is.
    payload = click("UGAIL", "CEAST", message, ASSIGN_SA, option=SAM["id"])
    payload["actions"][0] = {**payload["actions"][0], "type": "external_select", "selected_option": chosen[0]}
    assert send(http, payload).status_code == 200
    eventually(lambda: slack.calls("chat.update"))
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] == SAM["id"]


@pytest.mark.parametrize("case", ["no_block", "other_kind_of_block", "not_an_id", "in_a_view", "huge_query"])
def test_a_search_of_sas_that_is_not_ours_is_refused(http, people, cfg, snapshot, case):
    message = post(people, "CEAST", regional_digest(cfg, snapshot))
    payload = search("UGAIL", "CEAST", message, ASSIGN_SA, f"item:{NOSA['id']}", "sam")
    if case == "no_block":
        del payload["block_id"]
    elif case == "other_kind_of_block":
        payload["block_id"] = f"leaver:{NOSA['id']}"
    elif case == "not_an_id":
        payload["block_id"] = "item:<script>"
    elif case == "in_a_view":
        payload["view"] = {"id": "V1", "callback_id": "sa_snooze_record_view"}
    else:
        payload["value"] = "a" * 5000
    assert send(http, payload).status_code == 400


# --------------------------------------------------------------------------- a leaver's book


def test_reassign_all_writes_each_record_once_in_one_request_and_reports_refusals(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    salesforce.rule("Opportunity", lambda r: "Closed deals are locked" if r["Name"] == "Leo's 13" else None)
    salesforce.fail("unavailable", when=lambda r: r.method == "PATCH", times=1)  # the first try is lost: retried
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    payload = click("UMIA", "DMIA", message, REASSIGN_ALL, option=PEER["id"])
    assert send(http, payload).status_code == 200
    eventually(lambda: slack.calls("chat.update"))
    patches = [r for r in salesforce.data_requests() if r.method == "PATCH"]
    assert [r.path.rsplit("/services/data/", 1)[1].split("/", 1)[1] for r in patches] == ["composite/sobjects"] * 2
    sent = [[rec["id"] for rec in json.loads(r.body)["records"]] for r in patches]
    assert sent[-1] == sorted(o["id"] for o in BOOK)  # each record once, in one request
    assert [salesforce.record("Opportunity", o["id"])["Solution_Architect__c"] for o in BOOK] == [PEER["id"]] * 13 + [LEO["id"]]
    [stored] = slack.posts("DMIA")
    leaver = next(b for b in stored["blocks"] if b.get("block_id") == f"leaver:{LEO['id']}")
    assert "accessory" not in leaver
    assert ":white_check_mark: 13 of 14 reassigned to Pete Peer by Mia Manager" in leaver["text"]["text"]
    assert "Salesforce refused" in leaver["text"]["text"] and "Leo's 13" in leaver["text"]["text"]
    assert "Closed deals are locked" in leaver["text"]["text"]
    assert sorted(w["outcome"] for w in writes(state_url)) == ["refused: FIELD_CUSTOM_VALIDATION_EXCEPTION: Closed deals are locked",
                                                                *["saved"] * 13]  # fmt: skip
    assert sorted(w["record_id"] for w in writes(state_url)) == sorted(o["id"] for o in BOOK)
    [dm] = eventually(lambda: slack.posts("DPETE"))
    assert "made you the Primary SA of 13 opportunities of Leo Leaver" in dm["text"]
    # The same click again (a second tap) writes nothing more.
    send(http, payload)
    eventually(lambda: slack.ephemeral)
    assert len([r for r in salesforce.data_requests() if r.method == "PATCH"]) == 2


def test_reassigning_a_book_of_14_is_one_salesforce_request(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    send(http, click("UMIA", "DMIA", message, REASSIGN_ALL, option=SAM["id"]))
    eventually(lambda: slack.calls("chat.update"))
    [request] = [r for r in salesforce.data_requests() if r.method == "PATCH"]
    assert len(json.loads(request.body)["records"]) == 14
    assert {salesforce.record("Opportunity", o["id"])["Solution_Architect__c"] for o in BOOK} == {SAM["id"]}


def test_one_record_of_a_leavers_book_is_reassigned_on_its_own(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    send(http, click("UMIA", "DMIA", message, ASSIGN_SA, block=f"item:{BOOK[0]['id']}", option=SAM["id"]))
    eventually(lambda: slack.calls("chat.update"))
    assert [salesforce.record("Opportunity", o["id"])["Solution_Architect__c"] for o in BOOK[:2]] == [SAM["id"], LEO["id"]]
    [w] = writes(state_url)
    assert (w["action"], w["old"], w["new"]) == ("reassign", LEO["id"], SAM["id"])
    [stored] = slack.posts("DMIA")
    [item] = [b for b in stored["blocks"] if b.get("block_id") == f"item:{BOOK[0]['id']}"]
    assert "accessory" not in item and item["text"]["text"].endswith("Sam Architect assigned by Mia Manager")
    assert "accessory" in next(b for b in stored["blocks"] if b.get("block_id") == f"item:{BOOK[1]['id']}")


def test_a_peer_cannot_reassign_a_leavers_book(http, people, salesforce, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    send(http, click("UPETE", "DMIA", message, REASSIGN_ALL, option=PEER["id"]))
    [note] = eventually(lambda: slack.ephemeral)
    assert note["text"] == MANAGER_REFUSAL
    assert [salesforce.record("Opportunity", o["id"])["Solution_Architect__c"] for o in BOOK] == [LEO["id"]] * 14


# --------------------------------------------------------------------------- nudge and snooze


def test_nudge_dms_the_sa_once_a_day(http, people, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    payload = click("UMIA", "DMIA", message, NUDGE, block=f"esc:{SAMS['id']}")
    send(http, payload)
    [dm] = eventually(lambda: slack.posts("DSAM"))
    assert dm["text"].startswith(":wave: Mia Manager asked you to look at <") and "Initech &lt;Renewal&gt;" in dm["text"]
    assert cfg.workflows["wf-15"].title in dm["text"]
    eventually(lambda: slack.calls("chat.update"))
    [stored] = slack.posts("DMIA")
    [controls] = [b for b in stored["blocks"] if b.get("block_id") == f"esc:{SAMS['id']}"]
    assert [e["text"]["text"] for e in controls["elements"]] == ["Snooze", "Open"]
    send(http, payload)  # again the same day (an old copy of the message)
    [note] = eventually(lambda: slack.ephemeral)
    assert note["text"].startswith("Already nudged today (by Mia Manager)")
    assert len(slack.posts("DSAM")) == 1


def test_a_peer_cannot_nudge(http, people, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    send(http, click("UPETE", "DMIA", message, NUDGE, block=f"esc:{SAMS['id']}"))
    [note] = eventually(lambda: slack.ephemeral)
    assert note["text"] == MANAGER_REFUSAL and slack.posts("DSAM") == []


def test_snooze_asks_how_long_and_why_and_snoozes_every_open_workflow_of_the_record(http, people, cfg, snapshot, state_url):
    slack = people
    message = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    send(http, click("UDEE", "DMIA", message, SNOOZE_RECORD, block=f"esc:{SAMS['id']}"))  # up the chain, past Dan
    [view] = eventually(lambda: list(slack.views.values()))
    days = next(b for b in view["blocks"] if b.get("block_id") == "days")["element"]
    assert [o["value"] for o in days["options"]] == ["7", "14", "30"]

    def submit(chosen: str, reason: str | None) -> dict:
        values = {"days": {"days": {"type": "static_select", "selected_option": {"value": chosen}}},
                  "reason": {"reason": {"type": "plain_text_input", "value": reason}}}  # fmt: skip
        return {"type": "view_submission", "user": {"id": "UDEE"}, "team": {"id": "T0FAKE"}, "api_app_id": "A0APP",
                "view": {**view, "state": {"values": values}, "hash": "1.abc"}}  # fmt: skip

    answer = send(http, submit("14", "  "))
    assert answer.json() == {"response_action": "errors", "errors": {"reason": "Say why, so the SA and the report know."}}
    assert send(http, submit("14", "customer on holiday")).status_code == 200
    eventually(lambda: slack.calls("chat.update"))
    with AlertState(state_url) as state:
        rows = state.all_snoozes()
    assert sorted((r["workflow"], r["until"], r["reason"], r["snoozed_by"]) for r in rows) == [
        (wf, TODAY + timedelta(days=14), "customer on holiday", "dee@gitlab.com") for wf in ("te-stalled", "wf-15")]
    [stored] = slack.posts("DMIA")
    [item] = [b for b in stored["blocks"] if b.get("block_id") == f"item:{SAMS['id']}"]
    assert item["text"]["text"].endswith(":zzz: Snoozed by Dee Director until Tue 08 Dec 2026: customer on holiday")


# --------------------------------------------------------------------------- the state database down


def break_state(state_url: str) -> None:
    """From now on the state database cannot be opened: its file becomes a folder."""
    import shutil
    from pathlib import Path

    path = Path(state_url.removeprefix("sqlite:///"))
    path.unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()


def test_with_the_state_database_down_a_nudge_is_not_sent_and_an_assignment_is_told_to_operations(
        http, people, salesforce, cfg, snapshot, state_url):  # fmt: skip
    slack = people
    escalated = post(slack, "DMIA", escalation(cfg, snapshot, state_url))
    regional = post(slack, "CEAST", regional_digest(cfg, snapshot))
    break_state(state_url)
    send(http, click("UMIA", "DMIA", escalated, NUDGE, block=f"esc:{SAMS['id']}"))
    [note] = eventually(lambda: slack.ephemeral)
    assert "database is unavailable" in note["text"] and slack.posts("DSAM") == []
    send(http, click("UGAIL", "CEAST", regional, ASSIGN_SA, option=SAM["id"]))
    eventually(lambda: slack.calls("chat.update"))
    assert salesforce.record("Opportunity", NOSA["id"])["Solution_Architect__c"] == SAM["id"]
    told = eventually(lambda: [m for m in slack.posts("COPS") if "Changed in Salesforce from Slack" in m["text"]])
    assert f"Gail Group &lt;gail@gitlab.com&gt;: assign Opportunity {NOSA['id']}" in told[0]["text"]
