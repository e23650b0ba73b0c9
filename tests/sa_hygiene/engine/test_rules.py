"""Every workflow of WORKFLOWS.md at the boundaries the page names, through the real evaluate path."""

from datetime import UTC, date, datetime, timedelta

import pytest
from builders import account, contact, contact_role, event, opportunity, task, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.engine.rules import evaluate_snapshots

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)
SA = user(id="0055e0000000SA1AAA", name="Sam Architect", email="sam@gitlab.com")
SA2 = user(id="0055e0000000SA2AAA", name="Sue Architect", email="sue@gitlab.com")
AE = user(id="0055e0000000AE1AAA", name="Alex Exec", role_type="AE", email="alex@gitlab.com")
MGR = user(id="0055e0000000MG1AAA", name="Mia Manager", role_type="Manager", email="mia@gitlab.com")
EAST = "#sa-activities-east-sa"


def day(offset: int) -> str:
    return (AS_OF + timedelta(days=offset)).isoformat()


def evaluate(tmp_path, tables, previous=None, as_of=AS_OF, since=None, until=None):
    users = tables.pop("User", None) or [SA, SA2, AE, MGR]
    cur = write_snapshot(tmp_path / "current", {"User": users, **tables})
    prev = None
    if previous is not None:
        prev_users = previous.pop("User", None) or users
        prev = write_snapshot(tmp_path / "previous", {"User": prev_users, **previous})
    return evaluate_snapshots(str(cur), str(prev) if prev else None, load_config(), as_of, since, until)


def fired(tmp_path, workflow, tables, **kw):
    """{record_id: (recipient, reasons)} of one workflow."""
    result = evaluate(tmp_path, tables, **kw)
    out = {}
    for a in result.alert_records():
        if a["workflow"] == workflow:
            r = a["recipient"]
            out[a["record_id"]] = (r.get("id") or r.get("name"), a["reasons"])
    return out


def opp(**kw):
    return opportunity(**{"owner_id": AE["id"], **kw})


# --------------------------------------------------------------------------- opportunity audits


class TestWf06MissingEndDate:
    @pytest.mark.parametrize(
        "stage, closed, won, fires",
        [
            ("4-Proposal", "false", "false", True),
            ("7-Closing", "false", "false", True),
            ("Closed Won", "true", "true", True),
            ("3-Technical Evaluation", "false", "false", False),
            # A tech evaluation ends whatever happens to the deal: lost opportunities too.
            ("8-Closed Lost", "true", "false", True),
            ("5-Negotiating", "true", "false", True),  # closed and not won: lost, whatever the stage
            ("9-Unqualified", "true", "false", True),
            ("10-Duplicate", "true", "false", True),
        ],
    )
    def test_rank_four_and_beyond_closed_won_or_lost(self, tmp_path, stage, closed, won, fires):
        o = opp(sa=SA["id"], stage=stage, is_closed=closed, is_won=won, te_start=day(-30))
        assert (o["id"] in fired(tmp_path, "wf-06", {"Opportunity": [o]})) is fires

    @pytest.mark.parametrize("start, end, fires", [(day(-30), "", True), (day(-30), "  ", True), ("", "", False),
                                                   (day(-30), day(-2), False)])  # fmt: skip
    def test_start_set_end_blank(self, tmp_path, start, end, fires):
        o = opp(sa=SA["id"], stage="4-Proposal", te_start=start, te_end=end)
        assert (o["id"] in fired(tmp_path, "wf-06", {"Opportunity": [o]})) is fires

    def test_dm_to_the_sa_or_the_owners_region_without_one(self, tmp_path):
        with_sa = opp(sa=SA["id"], stage="4-Proposal", te_start=day(-30))
        without = opp(stage="4-Proposal", te_start=day(-30))
        got = fired(tmp_path, "wf-06", {"Opportunity": [with_sa, without]})
        assert got == {with_sa["id"]: (SA["id"], []), without["id"]: (EAST, [])}


class TestWf07AndWf12Stage3ForAWeek:
    @pytest.mark.parametrize(
        "stage3, iacv, fires",
        [
            (day(-7), "20000", True),
            (day(-6), "20000", False),
            (day(-30), "20000", True),
            (day(-7), "19999.99", False),
            (day(-7), "", False),
            ("", "50000", False),
        ],
    )
    def test_boundaries(self, tmp_path, stage3, iacv, fires):
        with_sa = opp(sa=SA["id"], stage="3-Technical Evaluation", stage3_date=stage3, iacv=iacv)
        no_sa = opp(stage="3-Technical Evaluation", stage3_date=stage3, iacv=iacv)
        tables = {"Opportunity": [with_sa, no_sa]}
        assert fired(tmp_path / "7", "wf-07", dict(tables)) == ({with_sa["id"]: (SA["id"], [])} if fires else {})
        assert fired(tmp_path / "12", "wf-12", dict(tables)) == ({no_sa["id"]: (EAST, [])} if fires else {})

    def test_not_with_a_start_date_or_closed_or_another_stage(self, tmp_path):
        rows = [
            opp(sa=SA["id"], stage="3-Technical Evaluation", stage3_date=day(-10), iacv="30000", te_start=day(-3)),
            opp(sa=SA["id"], stage="3-Technical Evaluation", stage3_date=day(-10), iacv="30000", is_closed="true"),
            opp(sa=SA["id"], stage="4-Proposal", stage3_date=day(-10), iacv="30000"),
        ]
        assert fired(tmp_path, "wf-07", {"Opportunity": rows}) == {}


