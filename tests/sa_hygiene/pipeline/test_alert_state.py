"""The alert state in the DAG steps: the snapshot's evaluation recorded, digests with ages and
fixes, snoozes, escalation to the manager, and digests that still go out when the state is down."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from builders import opportunity, task, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.pipeline.alert_state import record_stored_evaluations, store_evaluation
from sa_hygiene.pipeline.digests import deliver_digests
from sa_hygiene.pipeline.escalations import deliver_escalations, escalations
from sa_hygiene.pipeline.evaluation import evaluate_latest
from sa_hygiene.source.store import SnapshotStore
from sa_hygiene.state.alerts import open_state
from sa_hygiene.state.db import DatabaseError

pytestmark = pytest.mark.integration

MGR = user(id="0055e0000000MG1AAA", name="Maya Manager", email="maya@gitlab.com")
SA = user(id="0055e0000000SA1AAA", name="Sam Architect", manager_id=MGR["id"])
OLD = opportunity(id="0065e0000000OLDAAA", name="Old Co - Premium", owner_id=SA["id"], sa=SA["id"],
                  stage="4-Proposal", te_start="2026-11-01")  # fmt: skip
FIXED = opportunity(id="0065e0000000FIXAAA", name="Fixed Co - Ultimate", owner_id=SA["id"], sa=SA["id"],
                    stage="4-Proposal", te_start="2026-11-01")  # fmt: skip


def config(tmp_path: Path, state: str | None = None):
    path = tmp_path / "c.yaml"
    text = (f"store: {{url: {tmp_path / 'store'}}}\nslack: {{outbox: {tmp_path / 'outbox'}, "
            f"ledger_url: 'sqlite:///{tmp_path}/ledger.sqlite'}}\n")  # fmt: skip
    if state:
        text += f"state: {{url: '{state}'}}\n"
    path.write_text(text)
    return load_config(path)


def snapshot_day(cfg, tmp_path, day: date, opps, tasks=()) -> str:
    """Commit a snapshot of ``day`` and do what sa_report does with it."""
    from sa_hygiene.engine.rules import evaluate_snapshots

    folder = write_snapshot(tmp_path / f"snap-{day}", {"User": [MGR, SA], "Opportunity": opps, "Task": list(tasks)})
    ref = SnapshotStore(cfg.store.url).commit_folder(folder, datetime(day.year, day.month, day.day, 4, tzinfo=UTC))
    result = evaluate_snapshots(ref, None, cfg, day)
    store_evaluation(cfg, ref.name, day, result.alert_records(), result.scope, result.quarantined_keys())
    return ref.url


def dm(cfg, tmp_path, day: date) -> tuple[dict, list[dict]]:
    info = evaluate_latest(cfg, day, out=str(tmp_path / f"run-{day}"), slots={"sa_digest"},
                           now=datetime(day.year, day.month, day.day, 16, tzinfo=UTC))  # fmt: skip
    run = f"dm-{day}"
    out = deliver_digests(cfg, info, run, slots={"sa_digest"}, recipients={f"user:{SA['id']}"})
    return out, OutboxSink.posts(Path(cfg.slack.outbox) / run)


def text_of(post: dict) -> str:
    return json.dumps(post["args"]["blocks"], ensure_ascii=False)


def test_digests_show_ages_fixes_and_leave_snoozed_items_out(tmp_path):
    cfg = config(tmp_path)
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD, FIXED])
    assert [r["as_of"] for r in record_stored_evaluations(cfg)["recorded"]] == ["2026-11-16"]
    _, posts = dm(cfg, tmp_path, date(2026, 11, 16))
    # The memory's first day: what is open is older than it knows, so no age (and not "new").
    assert "_new today_" not in text_of(posts[0]) and "_open" not in text_of(posts[0])
    assert "fixed since" not in text_of(posts[0])

    new = opportunity(id="0065e0000000NEWAAA", name="New Co - Premium", owner_id=SA["id"], sa=SA["id"],
                      stage="4-Proposal", te_start="2026-11-01")  # fmt: skip
    snapshot_day(cfg, tmp_path, date(2026, 11, 24), [OLD, {**FIXED, "te_end": "2026-11-20"}, new])
    assert [r["as_of"] for r in record_stored_evaluations(cfg)["recorded"]] == ["2026-11-24"]  # 11-16 is not recorded again
    out, posts = dm(cfg, tmp_path, date(2026, 11, 24))
    body = text_of(posts[0])
    assert "*1 fixed since your last digest*: <https://gitlab.my.salesforce.com/lightning/r/Opportunity/" \
           "0065e0000000FIXAAA/view|Fixed Co - Ultimate>" in body  # fmt: skip
    assert body.index("fixed since") < body.index("Old Co - Premium")  # the good news first
    assert "_open at least 8 days (since the alert memory began, 2026-11-16)_" in body
    assert body.index("Old Co - Premium") < body.index("New Co - Premium")  # the oldest first
    assert "New Co - Premium" in body and "_new today_" in body
    assert out["fixed"] >= 1 and out["snoozed"] == 0

    with open_state(cfg) as state:
        state.snooze("wf-06", OLD["id"], date(2026, 12, 1), "customer on holiday", "sam")
    out, posts = dm(cfg, tmp_path, date(2026, 11, 25))
    assert out["snoozed"] >= 1
    # wf-06 holds only New Co now (the headline counts what the message holds); Old Co stays for its other issues.
    body = text_of(posts[0])
    assert f"{cfg.workflows['wf-06'].title}: 1" in body and "Old Co - Premium" in body


def test_a_digests_fixed_list_never_names_a_still_open_task_nor_one_that_left_the_scope(tmp_path):
    """Spec v3: a task due yesterday and still open is overdue, not fixed; a completed one is
    fixed; a rescheduled one is gone (not told)."""
    cfg = config(tmp_path)
    due = {"owner_id": SA["id"], "is_closed": "false", "status": "Open", "activity_date": "2026-11-16"}
    still, done, moved = (task(id=f"00T5e0000000T0{n}AAA", subject=s, **due) for n, s in
                          ((1, "Still open"), (2, "Completed"), (3, "Rescheduled")))  # fmt: skip
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [], [still, done, moved])
    record_stored_evaluations(cfg)
    dm(cfg, tmp_path, date(2026, 11, 16))
    snapshot_day(cfg, tmp_path, date(2026, 11, 17), [],
                 [still, {**done, "is_closed": "true", "status": "Completed"}, {**moved, "activity_date": "2026-12-01"}])
    record_stored_evaluations(cfg)
    out, posts = dm(cfg, tmp_path, date(2026, 11, 17))
    body = text_of(posts[0])
    fixed = body[body.index("fixed since") - 3:body.index("Still open")]
    assert "*1 fixed since your last digest*" in fixed and "Completed" in fixed
    assert "Rescheduled" not in body and out["fixed"] == 1
    assert "*overdue 1 day*" in body  # still open: in the digest, not among the fixes


def test_the_report_counts_the_days_fixes_recorded_before_it_is_written(tmp_path):
    """sa_report records its evaluation first: the report of day 2 counts day 2's fixes."""
    from sa_hygiene.pipeline.report import write_report

    cfg = config(tmp_path)
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD, FIXED])
    write_report(cfg, as_of=date(2026, 11, 16))
    SnapshotStore(cfg.store.url).commit_folder(
        write_snapshot(tmp_path / "day2", {"User": [MGR, SA], "Opportunity": [OLD, {**FIXED, "te_end": "2026-11-20"}]}),
        datetime(2026, 11, 24, 4, tzinfo=UTC))  # fmt: skip
    html = Path(write_report(cfg, as_of=date(2026, 11, 24))["report"]).read_text()
    memory = html[html.index('<section id="memory">'):html.index('<section id="evaluations">')]
    assert "2 fixed in the period" in memory and "nothing fixed yet" not in memory.lower()
    with open_state(cfg) as state:
        assert state.latest_recorded()[0] == date(2026, 11, 24)


