"""As it happens (spec v3): a simulated day of activities logged at random minutes, the changes
feed pulled every 15 minutes, and the sa_activity_posts step run after each pull, as the DAG does.

What was posted is read back from the outbox's Slack calls, as Slack would have received it; each
run's folder is named after its instant, which gives the delay from an activity's creation to its post.
"""

import json
import random
import re
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from builders import account, opportunity, task, user, write_changes, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.activity_posts import UPDATE_ACTIVITY, build_posts
from sa_hygiene.delivery.digest import build_messages
from sa_hygiene.pipeline.activity_posts import FEED, post_activities
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.source.store import ChangesFeed, SnapshotStore
from sa_hygiene.state.alerts import AlertState

pytestmark = pytest.mark.integration

TAKEN = datetime(2026, 11, 24, 4, tzinfo=UTC)
EVERY = timedelta(minutes=15)
SA = user(id="0055e0000000SA1AAA", name="Sam <Architect>", email="sam@gitlab.com")
SA2 = user(id="0055e0000000SA2AAA", name="Ada West", email="ada@gitlab.com", region="West")
ACC = account(id="0015e0000000AC1AAA", name="Acme")
OPP = opportunity(id="0065e0000000OP1AAA", name="Acme - Ultimate", account_id=ACC["id"], owner_id=SA["id"])
TASK_LINK = re.compile(r"/lightning/r/Task/(\w+)/view")
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def config(tmp_path, extra: str = ""):
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {{url: {json.dumps(str(tmp_path / 'store'))}}}\n"
                    f"slack: {{delivery: outbox, outbox: {json.dumps(str(tmp_path / 'outbox'))}, "
                    f"ledger_url: {json.dumps('sqlite:///' + str(tmp_path / 'ledger.sqlite'))}}}\n{extra}")  # fmt: skip
    return load_config(path)


def a_day(seed: int = 7) -> list[dict]:
    """40 SA activities and 5 Chorus calls created at random minutes of the day after the snapshot."""
    rng = random.Random(seed)
    out = []
    for n in range(45):
        created = TAKEN + timedelta(minutes=rng.randrange(1, 20 * 60 - 1), seconds=rng.randrange(60))
        kind = {"activity_types": "Demo;Discovery Session", "sentiment": "Positive"} if n < 40 else \
            {"chorus_call_id": f"call-{n}", "subject": "Recorded call"}  # fmt: skip
        out.append(task(id=f"00T5e00000{n:02d}T01AAA", owner_id=(SA, SA2)[n % 2]["id"], what_id=OPP["id"],
                        created=created.strftime(STAMP), system_modstamp=created.strftime(STAMP),
                        activity_date=created.date().isoformat(),
                        description=f"Notes {n}: more at https://docs.example.com/{n} <!channel>", **kind))  # fmt: skip
    return out


class Feed:
    """The snapshot of 04:00 and a changes feed pulled by hand, as sa_changes does every 15 minutes.
    ``started``: the deployment's first posts run was at 04:00 (it posts what happens from then on)."""

    def __init__(self, cfg, tmp_path: Path, started: bool = True):
        self.cfg, self.tmp = cfg, tmp_path
        self.store = SnapshotStore(cfg.store.url)
        snap = write_snapshot(tmp_path / "snap", {"User": [SA, SA2], "Account": [ACC], "Opportunity": [OPP]})
        self.ref = self.store.commit_folder(snap, TAKEN)
        self.rows: dict[str, dict] = {}
        if started:
            self.pull(TAKEN, [])
            assert self.run(TAKEN, run_id="start")["started"] == TAKEN.isoformat()

    def pull(self, at: datetime, tasks: list[dict]) -> None:
        """A pull at ``at``: the feed is cumulative, every Task changed since the snapshot."""
        for t in tasks:
            self.rows[t["id"]] = t
        feed = ChangesFeed(self.store, self.ref)
        staged = feed.stage()
        write_changes(Path(staged), {"Task": list(self.rows.values())})
        feed.commit(staged, {"high_water_mark": at.isoformat(), "pulled_at": at.isoformat()})

    def run(self, at: datetime, run_id: str | None = None, **kw) -> dict:
        return post_activities(self.cfg, run_id or f"posts/{at:%H%M}", now=at, **kw)