class TestWf10AndWf13WithoutPrimarySa:
    @pytest.mark.parametrize("stage, ps, sa, fires", [
        ("3-Technical Evaluation", "true", "", True), ("6-Awaiting Signature", "TRUE", "", True),
        ("2-Scoping", "true", "", False), ("3-Technical Evaluation", "false", "", False),
        ("3-Technical Evaluation", "true", SA["id"], False),
    ])  # fmt: skip
    def test_wf10_ps_opportunity(self, tmp_path, stage, ps, sa, fires):
        o = opp(stage=stage, is_ps=ps, sa=sa)
        assert fired(tmp_path, "wf-10", {"Opportunity": [o]}) == ({o["id"]: (EAST, [])} if fires else {})

    @pytest.mark.parametrize("iacv, fires", [("10000", True), ("9999.99", False), ("250000", True), ("", False)])
    def test_wf13_iacv(self, tmp_path, iacv, fires):
        o = opp(stage="4-Proposal", iacv=iacv)
        assert fired(tmp_path, "wf-13", {"Opportunity": [o]}) == ({o["id"]: (EAST, [])} if fires else {})

    def test_wf13_not_for_closed_won(self, tmp_path):
        o = opp(stage="Closed Won", is_closed="true", is_won="true", iacv="90000")
        assert fired(tmp_path, "wf-13", {"Opportunity": [o]}) == {}


class TestWf15MissingCloseData:
    @pytest.mark.parametrize("end, status, fires", [
        ("", "", True), (day(-1), "", True), ("", "Win", True), (day(-1), "Win", False), (day(-1), "  ", True),
    ])  # fmt: skip
    def test_end_or_status_blank(self, tmp_path, end, status, fires):
        o = opp(sa=SA["id"], stage="5-Negotiating", te_start=day(-20), te_end=end, te_status=status)
        assert (o["id"] in fired(tmp_path, "wf-15", {"Opportunity": [o]})) is fires

    @pytest.mark.parametrize("stage, closed, won", [("3-Technical Evaluation", "false", "false"), ("Closed Won", "true", "true")])
    def test_only_open_stages_four_to_seven(self, tmp_path, stage, closed, won):
        o = opp(sa=SA["id"], stage=stage, is_closed=closed, is_won=won, te_start=day(-20))
        assert fired(tmp_path, "wf-15", {"Opportunity": [o]}) == {}


class TestTeConsistency:
    @pytest.mark.parametrize(
        "fields, reasons",
        [
            ({"te_start": day(-10), "te_end": day(1), "te_status": "Win", "te_details": "ok"}, ["end_date_in_future"]),
            ({"te_start": day(-10), "te_end": day(0), "te_status": "Win", "te_details": "ok"}, []),
            ({"te_start": day(-10), "te_end": day(-1), "te_status": "Won", "te_details": "ok"}, ["invalid_close_status"]),
            ({"te_start": day(-10), "te_end": day(-11), "te_status": "Loss", "te_details": "ok"}, ["end_before_start"]),
            ({"te_start": day(-10), "te_end": day(-10), "te_status": "Loss", "te_details": "ok"}, []),
            ({"te_end": day(-1), "te_status": "Stalled", "te_details": "ok"}, ["end_without_start"]),
            ({"te_start": day(-10), "te_status": "Stalled", "te_details": "ok"}, ["status_without_end"]),
            ({"te_start": day(-10), "te_end": day(-1), "te_details": "ok"}, ["end_without_status"]),
            ({"te_start": day(-10), "te_end": day(-1), "te_status": "Win", "te_details": "   "}, ["close_details_missing"]),
            ({"te_start": day(-10), "te_status": " "}, []),
            (
                {"te_end": day(3), "te_status": "Maybe"},
                ["end_date_in_future", "invalid_close_status", "end_without_start", "close_details_missing"],
            ),
        ],
    )
    def test_each_reason_alone_and_together(self, tmp_path, fields, reasons):
        o = opp(sa=SA["id"], stage="4-Proposal", **fields)
        got = fired(tmp_path, "te-consistency", {"Opportunity": [o]})
        assert got == ({o["id"]: (SA["id"], reasons)} if reasons else {})

    @pytest.mark.parametrize("stage", ["8-Closed Lost", "9-Unqualified", "10-Duplicate"])
    def test_lost_opportunities_are_checked_too(self, tmp_path, stage):
        o = opp(sa=SA["id"], stage=stage, is_closed="true", te_end=day(5))
        got = fired(tmp_path, "te-consistency", {"Opportunity": [o]})
        assert got == {o["id"]: (SA["id"], ["end_date_in_future", "end_without_start", "end_without_status"])}

    def test_lost_opportunities_get_no_open_only_audit(self, tmp_path):
        o = opp(sa=SA["id"], stage="8-Closed Lost", is_closed="true", te_start=day(-30), iacv="90000")
        result = evaluate(tmp_path, {"Opportunity": [o]})
        assert {a["workflow"] for a in result.alert_records()} == {"wf-06"}

    def test_closed_won_is_checked(self, tmp_path):
        o = opp(sa=SA["id"], stage="Closed Won", is_closed="true", is_won="true", te_start=day(-9), te_end=day(-2))
        assert fired(tmp_path, "te-consistency", {"Opportunity": [o]}) == {o["id"]: (SA["id"], ["end_without_status"])}


class TestTeStalled:
    def sa_activity(self, what, activity_date, **kw):
        return task(**{"owner_id": SA["id"], "what_id": what, "activity_date": activity_date, "activity_types": "Demo", **kw})

    @pytest.mark.parametrize("start, fires", [(day(-14), True), (day(-13), False), (day(-60), True)])
    def test_start_at_least_14_days_ago(self, tmp_path, start, fires):
        o = opp(sa=SA["id"], stage="3-Technical Evaluation", te_start=start)
        assert (o["id"] in fired(tmp_path, "te-stalled", {"Opportunity": [o]})) is fires

    @pytest.mark.parametrize(
        "activity_date, extra, fires",
        [
            (day(0), {}, False),
            (day(-13), {}, False),
            (day(-14), {}, True),  # (as_of - 14, as_of]: the left edge is out
            (day(1), {}, True),  # tomorrow's activity does not count
            (day(-2), {"chorus_call_id": "ch-1"}, True),  # a Chorus call is not SA activity
            (day(-2), {"activity_types": ""}, True),  # neither is a task without an SA type
        ],
    )
    def test_recent_sa_activity_on_the_opportunity(self, tmp_path, activity_date, extra, fires):
        o = opp(sa=SA["id"], stage="4-Proposal", te_start=day(-40))
        t = self.sa_activity(o["id"], activity_date, **extra)
        assert (o["id"] in fired(tmp_path, "te-stalled", {"Opportunity": [o], "Task": [t]})) is fires

    def test_activity_logged_on_the_15_character_id_counts(self, tmp_path):
        o = opp(sa=SA["id"], stage="4-Proposal", te_start=day(-40))
        t = self.sa_activity(o["id"][:15], day(-1))
        assert fired(tmp_path, "te-stalled", {"Opportunity": [o], "Task": [t]}) == {}

    def test_not_once_ended(self, tmp_path):
        o = opp(sa=SA["id"], stage="4-Proposal", te_start=day(-40), te_end=day(-20))
        assert fired(tmp_path, "te-stalled", {"Opportunity": [o]}) == {}


