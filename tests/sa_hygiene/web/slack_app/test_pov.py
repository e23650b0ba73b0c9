"""The Proof of Value forms' checks: the pov-* rules' own predicates at the guidelines'
boundaries (8 weeks: a plan of 55 days passes, 56 does not; 3 running POVs and a 4th; success
criteria blank or set), the rules' own words on the field that puts it right."""

from datetime import date, timedelta

import pytest
from builders import opportunity, pov, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.web.slack_app import pov as pv

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 24)
SA = user(name="Sam Architect", email="sam@gitlab.com")
OPP = opportunity(name="Acme - Ultimate", owner_id=SA["id"], sa=SA["id"], stage="3-Technical Evaluation", te_start="2026-11-01")
CLOSED = opportunity(name="Globex - Premium", owner_id=SA["id"], sa=SA["id"], stage="Closed Won", is_closed="true", is_won="true")


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def snapshot(tmp_path, running: int = 0, extra=()):
    povs = [pov(name=f"Run {i}", owner_id=SA["id"], opportunity_id=OPP["id"]) for i in range(running)] + list(extra)
    return read_snapshot(write_snapshot(tmp_path / "snap", {"User": [SA], "Opportunity": [OPP, CLOSED], "Proof_of_Value__c": povs}),
                         load_config())  # fmt: skip


def add(**kw) -> dict:
    return {"opportunity_id": OPP["id"], "name": "Acme CI POV", "start_date": day(0), "planned_end": day(30),
            "success_criteria": "Pipelines under 10 minutes", **kw}  # fmt: skip


@pytest.fixture
def cfg():
    return load_config()


@pytest.mark.parametrize("length, refused", [(7, False), (55, False), (56, True), (90, True)])
def test_a_plan_of_8_weeks_or_more_is_refused_on_the_planned_end(tmp_path, cfg, length, refused):
    errors = pv.add_refusals(cfg, snapshot(tmp_path), SA["id"], add(planned_end=day(length)), TODAY)
    assert errors == ({"planned_end": cfg.workflows["pov-overdue"].message.text} if refused else {})


def test_a_plan_started_in_the_past_counts_from_its_start(tmp_path, cfg):
    errors = pv.add_refusals(cfg, snapshot(tmp_path), SA["id"], add(start_date=day(-50), planned_end=day(6)), TODAY)
    assert set(errors) == {"planned_end"}
    assert pv.add_refusals(cfg, snapshot(tmp_path), SA["id"], add(start_date=day(-50), planned_end=day(5)), TODAY) == {}


@pytest.mark.parametrize("running, refused", [(2, False), (3, True)])
def test_a_fourth_running_pov_is_refused_a_third_is_not(tmp_path, cfg, running, refused):
    errors = pv.add_refusals(cfg, snapshot(tmp_path, running), SA["id"], add(), TODAY)
    assert errors == ({"start_date": cfg.workflows["pov-load"].title} if refused else {})
    # Planned to start later, it does not run yet: the load is the rule's business when it starts.
    assert pv.add_refusals(cfg, snapshot(tmp_path, running), SA["id"], add(start_date=day(3), planned_end=day(20)), TODAY) == {}


def test_the_load_is_counted_on_the_povs_salesforce_has_now(tmp_path, cfg):
    """At save, the owner's POVs as Salesforce has them replace the snapshot's: one made since it
    counts, one ended or given to someone else since does not, and other people's are untouched."""
    eve = user(name="Eve Other", email="eve@gitlab.com")
    other = pov(name="Not Sam's", owner_id=eve["id"], opportunity_id=OPP["id"])
    povs = [pov(name=f"Run {i}", owner_id=SA["id"], opportunity_id=OPP["id"]) for i in range(3)] + [other]
    snap = read_snapshot(write_snapshot(tmp_path / "snap", {"User": [SA, eve], "Opportunity": [OPP, CLOSED],
                                                            "Proof_of_Value__c": povs}), cfg)  # fmt: skip
    assert other["id"] in set(snap[pv.POV]["id"])
    ids = [i for i in snap[pv.POV]["id"] if i != other["id"]]
    running = cfg.proofs_of_value.running[0]
    assert pv.running_count(cfg, snap, SA["id"]) == 3
    ended = pv.with_live_povs(snap, SA["id"], {ids[0]: running, ids[1]: "Completed"})  # ids[2] given away
    assert pv.running_count(cfg, ended, SA["id"]) == 1 and pv.add_refusals(cfg, ended, SA["id"], add(), TODAY) == {}
    made = pv.with_live_povs(snap, SA["id"], {**dict.fromkeys(ids, running), "a0X5e000000NEWAAA": running})
    assert pv.running_count(cfg, made, SA["id"]) == 4
    assert pv.add_refusals(cfg, made, SA["id"], add(), TODAY) == {"start_date": cfg.workflows["pov-load"].title}
    assert other["id"] in set(made[pv.POV]["id"]) and other["id"] in set(ended[pv.POV]["id"])


