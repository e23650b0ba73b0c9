"""Spec v3 "Alert memory: fixed or gone" through the command line: each way an episode ends, as
``evaluate --state --resolved`` reports it (CONTRACT.md § 2b), and wf-11's due-or-overdue window."""

import json

import pytest
from builders import opportunity, task, user, write_snapshot
from commands import run

pytestmark = pytest.mark.unit

SA = user(id="0055e0000000SA9AAA")
DAY1, DAY2, DAY3 = "2026-11-24", "2026-11-25", "2026-11-26"


def evaluate(tmp_path, tables, day, url):
    snap = write_snapshot(tmp_path / f"snap-{day}", {"User": [SA], **tables})
    out, resolved = tmp_path / f"a-{day}.jsonl", tmp_path / f"r-{day}.jsonl"
    r = run("evaluate", "--snapshot", str(snap), "--as-of", day, "--state", url, "--out", str(out),
            "--resolved", str(resolved))  # fmt: skip
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    return alerts, [json.loads(line) for line in resolved.read_text().splitlines()]


def opp(n, **kw):
    return opportunity(id=f"0065e0000000OP{n}AAA", owner_id=SA["id"], sa=SA["id"], **kw)


def open_task(n, **kw):
    return task(**{"id": f"00T5e0000000TK{n}AAA", "owner_id": SA["id"], "status": "Not Started", "is_closed": "false",
                   "activity_date": DAY1, **kw})  # fmt: skip


def test_each_way_an_episode_ends_says_how(tmp_path):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    no_end = {"stage": "4-Proposal", "te_start": "2026-11-01"}
    fixed_opp, closed_opp, deleted_opp, quarantined_opp = opp(1, **no_end), opp(2, **no_end), opp(3, **no_end), opp(4, **no_end)
    # act-fields: an SA activity created 7 days before DAY1 without a sentiment (in the window on DAY1 only).
    vague = task(id="00T5e0000000TK1AAA", owner_id=SA["id"], activity_types="Demo", what_id=fixed_opp["id"],
                 who_id="0035e0000000CT1AAA", created="2026-11-17T10:00:00Z", activity_date="2026-11-17")  # fmt: skip
    completed, rescheduled = open_task(2), open_task(3)
    day1 = {"Opportunity": [fixed_opp, closed_opp, deleted_opp, quarantined_opp], "Task": [vague, completed, rescheduled]}
    alerts, resolved = evaluate(tmp_path, day1, DAY1, url)
    raised = {(a["workflow"], a["record_id"]) for a in alerts}
    assert {("wf-06", fixed_opp["id"]), ("wf-15", closed_opp["id"]), ("wf-06", deleted_opp["id"]),
            ("wf-06", quarantined_opp["id"]), ("act-fields", vague["id"]), ("wf-11", completed["id"]),
            ("wf-11", rescheduled["id"])} <= raised  # fmt: skip
    assert resolved == []

    day2 = {
        "Opportunity": [
            {**fixed_opp, "te_end": "2026-11-20", "te_status": "Win", "te_details": "done"},
            {**closed_opp, "stage": "8-Closed Lost", "is_closed": "true"},
            {**quarantined_opp, "stage": "Not a stage"},
        ],
        "Task": [vague, {**completed, "status": "Completed", "is_closed": "true"}, {**rescheduled, "activity_date": "2026-12-05"}],
    }
    _, resolved = evaluate(tmp_path, day2, DAY2, url)
    how = {(r["workflow"], r["record_id"]): r["how"] for r in resolved}
    assert how[("wf-06", fixed_opp["id"])] == "fixed"
    assert how[("wf-15", fixed_opp["id"])] == "fixed"
    assert how[("wf-11", completed["id"])] == "fixed"
    assert how[("wf-15", closed_opp["id"])] == "gone"  # closed: out of wf-15's scope
    assert how[("wf-06", deleted_opp["id"])] == "gone"
    assert how[("act-fields", vague["id"])] == "gone"  # aged out of the 7-day window
    assert how[("wf-11", rescheduled["id"])] == "gone"  # rescheduled into the future
    assert ("wf-06", quarantined_opp["id"]) not in how  # quarantined: neither fixed nor gone
    assert all(set(r) == {"workflow", "object", "record_id", "recipient", "first_seen", "resolved_on", "how"}
               for r in resolved)  # fmt: skip

    alerts, resolved = evaluate(tmp_path, {"Opportunity": [quarantined_opp]}, DAY3, url)
    still = [a for a in alerts if (a["workflow"], a["record_id"]) == ("wf-06", quarantined_opp["id"])]
    assert [a["first_seen"] for a in still] == [DAY1]  # the same episode, kept open through the quarantine


@pytest.mark.parametrize(
    ("due", "raised"),
    [("2026-11-24", True), ("2026-10-25", True), ("2026-10-24", False), ("2026-11-25", False), ("2026-11-10", True)],
    ids=["due today", "day 30", "day 31", "due tomorrow", "overdue"],
)
def test_wf11_is_due_or_overdue_within_30_days(tmp_path, due, raised):
    t = open_task(5, activity_date=due)
    alerts, _ = evaluate(tmp_path, {"Task": [t]}, DAY1, f"sqlite:///{tmp_path}/s.sqlite")
    assert any(a["workflow"] == "wf-11" for a in alerts) is raised


def test_wf11_stays_until_completed(tmp_path):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    t = open_task(6)
    evaluate(tmp_path, {"Task": [t]}, DAY1, url)
    alerts, resolved = evaluate(tmp_path, {"Task": [t]}, DAY2, url)  # no longer due today: still open
    assert [(a["workflow"], a["first_seen"], a["age_days"]) for a in alerts] == [("wf-11", DAY1, 1)] and resolved == []