# --------------------------------------------------------------------------- changes


class TestChanges:
    def test_no_previous_snapshot_means_no_change_alerts(self, tmp_path):
        o = opp(sa=SA["id"], stage="2-Scoping", iacv="90000", te_start=day(-1), te_end=day(-1), te_status="Win")
        result = evaluate(tmp_path, {"Opportunity": [o]})
        assert not {a["workflow"] for a in result.alert_records()} & {"wf-03", "wf-04", "wf-08", "wf-14"}

    @pytest.mark.parametrize("before, now, fires", [
        ("", day(-1), True), (day(-9), day(-1), True), (day(-9), "", True), (day(-9), day(-9), False), ("", " ", False),
    ])  # fmt: skip
    def test_wf03_start_date_set_changed_or_cleared(self, tmp_path, before, now, fires):
        cur = opp(stage="3-Technical Evaluation", te_start=now)
        prev = dict(cur, te_start=before)
        got = fired(tmp_path, "wf-03", {"Opportunity": [cur]}, previous={"Opportunity": [prev]})
        assert got == ({cur["id"]: ("#sa-tech-eval-start", [])} if fires else {})

    def test_wf03_and_wf04_count_lost_opportunities(self, tmp_path):
        cur = opp(stage="8-Closed Lost", is_closed="true", te_start=day(-20), te_end=day(-1), te_status="Loss")
        prev = dict(cur, stage="4-Proposal", is_closed="false", te_start="", te_end="", te_status="")
        assert set(fired(tmp_path / "s", "wf-03", {"Opportunity": [cur]}, previous={"Opportunity": [prev]})) == {cur["id"]}
        assert set(fired(tmp_path / "e", "wf-04", {"Opportunity": [cur]}, previous={"Opportunity": [prev]})) == {cur["id"]}

    def test_wf03_a_new_record_compares_against_blanks(self, tmp_path):
        new_with, new_without = opp(te_start=day(-1)), opp()
        got = fired(tmp_path, "wf-03", {"Opportunity": [new_with, new_without]}, previous={"Opportunity": []})
        assert set(got) == {new_with["id"]}

    @pytest.mark.parametrize("before, now, fires", [
        ({"te_end": ""}, {"te_end": day(-1)}, True), ({"te_status": "Stalled"}, {"te_status": "Win"}, True),
        ({"te_status": "Win"}, {"te_status": ""}, True), ({"te_end": day(-3), "te_status": "Win"}, {"te_end": day(-3), "te_status": "Win"}, False),
    ])  # fmt: skip
    def test_wf04_end_date_or_status(self, tmp_path, before, now, fires):
        cur = opp(stage="4-Proposal", te_start=day(-30), **now)
        prev = dict(cur, **before)
        got = fired(tmp_path, "wf-04", {"Opportunity": [cur]}, previous={"Opportunity": [prev]})
        assert got == ({cur["id"]: ("#sa-tech-eval-end", [])} if fires else {})

    @pytest.mark.parametrize("before, iacv, fires", [
        ("1-Discovery", "20000.01", True), ("1-Discovery", "20000", False), ("2-Scoping", "90000", False),
        ("3-Technical Evaluation", "90000", True), (None, "90000", True),
    ])  # fmt: skip
    def test_wf08_moved_to_stage_2_strictly_above_20000(self, tmp_path, before, iacv, fires):
        cur = opp(stage="2-Scoping", iacv=iacv)
        previous = {"Opportunity": [] if before is None else [dict(cur, stage=before)]}
        got = fired(tmp_path, "wf-08", {"Opportunity": [cur]}, previous=previous)
        assert got == ({cur["id"]: ("#stage-move-02", [])} if fires else {})

    @pytest.mark.parametrize("before, now, stage, fires", [
        (SA["id"], SA2["id"], "2-Scoping", True),  # reassigned
        (SA["id"], "", "3-Technical Evaluation", True),  # cleared
        ("", SA["id"], "2-Scoping", False),  # first assignment is not a change
        (SA["id"], SA["id"][:15], "2-Scoping", False),  # the same user, 15 vs 18 characters
        (SA["id"], SA2["id"], "4-Proposal", False),
        (SA["id"], SA2["id"], "1-Discovery", False),
    ])  # fmt: skip
    def test_wf14_primary_sa_changed_in_stage_2_or_3(self, tmp_path, before, now, stage, fires):
        cur = opp(stage=stage, sa=now)
        prev = dict(cur, sa=before)
        got = fired(tmp_path, "wf-14", {"Opportunity": [cur]}, previous={"Opportunity": [prev]})
        assert got == ({cur["id"]: ("#sa-primary-sa-change", [])} if fires else {})

    def test_wf14_not_on_a_new_record_or_a_closed_one(self, tmp_path):
        new = opp(stage="2-Scoping", sa=SA["id"])
        closed = opp(stage="3-Technical Evaluation", sa=SA2["id"], is_closed="true", is_won="true")
        previous = {"Opportunity": [dict(closed, sa=SA["id"], is_closed="false", is_won="false")]}
        assert fired(tmp_path, "wf-14", {"Opportunity": [new, closed]}, previous=previous) == {}