@pytest.mark.parametrize("criteria, refused", [("", True), (None, True), ("Merge trains green", False)])
def test_success_criteria_blank_or_set(tmp_path, cfg, criteria, refused):
    errors = pv.add_refusals(cfg, snapshot(tmp_path), SA["id"], add(success_criteria=criteria or None), TODAY)
    assert errors == ({"success_criteria": cfg.workflows["pov-criteria"].message.text} if refused else {})


def test_a_closed_opportunity_or_an_account_is_refused(tmp_path, cfg):
    snap = snapshot(tmp_path)
    assert pv.add_refusals(cfg, snap, SA["id"], add(opportunity_id=CLOSED["id"]), TODAY) == {
        "opportunity_id": cfg.workflows["pov-opportunity"].message.text}  # fmt: skip
    assert set(pv.add_refusals(cfg, snap, SA["id"], add(opportunity_id="0015e0000000ACCAAA"), TODAY)) == {"opportunity_id"}
    assert pv.add_refusals(cfg, snap, SA["id"], add(planned_end=day(-1)), TODAY) == {"planned_end": "It ends before it starts."}
    assert set(pv.add_refusals(cfg, snap, SA["id"], add(name=None, start_date=None), TODAY)) == {"name", "start_date"}


def test_the_new_pov_is_owned_by_who_adds_it_and_runs_from_its_start(tmp_path, cfg):
    snap = snapshot(tmp_path)
    fields = pv.api_fields(cfg, pv.new_pov(cfg, snap, SA["id"], add(), TODAY))
    assert fields == {"Name": "Acme CI POV", "Opportunity__c": OPP["id"], "OwnerId": SA["id"], "Status__c": "In Progress",
                      "Start_Date__c": day(0), "Success_Criteria__c": "Pipelines under 10 minutes"}  # fmt: skip
    assert pv.new_pov(cfg, snap, SA["id"], add(start_date=day(1)), TODAY)["status"] == "Planned"


def test_update_checks_the_pov_as_it_will_be(tmp_path, cfg):
    long = pov(name="Long one", owner_id=SA["id"], opportunity_id=OPP["id"], start_date=day(-56))
    done = pov(name="Done one", owner_id=SA["id"], opportunity_id=OPP["id"], status="Completed", start_date=day(-40), end_date=day(-2))
    snap = snapshot(tmp_path, 3, [long, done])
    p = pv.pov_of(snap, long["id"])
    form = dict(p.values)
    assert pv.update_refusals(cfg, snap, p, form, TODAY) == {"end_date": cfg.workflows["pov-overdue"].message.text}
    assert pv.update_refusals(cfg, snap, p, {**form, "start_date": day(-55)}, TODAY) == {}  # already running: load not its doing
    assert pv.update_refusals(cfg, snap, p, {**form, "end_date": day(0), "status": "Completed"}, TODAY) == {
        "result": cfg.workflows["pov-result"].message.text}  # fmt: skip
    d = pv.pov_of(snap, done["id"])
    assert pv.update_refusals(cfg, snap, d, {**d.values, "result": "Successful"}, TODAY) == {}
    assert pv.update_refusals(cfg, snap, d, {**d.values, "result": "Successful", "status": "In Progress", "end_date": None}, TODAY) == {
        "status": cfg.workflows["pov-load"].title}  # fmt: skip


def test_the_update_form_and_evaluate_agree_on_every_demo_pov(tmp_path, cfg):
    """ONE meaning of each rule: every POV of the demo org, sent back as it is, is refused exactly
    when evaluate flags it on a field of the form (pov-tech-eval asks for the opportunity's date,
    pov-load for a POV that already ran: neither is the form's doing)."""
    from sa_hygiene.demo.org import write_demo_org
    from sa_hygiene.engine.rules import evaluate

    write_demo_org(tmp_path, TODAY, scale=0.3, seed=5)
    cur = read_snapshot(tmp_path / "current", cfg)
    on_form = ("pov-overdue", "pov-criteria", "pov-opportunity", "pov-result")
    flagged = {a["record_id"] for a in evaluate(cur, None, cfg, TODAY).alert_records() if a["workflow"] in on_form}
    refused = set()
    for pov_id in cur[pv.POV]["id"]:
        p = pv.pov_of(cur, pov_id)
        if pv.update_refusals(cfg, cur, p, dict(p.values), TODAY):
            refused.add(pov_id)
    assert flagged and refused == flagged
