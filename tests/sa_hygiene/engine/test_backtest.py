"""The backtest (CONTRACT.md § 2c) against evaluating the draft day by day, as ``evaluate`` does."""

import json
from collections import Counter
from datetime import date, timedelta

import numpy as np
import pytest
from builders import opportunity, task, user, write_snapshot
from commands import assert_refused, run

from sa_hygiene.contract.config import ConfigError, load_config, with_workflows
from sa_hygiene.engine.backtest import (
    BacktestError,
    columns_read,
    draft_config,
    objects_read,
    plan,
    run_backtest,
    stored_snapshots,
)
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.store import SnapshotStore

pytestmark = pytest.mark.unit

DRAFT = """\
workflows:
  my-no-sa:
    title: Stage 2+ without a Primary SA
    object: Opportunity
    frame: opportunities
    scope: is_open and rank >= 2
    expect: [{expectation: not_null, column: sa}]
    recipient: {region: record}
    slot: regional_digest
  my-stage-3:
    title: Moved to stage 3
    object: Opportunity
    frame: changes
    scope: rank == 3
    expect: [{expectation: in_set, column: prev_rank, values: [3]}]
    recipient: {dm: sa}
    slot: sa_digest
  my-tasks:
    title: Open tasks due
    object: Task
    frame: tasks
    scope: owner_is_sa and days_overdue >= 0
    expect: [{expectation: in_set, column: is_closed, values: [true]}]
    recipient: {dm: owner}
    slot: sa_digest
"""
IDS = ["my-no-sa", "my-stage-3", "my-tasks"]
FIRST = date(2026, 10, 25)
MISSING = {date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 14)}
STAGES = ["1-Discovery", "2-Scoping", "3-Technical Evaluation", "4-Proposal", "Closed Won"]


def month(root, days=31, seed=5):
    """A generated month of snapshots: opportunities move stages and gain or lose an SA, tasks
    come due and get done; a few days have no snapshot."""
    rng = np.random.default_rng(seed)
    sas = [user(id=f"0055e0000000{i}SAAAA", geo=geo, region=region, email=f"sa{i}@gitlab.com")
           for i, (geo, region) in enumerate([("AMER", "East"), ("AMER", "West"), ("EMEA", "")])]  # fmt: skip
    owner = user(id="0055e00000000OWNAA", role_type="AE", geo="APJ", region="")
    gone = user(id="0055e00000000GONAA", is_active="false", geo="AMER", region="West")
    people = [*sas, owner, gone]
    opp_ids = [f"0065e000000{n:04d}AAA" for n in range(14)]
    task_ids = [f"00T5e000000{n:04d}AAA" for n in range(10)]
    stage = rng.integers(0, 4, len(opp_ids))
    for k in range(days):
        day = FIRST + timedelta(days=k)
        stage = np.clip(stage + (rng.random(len(opp_ids)) < 0.2), 0, 4)
        closed = stage == 4
        sa = [people[j]["id"] if j < 5 else "" for j in rng.integers(0, 7, len(opp_ids))]
        opps = [opportunity(id=i, owner_id=owner["id"], sa=s, stage=STAGES[st], is_closed=str(c).lower(),
                            is_won=str(c).lower(), iacv=str(int(rng.integers(0, 50) * 1000)))
                for i, s, st, c in zip(opp_ids, sa, stage, closed, strict=True)]  # fmt: skip
        tasks = [task(id=i, owner_id=people[n % 5]["id"], activity_date=(day - timedelta(days=int(rng.integers(-3, 6)))).isoformat(),
                      status="Open", is_closed=str(bool(rng.random() < 0.4)).lower())
                 for n, i in enumerate(task_ids)]  # fmt: skip
        if day not in MISSING:
            write_snapshot(root / day.isoformat(), {"User": people, "Opportunity": opps, "Task": tasks})
    return root


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    return month(tmp_path_factory.mktemp("month") / "snapshots")


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    path = tmp_path_factory.mktemp("draft") / "draft.yaml"
    path.write_text(DRAFT)
    return path


def expected_day(snapshots, day, previous, draft):
    """``evaluate`` with the draft as the configuration, its lines of the draft's workflows alone."""
    cfg = load_config(draft)
    lines = [a for a in evaluate_snapshots(snapshots / day.isoformat(), previous, cfg, day).alert_records()
             if a["workflow"] in IDS]  # fmt: skip
    to = [a["recipient"].get("id") and f"user:{a['recipient']['id']}" or f"channel:{a['recipient']['name']}" for a in lines]
    return {"as_of": day.isoformat(), "alerts": len(lines),
            "messages": len({(t, a["slot"]) for t, a in zip(to, lines, strict=True)}),
            "recipients": dict(Counter(to))}  # fmt: skip