# --------------------------------------------------------------------------- activities


def sa_task(**kw):
    return task(**{"owner_id": SA["id"], "activity_types": "Demo", "created": "2026-11-23T12:00:00Z", **kw})


def good_activity(**kw):
    o = kw.pop("what_id", "0065e0000000OPPAAA")
    return sa_task(**{"what_id": o, "who_id": "0035e0000000CONAAA", "subject": "Demo", "description": "Demoed CI to the team.",
                      "sentiment": "Positive", "persona_levels": "Manager/Director", "created": "2026-11-20T12:00:00Z", **kw})  # fmt: skip


class TestWf02AndWf09:
    @pytest.mark.parametrize("created, fires", [
        ("2026-11-23T00:00:00Z", True), ("2026-11-23T23:59:59Z", True), ("2026-11-24T00:00:00Z", False),
        ("2026-11-22T23:59:59Z", False), ("2026-11-23T19:30:00-05:00", False),  # 00:30 UTC on the 24th
    ])  # fmt: skip
    def test_wf02_window_includes_since_excludes_until(self, tmp_path, created, fires):
        t = sa_task(created=created)
        assert fired(tmp_path, "wf-02", {"Task": [t]}) == ({t["id"]: (EAST, [])} if fires else {})

    def test_wf02_only_sa_activities(self, tmp_path):
        chorus = sa_task(chorus_call_id="ch-42")
        untyped = sa_task(activity_types=" ")
        assert fired(tmp_path, "wf-02", {"Task": [chorus, untyped]}) == {}

    def test_wf02_explicit_window(self, tmp_path):
        t = sa_task(created="2026-11-20T08:00:00Z")
        kw = {"since": datetime(2026, 11, 20, 8, tzinfo=UTC), "until": datetime(2026, 11, 20, 9, tzinfo=UTC)}
        assert set(fired(tmp_path, "wf-02", {"Task": [t]}, **kw)) == {t["id"]}

    def test_wf09_chorus_call_created_in_the_window(self, tmp_path):
        by_ae = task(owner_id=AE["id"], chorus_call_id="ch-1", created="2026-11-23T10:00:00Z")
        old = task(owner_id=AE["id"], chorus_call_id="ch-2", created="2026-11-21T10:00:00Z")
        plain = task(owner_id=AE["id"], created="2026-11-23T10:00:00Z")
        got = fired(tmp_path, "wf-09", {"Task": [by_ae, old, plain]})
        assert got == {by_ae["id"]: ("#sa-chorus-calls", [])}


class TestWf11TasksDueOrOverdue:
    def test_open_tasks_of_sas_due_in_the_last_30_days(self, tmp_path):
        due = task(owner_id=SA["id"], is_closed="false", activity_date=day(0))
        day30 = task(owner_id=SA["id"], is_closed="false", activity_date=day(-30))
        day31 = task(owner_id=SA["id"], is_closed="false", activity_date=day(-31))
        tomorrow = task(owner_id=SA["id"], is_closed="false", activity_date=day(1))
        done = task(owner_id=SA["id"], is_closed="true", activity_date=day(-3))
        ae_task = task(owner_id=AE["id"], is_closed="false", activity_date=day(0))
        got = fired(tmp_path, "wf-11", {"Task": [due, day30, day31, tomorrow, done, ae_task]})
        assert got == {due["id"]: (SA["id"], []), day30["id"]: (SA["id"], [])}

    def test_an_inactive_sa_is_no_sa(self, tmp_path):
        gone = user(id="0055e0000000OLDAAA", is_active="false", manager_id=MGR["id"])
        t = task(owner_id=gone["id"], is_closed="false", activity_date=day(0))
        assert fired(tmp_path, "wf-11", {"User": [gone, MGR], "Task": [t]}) == {}


