"""The managers' side of the escalation step: leavers' books (to the active manager due now, to the
operations channel when there is none) and the daily lines on who changed what from Slack."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from builders import opportunity, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.notices import escalation_messages, ops_summary
from sa_hygiene.pipeline.escalations import WRITES_SHOWN, leavers_books, slack_writes_notes
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.state.manager_actions import ManagerActions

pytestmark = pytest.mark.unit

BOSS = user(name="Bea Boss", email="bea@gitlab.com", role_type="SA Manager")
LEFT = user(name="Lou Left", email="lou@gitlab.com", is_active="false", manager_id=BOSS["id"])
ALONE = user(name="Ola Alone", email="ola@gitlab.com", is_active="false")  # no manager at all
BOOK = [opportunity(sa=LEFT["id"], owner_id=BOSS["id"], stage="3-Technical Evaluation", name=f"Deal {n}") for n in range(14)]
CLOSED = opportunity(sa=LEFT["id"], owner_id=BOSS["id"], stage="Closed Won", is_closed="true", is_won="true")
ORPHAN = opportunity(sa=ALONE["id"], owner_id=BOSS["id"], stage="2-Scoping", name="Orphan deal")


@pytest.fixture
def snap(tmp_path):
    cfg = load_config()
    org = {"User": [BOSS, LEFT, ALONE], "Opportunity": [*BOOK, CLOSED, ORPHAN]}
    return cfg, read_snapshot(write_snapshot(tmp_path / "s", org), cfg)


def test_a_leavers_open_book_goes_to_their_manager_and_one_without_a_manager_to_operations(snap):
    cfg, snapshot = snap
    day = date(2026, 11, 24)
    books = leavers_books(snapshot, cfg, {BOSS["id"]: day}, ops_day=day)
    assert books == [{"leaver": LEFT["id"], "manager": BOSS["id"], "opportunities": sorted(o["id"] for o in BOOK), "day": "2026-11-24"},
                     {"leaver": ALONE["id"], "manager": None, "opportunities": [ORPHAN["id"]], "day": "2026-11-24"}]  # fmt: skip
    # A manager not due now does not hear of it; operations only when it is their time.
    assert [b["leaver"] for b in leavers_books(snapshot, cfg, {}, ops_day=day)] == [ALONE["id"]]
    assert leavers_books(snapshot, cfg, {BOSS["id"]: day}) == books[:1]

    messages = escalation_messages([], snapshot, cfg, {BOSS["id"]: date(2026, 11, 24)}, books)
    assert [m.recipient for m in messages] == [{"type": "user", "id": BOSS["id"]},
                                               {"type": "channel", "name": cfg.channels.operations}]  # fmt: skip
    boss, ops = messages
    text = str(boss.blocks) + str(boss.replies)
    assert "Lou Left is inactive — 14 opportunities need a new Primary SA" in text
    assert "Your SA hygiene digest" not in text and "need you" not in text
    assert "Ola Alone is inactive — 1 opportunity needs a new Primary SA" in str(ops.blocks)
    assert "no active manager" in str(ops.blocks) and ops.key.endswith(f"|{ALONE['id']}|2026-11-24")


def test_who_changed_what_from_slack_is_in_the_operations_summary(tmp_path):
    cfg = load_config()
    url = f"sqlite:///{tmp_path}/state.sqlite"
    rows = [{"by": "Mia Manager <mia@gitlab.com>", "action": "assign", "object": "Opportunity", "record_id": f"0065e00000000{n:02d}AAA",
             "field": "Solution_Architect__c", "old": None, "new": "0055e0000000001AAA", "outcome": "saved"}
            for n in range(WRITES_SHOWN + 2)]  # fmt: skip
    with ManagerActions(url) as actions:
        actions.wrote(rows)
    today = datetime.now(UTC).date()
    [note] = slack_writes_notes(cfg, today, url)
    assert note.startswith(f"{WRITES_SHOWN + 2} change(s) made in Salesforce from Slack on {today.isoformat()}:")
    assert "• Mia Manager <mia@gitlab.com>: assign Opportunity 0065e0000000000AAA Solution_Architect__c (blank) → 0055e0000000001AAA: saved" in note
    assert note.endswith("• and 2 more")
    summary = ops_summary(cfg, today, "run-1", notes=[note])
    assert "Mia Manager &lt;mia@gitlab.com&gt;: assign" in str(summary.blocks)
    assert slack_writes_notes(cfg, date(2020, 1, 1), url) == []


def test_a_leavers_items_in_their_managers_digest_are_framed_as_a_leavers(snap):
    from sa_hygiene.delivery.digest import build_messages

    cfg, snapshot = snap
    alerts = [{"workflow": "wf-07", "object": "Opportunity", "record_id": o["id"], "slot": "sa_digest",
               "recipient": {"type": "user", "id": BOSS["id"]}, "reasons": []} for o in BOOK[:2]]  # fmt: skip
    [digest] = build_messages(alerts, snapshot, cfg, date(2026, 11, 24))
    assert ":door: *Lou Left is inactive*: their items came to you." in str(digest.blocks)
    own = [{**alerts[0], "record_id": ORPHAN["id"], "recipient": {"type": "user", "id": BOSS["id"]}}]
    both = str(build_messages(alerts + own, snapshot, cfg, date(2026, 11, 24))[0].blocks)
    assert ":door: *Lou Left and Ola Alone are inactive*" in both


def test_wf14_tells_a_reassignment_but_not_a_first_assignment_from_slack(tmp_path):
    """What Assign Primary SA writes (a blank Primary SA set) is no wf-14 change; what Reassign
    writes (one SA for another, at stage 2-3) is."""
    from sa_hygiene.engine.rules import evaluate_snapshots

    sa = user(name="Sam Architect", email="sam@gitlab.com", manager_id=BOSS["id"])
    new = opportunity(owner_id=BOSS["id"], stage="3-Technical Evaluation", sa="")
    moved = opportunity(owner_id=BOSS["id"], stage="3-Technical Evaluation", sa=LEFT["id"])
    users = [BOSS, LEFT, sa]
    before = write_snapshot(tmp_path / "before", {"User": users, "Opportunity": [new, moved]})
    after = write_snapshot(tmp_path / "after", {"User": users, "Opportunity": [{**new, "sa": sa["id"]}, {**moved, "sa": sa["id"]}]})
    result = evaluate_snapshots(str(after), str(before), load_config(), date(2026, 11, 24), None, None)
    assert [a["record_id"] for a in result.alert_records() if a["workflow"] == "wf-14"] == [moved["id"]]


def test_the_escalation_run_at_0800_sends_the_books_to_the_manager_and_operations(tmp_path):
    """The DAG's steps end to end to the outbox: at 08:00 New York the manager gets their
    leaver's book, operations the book of a leaver without a manager; at 09:00 nothing is due."""
    from pathlib import Path

    from sa_hygiene.delivery.outbox import OutboxSink
    from sa_hygiene.pipeline.escalations import deliver_escalations, escalations
    from sa_hygiene.source.store import SnapshotStore

    path = tmp_path / "c.yaml"
    path.write_text(f"store: {{url: {tmp_path / 'store'}}}\nslack: {{outbox: {tmp_path / 'outbox'}, "
                    f"ledger_url: 'sqlite:///{tmp_path}/ledger.sqlite'}}\n")  # fmt: skip
    cfg = load_config(path)
    folder = write_snapshot(tmp_path / "s", {"User": [BOSS, LEFT, ALONE], "Opportunity": [*BOOK, CLOSED, ORPHAN]})
    SnapshotStore(cfg.store.url).commit_folder(folder, datetime(2026, 11, 24, 4, tzinfo=UTC))
    found = escalations(cfg, datetime(2026, 11, 24, 13, tzinfo=UTC), datetime(2026, 11, 24, 13, 15, tzinfo=UTC))
    assert [(b["leaver"], b["manager"]) for b in found.leavers] == [(LEFT["id"], BOSS["id"]), (ALONE["id"], None)]
    out = deliver_escalations(cfg, found, "esc-1")
    assert out["sent"] == 2
    posts = OutboxSink.posts(Path(cfg.slack.outbox) / "esc-1")
    assert sorted(p["recipient"].get("id") or p["recipient"].get("name") for p in posts) == sorted([BOSS["id"], cfg.channels.operations])
    later = escalations(cfg, datetime(2026, 11, 24, 14, tzinfo=UTC), datetime(2026, 11, 24, 14, 15, tzinfo=UTC))
    assert later.leavers == [] and later.items == []