def test_a_backtest_over_a_generated_month_equals_evaluating_the_draft_day_by_day(snapshots, draft):
    import yaml

    cfg, ids = with_workflows(load_config(), yaml.safe_load(draft.read_text()), str(draft))
    assert ids == IDS
    days = plan(stored_snapshots(cfg, snapshots), 30)
    assert days.last == FIRST + timedelta(days=30) and days.first == FIRST + timedelta(days=1)
    assert days.skipped == sorted(MISSING)
    got = list(run_backtest(draft_config(cfg, ids), days))
    assert [d.as_of for d in got] == [FIRST + timedelta(days=k) for k in range(1, 31) if FIRST + timedelta(days=k) not in MISSING]
    kinds = Counter()
    for d in got:
        earlier = max(x for x in [FIRST + timedelta(days=k) for k in range(31)] if x < d.as_of and x not in MISSING)
        want = expected_day(snapshots, d.as_of, snapshots / earlier.isoformat(), draft)
        line = d.record()
        assert {k: line[k] for k in want} == want
        assert len(line["examples"]) == min(3, len({a["record_id"] for a in d.lines}))
        assert set(line["examples"]) <= {a["record_id"] for a in d.lines}
        kinds.update(a["workflow"] for a in d.lines)
    # The month exercises every draft workflow, DMs and channels alike (else the equality proves little).
    assert set(kinds) == set(IDS)


def test_the_store_is_the_default_and_a_day_is_a_snapshot_s_utc_date(snapshots, tmp_path):
    from datetime import UTC, datetime, time

    store = SnapshotStore(str(tmp_path / "store"))
    for day in (date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 23)):
        store.commit_folder(snapshots / day.isoformat(), datetime.combine(day, time(4), UTC))
    cfg = load_config().model_copy(update={"store": load_config().store.model_copy(update={"url": str(tmp_path / "store")})})
    days = plan(stored_snapshots(cfg), 4)
    assert [(d, p is not None) for d, _, p in days.days] == [(date(2026, 11, 20), False), (date(2026, 11, 21), True),
                                                            (date(2026, 11, 23), True)]  # fmt: skip
    assert days.days[2][2].endswith("20261121T040000Z") and days.skipped == [date(2026, 11, 22)]


def test_nothing_to_backtest_is_a_clear_error(tmp_path, snapshots):
    cfg = load_config()
    with pytest.raises(BacktestError, match="no such folder"):
        stored_snapshots(cfg, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BacktestError, match="no snapshot folders named by date"):
        stored_snapshots(cfg, tmp_path / "empty")
    with pytest.raises(BacktestError, match="no snapshot from 2026-11-01 to 2026-11-02"):
        plan(stored_snapshots(cfg, snapshots), 2, date(2026, 11, 2))


@pytest.mark.parametrize(
    "doc, words",
    [
        ({}, ["no workflow entries"]),
        ({"workflows": {"x": {"title": "x"}}, "thresholds": {"stall_days": 3}}, ["'thresholds'", "only workflows and reasons"]),
        ({"x": "not an entry"}, ["workflows.x: a workflow entry is a mapping"]),
        ({"x": {"title": "x", "object": "Opportunity", "frame": "opportunities", "scope": "__import__('os')",
                "expect": [{"expectation": "not_null", "column": "sa"}], "recipient": {"region": "record"},
                "slot": "regional_digest"}}, ["workflows.x.scope"]),
        ({"x": {"title": "x", "object": "Opportunity", "frame": "opportunities",
                "expect": [{"expectation": "not_null", "column": "owner_name"}], "recipient": {"region": "record"},
                "slot": "regional_digest"}}, ["workflows.x.expect.0.column: unknown field 'owner_name'"]),
        ({"x": {"title": "x", "object": "Opportunity", "frame": "opportunities",
                "expect": [{"expectation": "not_null", "column": "sa"}], "recipient": {"dm": "sa"},
                "slot": "weekly"}}, ["workflows.x.slot"]),
    ],
)  # fmt: skip
def test_a_draft_is_refused_for_what_the_configuration_checker_refuses(doc, words):
    with pytest.raises(ConfigError) as exc:
        with_workflows(load_config(), doc, "draft.yaml")
    for word in words:
        assert word in str(exc.value)
    assert "draft.yaml" in str(exc.value)


