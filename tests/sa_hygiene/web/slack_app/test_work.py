"""Acknowledgements never wait behind work: a hanging Salesforce fills the salesforce lane, the
answers stay fast, other clicks still work, and a form that cannot even be queued comes back
with everything typed and "Salesforce is slow"."""

from __future__ import annotations

import json
import time

import pytest
from builders import event, write_snapshot
from slack_app_requests import (
    ITEM,
    LOG,
    MEETING,
    ORG,
    SAM,
    SNAPSHOT,
    click_log_it,
    eventually,
    menu_click,
    post_digest,
    record_sent,
    send,
    snoozes,
    submission,
)

from sa_hygiene.delivery.digest import reminder_key
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.web.slack_app.items import Item
from sa_hygiene.web.slack_app.work import LANES

pytestmark = pytest.mark.integration

WORKERS, QUEUED = LANES["salesforce"]
MEETINGS = [MEETING] + [
    event(owner_id=SAM["id"], subject=f"Acme call {n}", attendee_emails="pat@acme.com;sam@gitlab.com",
          start="2026-11-23T15:00:00Z", end="2026-11-23T16:00:00Z")
    for n in range(WORKERS + QUEUED + 1)
]  # fmt: skip


@pytest.fixture
def snapshot(tmp_path, cfg):
    """The org with a meeting per form: one meeting takes one Salesforce save at a time."""
    folder = write_snapshot(tmp_path / "snap", {**ORG, "Event": MEETINGS})
    SNAPSHOT[:] = [read_snapshot(folder, cfg)]
    return SNAPSHOT[0]


def for_meeting(view: dict, meeting: dict) -> dict:
    meta = json.loads(view["private_metadata"])
    meta["item"] = Item("log", LOG.workflow, meeting["id"], LOG.recipient, LOG.what_id).value()
    if meeting is not MEETING:  # the reminder of that meeting, as delivery records it
        meta["ts"] = f"77.{meeting['id'][-6:]}"
        record_sent({"ts": meta["ts"]}, meta["channel"], reminder_key(f"user:{SAM['id']}", meeting["id"]))
    return {**view, "private_metadata": json.dumps(meta)}




def test_a_hanging_salesforce_never_delays_an_answer(http, slack, salesforce, app, state_url):
    assert app.bolt.client.timeout <= 5  # every Slack call has a timeout
    assert app.backends.salesforce.timeout  # and every Salesforce request
    salesforce.fail("hang", when=lambda r: r.method == "POST" and "/sobjects/Task" in r.path, times=10**6)
    workers, queued = WORKERS, QUEUED
    forms = workers + queued + 2
    for _ in range(forms):
        click_log_it(http, slack)
    views = eventually(lambda: len(slack.views) == forms and list(slack.views.values()))
    description = "Walked the platform team through merge trains."
    took = []
    for view, meeting in zip(views, MEETINGS, strict=True):
        view = for_meeting(view, meeting)
        started = time.monotonic()
        answer = send(http, submission(view, description=description))
        took.append(time.monotonic() - started)
        assert answer.status_code == 200 and answer.json()["response_action"] == "update"
    creations = lambda: [r for r in salesforce.requests if r.method == "POST" and "/sobjects/Task" in r.path]  # noqa: E731
    eventually(lambda: len(creations()) == workers)  # every worker of the lane hangs on Salesforce
    message = post_digest(slack, "DSAM", ITEM)
    started = time.monotonic()
    assert send(http, menu_click("USAM", "DSAM", message, ITEM)).status_code == 200
    took.append(time.monotonic() - started)
    assert max(took) < 2.0, took  # Slack allows 3 s; bench/slack_app.py measures the < 1 s target
    eventually(lambda: snoozes(state_url))  # the slack lane is not held by Salesforce's
    slow = eventually(lambda: [c for c in slack.calls("views.update") if "Salesforce is slow" in json.dumps(c.args)])
    assert len(slow) == 2  # exactly what could not be queued
    shown = slow[0].args["view"]
    form = json.loads(shown) if isinstance(shown, str) else shown
    fields = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
    assert fields["description"]["initial_value"] == description
    assert app.work.refused == 2
    salesforce.unhang()
    eventually(lambda: salesforce.live("Task").num_rows == queued)  # the queued saves, once it is back
    app.work.shutdown(wait=True)  # the hung ones end (503: nothing saved) before the next test's org
    assert salesforce.live("Task").num_rows == queued
