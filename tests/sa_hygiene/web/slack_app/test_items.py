"""What a request may carry: item values are compact, checked, and the controls digests and
reminders carry fit Slack's limits and decode to the items the app acts on."""

from __future__ import annotations

import pytest
from slack_app_requests import ITEM, LOG, OPP, REMINDER, SAM, TODAY

from sa_hygiene.delivery.blockkit import (
    ITEM_MENU,
    LOG_IT,
    UPDATE_TECH_EVAL,
    Message,
    check_message,
    fit_message,
)
from sa_hygiene.delivery.digest import Renderer
from sa_hygiene.delivery.items import DigestRecords
from sa_hygiene.web.slack_app import items
from sa_hygiene.web.slack_app.items import accept, decode_item, problem
from sa_hygiene.web.slack_app.listeners import register

pytestmark = pytest.mark.integration


def test_item_values_are_compact_and_checked():
    value = LOG.value()
    assert len(value) <= 150 and decode_item(value) == LOG
    assert decode_item(ITEM.value()) == ITEM
    for bad in ("", "snooze|wf-07", "drop|wf-07|" + OPP["id"] + "|" + SAM["id"], "snooze|wf 07|" + OPP["id"] + "|" + SAM["id"],
                "snooze|wf-07|" + OPP["id"] + "|<@U1>", None, "x" * 151):
        assert decode_item(bad) is None


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
    log_it, fix, link = blocks[-1]["elements"]
    assert decode_item(log_it["value"]) == LOG and log_it["action_id"] == LOG_IT
    # The handbook's "Update Opportunity" on the suggested opportunity (wf-01's fix: tech_eval).
    assert (fix["action_id"], fix["value"]) == (UPDATE_TECH_EVAL, OPP["id"])
    assert link["url"] == f"{cfg.salesforce.instance_url}/lightning/r/Opportunity/{OPP['id']}/view"
    message = fit_message(Message(key="k", slot="sa_digest", recipient={"type": "user", "id": SAM["id"]}, email=None,
                                  fallbacks=(), text="t", blocks=[opp, *blocks], replies=[], title="t"))  # fmt: skip
    check_message(message)
    too_many = {**opp, "accessory": {**menu, "options": menu["options"] * 2}}
    with pytest.raises(ValueError, match="options"):
        check_message(Message(key="k", slot="sa_digest", recipient={}, email=None, fallbacks=(), text="t",
                              blocks=[too_many], replies=[], title="t"))  # fmt: skip


class _Listeners:
    """Stands in for Bolt's ``App`` in ``register``: records the ids each kind of listener is for."""

    def __init__(self):
        self.ids: dict[str, set[str]] = {}

    def __getattr__(self, kind):
        def listener(key):
            self.ids.setdefault(kind, set()).add(key)
            return lambda *args, **kwargs: None

        return listener


def test_every_listener_s_id_has_its_check_in_the_registry_and_nothing_else_is_answered(app):
    bolt = _Listeners()
    register(bolt, app.backends)
    assert bolt.ids["action"] == set(items.ACTIONS)
    assert bolt.ids["view"] == bolt.ids["view_closed"] == set(items.VIEWS)
    assert bolt.ids["command"] == set(items.COMMANDS)
    assert bolt.ids["options"] == set(items.SUGGESTIONS)
    click = {"type": "block_actions", "user": {"id": "USAM"}, "actions": [{"action_id": "sa_unknown"}], "trigger_id": "t"}
    assert problem(click) == "unknown action"
    assert problem({"command": "/unknown", "user_id": "USAM", "trigger_id": "t"}) == "unknown request type"
    with pytest.raises(ValueError, match="registered twice"):
        accept(actions={ITEM_MENU: lambda body: None})