def posted(outbox: Path) -> dict[str, list[tuple[str, dict]]]:
    """{Task Id: [(run folder, the chat.postMessage call)]} over every run folder."""
    out: dict[str, list] = {}
    for path in sorted(outbox.glob("*/calls.jsonl")):
        for line in path.read_text().splitlines():
            call = json.loads(line)
            if call["method"] == "chat.postMessage" and call["args"]["metadata"]["event_payload"]["key"].startswith(
                "activity_post|"
            ):
                tid = TASK_LINK.findall(json.dumps(call["args"]["blocks"]))[0]
                out.setdefault(tid, []).append((path.parent.name, call))
    return out


def calls(outbox: Path, method: str) -> list[dict]:
    out = []
    for path in sorted(outbox.glob("*/calls.jsonl")):
        out += [c for c in map(json.loads, path.read_text().splitlines()) if c["method"] == method]
    return out


def test_a_day_of_activities_each_posted_once_within_one_feed_interval(tmp_path):
    cfg = config(tmp_path)
    feed = Feed(cfg, tmp_path)
    day = a_day()
    # One Task committed late: created at 10:13, it reaches the feed only with the pull of 10:30
    # (the feed re-reads its overlap); the window of 10:30 must still take it.
    late = task(id="00T5e0000099T01AAA", owner_id=SA["id"], what_id=OPP["id"], activity_types="Demo",
                created="2026-11-24T10:13:00Z", system_modstamp="2026-11-24T10:13:00Z")  # fmt: skip
    at = TAKEN + EVERY
    while at <= TAKEN + timedelta(hours=20):
        visible = [t for t in day if t["created"] < at.strftime(STAMP)]
        if at >= datetime(2026, 11, 24, 10, 30, tzinfo=UTC):
            visible.append(late)
        feed.pull(at, visible)
        feed.run(at)
        at += EVERY

    posts = posted(tmp_path / "outbox")
    everything = [*day, late]
    assert sorted(posts) == sorted(t["id"] for t in everything)
    assert {tid: len(p) for tid, p in posts.items() if len(p) != 1} == {}
    delays = []
    for t in day:
        folder, call = posts[t["id"]][0]
        run_at = datetime.strptime(folder, "posts_%H%M").replace(year=2026, month=11, day=24, tzinfo=UTC)
        run_at += timedelta(days=1) if run_at < TAKEN else timedelta(0)  # the runs after midnight
        created = datetime.strptime(t["created"], STAMP).replace(tzinfo=UTC)
        delays.append((run_at - created).total_seconds() / 60)
        # The region channel of the task's owner; a Chorus call to its channel.
        channel = "#sa-chorus-calls" if t["chorus_call_id"] else (
            "#sa-activities-east-sa" if t["owner_id"] == SA["id"] else "#sa-activities-west-sa")  # fmt: skip
        assert call["recipient"] == {"type": "channel", "name": channel}
    assert 0 < min(delays) and max(delays) <= 15
    assert posts[late["id"]][0][0] == "posts_1030"
    delays.sort()
    print(f"\ndelay from creation to post over {len(delays)} records: p50 {delays[len(delays) // 2]:.1f} min, "
          f"worst {delays[-1]:.1f} min")  # fmt: skip
    per_run = Counter()
    for path in (tmp_path / "outbox").glob("*/calls.jsonl"):
        per_run[path.parent.name] = len(path.read_text().splitlines())
    runs = int(timedelta(hours=20) / EVERY)
    print(f"Slack calls per feed run over {runs} runs: {sum(per_run.values()) / runs:.2f} on average, at most "
          f"{max(per_run.values())}; {runs - len(per_run)} runs made none; Salesforce calls: none (the store)")  # fmt: skip
    with AlertState(cfg.state_url) as state:
        assert state.feed_window_end(FEED) == TAKEN + timedelta(hours=20)