class TestActFields:
    @pytest.mark.parametrize(
        "fields, reasons",
        [
            ({}, []),
            ({"what_id": ""}, ["related_to_not_opportunity"]),
            ({"what_id": "0015e0000000ACCAAA"}, ["related_to_not_opportunity"]),
            ({"activity_types": "Ride Along", "what_id": "0015e0000000ACCAAA"}, []),
            ({"activity_types": "Demo;Ride Along"}, ["ride_along_not_account"]),
            ({"who_id": ""}, ["contact_missing"]),
            ({"who_id": "00Q5e0000000LEDAAA"}, ["contact_is_lead"]),
            ({"subject": "  "}, ["subject_missing"]),
            ({"description": ""}, ["description_missing"]),
            ({"activity_types": "Demo;Webinar"}, ["activity_type_unknown"]),
            ({"sentiment": ""}, ["sentiment_invalid"]),
            ({"sentiment": "positive"}, ["sentiment_invalid"]),
            ({"persona_levels": "VP;Executive"}, ["persona_level_invalid"]),
            ({"persona_levels": ""}, []),
            ({"activity_types": "Customer Strategy Plan Review", "description": "Reviewed the plan."}, ["csp_link_missing"]),
            ({"activity_types": "Customer Strategy Plan Review", "description": "Notes: https://docs/x"}, []),
            ({"activity_types": "Other", "description": "x" * 79}, ["other_too_vague"]),
            ({"activity_types": "Other", "description": "x" * 80}, []),
            (
                {"activity_types": "Other;Customer Strategy Plan Review;Nap", "what_id": "", "who_id": "00Q5e0000000LEDAAA",
                 "subject": "", "description": "", "sentiment": "Great", "persona_levels": "CEO"},
                ["related_to_not_opportunity", "contact_is_lead", "subject_missing", "description_missing",
                 "activity_type_unknown", "sentiment_invalid", "persona_level_invalid", "csp_link_missing", "other_too_vague"],
            ),
        ],
    )  # fmt: skip
    def test_each_reason_alone_and_together(self, tmp_path, fields, reasons):
        t = good_activity(**fields)
        got = fired(tmp_path, "act-fields", {"Task": [t]})
        assert got == ({t["id"]: (SA["id"], reasons)} if reasons else {})

    @pytest.mark.parametrize("created, fires", [
        ("2026-11-17T00:00:00Z", True), ("2026-11-16T23:59:59Z", False), ("2026-11-23T23:59:59Z", True),
        ("2026-11-24T00:00:00Z", False),
    ])  # fmt: skip
    def test_review_period_is_the_last_seven_days(self, tmp_path, created, fires):
        t = good_activity(created=created, who_id="")
        assert (t["id"] in fired(tmp_path, "act-fields", {"Task": [t]})) is fires

    def test_chorus_calls_are_never_checked(self, tmp_path):
        t = good_activity(chorus_call_id="ch-9", who_id="")
        assert fired(tmp_path, "act-fields", {"Task": [t]}) == {}

    def test_an_untyped_call_of_an_sa_misses_its_activity_type(self, tmp_path):
        call = good_activity(activity_types="", task_subtype="Call")
        sloppy = good_activity(activity_types="", task_subtype="Call", what_id="", sentiment="")
        got = fired(tmp_path, "act-fields", {"Task": [call, sloppy]})
        assert got == {call["id"]: (SA["id"], ["activity_type_missing"]),
                       sloppy["id"]: (SA["id"], ["activity_type_missing", "related_to_not_opportunity", "sentiment_invalid"])}  # fmt: skip

    def test_untyped_calls_only_of_active_sas_and_never_chorus_or_other_subtypes(self, tmp_path):
        inactive = user(id="0055e0000000SA9AAA", email="old@gitlab.com", is_active="false", manager_id=MGR["id"])
        tasks = [
            good_activity(activity_types="", task_subtype="Email"),
            good_activity(activity_types="", task_subtype=""),
            good_activity(activity_types="", task_subtype="Call", chorus_call_id="ch-7"),
            good_activity(activity_types="", task_subtype="Call", owner_id=AE["id"]),
            good_activity(activity_types="", task_subtype="Call", owner_id=inactive["id"]),
            good_activity(activity_types="", task_subtype="Call", created="2026-11-24T00:00:00Z"),
        ]
        users = [SA, SA2, AE, MGR, inactive]
        assert fired(tmp_path, "act-fields", {"User": users, "Task": tasks}) == {}

    def test_a_typed_call_is_an_ordinary_activity(self, tmp_path):
        t = good_activity(task_subtype="Call")
        assert fired(tmp_path, "act-fields", {"Task": [t]}) == {}

    def test_an_untyped_call_is_no_new_activity_for_wf02(self, tmp_path):
        t = sa_task(activity_types="", task_subtype="Call")
        assert fired(tmp_path, "wf-02", {"Task": [t]}) == {}

    def test_a_snapshot_without_the_task_subtype_column_reads_it_as_blank(self, tmp_path):
        t = good_activity(activity_types="", task_subtype="Call", who_id="")
        cur = write_snapshot(tmp_path / "c", {"User": [SA], "Task": [t]}, drop={"Task": ["TaskSubtype"]})
        result = evaluate_snapshots(str(cur), None, load_config(), AS_OF)
        assert result.quarantine.empty and [a for a in result.alert_records() if a["workflow"] == "act-fields"] == []


# --------------------------------------------------------------------------- wf-01 meetings

ACME_OPP_SMALL = opportunity(id="0065e0000000A01AAA", owner_id=AE["id"], iacv="10000")
ACME_OPP_BIG = opportunity(id="0065e0000000A02AAA", owner_id=AE["id"], iacv="90000")
ACME_OPP_CLOSED = opportunity(id="0065e0000000A03AAA", owner_id=AE["id"], iacv="900000", is_closed="true", is_won="true", stage="Closed Won")
PAT = contact(id="0035e0000000PATAAA", email="pat@acme.com")


def meeting(*emails, owner=SA, **kw):
    return event(owner_id=owner["id"], attendee_emails=";".join([owner["email"], *emails]), **kw)


