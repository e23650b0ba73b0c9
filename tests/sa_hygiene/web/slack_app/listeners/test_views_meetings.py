"""One meeting, one Task: a lost answer after Salesforce saved it, a resubmission, and two
forms for one meeting at once all end with exactly one Task, and the second submitter is told
it is logged, with the link."""

from __future__ import annotations

import json
import threading

import pytest
from slack_app_requests import click_log_it, eventually, send, submission

pytestmark = pytest.mark.integration


def creating(r) -> bool:
    return r.method == "POST" and "/sobjects/Task" in r.path


def two_forms(http, slack) -> list[dict]:
    click_log_it(http, slack)
    click_log_it(http, slack)
    return eventually(lambda: len(slack.views) == 2 and list(slack.views.values()))


def shown(slack, view_id: str, words: str) -> list:
    return [c for c in slack.calls("views.update") if c.args.get("view_id") == view_id and words in json.dumps(c.args)]


def test_a_lost_answer_after_salesforce_saved_makes_one_task(http, slack, salesforce, cfg):
    first, second = two_forms(http, slack)
    salesforce.fail("drop", when=creating)  # saved, and the answer cut halfway
    send(http, submission(first))
    eventually(lambda: shown(slack, first["id"], "Logged in Salesforce"))
    [task] = salesforce.live("Task").to_pylist()
    send(http, submission(first))  # sent again
    send(http, submission(second))  # and another form for the same meeting
    told = eventually(lambda: shown(slack, second["id"], "already logged"))
    assert f"/lightning/r/Task/{task['Id']}/view" in json.dumps(told[0].args)
    assert salesforce.live("Task").num_rows == 1
    assert len([r for r in salesforce.requests if creating(r)]) == 1


def test_a_lost_answer_salesforce_cannot_confirm_is_looked_up_before_the_next_creation(http, slack, salesforce):
    [view] = two_forms(http, slack)[:1]
    salesforce.fail("drop", when=creating)
    salesforce.fail("unavailable", when=lambda r: r.method == "GET" and "/query" in r.path, times=2)  # no lookup either
    send(http, submission(view))
    eventually(lambda: shown(slack, view["id"], "may have saved it"))
    assert salesforce.live("Task").num_rows == 1
    assert send(http, submission(view)).status_code == 200  # sent again: the app looks first and finds it
    eventually(lambda: shown(slack, view["id"], "Logged in Salesforce"), timeout=30)
    assert salesforce.live("Task").num_rows == 1
    assert len([r for r in salesforce.requests if creating(r)]) == 1


def test_two_forms_for_one_meeting_at_once_make_one_task(http, slack, salesforce):
    first, second = two_forms(http, slack)
    salesforce.create_delay = 1.0
    threads = [threading.Thread(target=send, args=(http, submission(v))) for v in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eventually(lambda: shown(slack, first["id"], "Logged in Salesforce") or shown(slack, second["id"], "Logged in Salesforce"))
    eventually(lambda: shown(slack, first["id"], "nothing was saved twice") or shown(slack, second["id"], "nothing was saved twice"))
    assert salesforce.live("Task").num_rows == 1