def test_no_alert_state_connection_is_open_while_slack_is_called(tmp_path, monkeypatch):
    """The state is read before rendering and written after delivery, each on a short connection
    of its own: a delivery that takes minutes holds no database connection."""
    from sa_hygiene.state.alerts import AlertState

    cfg = config(tmp_path)
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD])
    record_stored_evaluations(cfg)
    opened: list = []
    real_init, real_close = AlertState.__init__, AlertState.close

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(self)

    def close(self):
        opened.remove(self)
        real_close(self)

    monkeypatch.setattr(AlertState, "__init__", init)
    monkeypatch.setattr(AlertState, "close", close)

    class Watched(OutboxSink):
        def call(self, *args, **kwargs):
            assert opened == [], "an alert state connection is open during delivery"
            return super().call(*args, **kwargs)

    day = date(2026, 11, 16)
    info = evaluate_latest(cfg, day, out=str(tmp_path / "run"), slots={"sa_digest"},
                           now=datetime(2026, 11, 16, 16, tzinfo=UTC))  # fmt: skip
    out = deliver_digests(cfg, info, "dm", slots={"sa_digest"}, recipients={f"user:{SA['id']}"},
                          sink=Watched(cfg.slack.outbox, "dm"))  # fmt: skip
    assert out["sent"] == 1 and opened == []
    with open_state(cfg) as state:  # the digest was marked: tomorrow's "fixed since" counts from today
        assert state.last_digest(f"user:{SA['id']}", "sa_digest", date(2026, 11, 17)) == day