class TestWf01Meetings:
    def org(self, *events, tasks=(), roles=None, accounts=()):
        roles = roles if roles is not None else [
            contact_role(opportunity_id=o["id"], contact_id=PAT["id"]) for o in (ACME_OPP_SMALL, ACME_OPP_BIG, ACME_OPP_CLOSED)
        ]  # fmt: skip
        return {"Opportunity": [ACME_OPP_SMALL, ACME_OPP_BIG, ACME_OPP_CLOSED], "Contact": [PAT],
                "OpportunityContactRole": roles, "Account": list(accounts), "Event": list(events), "Task": list(tasks)}  # fmt: skip

    def suggestions(self, tmp_path, tables, **kw):
        result = evaluate(tmp_path, tables, **kw)
        return {a["record_id"]: (a["recipient"]["id"], a["suggested_what_id"]) for a in result.alert_records() if a["workflow"] == "wf-01"}

    def test_contact_role_on_open_opportunities_highest_iacv(self, tmp_path):
        e = meeting("PAT@Acme.COM")
        assert self.suggestions(tmp_path, self.org(e)) == {e["id"]: (SA["id"], ACME_OPP_BIG["id"])}

    def test_step_0_the_open_opportunity_the_meeting_was_booked_on(self, tmp_path):
        # The attendee's contact role names the bigger deal; the meeting itself names the small one.
        booked = meeting("pat@acme.com", what_id=ACME_OPP_SMALL["id"][:15])
        assert self.suggestions(tmp_path, self.org(booked)) == {booked["id"]: (SA["id"], ACME_OPP_SMALL["id"])}

    @pytest.mark.parametrize("what_id", [ACME_OPP_CLOSED["id"], "0065e0000000ZZZAAA", "0015e0000000WEBAAA", ""])
    def test_step_0_falls_back_when_the_own_record_is_not_an_open_opportunity(self, tmp_path, what_id):
        # Closed, missing from the snapshot, an account: the attendees decide (step 1).
        e = meeting("pat@acme.com", what_id=what_id)
        assert self.suggestions(tmp_path, self.org(e)) == {e["id"]: (SA["id"], ACME_OPP_BIG["id"])}

    def test_step_0_logged_means_logged_on_the_booked_opportunity(self, tmp_path):
        e = meeting("pat@acme.com", what_id=ACME_OPP_SMALL["id"])
        for what, fires in ((ACME_OPP_BIG["id"], True), (ACME_OPP_SMALL["id"], False)):
            tables = self.org(e, tasks=[sa_task(what_id=what, activity_date="2026-11-23")])
            assert bool(self.suggestions(tmp_path / what, tables)) is fires

    def test_equal_iacv_goes_to_the_lowest_id(self, tmp_path):
        twin = opportunity(id="0065e0000000A00AAA", owner_id=AE["id"], iacv="90000")
        tables = self.org(meeting("pat@acme.com"))
        tables["Opportunity"].append(twin)
        tables["OpportunityContactRole"].append(contact_role(opportunity_id=twin["id"], contact_id=PAT["id"]))
        assert list(self.suggestions(tmp_path, tables).values()) == [(SA["id"], twin["id"])]

    @pytest.mark.parametrize("website, attendee, expected", [
        ("https://www.Acme.com/about?x=1", "someone@acme.com", True),
        ("acme.com", "someone@ACME.com", True),
        ("http://www.acme.com:8080/", "someone@acme.com", True),
        ("pepsi.com", "someone@epsi.com", False),
        ("www.epsi.com", "someone@pepsi.com", False),
        ("acme.com", "someone@eu.acme.com", False),
    ])  # fmt: skip
    def test_else_the_account_whose_website_domain_is_exactly_the_attendees(self, tmp_path, website, attendee, expected):
        acc = account(id="0015e0000000WEBAAA", website=website)
        e = meeting(attendee)
        got = self.suggestions(tmp_path, self.org(e, roles=[], accounts=[acc]))
        assert got == {e["id"]: (SA["id"], acc["id"] if expected else None)}

    def test_company_domains_are_internal(self, tmp_path):
        only_colleagues = meeting("boss@gitlab.com", "BOSS2@GitLab.com")
        assert self.suggestions(tmp_path, self.org(only_colleagues, roles=[])) == {}

    def test_a_customer_on_a_generic_domain_is_external_but_never_matches_an_account(self, tmp_path):
        acc = account(id="0015e0000000GMLAAA", website="gmail.com")
        customer = meeting("friend@gmail.com", "boss@gitlab.com")
        assert self.suggestions(tmp_path, self.org(customer, roles=[], accounts=[acc])) == {customer["id"]: (SA["id"], None)}

    def test_a_generic_address_known_as_a_contact_suggests_its_opportunity(self, tmp_path):
        gpat = contact(id="0035e0000000GPTAAA", email="Pat.Personal@gmail.com")
        tables = self.org(meeting("pat.personal@gmail.com"), roles=[contact_role(opportunity_id=ACME_OPP_SMALL["id"], contact_id=gpat["id"])])
        tables["Contact"].append(gpat)
        assert list(self.suggestions(tmp_path, tables).values()) == [(SA["id"], ACME_OPP_SMALL["id"])]

    def test_an_account_by_domain_suggests_its_open_opportunity_with_the_highest_iacv(self, tmp_path):
        acc = account(id="0015e0000000WEBAAA", website="acme.com")
        other = account(id="0015e0000000OTHAAA", website="other.io")
        mine = [
            opportunity(id="0065e0000000B01AAA", owner_id=AE["id"], account_id=acc["id"][:15], iacv="30000"),
            opportunity(id="0065e0000000B02AAA", owner_id=AE["id"], account_id=acc["id"], iacv="70000"),
            opportunity(id="0065e0000000B00AAA", owner_id=AE["id"], account_id=acc["id"], iacv="70000"),  # tie: lowest Id
            opportunity(id="0065e0000000B03AAA", owner_id=AE["id"], account_id=acc["id"], iacv="900000",
                        stage="Closed Won", is_closed="true", is_won="true"),
            opportunity(id="0065e0000000B04AAA", owner_id=AE["id"], account_id=acc["id"], iacv="800000",
                        stage="8-Closed Lost", is_closed="true"),
            opportunity(id="0065e0000000B05AAA", owner_id=AE["id"], account_id=other["id"], iacv="999999"),
        ]  # fmt: skip
        e = meeting("someone@acme.com")
        tables = self.org(e, roles=[], accounts=[acc, other])
        tables["Opportunity"] += mine
        assert self.suggestions(tmp_path, tables) == {e["id"]: (SA["id"], "0065e0000000B00AAA")}

    def test_an_account_without_open_opportunity_is_suggested_itself(self, tmp_path):
        acc = account(id="0015e0000000WEBAAA", website="acme.com")
        won = opportunity(id="0065e0000000B03AAA", owner_id=AE["id"], account_id=acc["id"], stage="Closed Won",
                          is_closed="true", is_won="true")  # fmt: skip
        e = meeting("someone@acme.com")
        tables = self.org(e, roles=[], accounts=[acc])
        tables["Opportunity"].append(won)
        assert self.suggestions(tmp_path, tables) == {e["id"]: (SA["id"], acc["id"])}

    def test_logged_on_the_account_is_not_logged_on_the_suggested_opportunity(self, tmp_path):
        acc = account(id="0015e0000000WEBAAA", website="acme.com")
        o = opportunity(id="0065e0000000B01AAA", owner_id=AE["id"], account_id=acc["id"], iacv="30000")
        e = meeting("someone@acme.com")
        for what, fires in ((acc["id"], True), (o["id"], False)):
            tables = self.org(e, roles=[], accounts=[acc], tasks=[sa_task(what_id=what, activity_date="2026-11-23")])
            tables["Opportunity"].append(o)
            assert bool(self.suggestions(tmp_path / what, tables)) is fires

    def test_logged_on_the_suggested_record_on_the_local_start_date(self, tmp_path):
        # 03:00 UTC on the 23rd is the evening of the 22nd in Los Angeles: that is the date to log on.
        west = user(id="0055e0000000WSTAAA", email="wes@gitlab.com", timezone="America/Los_Angeles", region="West")
        e = meeting("pat@acme.com", owner=west, start="2026-11-23T03:00:00Z", end="2026-11-23T04:00:00Z")
        logged_local = sa_task(owner_id=west["id"], what_id=ACME_OPP_BIG["id"], activity_date="2026-11-22")
        logged_utc = sa_task(owner_id=west["id"], what_id=ACME_OPP_BIG["id"], activity_date="2026-11-23")
        other_record = sa_task(owner_id=west["id"], what_id=ACME_OPP_SMALL["id"], activity_date="2026-11-22")
        for t, fires in ((logged_local, False), (logged_utc, True), (other_record, True)):
            tables = self.org(e, tasks=[t])
            tables["User"] = [west, AE]
            assert bool(self.suggestions(tmp_path / t["id"], tables)) is fires, t

    def test_without_suggestion_any_record_counts_as_logged(self, tmp_path):
        e = meeting("someone@unknown-corp.io")
        t = sa_task(what_id="0015e0000000ANYAAA", activity_date="2026-11-23")
        assert self.suggestions(tmp_path / "a", self.org(e, tasks=[t])) == {}
        assert self.suggestions(tmp_path / "b", self.org(e)) == {e["id"]: (SA["id"], None)}

    @pytest.mark.parametrize("end, fires", [("2026-11-23T00:00:00Z", True), ("2026-11-24T00:00:00Z", False), ("2026-11-22T23:45:00Z", False)])
    def test_window_edges(self, tmp_path, end, fires):
        e = meeting("pat@acme.com", start="2026-11-22T23:00:00Z", end=end)
        assert bool(self.suggestions(tmp_path, self.org(e))) is fires

    def test_only_meetings_of_sas(self, tmp_path):
        e = meeting("pat@acme.com", owner=AE)
        assert self.suggestions(tmp_path, self.org(e)) == {}


