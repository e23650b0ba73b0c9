"""The Proofs of Value rules (WORKFLOWS.md "Proofs of Value", spec v3) at the boundaries the page
names, through the real evaluate path; the object's contract (CONTRACT.md § 1) as the engine reads it."""

from datetime import date, timedelta

import pytest
from builders import opportunity, pov, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.engine.rules import evaluate_snapshots

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)
MGR2 = user(id="0055e0000000MG2AAA", name="Max Director", role_type="Manager", email="max@gitlab.com")
MGR = user(id="0055e0000000MG1AAA", name="Mia Manager", role_type="Manager", email="mia@gitlab.com", manager_id=MGR2["id"])
SA = user(id="0055e0000000SA1AAA", name="Sam Architect", email="sam@gitlab.com", manager_id=MGR["id"])
AE = user(id="0055e0000000AE1AAA", name="Alex Exec", role_type="AE", email="alex@gitlab.com")
EAST = "#sa-activities-east-sa"
POV_RULES = ("pov-overdue", "pov-criteria", "pov-opportunity", "pov-result", "pov-tech-eval", "pov-load")


def day(offset: int) -> str:
    return (AS_OF + timedelta(days=offset)).isoformat()


def open_opp(**kw):
    return opportunity(**{"owner_id": AE["id"], "stage": "3-Technical Evaluation", "te_start": day(-20), **kw})


OPP = open_opp()


def evaluate(tmp_path, povs=None, users=None, opps=None, extra=None):
    tables = {"User": users or [SA, AE, MGR, MGR2], "Opportunity": [OPP] if opps is None else opps}
    if povs is not None:
        tables["Proof_of_Value__c"] = povs
    tables.update(extra or {})
    path = write_snapshot(tmp_path / "snap", tables)
    return evaluate_snapshots(str(path), None, load_config(), AS_OF)


def fired(result, workflow):
    """{record_id: recipient} of one workflow, checking each alert's object."""
    out = {}
    for a in result.alert_records():
        if a["workflow"] == workflow:
            assert a["object"] == ("User" if workflow == "pov-load" else "Proof_of_Value__c")
            assert a["reasons"] == []
            r = a["recipient"]
            out[a["record_id"]] = r.get("id") or r.get("name")
    return out


def mine(**kw):
    return pov(**{"owner_id": SA["id"], "opportunity_id": OPP["id"], **kw})


class TestOverdue:
    @pytest.mark.parametrize("start, end, status, fires", [
        (day(-56), "", "In Progress", True), (day(-55), "", "In Progress", False), (day(-200), "", "In Progress", True),
        (day(-56), day(-1), "In Progress", False), ("", "", "In Progress", False), (day(-56), "", "Planned", False),
        (day(-56), "", "Completed", False), (day(-56), " ", "In Progress", True),
    ])  # fmt: skip
    def test_eight_weeks_is_day_56(self, tmp_path, start, end, status, fires):
        p = mine(start_date=start, end_date=end, status=status, result="Successful")
        assert fired(evaluate(tmp_path, [p]), "pov-overdue") == ({p["id"]: SA["id"]} if fires else {})


class TestCriteria:
    @pytest.mark.parametrize("status, criteria, fires", [
        ("Planned", "", True), ("In Progress", "  ", True), ("In Progress", "Under 10 min", False),
        ("Completed", "", False), ("Cancelled", "", False),
    ])  # fmt: skip
    def test_active_without_success_criteria(self, tmp_path, status, criteria, fires):
        p = mine(status=status, success_criteria=criteria, result="Successful")
        assert fired(evaluate(tmp_path, [p]), "pov-criteria") == ({p["id"]: SA["id"]} if fires else {})