def test_a_manager_hears_once_of_items_open_longer_than_the_workflow_allows(tmp_path):
    cfg = config(tmp_path)
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD])
    record_stored_evaluations(cfg)
    snapshot_day(cfg, tmp_path, date(2026, 11, 20), [OLD, FIXED])
    record_stored_evaluations(cfg)
    found = escalations(cfg, None, None, only=MGR["id"], as_of="2026-11-23")
    # OLD has been open 7 days by the manager's 11-23 (wf-06 and te-stalled escalate after 7), FIXED only 3.
    assert {(i["record_id"], i["age_days"], i["owner"]) for i in found.items} >= {(OLD["id"], 7, SA["id"])}
    assert FIXED["id"] not in {i["record_id"] for i in found.items}
    assert {i["manager"] for i in found.items} == {MGR["id"]}
    first = deliver_escalations(cfg, found, "esc-1")
    again = deliver_escalations(cfg, found, "esc-2")  # the next 15-minute run, or a retry
    assert (first["sent"], again["sent"], again["already_sent"]) == (1, 0, 1)
    [post] = OutboxSink.posts(Path(cfg.slack.outbox) / "esc-1")
    assert "Sam Architect" in text_of(post) and "open 7 days (since 2026-11-16)" in text_of(post)
    with open_state(cfg) as state:
        state.snooze("wf-06", OLD["id"], date(2026, 12, 1), "waiting on legal", "maya")
    later = escalations(cfg, None, None, only=MGR["id"], as_of="2026-11-23")
    assert ("wf-06", OLD["id"]) not in {(i["workflow"], i["record_id"]) for i in later.items}


def test_escalation_counts_the_days_since_the_current_recipient_got_it(tmp_path):
    """A record reassigned to another SA is new to them: their manager hears of it 7 days after
    the reassignment, not 7 days after the record's first alert."""
    cfg = config(tmp_path)
    other = user(id="0055e0000000SA2AAA", name="Ola Other", manager_id=MGR["id"])
    snapshot_day(cfg, tmp_path, date(2026, 11, 10), [OLD])
    record_stored_evaluations(cfg)
    folder = write_snapshot(tmp_path / "snap-reassigned", {"User": [MGR, SA, other], "Opportunity": [{**OLD, "sa": other["id"]}]})
    from sa_hygiene.engine.rules import evaluate_snapshots

    ref = SnapshotStore(cfg.store.url).commit_folder(folder, datetime(2026, 11, 20, 4, tzinfo=UTC))
    result = evaluate_snapshots(ref, None, cfg, date(2026, 11, 20))
    store_evaluation(cfg, ref.name, date(2026, 11, 20), result.alert_records(), result.scope, result.quarantined_keys())
    record_stored_evaluations(cfg)
    found = escalations(cfg, None, None, only=MGR["id"], as_of="2026-11-23")
    assert [i for i in found.items if i["record_id"] == OLD["id"]] == []  # Ola has had it 3 days
    later = escalations(cfg, None, None, only=MGR["id"], as_of="2026-11-27")
    assert {(i["owner"], i["age_days"], i["first_seen"]) for i in later.items if i["workflow"] == "wf-06"} == {
        (other["id"], 7, "2026-11-20")}  # fmt: skip


def test_digests_go_out_without_ages_when_the_state_is_down_and_the_next_run_catches_up(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    down = config(tmp_path, state=f"sqlite:///{tmp_path}/not-a-folder/state.sqlite")
    snapshot_day(down, tmp_path, date(2026, 11, 16), [OLD])
    with pytest.raises(DatabaseError, match="the alert state"):
        record_stored_evaluations(down)  # the sa_report task fails and retries
    out, posts = dm(down, tmp_path, date(2026, 11, 16))
    assert out["sent"] == 1 and "Old Co - Premium" in text_of(posts[0]) and "_new today_" not in text_of(posts[0])
    ops = OutboxSink.posts(Path(down.slack.outbox) / "dm-2026-11-16")
    assert any("The alert state is unavailable" in text_of(p) for p in ops)

    healthy = config(tmp_path, state=f"sqlite:///{tmp_path}/state/state.sqlite")
    snapshot_day(healthy, tmp_path, date(2026, 11, 17), [OLD])
    assert [r["as_of"] for r in record_stored_evaluations(healthy)["recorded"]] == ["2026-11-16", "2026-11-17"]
    with open_state(healthy) as state:
        assert {e["first_seen"] for e in state.open_episodes() if e["record_key"] == OLD["id"][:15]} == {date(2026, 11, 16)}
        ages = state.annotate(date(2026, 11, 17), [{"workflow": "wf-06", "object": "Opportunity",
                                                     "record_id": OLD["id"], "recipient": {"type": "user", "id": SA["id"]}}])  # fmt: skip
    assert ages.alerts[0]["age_days"] == 1


def test_the_report_shows_ages_fixes_and_snoozes(tmp_path):
    from sa_hygiene.pipeline.report import write_report

    cfg = config(tmp_path)
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD, FIXED])
    record_stored_evaluations(cfg)
    snapshot_day(cfg, tmp_path, date(2026, 11, 24), [OLD, {**FIXED, "te_end": "2026-11-20"}])
    record_stored_evaluations(cfg)
    with open_state(cfg) as state:
        state.snooze("wf-06", OLD["id"], date(2026, 12, 1), "waiting on <legal>", "maya")
    out = write_report(cfg, as_of=date(2026, 11, 24))
    html = Path(out["report"]).read_text()
    memory = html[html.index('<section id="memory">'):html.index('<section id="evaluations">')]
    assert "No alert memory" not in memory
    # OLD's episodes are 8 days old: its row of the 7-13 band; FIXED's two fixes took 8 days.
    assert "median time to fix 8.0 days" in memory and "2 fixed in the period" in memory
    assert "waiting on &lt;legal&gt;" in memory and "by maya" in memory
    assert "Sam Architect" in memory  # fixed per person