def test_the_post_in_the_handbooks_shape_escaped_with_its_links_and_the_update_button(tmp_path):
    cfg = config(tmp_path)
    feed = Feed(cfg, tmp_path)
    activity, chorus = a_day()[0], a_day()[40]
    at = datetime(2026, 11, 25, 0, tzinfo=UTC)
    feed.pull(at, [activity, chorus])
    feed.run(at)
    posts = posted(tmp_path / "outbox")
    blocks = posts[activity["id"]][0][1]["args"]["blocks"]
    text = json.dumps(blocks)
    # Who logged what on which opportunity, types, sentiment, the description and its link, the record.
    assert "Sam &lt;Architect&gt;" in text and "Acme - Ultimate" in text and "Demo, Discovery Session" in text
    assert "Positive" in text and "https://docs.example.com/0" in text and "/lightning/r/Task/" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert blocks[-1] == {"type": "actions", "elements": [
        {"type": "button", "action_id": UPDATE_ACTIVITY, "value": activity["id"],
         "text": {"type": "plain_text", "text": "Update Activity"}}]}  # fmt: skip
    chorus_blocks = posts[chorus["id"]][0][1]["args"]["blocks"]
    assert "Listen to the recording" in json.dumps(chorus_blocks)
    assert all(b["type"] != "actions" for b in chorus_blocks)  # a recording is not an SA activity to update


def test_reruns_and_overlapping_runs_post_nothing_twice(tmp_path):
    cfg = config(tmp_path)
    feed = Feed(cfg, tmp_path)
    day = a_day()
    at = datetime(2026, 11, 25, 0, tzinfo=UTC)
    feed.pull(at, day)
    # Four runs at once (a run by hand during the scheduled one, a zombie and its retry), then a re-run.
    errors = []

    def run(n: int) -> None:
        try:
            feed.run(at, run_id=f"overlap-{n}", dry_run=True)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    again = feed.run(at, run_id="rerun")
    assert (again["posted"], again["already_posted"]) == (0, len(day))
    counts = Counter({tid: len(p) for tid, p in posted(tmp_path / "outbox").items()})
    assert len(counts) == len(day) and set(counts.values()) == {1}


def test_the_first_run_starts_the_posts_without_the_backlog_and_loses_nothing_after(tmp_path):
    # A new deployment's first run at 12:00: the morning's 20-odd activities are not posted at once
    # (a flooded channel); everything created after 12:00 is, once, late commits included.
    cfg = config(tmp_path)
    feed = Feed(cfg, tmp_path, started=False)
    day, noon = a_day(), datetime(2026, 11, 24, 12, tzinfo=UTC)
    before = [t for t in day if t["created"] < noon.strftime(STAMP)]
    feed.pull(noon, before)
    first = feed.run(noon)
    assert first["started"] == noon.isoformat() and first["posted"] == 0 and posted(tmp_path / "outbox") == {}
    # Committed late, both reaching the feed at 12:30: created at 11:55 (before the start, never
    # posted) and at 12:13 (after it, in the overlap the feed re-reads).
    early = task(id="00T5e0000098T01AAA", owner_id=SA["id"], what_id=OPP["id"], activity_types="Demo",
                 created="2026-11-24T11:55:00Z", system_modstamp="2026-11-24T11:55:00Z")  # fmt: skip
    late = task(id="00T5e0000099T01AAA", owner_id=SA["id"], what_id=OPP["id"], activity_types="Demo",
                created="2026-11-24T12:13:00Z", system_modstamp="2026-11-24T12:13:00Z")  # fmt: skip
    at = noon + EVERY
    while at <= TAKEN + timedelta(hours=20):
        visible = [t for t in day if t["created"] < at.strftime(STAMP)]
        feed.pull(at, visible + ([early, late] if at >= noon + 2 * EVERY else []))
        assert "started" not in feed.run(at)
        at += EVERY
    posts = posted(tmp_path / "outbox")
    after = [t["id"] for t in day if t["created"] >= noon.strftime(STAMP)] + [late["id"]]
    assert before and sorted(posts) == sorted(after)
    assert {tid: len(p) for tid, p in posts.items() if len(p) != 1} == {}
    # Another process's run says the same start; it does not start again.
    again = Feed.run(feed, TAKEN + timedelta(hours=20), run_id="again")
    assert "started" not in again and again["posted"] == 0


def morning(tmp_path) -> tuple[Feed, datetime]:
    """A feed pulled and posted at 09:00."""
    feed = Feed(config(tmp_path), tmp_path)
    at = datetime(2026, 11, 24, 9, tzinfo=UTC)
    feed.pull(at, a_day()[:3])
    feed.run(at)
    return feed, at