class TestOpportunity:
    def test_blank_or_closed_opportunity_of_an_active_pov(self, tmp_path):
        won = open_opp(stage="Closed Won", is_closed="true", is_won="true")
        lost = open_opp(stage="8-Closed Lost", is_closed="true")
        blank = mine(opportunity_id="")
        on_won, on_lost = mine(opportunity_id=won["id"]), mine(opportunity_id=lost["id"], status="Planned")
        fine, short_id = mine(), mine(opportunity_id=OPP["id"][:15])
        done = mine(opportunity_id="", status="Completed", result="Successful")
        got = fired(evaluate(tmp_path, [blank, on_won, on_lost, fine, short_id, done], opps=[OPP, won, lost]), "pov-opportunity")
        assert got == {blank["id"]: SA["id"], on_won["id"]: SA["id"], on_lost["id"]: SA["id"]}

    def test_an_opportunity_missing_from_the_snapshot_is_a_bad_reference(self, tmp_path):
        ghost = mine(opportunity_id="0065e0000000ZZZAAA")
        result = evaluate(tmp_path, [ghost, mine()])
        q = result.quarantine_records()
        assert [(r["object"], r["record_id"], r["reason"]) for r in q] == [("Proof_of_Value__c", ghost["id"], "missing_reference")]
        assert ghost["id"] not in {a["record_id"] for a in result.alert_records()}

    def test_a_quarantined_opportunity_leaves_the_pov_out_of_the_rules_reading_it(self, tmp_path):
        broken = open_opp(te_start="", close_date="31/12/2026")  # a bad date: the row is quarantined
        p = mine(opportunity_id=broken["id"], success_criteria="")
        result = evaluate(tmp_path, [p], opps=[OPP, broken])
        assert {(r["record_id"], r["reason"]) for r in result.quarantine_records()} == {(broken["id"], "bad_date")}
        assert fired(result, "pov-opportunity") == {} and fired(result, "pov-tech-eval") == {}
        assert fired(result, "pov-criteria") == {p["id"]: SA["id"]}  # the POV itself is read


class TestResult:
    @pytest.mark.parametrize("status, result, fires", [
        ("Completed", "", True), ("Completed", "Successful", False), ("Completed", "Unsuccessful", False),
        ("In Progress", "", False), ("Cancelled", "", False),
    ])  # fmt: skip
    def test_completed_without_a_result(self, tmp_path, status, result, fires):
        p = mine(status=status, result=result)
        assert fired(evaluate(tmp_path, [p]), "pov-result") == ({p["id"]: SA["id"]} if fires else {})


class TestTechEval:
    def test_running_pov_on_an_open_opportunity_without_a_start_date(self, tmp_path):
        no_start = open_opp(te_start="")
        closed = open_opp(te_start="", stage="Closed Won", is_closed="true", is_won="true")
        hit = mine(opportunity_id=no_start["id"])
        planned = mine(opportunity_id=no_start["id"], status="Planned")
        on_closed, started, blank = mine(opportunity_id=closed["id"]), mine(), mine(opportunity_id="")
        result = evaluate(tmp_path, [hit, planned, on_closed, started, blank], opps=[OPP, no_start, closed])
        assert fired(result, "pov-tech-eval") == {hit["id"]: SA["id"]}


class TestLoad:
    @pytest.mark.parametrize("running", [3, 4])
    def test_more_than_three_in_progress_goes_to_the_manager(self, tmp_path, running):
        povs = [mine() for _ in range(running)] + [mine(status="Planned"), mine(status="Completed", result="Successful")]
        assert fired(evaluate(tmp_path, povs), "pov-load") == ({SA["id"]: MGR["id"]} if running > 3 else {})

    def test_fallbacks_manager_s_manager_then_the_user_s_region_channel(self, tmp_path):
        gone = dict(MGR, is_active="false")
        four = [mine() for _ in range(4)]
        assert fired(evaluate(tmp_path / "a", four, users=[SA, AE, gone, MGR2]), "pov-load") == {SA["id"]: MGR2["id"]}
        nobody = dict(MGR2, is_active="false")
        assert fired(evaluate(tmp_path / "b", four, users=[SA, AE, gone, nobody]), "pov-load") == {SA["id"]: EAST}
        alone = dict(SA, manager_id="")
        assert fired(evaluate(tmp_path / "c", four, users=[alone, AE, MGR, MGR2]), "pov-load") == {SA["id"]: EAST}

    def test_one_alert_per_user(self, tmp_path):
        other = user(id="0055e0000000SA2AAA", name="Sue", manager_id=MGR["id"], geo="EMEA")
        povs = [mine() for _ in range(5)] + [pov(owner_id=other["id"], opportunity_id=OPP["id"]) for _ in range(4)]
        got = fired(evaluate(tmp_path, povs, users=[SA, other, AE, MGR, MGR2]), "pov-load")
        assert got == {SA["id"]: MGR["id"], other["id"]: MGR["id"]}