def test_the_report_says_when_the_state_is_down(tmp_path):
    from sa_hygiene.pipeline.report import write_report

    (tmp_path / "not-a-folder").write_text("")
    cfg = config(tmp_path, state=f"sqlite:///{tmp_path}/not-a-folder/state.sqlite")
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD])
    html = Path(write_report(cfg, as_of=date(2026, 11, 16))["report"]).read_text()
    assert "No alert memory: the alert state sqlite:///" in html and "cannot create" in html


def test_a_report_before_the_first_recorded_evaluation_shows_no_ages(tmp_path):
    from sa_hygiene.pipeline.report import write_report

    cfg = config(tmp_path)
    snapshot_day(cfg, tmp_path, date(2026, 11, 16), [OLD])  # stored, not recorded yet
    html = Path(write_report(cfg, as_of=date(2026, 11, 16))["report"]).read_text()
    memory = html[html.index('<section id="memory">'):html.index('<section id="evaluations">')]
    assert "No alert memory" in memory and "Median age" not in memory


FIX_WORKFLOWS = ["wf-06", "wf-07", "wf-15", "te-consistency", "te-stalled"]  # the workflows.yaml entries with fix: [tech_eval]


def test_a_fix_from_slack_counts_at_once_and_the_next_evaluation_confirms_or_reopens_it(tmp_path):
    cfg = config(tmp_path)
    day = date(2026, 11, 16)
    other = opportunity(id="0065e0000000OTHAAA", name="Other Co - Premium", owner_id=SA["id"], sa=SA["id"],
                        stage="4-Proposal", te_start="2026-11-01")  # fmt: skip
    snapshot_day(cfg, tmp_path, day, [OLD, FIXED, other])
    record_stored_evaluations(cfg)
    with open_state(cfg) as state:  # both written from Slack at 10:00; only FIXED's write held
        for opp in (OLD, FIXED):
            state.mark_fixed(FIX_WORKFLOWS, opp["id"], "Sam Architect", {"te_end": "2026-11-15"},
                             datetime(2026, 11, 16, 10, tzinfo=UTC))  # fmt: skip
    _, posts = dm(cfg, tmp_path, day)
    body = text_of(posts[0])  # the 16:00 digest does not nag about what was fixed at 10:00, and says so
    assert "Other Co - Premium" in body and "Old Co - Premium" not in body and "Fixed Co - Ultimate" not in body
    assert "2 items updated from Slack (left out until the next snapshot confirms the fix)" in body
    nxt = date(2026, 11, 17)
    snapshot_day(cfg, tmp_path, nxt, [OLD, {**FIXED, "te_end": "2026-11-15", "te_status": "Win", "te_details": "Won it."}, other])
    record_stored_evaluations(cfg)
    with open_state(cfg) as state:
        settled = {(w, f["record_id"], f["status"]) for (w, _), f in state.fixes().items()}
    assert {("wf-06", OLD["id"], "reopened"), ("wf-06", FIXED["id"], "fixed"), ("wf-15", FIXED["id"], "fixed")} <= settled
    _, posts = dm(cfg, tmp_path, nxt)
    body = text_of(posts[0])
    assert "Old Co - Premium" in body and "Updated from Slack by Sam Architect on 2026-11-16, but the rules still flag it" in body
    # Confirmed: its episodes ended fixed, so it is news in the fixed line, not an item.
    assert "fixed since your last digest*: <https://gitlab.my.salesforce.com/lightning/r/Opportunity/0065e0000000FIXAAA" in body
    assert "item:0065e0000000FIXAAA" not in body and "updated from Slack (left out" not in body
    assert body.count("still flag it") == 1  # one note per item, whatever its workflows
