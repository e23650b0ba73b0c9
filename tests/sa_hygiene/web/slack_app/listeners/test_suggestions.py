"""The log form's Related To search over HTTP: signed ``block_suggestion`` requests answered
from the snapshot (open opportunities and accounts), within Slack's three seconds, never from
Salesforce; searches from views that are not ours are refused."""

from __future__ import annotations

import time

import pytest
from slack_app_requests import ACME, EVES_OPP, GLOBEX, OPP, opened_form, send, suggestion

pytestmark = pytest.mark.integration


def offered(answer) -> dict[str, list[str]]:
    return {g["label"]["text"]: [o["value"] for o in g["options"]] for g in answer.json()["option_groups"]}


def test_related_to_searches_open_opportunities_and_accounts_from_the_snapshot(http, slack, salesforce):
    view = opened_form(http, slack)
    before = len(salesforce.requests)
    started = time.monotonic()
    answer = send(http, suggestion(view, "globex"))
    assert time.monotonic() - started < 3.0
    assert answer.status_code == 200
    assert offered(answer) == {"Open opportunities": [EVES_OPP["id"]], "Accounts": [GLOBEX["id"]]}
    # Every word must match, in the opportunity's name or its account's; case does not matter.
    assert offered(send(http, suggestion(view, "ACME ultimate"))) == {"Open opportunities": [OPP["id"]]}
    everything = offered(send(http, suggestion(view, "")))
    assert set(everything["Open opportunities"]) == {OPP["id"], EVES_OPP["id"]}
    assert set(everything["Accounts"]) == {ACME["id"], GLOBEX["id"]}
    labels = [o["text"]["text"] for g in send(http, suggestion(view, "corp")).json()["option_groups"] for o in g["options"]]
    assert "Acme &lt;Corp&gt; (account)" in labels  # escaped
    assert send(http, suggestion(view, "no such thing")).json() == {"options": []}
    assert len(salesforce.requests) == before  # never asked Salesforce


@pytest.mark.parametrize("case", ["foreign_view", "unknown_action", "huge_query"])
def test_a_suggestion_request_that_is_not_ours_is_refused(http, slack, case):
    view = opened_form(http, slack)
    payload = suggestion(view, "acme")
    if case == "foreign_view":
        payload["view"] = {**view, "callback_id": "someone_else"}
    elif case == "unknown_action":
        payload["action_id"] = "what"
    else:
        payload["value"] = "a" * 5000
    assert send(http, payload).status_code == 400
