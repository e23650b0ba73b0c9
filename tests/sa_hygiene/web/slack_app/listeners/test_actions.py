"""Buttons and menus over HTTP: snooze and not-mine from a digest item, who may use them, and
the "Log it" button opening the form with the taxonomy and the suggestion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_app_requests import (
    ITEM,
    KIM,
    OPP,
    PAT,
    SAM,
    TODAY,
    click_log_it,
    eventually,
    menu_click,
    opened_form,
    post_digest,
    send,
    snoozes,
)

from sa_hygiene.engine.routing import Directory
from sa_hygiene.web.slack_app.items import Item

pytestmark = pytest.mark.integration


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


def test_log_it_opens_the_form_with_the_taxonomy_and_the_suggestion(http, slack, cfg):
    view = opened_form(http, slack)
    assert slack.calls("views.open")[0].args["trigger_id"] == "1.2.trigger"
    blocks = {b["block_id"]: b["element"] for b in view["blocks"]}
    offered = [o["value"] for g in blocks["types"]["option_groups"] for o in g["options"]]
    assert offered == cfg.taxonomy.all_activity_types
    assert [o["value"] for o in blocks["sentiment"]["options"]] == cfg.taxonomy.sentiments
    assert [o["value"] for o in blocks["persona"]["options"]] == cfg.taxonomy.persona_levels
    assert blocks["functions"]["options"] == [{"text": {"type": "plain_text", "text": f}, "value": f}
                                              for f in cfg.taxonomy.persona_functions]  # fmt: skip
    assert [o["value"] for o in blocks["products"]["options"]] == cfg.taxonomy.products
    # Related To: a search (block_suggestion), the reminder's suggestion pre-selected.
    assert blocks["what"]["type"] == "external_select" and blocks["what"]["action_id"] == "sa_related_to"
    assert blocks["what"]["initial_option"] == {"text": {"type": "plain_text", "text": "Acme - Ultimate"}, "value": OPP["id"]}
    # The contact: the attendees, then the account's other contacts; or a new one, created inline.
    groups = {g["label"]["text"]: [o["value"] for o in g["options"]] for g in blocks["who"]["option_groups"]}
    assert groups == {"Attendees": [PAT["id"]], "The account's contacts": [KIM["id"]]}
    assert blocks["new_name"]["type"] == "plain_text_input" and blocks["new_email"]["type"] == "email_text_input"
    assert blocks["date"] == {"action_id": "date", "type": "datepicker", "initial_date": "2026-11-23"}
    assert blocks["subject"]["initial_value"] == "Acme demo"


def test_someone_else_cannot_open_the_form(http, slack):
    click_log_it(http, slack, "UEVE")
    eventually(lambda: slack.ephemeral)
    assert slack.views == {}


@pytest.mark.parametrize(("item", "why"), [
    (Item("snooze", "wf-99", OPP["id"], SAM["id"]), "unknown workflow"),
    (Item("snooze", "wf-07", "0065e0000000999AAA", SAM["id"]), "no such Opportunity"),
    (Item("notmine", "wf-01", "00T5e0000000999AAA", SAM["id"]), "only an opportunity"),
])  # fmt: skip
def test_a_signed_value_naming_no_item_this_app_sent_changes_nothing(http, slack, state_url, item, why):
    message = post_digest(slack, "DSAM", ITEM)
    assert send(http, menu_click("USAM", "DSAM", message, item)).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    assert "not one this app sent" in told["text"] and why in told["text"]
    assert snoozes(state_url) == [] and not slack.calls("chat.update") and not slack.posts("COPS")


def test_a_news_item_is_not_snoozed(http, slack, state_url, cfg):
    news = Item("snooze", sorted(cfg.news_workflows)[0], OPP["id"], SAM["id"])
    message = post_digest(slack, "DSAM", ITEM)
    assert send(http, menu_click("USAM", "DSAM", message, news)).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    assert "news is not snoozed" in told["text"] and snoozes(state_url) == []


def test_no_log_form_for_a_meeting_that_does_not_exist(http, slack):
    from slack_app_requests import LOG

    from sa_hygiene.delivery.blockkit import LOG_IT

    ghost = Item("log", LOG.workflow, "00U5e0000000999AAA", SAM["id"], OPP["id"])
    payload = {"type": "block_actions", "user": {"id": "USAM"}, "trigger_id": "1.2.trigger",
               "container": {"type": "message", "channel_id": "DSAM", "message_ts": "1.1"}, "channel": {"id": "DSAM"},
               "actions": [{"type": "button", "action_id": LOG_IT, "block_id": "b", "value": ghost.value()}]}  # fmt: skip
    slack.add_channel("dm-sam", "DSAM")
    assert send(http, payload).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    assert "no such Event" in told["text"] and not slack.calls("views.open")


def test_when_slack_cannot_say_who_clicked_the_user_hears_what_failed(http, slack, state_url):
    slack.fail("users.info", error="missing_scope")
    message = post_digest(slack, "DSAM", ITEM)
    assert send(http, menu_click("USAM", "DSAM", message, ITEM)).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    assert "users.info failed (missing_scope)" in told["text"] and "not yours" not in told["text"]
    assert snoozes(state_url) == []


# --------------------------------------------------------------------------- only what was sent (issue 20, item 7)


def test_another_sa_s_opportunity_named_in_a_signed_value_is_not_snoozed(http, slack, state_url):
    from slack_app_requests import EVE, EVES_OPP, record_sent

    message = post_digest(slack, "DSAM", ITEM)
    record_sent({"ts": "9.9"}, "DEVE", f"sa_digest|user:{EVE['id']}|{TODAY}", [("wf-07", EVES_OPP["id"], EVE["id"])])
    forged = Item("snooze", "wf-07", EVES_OPP["id"], SAM["id"])  # Eve's opportunity, in Sam's name
    assert send(http, menu_click("USAM", "DSAM", message, forged)).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    assert told["user"] == "USAM" and "no digest of its recipient carried that item" in told["text"]
    assert snoozes(state_url) == [] and not slack.calls("chat.update")


@pytest.mark.parametrize("where", ["unknown_message", "someone_else_s_message"])
def test_an_item_clicked_in_a_message_this_app_did_not_send_to_its_recipient_changes_nothing(http, slack, state_url, where):
    from slack_app_requests import EVE, record_sent

    message = post_digest(slack, "DSAM", ITEM)
    if where == "unknown_message":
        message = {**message, "ts": "1234.5678"}
    else:  # a digest this app sent to Eve, its item made to name Sam
        message = {**message, "ts": "8.8"}
        record_sent(message, "DSAM", f"sa_digest|user:{EVE['id']}|{TODAY}")
    assert send(http, menu_click("USAM", "DSAM", message, ITEM)).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    why = "no record of sending that message" if where == "unknown_message" else "not addressed to the item's recipient"
    assert "not one this app sent" in told["text"] and why in told["text"]
    assert snoozes(state_url) == [] and not slack.calls("chat.update") and not slack.posts("COPS")


def test_no_log_form_for_a_meeting_whose_reminder_went_to_no_one(http, slack):
    from slack_app_requests import EVES_MEETING, reminder

    from sa_hygiene.delivery.blockkit import LOG_IT

    message = reminder(slack)  # Sam's reminder of his meeting; the value names Eve's meeting instead
    other = Item("log", "wf-01", EVES_MEETING["id"], SAM["id"], OPP["id"])
    payload = {"type": "block_actions", "user": {"id": "USAM"}, "trigger_id": "1.2.trigger",
               "container": {"type": "message", "channel_id": "DSAM", "message_ts": message["ts"]},
               "channel": {"id": "DSAM"},
               "actions": [{"type": "button", "action_id": LOG_IT, "block_id": "b", "value": other.value()}]}  # fmt: skip
    assert send(http, payload).status_code == 200
    [told] = eventually(lambda: slack.ephemeral)
    assert "no reminder of that meeting was sent" in told["text"] and not slack.calls("views.open")


def test_an_item_raised_since_the_snapshot_is_checked_against_the_message_itself(http, slack, state_url):
    """No episode yet (a 15-minute DM digest's item): the message Slack holds must carry the value."""
    from slack_app_requests import EVES_OPP, SNAPSHOT, record_sent

    from sa_hygiene.contract.config import load_config
    from sa_hygiene.delivery.digest import Renderer
    from sa_hygiene.delivery.items import DigestRecords

    slack.add_channel("dm-sam", "DSAM")
    renderer = Renderer(load_config(), DigestRecords(SNAPSHOT[0], load_config()), TODAY)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "*Acme - Ultimate*"}}
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "Your SA hygiene digest"}},
              renderer.with_menu(section, ITEM.workflow, "Opportunity", ITEM.record_id, ITEM.recipient)]  # fmt: skip
    message = slack._post({"channel": "DSAM", "text": "digest", "blocks": blocks})["message"]
    record_sent(message, "DSAM", f"sa_digest|user:{SAM['id']}|{TODAY}")  # the ledger row, no episode
    forged = Item("snooze", "wf-07", EVES_OPP["id"], SAM["id"])
    send(http, menu_click("USAM", "DSAM", message, forged))
    [told] = eventually(lambda: slack.ephemeral)
    assert "no digest of its recipient carried that item" in told["text"] and snoozes(state_url) == []
    send(http, menu_click("USAM", "DSAM", message, ITEM))
    eventually(lambda: slack.calls("chat.update"))
    assert [(s["workflow"], s["record_key"]) for s in snoozes(state_url)] == [("wf-07", OPP["id"][:15])]