# --------------------------------------------------------------------------- recipients


class TestRouting:
    @pytest.mark.parametrize("fields, channel", [
        ({"segment": "Channel", "geo": "EMEA"}, "#sa-activities-channels-and-alliances-sa"),
        ({"segment": "PubSec", "geo": "AMER", "region": "East"}, "#sa-activities-pubsec-sa"),
        ({"segment": "Mid-Market", "geo": "EMEA"}, "#sa-activities-commercial-sa"),
        ({"segment": "SMB", "geo": "APJ"}, "#sa-activities-commercial-sa"),
        ({"segment": "Large", "geo": "EMEA"}, "#sa-activities-emea-sa"),
        ({"segment": "Large", "geo": "APJ"}, "#sa-activities-apj-cs"),
        ({"segment": "Large", "geo": "AMER", "region": "East"}, "#sa-activities-east-sa"),
        ({"segment": "Large", "geo": "AMER", "region": "West"}, "#sa-activities-west-sa"),
        ({"segment": "Large", "geo": "AMER", "region": "Central"}, "#sa-hygiene-ops"),
        ({"segment": "", "geo": "", "region": ""}, "#sa-hygiene-ops"),
    ])  # fmt: skip
    def test_first_matching_rule_wins(self, tmp_path, fields, channel):
        owner = user(id="0055e0000000OWNAAA", role_type="AE", **fields)
        o = opportunity(owner_id=owner["id"], stage="4-Proposal", iacv="50000")
        result = evaluate(tmp_path, {"User": [owner], "Opportunity": [o]})
        (alert,) = [a for a in result.alert_records() if a["workflow"] == "wf-13"]
        assert alert["recipient"] == {"type": "channel", "name": channel}
        assert bool(result.alerts["unrouted"].iloc[0]) is (channel == "#sa-hygiene-ops")

    def test_the_region_of_an_opportunity_is_its_sas(self, tmp_path):
        emea_sa = user(id="0055e0000000EMEAAA", geo="EMEA")
        o = opp(sa=emea_sa["id"], stage="3-Technical Evaluation", is_ps="true")
        new = sa_task(owner_id=emea_sa["id"])
        result = evaluate(tmp_path, {"User": [emea_sa, AE], "Opportunity": [o], "Task": [new]})
        assert {(a["workflow"], a["recipient"]["name"]) for a in result.alert_records() if a["workflow"] == "wf-02"} == {
            ("wf-02", "#sa-activities-emea-sa")}  # fmt: skip

    def test_dm_fallbacks_inactive_user_then_active_manager_then_owners_region(self, tmp_path):
        west_owner = user(id="0055e0000000WOWAAA", role_type="AE", region="West")
        active_mgr = user(id="0055e0000000AMGAAA", role_type="Manager")
        gone_mgr = user(id="0055e0000000GMGAAA", role_type="Manager", is_active="false")
        left_a = user(id="0055e0000000LFAAAA", is_active="false", manager_id=active_mgr["id"], geo="EMEA")
        left_b = user(id="0055e0000000LFBAAA", is_active="false", manager_id=gone_mgr["id"], geo="EMEA")
        left_c = user(id="0055e0000000LFCAAA", is_active="false", manager_id="", geo="EMEA")
        opps = [opp(owner_id=west_owner["id"], sa=u["id"], stage="4-Proposal", te_start=day(-3)) for u in (left_a, left_b, left_c)]
        users = [west_owner, active_mgr, gone_mgr, left_a, left_b, left_c]
        got = fired(tmp_path, "wf-06", {"User": users, "Opportunity": opps})
        assert got == {
            opps[0]["id"]: (active_mgr["id"], []),
            opps[1]["id"]: ("#sa-activities-west-sa", []),
            opps[2]["id"]: ("#sa-activities-west-sa", []),
        }

    def test_dm_goes_to_the_user_id_as_the_user_table_spells_it(self, tmp_path):
        o = opp(sa=SA["id"][:15], stage="4-Proposal", te_start=day(-3))
        assert fired(tmp_path, "wf-06", {"Opportunity": [o]}) == {o["id"]: (SA["id"], [])}


