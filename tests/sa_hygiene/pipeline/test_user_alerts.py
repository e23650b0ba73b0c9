"""User alerts through the DAG steps: evaluated with the workflows, in the owner's digest, paused with a notice."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from builders import opportunity, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.pipeline.digests import deliver_digests
from sa_hygiene.pipeline.evaluation import evaluate_latest
from sa_hygiene.source.jsonl import read_jsonl
from sa_hygiene.source.store import SnapshotStore
from sa_hygiene.state.user_alerts import UserAlerts

pytestmark = pytest.mark.integration

SA = user(id="0055e0000000SA1AAA", name="Sam Architect", email="sam@gitlab.com")
BIG = opportunity(id="0065e0000000BIGAAA", name="Big Co - Ultimate", owner_id=SA["id"], sa=SA["id"], stage="2-Scoping",
                  iacv="500000")  # fmt: skip
DAY = date(2026, 11, 24)


def spec(trigger, **kw):
    return {"name": kw.pop("name", "Big deals"), "owner": SA["id"], "object": "Opportunity", "trigger": trigger,
            "scope": "mine", "delivery": "digest", **kw}  # fmt: skip


def setup(tmp_path, max_messages=20):
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {{url: {tmp_path / 'store'}}}\nslack: {{outbox: {tmp_path / 'outbox'}, "
                    f"ledger_url: 'sqlite:///{tmp_path}/ledger.sqlite'}}\n"
                    f"user_alerts: {{max_messages_per_day: {max_messages}}}\n")  # fmt: skip
    cfg = load_config(path)
    folder = write_snapshot(tmp_path / "snap", {"User": [SA], "Opportunity": [BIG]})
    SnapshotStore(cfg.store.url).commit_folder(folder, datetime(2026, 11, 24, 4, tzinfo=UTC))
    return cfg


def dm_run(cfg, tmp_path, run):
    info = evaluate_latest(cfg, DAY, out=str(tmp_path / run), slots={"sa_digest"}, now=datetime(2026, 11, 24, 16, tzinfo=UTC))
    out = deliver_digests(cfg, info, run, slots={"sa_digest"})
    return info, out, OutboxSink.posts(Path(cfg.slack.outbox) / run)


def test_a_user_alert_reaches_its_owner_s_digest_and_a_broken_one_is_paused_with_one_notice(tmp_path):
    cfg = setup(tmp_path)
    with UserAlerts(cfg.state_url) as store:
        big = store.add(SA["id"], "Big deals", spec({"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}), 5)
        gone = store.add(SA["id"], "Old field", spec({"kind": "condition", "field": "legacy__c", "op": "blank"}, name="Old field"), 5)
    info, out, posts = dm_run(cfg, tmp_path, "dm-1")
    lines = read_jsonl(info.alerts)
    assert [(a["workflow"], a["record_id"]) for a in lines if a["workflow"].startswith("ua-")] == [(f"ua-{big}", BIG["id"])]
    text = json.dumps([p["args"] for p in posts], ensure_ascii=False)
    assert "Big deals" in text and "Big Co - Ultimate" in text  # the item, under the alert's own title
    assert "Your alert was paused: Old field" in text and "legacy__c" in text
    with UserAlerts(cfg.state_url) as store:
        assert store.get(gone).status == "paused" and store.notices() == []  # told once
        assert store.get(big).active
    _, _, again = dm_run(cfg, tmp_path, "dm-2")
    assert "Your alert was paused" not in json.dumps([p["args"] for p in again])


def test_a_dm_now_alert_over_its_messages_a_day_is_paused_sends_nothing_and_its_owner_is_told(tmp_path):
    cfg = setup(tmp_path, max_messages=1)
    other = opportunity(id="0065e0000000OTHAAA", name="Other Co", owner_id=SA["id"], sa=SA["id"], iacv="300000")
    folder = write_snapshot(tmp_path / "snap2", {"User": [SA], "Opportunity": [BIG, other]})
    SnapshotStore(cfg.store.url).commit_folder(folder, datetime(2026, 11, 24, 5, tzinfo=UTC))
    with UserAlerts(cfg.state_url) as store:
        loud = store.add(SA["id"], "Loud", spec({"kind": "condition", "field": "iacv", "op": "more_than", "number": 1},
                                                name="Loud", delivery="dm_now"), 5)  # fmt: skip
        quiet = store.add(SA["id"], "Quiet", spec({"kind": "condition", "field": "iacv", "op": "more_than", "number": 400000},
                                                  name="Quiet", delivery="dm_now"), 5)  # fmt: skip
    now = datetime(2026, 11, 24, 15, tzinfo=UTC)
    info = evaluate_latest(cfg, DAY, out=str(tmp_path / "rem"), slots={"meeting_reminder"}, now=now)
    out = deliver_digests(cfg, info, "rem", slots={"meeting_reminder"})
    lines = read_jsonl(info.alerts)
    assert [(a["workflow"], a["record_id"]) for a in lines] == [(f"ua-{quiet}", BIG["id"])]  # Loud's two are dropped
    posts = OutboxSink.posts(Path(cfg.slack.outbox) / "rem")
    assert out["messages"] == 1 and "Quiet · Sam Architect" in json.dumps([p["args"] for p in posts], ensure_ascii=False)
    with UserAlerts(cfg.state_url) as store:
        assert store.get(loud).status == "paused" and "2 messages a day, more than 1" in store.get(loud).paused_reason
        assert [n.alert_id for n in store.notices()] == [loud]  # told at the owner's 16:00 run
    _, _, posts = dm_run(cfg, tmp_path, "dm")
    assert "Your alert was paused: Loud" in json.dumps([p["args"] for p in posts])


def test_an_alert_saved_after_a_cached_evaluation_is_evaluated_on_the_next_run(tmp_path):
    cfg = setup(tmp_path)
    now = datetime(2026, 11, 24, 16, tzinfo=UTC)
    first = evaluate_latest(cfg, DAY, out=str(tmp_path / "a"), slots={"sa_digest"}, now=now, cache=True)
    assert not [a for a in read_jsonl(first.alerts) if a["workflow"].startswith("ua-")]
    with UserAlerts(cfg.state_url) as store:
        store.add(SA["id"], "Big deals", spec({"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}), 5)
    again = evaluate_latest(cfg, DAY, out=str(tmp_path / "b"), slots={"sa_digest"}, now=now, cache=True)
    assert [a["record_id"] for a in read_jsonl(again.alerts) if a["workflow"].startswith("ua-")] == [BIG["id"]]