def test_a_record_is_listed_once_per_escalation_message(snap):
    """Slack refuses a message with a block id twice: a record reassigned within the team, or in a
    leaver's book, is one entry."""
    cfg, snapshot = snap
    day = date(2026, 11, 24)
    other = user(name="Ola Other")  # not in the snapshot: the name falls back to the Id
    items = [{"manager": BOSS["id"], "owner": owner, "workflow": "wf-07", "object": "Opportunity", "record_id": rid,
              "first_seen": "2026-11-10", "age_days": age}
             for owner, rid, age in ((LEFT["id"], ORPHAN["id"], 9), (other["id"], ORPHAN["id"], 8), (LEFT["id"], BOOK[0]["id"], 9))]  # fmt: skip
    books = leavers_books(snapshot, cfg, {BOSS["id"]: day})
    [message] = escalation_messages(items, snapshot, cfg, {BOSS["id"]: day}, books)
    ids = [b["block_id"] for part in [message.blocks, *[r["blocks"] if isinstance(r, dict) else r for r in message.replies]]
           for b in part if "block_id" in b]  # fmt: skip
    assert len(ids) == len(set(ids))
    assert ids.count(f"esc:{ORPHAN['id']}") == 1 and f"esc:{BOOK[0]['id']}" not in ids
    assert message.text.count("1 record of 1 person") == 1