class TestContract:
    def test_an_org_without_the_object_behaves_as_before(self, tmp_path):
        result = evaluate(tmp_path, None)
        assert result.quarantine.empty and "Proof_of_Value__c" in result.snapshot.absent
        assert not {a["workflow"] for a in result.alert_records()} & set(POV_RULES)

    def test_unknown_status_bad_ids_and_dates_are_quarantined_with_a_reason(self, tmp_path):
        rows = [mine(status="Paused"), mine(status=""), mine(id="a0P-bad"), mine(start_date="2026-02-30"),
                mine(owner_id="0055e0000000NOPAAA")]  # fmt: skip
        result = evaluate(tmp_path, rows)
        got = [(r["object"], r["reason"]) for r in result.quarantine_records()]
        assert sorted(got) == sorted([("Proof_of_Value__c", "unknown_status")] * 2 + [("Proof_of_Value__c", "malformed_id"),
                                      ("Proof_of_Value__c", "bad_date"), ("Proof_of_Value__c", "missing_reference")])  # fmt: skip
        assert [a for a in result.alert_records() if a["workflow"] in POV_RULES] == []

    def test_api_names_and_the_key_prefix_come_from_the_configuration(self, tmp_path):
        cfg_file = tmp_path / "cfg.yaml"
        cfg_file.write_text("fields:\n  Proof_of_Value__c:\n    status: POV_Stage__c\nproofs_of_value:\n  key_prefix: a1X\n")
        cfg = load_config(cfg_file)
        assert cfg.proofs_of_value.key_prefix == "a1X" and cfg.api_name("Proof_of_Value__c", "status") == "POV_Stage__c"
        path = write_snapshot(tmp_path / "snap", {"User": [SA, AE, MGR, MGR2], "Opportunity": [OPP],
                                                  "Proof_of_Value__c": [mine(success_criteria="")]})  # fmt: skip
        text = (path / "Proof_of_Value__c.csv").read_text().replace("Status__c", "POV_Stage__c")
        (path / "Proof_of_Value__c.csv").write_text(text)
        result = evaluate_snapshots(str(path), None, cfg, AS_OF)
        assert [a["workflow"] for a in result.alert_records() if a["workflow"] in POV_RULES] == ["pov-criteria"]


class TestQuarantinedOpportunityKeepsTheEpisode:
    def test_a_pov_whose_opportunity_row_is_quarantined_keeps_its_episodes_open(self, tmp_path):
        """Its opportunity unreadable for a run, a POV's pov-opportunity / pov-tech-eval episodes
        neither end as "gone" nor restart: the record did not go away."""
        from sa_hygiene.state.alerts import AlertState

        closed = open_opp(te_start="", stage="Closed Won", is_closed="true", is_won="true")
        no_start = open_opp(te_start="")
        on_closed, running = mine(opportunity_id=closed["id"]), mine(opportunity_id=no_start["id"])
        broken_closed, broken_open = {**closed, "close_date": "31/12/2026"}, {**no_start, "close_date": "31/12/2026"}
        days = [(AS_OF, [closed, no_start]), (AS_OF + timedelta(days=1), [broken_closed, broken_open]),
                (AS_OF + timedelta(days=2), [closed, no_start])]  # fmt: skip
        with AlertState(f"sqlite:///{tmp_path}/state.sqlite") as state:
            for i, (as_of, opps) in enumerate(days):
                path = write_snapshot(tmp_path / f"snap{i}", {"User": [SA, AE, MGR, MGR2], "Opportunity": [OPP, *opps],
                                                              "Proof_of_Value__c": [on_closed, running]})  # fmt: skip
                result = evaluate_snapshots(str(path), None, load_config(), as_of)
                if i == 1:
                    assert fired(result, "pov-opportunity") == {} and fired(result, "pov-tech-eval") == {}
                    assert {on_closed["id"][:15], running["id"][:15]} <= result.quarantined_keys()
                memory = state.record(as_of, result.alert_records(), result.scope, result.quarantined_keys())
                assert memory.resolved == [], f"day {i}: {memory.resolved}"
            episodes = {(e["workflow"], e["record_key"]): e for e in state.open_episodes()}
        assert episodes[("pov-opportunity", on_closed["id"][:15])]["first_seen"] == AS_OF
        assert episodes[("pov-tech-eval", running["id"][:15])]["first_seen"] == AS_OF
