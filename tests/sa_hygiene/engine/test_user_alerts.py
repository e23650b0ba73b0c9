"""User alerts run in the same evaluation as the YAML workflows, and change nothing of theirs."""

from datetime import date

import pytest
from builders import account, opportunity, task, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.user_alerts import Audience
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.engine.user_alerts import audiences, evaluate_with_user_alerts, messages_per_alert, over_limit
from sa_hygiene.source.snapshot import read_snapshot

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)
BOSS = user(id="0055e0000000B01AAA", role_type="Manager")
ME = user(id="0055e0000000M01AAA", manager_id=BOSS["id"])
REPORT = user(id="0055e0000000R01AAA", manager_id=ME["id"], email="r@gitlab.com")
DEEP = user(id="0055e0000000D01AAA", manager_id=REPORT["id"], email="d@gitlab.com")
WEST = user(id="0055e0000000W01AAA", geo="AMER", region="West", email="w@gitlab.com")
ACME = account(id="0015e0000000A01AAA", owner_id=ME["id"])


def spec(trigger, scope="mine", delivery="digest", obj="Opportunity", owner=ME["id"], **kw):
    return {"name": "mine", "owner": owner, "object": obj, "trigger": trigger, "scope": scope, "delivery": delivery, **kw}


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("ua")
    opps = [
        opportunity(id="0065e0000000O01AAA", owner_id=BOSS["id"], sa=ME["id"], stage="4-Proposal", te_start="2026-10-01",
                    iacv="150000"),
        opportunity(id="0065e0000000O02AAA", owner_id=BOSS["id"], sa=REPORT["id"], stage="3-Technical Evaluation",
                    iacv="90000", stage3_date="2026-11-01"),
        opportunity(id="0065e0000000O03AAA", owner_id=WEST["id"], sa=DEEP["id"], stage="3-Technical Evaluation",
                    iacv="200000", account_id=ACME["id"]),
        opportunity(id="0065e0000000O04AAA", owner_id=WEST["id"], sa="", stage="4-Proposal", iacv="30000"),
    ]  # fmt: skip
    people = [BOSS, ME, REPORT, DEEP, WEST]
    tasks = [task(owner_id=ME["id"], activity_date="2026-11-20", status="Open", is_closed="false")]
    previous = write_snapshot(root / "previous", {"User": people, "Account": [ACME],
                                                  "Opportunity": [{**o, "stage": "2-Scoping"} for o in opps]})  # fmt: skip
    current = write_snapshot(root / "current", {"User": people, "Account": [ACME], "Opportunity": opps, "Task": tasks})
    return current, previous


def test_audiences_from_the_snapshot(snapshots):
    cfg = load_config()
    who = audiences(read_snapshot(snapshots[0], cfg), cfg, {ME["id"]})[ME["id"]]
    assert who.reports == [REPORT["id"]] and set(who.team) == {REPORT["id"], DEEP["id"]}
    assert set(who.region) == {BOSS["id"], ME["id"], REPORT["id"], DEEP["id"]} and who.accounts == [ACME["id"]]


def test_audiences_of_a_cycle_of_managers_a_person_without_region_and_one_not_in_the_org(tmp_path):
    """A ManagerId cycle stops at each person once; a person whose region nobody routes is their
    own region; an owner gone from the snapshot covers only themselves. Ids as the snapshot
    spells them, whichever spelling the owner was given by."""
    a = user(id="0055e0000000C01AAA", manager_id="0055e0000000C02AAA")
    b = user(id="0055e0000000C02AAA", manager_id="0055e0000000C01")  # the 15-character spelling
    c = user(id="0055e0000000C03AAA", manager_id=a["id"], geo="", region="")
    d = user(id="0055e0000000C04AAA", manager_id=" ", geo="", region="")  # a blank manager
    cfg = load_config()
    snapshot = read_snapshot(write_snapshot(tmp_path / "s", {"User": [a, b, c, d]}), cfg)
    gone = "0055e0000000Z01AAA"
    who = audiences(snapshot, cfg, {a["id"], "0055e0000000C03", d["id"], gone})
    assert who[a["id"]].reports == [b["id"], c["id"]] and sorted(who[a["id"]].team) == sorted([b["id"], c["id"]])
    assert who[a["id"]].region == [a["id"], b["id"]]
    assert who["0055e0000000C03"].region == [c["id"]] and who["0055e0000000C03"].team == []
    assert who[d["id"]].reports == [] and who[d["id"]].region == [d["id"]]
    assert who[gone] == Audience(gone, region=[gone])


