"""Reminders and DM digests read the latest snapshot with its changes feed."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from builders import account, event, task, user, write_changes, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.pipeline.digests import deliver_digests
from sa_hygiene.pipeline.evaluation import EvaluationRun, evaluate_latest
from sa_hygiene.source.jsonl import read_jsonl
from sa_hygiene.source.store import ChangesFeed, SnapshotStore

pytestmark = pytest.mark.unit

TAKEN = datetime(2026, 11, 24, 4, tzinfo=UTC)
PULLED = datetime(2026, 11, 24, 9, 50, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 24, 9, 30, tzinfo=UTC), datetime(2026, 11, 24, 9, 45, tzinfo=UTC)
SA = user(id="0055e0000000SA1AAA", timezone="Europe/London", email="sam@gitlab.com")
LOGGED = event(id="00U5e0000000E01AAA", owner_id=SA["id"], start="2026-11-24T09:00:00Z", end="2026-11-24T09:35:00Z",
               attendee_emails="sam@gitlab.com;pat@acme.com")  # fmt: skip
BOOKED = event(id="00U5e0000000E02AAA", owner_id=SA["id"], start="2026-11-24T09:10:00Z", end="2026-11-24T09:40:00Z",
               attendee_emails="sam@gitlab.com;lee@other.io", system_modstamp="2026-11-24T08:00:00Z")  # fmt: skip
# Each meeting suggests its own account: the log of one does not cover the other.
ACCOUNTS = [account(id="0015e0000000AC1AAA", website="acme.com"), account(id="0015e0000000AC2AAA", website="other.io")]
DUE = task(id="00T5e0000000T01AAA", owner_id=SA["id"], activity_date="2026-11-24", is_closed="false")


@pytest.fixture
def deployment(tmp_path):
    """A store with the 04:00 snapshot, and changes pulled at 09:50: the meeting that ended at 09:35
    logged at 09:40, a meeting booked at 08:00, the task due today closed."""
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {{url: {tmp_path / 'store'}}}\nslack: {{outbox: {tmp_path / 'outbox'}, "
                    f"ledger_url: 'sqlite:///{tmp_path}/ledger.sqlite'}}\n")  # fmt: skip
    cfg = load_config(path)
    store = SnapshotStore(cfg.store.url)
    ref = store.commit_folder(write_snapshot(tmp_path / "s", {"User": [SA], "Account": ACCOUNTS, "Event": [LOGGED],
                                                             "Task": [DUE]}), TAKEN)
    feed = ChangesFeed(store, ref)
    staged = feed.stage()
    log = task(id="00T5e0000000T02AAA", owner_id=SA["id"], activity_date="2026-11-24", activity_types="Demo",
               created="2026-11-24T09:40:00Z", what_id=ACCOUNTS[0]["id"])  # fmt: skip
    write_changes(Path(staged), {"Task": [log, {**DUE, "is_closed": "true"}], "Event": [BOOKED]})
    feed.commit(staged, {"high_water_mark": "2026-11-24T09:40:00+00:00", "pulled_at": PULLED.isoformat()})
    return cfg, tmp_path


def reminded(cfg, tmp_path, now=PULLED, **kw) -> list[str]:
    info = evaluate_latest(cfg, date(2026, 11, 24), SINCE, UNTIL, out=str(tmp_path / "run"), slots={"meeting_reminder"},
                           now=now, **kw)  # fmt: skip
    return sorted(a["record_id"] for a in read_jsonl(info.alerts))


def test_a_meeting_logged_since_the_snapshot_is_not_reminded_and_one_booked_since_is(deployment):
    cfg, tmp_path = deployment
    assert reminded(cfg, tmp_path) == [LOGGED["id"]]  # the snapshot alone
    assert reminded(cfg, tmp_path, with_changes=True) == [BOOKED["id"]]


def test_a_task_closed_this_morning_is_not_due_today_at_1600(deployment):
    cfg, tmp_path = deployment
    moment = datetime(2026, 11, 24, 16, tzinfo=UTC)
    alone = evaluate_latest(cfg, date(2026, 11, 24), out=str(tmp_path / "a"), slots={"sa_digest"}, now=moment)
    fresh = evaluate_latest(cfg, date(2026, 11, 24), out=str(tmp_path / "b"), slots={"sa_digest"}, now=moment,
                            with_changes=True)  # fmt: skip
    assert [a["workflow"] for a in read_jsonl(alone.alerts) if a["record_id"] == DUE["id"]] == ["wf-11"]
    assert [a for a in read_jsonl(fresh.alerts) if a["workflow"] == "wf-11"] == []
    assert fresh.changes_version == 1 and fresh.changes.endswith("/_changes/v000001")


def test_changes_older_than_an_hour_are_reported_in_the_operations_channel(deployment):
    cfg, tmp_path = deployment
    late = PULLED + timedelta(minutes=61)
    info = evaluate_latest(cfg, date(2026, 11, 24), SINCE, UNTIL, out=str(tmp_path / "run"),
                           slots={"meeting_reminder"}, now=late, with_changes=True)  # fmt: skip
    assert info.changes_notice == (
        "The latest Salesforce changes were pulled at 2026-11-24 09:50 UTC, 61 minutes ago: activities logged "
        "and meetings booked since then are missing from this run.")  # fmt: skip
    fresh = evaluate_latest(cfg, date(2026, 11, 24), SINCE, UNTIL, out=str(tmp_path / "run2"),
                            slots={"meeting_reminder"}, now=PULLED + timedelta(minutes=59), with_changes=True)  # fmt: skip
    assert fresh.changes_notice is None
    sink = OutboxSink(cfg.slack.outbox, "reminders")
    deliver_digests(cfg, info, "reminders", slots={"meeting_reminder"}, sink=sink)
    calls = sink.calls_path.read_text()
    ops = [line for line in calls.splitlines() if "#sa-hygiene-ops" in line]
    assert any("chat.postMessage" in line and "61 minutes ago" in line for line in ops)


def test_one_evaluation_is_reused_until_the_changes_move(deployment):
    cfg, tmp_path = deployment

    def digest(minute: int) -> EvaluationRun:
        return evaluate_latest(cfg, date(2026, 11, 24), out=str(tmp_path / f"run{minute}"), slots={"sa_digest"},
                               now=PULLED + timedelta(minutes=minute), with_changes=True, cache=True)  # fmt: skip

    first, second = digest(0), digest(15)
    assert (first.reused, second.reused) == (False, True)
    assert second.alerts == first.alerts and "/_evaluations/" in first.alerts
    assert read_jsonl(second.alerts) == read_jsonl(first.alerts)

    store = SnapshotStore(cfg.store.url)
    feed = ChangesFeed(store, store.latest())
    staged = feed.stage()
    write_changes(Path(staged), {"Task": [{**DUE, "is_closed": "false"}]})  # reopened: due today again
    feed.commit(staged, {"high_water_mark": "2026-11-24T10:00:00+00:00", "pulled_at": PULLED.isoformat()})
    third = digest(30)
    assert not third.reused and third.alerts != first.alerts
    assert [a["record_id"] for a in read_jsonl(third.alerts) if a["workflow"] == "wf-11"] == [DUE["id"]]
    assert third.changes_version == 2
