"""With the alert-state database down, every action completes or tells the user what did not
happen, keeps what they typed, and the operations channel hears about it once."""

from __future__ import annotations

import json

import pytest
from slack_app_requests import (
    ITEM,
    OPP,
    SAM,
    STATE,
    eventually,
    menu_click,
    opened_form,
    post_digest,
    send,
    submission,
)

from sa_hygiene.web.slack_app.items import Item

pytestmark = pytest.mark.integration


@pytest.fixture
def state_url(tmp_path):
    """A state database that cannot be opened: its path is a folder."""
    (tmp_path / "down.sqlite").mkdir()
    STATE[:] = [f"sqlite:///{tmp_path}/down.sqlite"]
    return STATE[0]


def ops_notes(slack) -> list[dict]:
    return [m for m in slack.posts("COPS") if "state database" in m["text"]]


def test_snooze_says_it_did_not_snooze_and_ops_hear_once(http, slack):
    message = post_digest(slack, "DSAM", ITEM)
    for _ in range(3):
        assert send(http, menu_click("USAM", "DSAM", message, ITEM)).status_code == 200
    told = eventually(lambda: len(slack.ephemeral) >= 3 and slack.ephemeral)
    assert all("Not snoozed" in e["text"] for e in told)
    assert not [c for c in slack.calls("chat.update") if c.args.get("channel") == "DSAM"]
    assert len(ops_notes(slack)) == 1


def test_not_mine_is_reported_and_says_it_was_not_snoozed(http, slack):
    not_mine = Item("notmine", "wf-07", OPP["id"], SAM["id"])
    message = post_digest(slack, "DSAM", not_mine)
    assert send(http, menu_click("USAM", "DSAM", message, not_mine)).status_code == 200
    [update] = eventually(lambda: [c for c in slack.calls("chat.update") if c.args.get("channel") == "DSAM"])
    assert "not snoozed" in json.dumps(update.args["blocks"])
    eventually(lambda: [m for m in slack.posts("COPS") if "is not theirs" in m["text"]])
    assert len(ops_notes(slack)) == 1


def test_a_form_comes_back_kept_with_what_did_not_happen(http, slack, salesforce):
    view = opened_form(http, slack)
    description = "Showed the security dashboard to the CISO."
    for sent in (1, 2):
        assert send(http, submission(view, description=description)).status_code == 200
        shown = eventually(lambda n=sent: len(back := [c for c in slack.calls("views.update")
                                                       if "database is unavailable" in json.dumps(c.args)]) >= n and back)  # fmt: skip
    form = shown[-1].args["view"]
    form = json.loads(form) if isinstance(form, str) else form
    fields = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
    assert fields["description"]["initial_value"] == description
    assert "submit" in form
    assert salesforce.live("Task").num_rows == 0
    assert len(ops_notes(slack)) == 1