class TestBadInput:
    def test_quarantined_rows_produce_no_alert_and_do_not_stop_the_others(self, tmp_path):
        good = opp(sa=SA["id"], stage="4-Proposal", te_start=day(-3))
        bad = [
            opp(sa=SA["id"], stage="Negotiation", te_start=day(-3)),
            opp(sa=SA["id"], stage="4-Proposal", te_start="2026-13-01"),
            opp(sa=SA["id"], stage="4-Proposal", te_start=day(-3), iacv="-10"),
            opp(sa="0055e0000000GHOAAA", stage="4-Proposal", te_start=day(-3)),
            dict(good, stage="1-Discovery", system_modstamp="2020-01-01T00:00:00Z"),
        ]
        result = evaluate(tmp_path, {"Opportunity": [good, *bad]})
        assert {a["record_id"] for a in result.alert_records() if a["workflow"] == "wf-06"} == {good["id"]}
        q = {(r["record_id"], r["reason"]) for r in result.quarantine_records()}
        assert q == {(bad[0]["id"], "unknown_stage"), (bad[1]["id"], "bad_date"), (bad[2]["id"], "negative_iacv"),
                     (bad[3]["id"], "missing_reference"), (good["id"], "duplicate_id")}  # fmt: skip

    def test_one_line_per_workflow_record_and_recipient(self, tmp_path):
        o = opp(sa=SA["id"], stage="5-Negotiating", te_start=day(-30))
        result = evaluate(tmp_path, {"Opportunity": [o]})
        keys = [(a["workflow"], a["record_id"], a["recipient"]["id"]) for a in result.alert_records()]
        assert len(keys) == len(set(keys)) and {k[0] for k in keys} == {"wf-06", "wf-15", "te-stalled"}


# --------------------------------------------------------------------------- errors Great Expectations reports


class TestExpectationsGxCannotCompute:
    def frames(self):
        import pandas as pd

        frame = pd.DataFrame({"id": ["00T5e0000000T01AAA"], "owner_id": [SA["id"]], "description": ["no link"]})
        return {"activities": frame.astype({"description": "str"})}

    def workflow(self, regex):
        from sa_hygiene.contract.config import Workflow

        # Built directly, past the load-time checks, as a GX rule the configuration cannot foresee would be.
        return Workflow.model_validate({
            "title": "t", "object": "Task", "frame": "activities", "slot": "sa_digest", "recipient": {"dm": "owner"},
            "expect": [{"expectation": "match_regex", "column": "description", "regex": regex}],
        })  # fmt: skip

    def run(self, regex):
        from sa_hygiene.contract.config import load_config
        from sa_hygiene.engine.gx import Validator
        from sa_hygiene.engine.routing import Directory
        from sa_hygiene.engine.rules import run_workflows
        from sa_hygiene.source.snapshot import read_snapshot

        cfg = load_config()
        users = read_snapshot(write_snapshot(self.tmp / "s", {"User": [SA]}), cfg, objects=("User",))["User"]
        return run_workflows(self.frames(), Directory(users, cfg), {"wf-99": self.workflow(regex)}, {}, Validator())

    def test_a_metric_gx_could_not_compute_stops_the_run_naming_workflow_and_expectation(self, tmp_path):
        from sa_hygiene.engine.gx import RuleError

        self.tmp = tmp_path
        assert list(self.run("https?://")["record_id"]) == ["00T5e0000000T01AAA"]
        with pytest.raises(RuleError, match=r"^wf-99: expect_column_values_to_match_regex: .*missing \)"):
            self.run("https?://(")

    @pytest.mark.parametrize(
        "info, message",
        [
            (None, None),
            ({}, None),
            ({"raised_exception": False, "exception_message": None}, None),
            ({"raised_exception": True, "exception_message": "top level"}, "top level"),
            ({"MetricConfigurationID(metric_name='x')": {"raised_exception": True, "exception_message": "by metric"}},
             "by metric"),
            ({"MetricConfigurationID(metric_name='x')": {"raised_exception": False}}, None),
        ],
    )  # fmt: skip
    def test_both_shapes_of_exception_info(self, info, message):
        from sa_hygiene.engine.gx import raised

        assert raised(info) == message


# --------------------------------------------------------------------------- the declared frames


def frame_kind(series) -> str:
    """The schema.FrameKind a prepared column really has."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype).startswith("list"):
        return "multi"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "date"
    values = series.dropna()
    assert all(isinstance(v, str) for v in values), f"{series.name}: {dtype} holds {set(map(type, values))}"
    return "text"


def test_the_declared_frames_are_the_frames_the_engine_builds(tmp_path):
    """Configuration is checked against schema.FRAMES: it must name exactly the columns, and kinds, of the real frames."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.contract.schema import FRAMES
    from sa_hygiene.demo.org import write_demo_org
    from sa_hygiene.engine.prepare import RunWindow, prepare_frames
    from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot

    write_demo_org(tmp_path, AS_OF, scale=0.05, seed=3)
    cfg = load_config()
    current = read_snapshot(tmp_path / "current", cfg)
    previous = read_snapshot(tmp_path / "previous", cfg, objects=PREVIOUS_OBJECTS)
    frames, _ = prepare_frames(current, previous, cfg, RunWindow.of(AS_OF))
    assert set(frames) == set(FRAMES)
    for name, frame in frames.items():
        assert len(frame) > 0, name
        assert {c: frame_kind(frame[c]) for c in frame.columns} == FRAMES[name], name


def test_a_frame_that_drifts_from_the_declaration_stops_the_engine(monkeypatch):
    import pandas as pd

    from sa_hygiene.engine import prepare

    monkeypatch.setitem(prepare.FRAMES, "tasks", {**prepare.FRAMES["tasks"], "owner_name": "text"})
    with pytest.raises(AssertionError, match="schema.FRAMES declares"):
        prepare._check_declared("tasks", pd.DataFrame(columns=list(prepare.FRAMES["tasks"])[:-1]))