def test_the_command_writes_one_line_per_day_as_evaluate_counts_them(snapshots, draft, tmp_path):
    out = tmp_path / "bt.jsonl"
    r = run("backtest", "--workflow", str(draft), "--snapshots", str(snapshots), "--days", "4", "--until", "2026-11-03",
            "--out", str(out), check_airflow=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["as_of"] for x in lines] == ["2026-10-31", "2026-11-03"]
    assert "skipped, no snapshot: 2026-11-01, 2026-11-02" in r.stderr
    # The contract's own check: evaluate's lines for those workflows alone on that day and its previous.
    alerts = tmp_path / "alerts.jsonl"
    r = run("evaluate", "--snapshot", str(snapshots / "2026-11-03"), "--previous", str(snapshots / "2026-10-31"),
            "--as-of", "2026-11-03", "--config", str(draft), "--out", str(alerts))  # fmt: skip
    assert r.returncode == 0, r.stderr
    mine = [a for a in map(json.loads, alerts.read_text().splitlines()) if a["workflow"] in IDS]
    assert lines[1]["alerts"] == len(mine) > 0
    assert set(lines[1]) == {"as_of", "alerts", "messages", "recipients", "examples"}


@pytest.mark.parametrize(
    "text, words",
    [
        (None, ["cannot read the workflow file"]),
        ("workflows: [unclosed\n", ["not valid YAML"]),
        ("- a list\n", ["no workflow entries"]),
        ("workflows:\n  x:\n    title: x\n    object: Opportunity\n    frame: tasks\n    expect: [{expectation: not_null, column: sa}]\n"
         "    recipient: {dm: sa}\n    slot: sa_digest\n", ["workflows.x.object", "workflows.x.expect.0.column", "workflows.x.recipient.dm"]),
    ],
)  # fmt: skip
def test_the_command_refuses_a_bad_workflow_file_in_one_line(snapshots, tmp_path, text, words):
    path = tmp_path / "wf.yaml"
    if text is not None:
        path.write_text(text)
    r = run("backtest", "--workflow", str(path), "--snapshots", str(snapshots))
    assert_refused(r, str(path), *words)


def test_the_command_refuses_missing_snapshots_in_one_line(draft, tmp_path):
    assert_refused(run("backtest", "--workflow", str(draft), "--snapshots", str(tmp_path / "none")), "no such folder")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store:\n  url: {tmp_path / 'store'}\n")
    assert_refused(run("backtest", "--workflow", str(draft), "--config", str(cfg)), "holds no snapshot")


def test_a_backtest_of_the_store_reads_what_its_frames_need_and_alerts_as_the_folders_typed_at_read(tmp_path):
    """Snapshots typed at commit are read for the draft's frames only (some columns of tasks):
    a draft of each frame's workflows, POVs included, alerts as evaluate does on the folders."""
    import shutil
    from datetime import UTC, datetime, time

    from sa_hygiene.demo.org import write_demo_org

    org = tmp_path / "org"
    write_demo_org(org, date(2026, 11, 24), scale=0.2)
    folders, store = tmp_path / "folders", SnapshotStore(str(tmp_path / "store"))
    cfg = load_config().model_copy(update={"store": load_config().store.model_copy(update={"url": str(tmp_path / "store")})})
    for day, name in ((date(2026, 11, 22), "previous"), (date(2026, 11, 23), "current"), (date(2026, 11, 24), "previous")):
        store.commit_folder(org / name, datetime.combine(day, time(4), UTC), "test", cfg=cfg)
        shutil.copytree(org / name, folders / day.isoformat())
    by_frame: dict[str, list[str]] = {}
    for wid, wf in cfg.enabled_workflows().items():
        by_frame.setdefault(wf.frame, []).append(wid)
    assert {"tasks", "activities", "changes", "povs", "pov_owners", "opportunities"} <= set(by_frame)
    fired = set()
    for frame, ids in sorted(by_frame.items()):
        draft = draft_config(cfg, ids)
        stored = list(run_backtest(draft, plan(stored_snapshots(cfg), 2)))
        typed_at_read = list(run_backtest(draft, plan(stored_snapshots(cfg, folders), 2)))
        assert [d.record() for d in stored] == [d.record() for d in typed_at_read], frame
        day = stored[-1].as_of
        want = [a for a in evaluate_snapshots(folders / day.isoformat(), folders / (day - timedelta(days=1)).isoformat(),
                                              cfg, day).alert_records() if a["workflow"] in ids]  # fmt: skip
        assert stored[-1].lines == want, frame
        fired |= {a["workflow"] for a in want}
    assert any(w.startswith("pov-") for w in fired)  # the POV object is read when a draft reads POVs
    # What was left unread: the task descriptions and audit stamps; everything when meetings are read.
    assert "description" not in columns_read({"tasks", "changes"})["Task"] and "description" in columns_read({"activities"})["Task"]
    assert columns_read({"meetings", "tasks"}) is None and objects_read({"meetings"}) is None
    assert objects_read({"tasks"}) == ("User", "Opportunity", "Task") and "Proof_of_Value__c" in objects_read({"pov_owners"})