def test_nothing_new_makes_no_evaluation_and_calls_nobody(tmp_path):
    feed, at = morning(tmp_path)
    quiet = feed.run(at + EVERY)  # sa_changes pulled nothing new: the feed's mark has not moved
    assert quiet["nothing_new"] and quiet["posted"] == quiet["edited"] == 0
    assert not (tmp_path / "outbox" / "posts_0915").exists()
    # A pull that brings nothing new to post evaluates again, but posts and edits nothing.
    feed.pull(at + 2 * EVERY, [])
    again = feed.run(at + 2 * EVERY)
    assert again["posted"] == again["edited"] == 0 and not (tmp_path / "outbox" / "posts_0930" / "calls.jsonl").exists()


def test_a_stale_feed_is_told_to_the_operations_channel_once(tmp_path):
    feed, at = morning(tmp_path)
    for minutes in (75, 90, 105, 120):  # sa_changes fails for an hour and more
        assert feed.run(at + timedelta(minutes=minutes))["stale"] is True
    ops = [c for c in calls(tmp_path / "outbox", "chat.postMessage") if c["recipient"]["name"] == "#sa-hygiene-ops"]
    assert len(ops) == 1 and "last pulled at 2026-11-24 09:00 UTC" in json.dumps(ops[0]["args"]["blocks"])


def test_an_activity_edited_or_deleted_in_salesforce_is_edited_in_place(tmp_path):
    cfg = config(tmp_path)
    feed = Feed(cfg, tmp_path)
    first, second, third = a_day()[:3]
    at = datetime(2026, 11, 25, 0, tzinfo=UTC)
    feed.pull(at, [first, second, third])
    feed.run(at)
    ts = {tid: p[0][1]["ts"] for tid, p in posted(tmp_path / "outbox").items()}

    later = at + EVERY
    changed = {**first, "description": "Rewritten: see https://docs.example.com/new", "system_modstamp": "2026-11-25T00:05:00Z"}
    deleted = {**second, "is_deleted": "true"}
    feed.pull(later, [changed, deleted])
    out = feed.run(later)
    assert (out["edited"], out["deleted"], out["posted"]) == (1, 1, 0)
    updates = {c["args"]["ts"]: c["args"] for c in calls(tmp_path / "outbox", "chat.update")}
    assert set(updates) == {ts[first["id"]], ts[second["id"]]}
    assert "https://docs.example.com/new" in json.dumps(updates[ts[first["id"]]]["blocks"])
    assert "deleted in Salesforce" in json.dumps(updates[ts[second["id"]]]["blocks"])
    assert "Update Activity" not in json.dumps(updates[ts[second["id"]]]["blocks"])
    # The next run, and a re-run, edit nothing again: what Slack shows is what they would show.
    feed.pull(later + EVERY, [])
    assert feed.run(later + EVERY)["edited"] == 0
    assert len(calls(tmp_path / "outbox", "chat.update")) == 2


def test_the_0800_digests_keep_the_hygiene_workflows_only(tmp_path):
    cfg = config(tmp_path)
    snap = read_snapshot(write_snapshot(tmp_path / "s", {"User": [SA], "Opportunity": [OPP], "Task": a_day()[:1]}), cfg)
    channel = {"type": "channel", "name": "#sa-activities-east-sa"}
    alerts = [
        {"workflow": "wf-02", "record_id": a_day()[0]["id"], "object": "Task", "slot": "regional_digest",
         "recipient": channel, "reasons": []},
        {"workflow": "wf-13", "record_id": OPP["id"], "object": "Opportunity", "slot": "regional_digest",
         "recipient": channel, "reasons": []},
    ]  # fmt: skip
    digests = build_messages(alerts, snap, cfg, date(2026, 11, 25))
    assert len(digests) == 1 and "Acme - Ultimate" in json.dumps(digests[0].blocks)
    assert "/lightning/r/Task/" not in json.dumps(digests[0].blocks)
    assert [m.key for m in build_posts(alerts, snap, cfg, date(2026, 11, 25))] == [
        f"activity_post|channel:#sa-activities-east-sa|{a_day()[0]['id'][:15]}"]
    # Which workflows post as they happen is configuration: none, and the digest carries wf-02 again.
    (tmp_path / "old").mkdir()
    old = config(tmp_path / "old", "schedule: {as_it_happens: []}\n")
    assert "/lightning/r/Task/" in json.dumps(build_messages(alerts, snap, old, date(2026, 11, 25))[0].blocks)
    assert build_posts(alerts, snap, old, date(2026, 11, 25)) == []