def test_user_alerts_change_nothing_of_the_yaml_workflows_and_run_in_the_same_evaluation(snapshots):
    cfg = load_config()
    current, previous = snapshots
    plain = evaluate_snapshots(current, previous, cfg, AS_OF).alert_records()
    stored = {
        "big": spec({"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}, scope="team"),
        "moves": spec({"kind": "stage_move", "to_value": 3}, scope="my_reports", delivery="dm_now"),
        "acct": spec({"kind": "condition", "field": "sa", "op": "blank", }, scope="my_accounts"),
        "tasks": spec({"kind": "condition", "field": "is_closed", "op": "equals", "values": [False]}, obj="Task",
                      delivery="channel", channel="#my-tasks"),
        "gone": spec({"kind": "condition", "field": "legacy__c", "op": "blank"}),
        "bad": {"name": "x"},
    }  # fmt: skip
    result, broken = evaluate_with_user_alerts(current, previous, cfg, AS_OF, stored)
    lines = result.alert_records()
    yaml_lines = [a for a in lines if not a["workflow"].startswith("ua-")]
    key = lambda a: (a["workflow"], a["record_id"], str(a["recipient"]))  # noqa: E731
    assert sorted(yaml_lines, key=key) == sorted(plain, key=key)
    mine = {(a["workflow"], a["record_id"], str(a["recipient"]), a["slot"]) for a in lines if a["workflow"].startswith("ua-")}
    to_me = str({"type": "user", "id": ME["id"]})
    assert mine == {
        ("ua-big", "0065e0000000O03AAA", to_me, "sa_digest"),  # DEEP's: two levels below me; O01 is mine, not my team's
        ("ua-moves", "0065e0000000O02AAA", to_me, "meeting_reminder"),  # REPORT's, moved 2 -> 3
        ("ua-tasks", next(iter({a["record_id"] for a in lines if a["object"] == "Task" and a["workflow"] == "ua-tasks"})),
         str({"type": "channel", "name": "#my-tasks"}), "channel_post"),
    }  # fmt: skip
    # ACME's opportunity has its SA: "acct" fires on nothing; the two that cannot compile are left out, said why.
    assert set(broken) == {"gone", "bad"} and "legacy__c" in broken["gone"]
    assert messages_per_alert(lines) == {"big": 1, "moves": 1, "tasks": 1}
    tight = cfg.model_copy(update={"user_alerts": cfg.user_alerts.model_copy(update={"max_messages_per_day": 1})})
    assert over_limit(lines, tight) == {}
    many = lines + [{**a, "recipient": {"type": "user", "id": REPORT["id"]}} for a in lines if a["workflow"] == "ua-big"]
    assert over_limit(many, tight) == {"big": "it would send 2 messages a day, more than 1: paused"}


def test_a_scope_that_names_nobody_fires_on_nothing_and_fails_nothing(snapshots):
    cfg = load_config()
    current, previous = snapshots
    lonely = spec({"kind": "condition", "field": "sa", "op": "blank"}, scope="my_accounts", owner=WEST["id"])
    result, broken = evaluate_with_user_alerts(current, previous, cfg, AS_OF, {"lonely": lonely,
                                               "reports": spec({"kind": "condition", "field": "sa", "op": "blank"},
                                                               scope="my_reports", owner=WEST["id"])})  # fmt: skip
    assert broken == {} and not result.alerts["workflow"].str.startswith("ua-").any()
    assert "ua-lonely" in result.scope and result.scope["ua-lonely"] == set()


def test_user_alerts_judged_column_wise_raise_what_gx_raises(snapshots):
    from sa_hygiene.engine.user_alerts import with_user_alerts

    cfg = load_config()
    current, previous = snapshots
    triggers = [
        {"kind": "condition", "field": "iacv", "op": "more_than", "number": 50000},
        {"kind": "condition", "field": "iacv", "op": "less_than", "number": 100000},
        {"kind": "condition", "field": "sa", "op": "blank"},
        {"kind": "condition", "field": "te_status", "op": "in", "values": ["Win", "Loss"]},
        {"kind": "condition", "field": "te_start", "op": "older_than_days", "number": 10},
        {"kind": "changed", "field": "sa"},
        {"kind": "stage_move", "to_value": 3},
        {"kind": "stage_move"},
    ]
    stored = {f"t{n}{s}": spec(t, scope=s, owner=owner) for n, t in enumerate(triggers)
              for s in ("mine", "team", "my_region") for owner in (ME["id"], BOSS["id"])}  # fmt: skip
    stored["task"] = spec({"kind": "condition", "field": "is_closed", "op": "equals", "values": [False]}, obj="Task")
    ours, _ = evaluate_with_user_alerts(current, previous, cfg, AS_OF, stored)
    merged, _ = with_user_alerts(cfg, stored, read_snapshot(current, cfg))
    by_gx = evaluate_snapshots(current, previous, merged, AS_OF)
    key = lambda a: (a["workflow"], a["record_id"], str(a["recipient"]), a["slot"], a.get("unrouted", False))  # noqa: E731
    assert sorted(map(key, ours.alert_records())) == sorted(map(key, by_gx.alert_records()))
    assert ours.scope == by_gx.scope
    assert len([a for a in ours.alert_records() if a["workflow"].startswith("ua-")]) > 10
