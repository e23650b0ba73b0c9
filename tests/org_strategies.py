"""Hypothesis strategies for random orgs: users, opportunities, tasks and meetings by logical
field name (``builders``), dated around ``AS_OF`` so that every workflow's window comes up,
and a previous snapshot (``changed``) for the change workflows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from builders import account, contact, contact_role, event, opportunity, pov, task, user
from hypothesis import strategies as st

AS_OF = date(2026, 11, 24)
SINCE = datetime(2026, 11, 23, tzinfo=UTC)
USER_IDS = [f"0055e00000000U{i}AAA" for i in range(5)]
OPP_IDS = [f"0065e0000000O{i:02d}AAA" for i in range(12)]
TASK_IDS = [f"00T5e0000000T{i:02d}AAA" for i in range(12)]
EVENT_IDS = [f"00U5e0000000E{i:02d}AAA" for i in range(5)]
ACC_IDS = ["0015e0000000AC1AAA", "0015e0000000AC2AAA", "0015e0000000AC3AAA"]
CON_IDS = ["0035e0000000CO1AAA", "0035e0000000CO2AAA"]
LEAD = "00Q5e0000000LD1AAA"
STAGES = ["0-Pending Acceptance", "1-Discovery", "2-Scoping", "3-Technical Evaluation", "4-Proposal", "5-Negotiating",
          "6-Awaiting Signature", "7-Closing", "Closed Won", "8-Closed Lost", "9-Unqualified", "10-Duplicate"]  # fmt: skip
OFFSETS = [None, -40, -15, -14, -13, -8, -7, -6, -1, 0, 1, 5]
# Blank more often than not, so that "set but blank" combinations the rules look for come up.
DATES = [None] * 6 + OFFSETS
ZONES = ["America/New_York", "America/Los_Angeles", "Asia/Kolkata", "Australia/Sydney", "Europe/London"]


def day(offset):
    return "" if offset is None else (AS_OF + timedelta(days=offset)).isoformat()


def instant(hours):
    return (SINCE + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


maybe_short = st.sampled_from([lambda i: i, lambda i: i[:15]])


@st.composite
def users(draw):
    out = []
    for i, uid in enumerate(USER_IDS):
        out.append(user(
            id=uid, email=f"u{i}@gitlab.com", is_active=draw(st.sampled_from(["true", "true", "false"])),
            role_type=draw(st.sampled_from(["SA", "SA", "AE", "Manager"])),
            segment=draw(st.sampled_from(["Large", "Large", "Channel", "SMB", "PubSec", ""])),
            geo=draw(st.sampled_from(["AMER", "EMEA", "APJ", "LATAM", ""])),
            region=draw(st.sampled_from(["East", "West", ""])),
            manager_id=draw(st.sampled_from(["", *USER_IDS])), timezone=draw(st.sampled_from(ZONES)),
        ))  # fmt: skip
    return out


@st.composite
def opps(draw):
    out = []
    for oid in draw(st.lists(st.sampled_from(OPP_IDS), unique=True, max_size=12)):
        stage = draw(st.sampled_from(STAGES + STAGES[2:8] * 2))
        closed, won = draw(st.sampled_from([("false", "false")] * 4 + [("true", "true"), ("true", "false")]))
        if stage == "Closed Won":
            closed, won = "true", "true"
        out.append(opportunity(
            id=oid, owner_id=draw(st.sampled_from(USER_IDS)), stage=stage, is_closed=closed, is_won=won,
            iacv=draw(st.sampled_from(["", "9999.99", "10000", "19999.99", "20000", "20000.01", "50000", "50000"])),
            sa=draw(maybe_short)(draw(st.sampled_from(["", "", *USER_IDS]))),
            stage3_date=day(draw(st.sampled_from(OFFSETS))), te_start=day(draw(st.sampled_from(DATES))),
            te_end=day(draw(st.sampled_from(DATES))), te_status=draw(st.sampled_from(["", "Win", "Loss", "Stalled", "Won", " "])),
            te_details=draw(st.sampled_from(["", "ok"])), is_ps=draw(st.sampled_from(["true", "false"])),
            account_id=draw(maybe_short)(draw(st.sampled_from(["", *ACC_IDS]))),
        ))  # fmt: skip
    # Stage-3 opportunities near the wf-07/wf-12 boundaries (a five-way conjunction is rare by chance).
    for oid in draw(st.lists(st.sampled_from([f"0065e0000000S{i:02d}AAA" for i in range(4)]), unique=True, max_size=3)):
        out.append(opportunity(
            id=oid, owner_id=draw(st.sampled_from(USER_IDS)), stage="3-Technical Evaluation",
            iacv=draw(st.sampled_from(["19999.99", "20000", "50000"])), sa=draw(st.sampled_from(["", *USER_IDS])),
            stage3_date=day(draw(st.sampled_from([-30, -8, -7, -6, None]))), te_start=day(draw(st.sampled_from([None, None, -2]))),
        ))  # fmt: skip
    return out


@st.composite
def changed(draw, current):
    out = []
    for o in current:
        if draw(st.integers(0, 4)) == 0:
            continue  # new since yesterday
        o = dict(o)
        for field, choices in [("te_start", [day(-20), ""]), ("te_end", [day(-3), ""]), ("te_status", ["Win", ""]),
                               ("stage", ["1-Discovery", "2-Scoping", "3-Technical Evaluation"]), ("sa", ["", *USER_IDS])]:  # fmt: skip
            if draw(st.integers(0, 2)) == 0:
                o[field] = draw(st.sampled_from(choices))
                if field == "stage":
                    o["is_closed"], o["is_won"] = "false", "false"
        out.append(o)
    return out


@st.composite
def tasks(draw):
    out = []
    for tid in draw(st.lists(st.sampled_from(TASK_IDS), unique=True, max_size=12)):
        out.append(task(
            id=tid, owner_id=draw(st.sampled_from(USER_IDS)),
            what_id=draw(maybe_short)(draw(st.sampled_from(["", *OPP_IDS[:6], ACC_IDS[0], LEAD]))),
            who_id=draw(st.sampled_from(["", CON_IDS[0], LEAD])),
            activity_types=draw(st.sampled_from(["", "Demo", "Ride Along", "Other", "Customer Strategy Plan Review",
                                                 "Demo;Webinar", "Other;Ride Along", "Demo; Guided Trial"])),
            created=instant(draw(st.sampled_from([-200, -169, -168, -24.5, -0.5, 0, 1, 12, 23.9, 24, 30]))),
            activity_date=day(draw(st.sampled_from(OFFSETS))), is_closed=draw(st.sampled_from(["true", "false"])),
            chorus_call_id=draw(st.sampled_from(["", "", "ch-1"])), sentiment=draw(st.sampled_from(["", "Positive", "Great"])),
            persona_levels=draw(st.sampled_from(["", "Executive", "VP;Executive"])),
            description=draw(st.sampled_from(["", "short", "x" * 85, "notes https://docs/x"])),
            subject=draw(st.sampled_from(["", "Demo"])), task_subtype=draw(st.sampled_from(["", "", "Call", "Email"])),
        ))  # fmt: skip
    return out


@st.composite
def events(draw):
    pool = ["pat@acme.com", "PAT@ACME.COM", "x@gmail.com", "y@acme.com", "z@epsi.com", "boss@gitlab.com", "q@other.io",
            "w@pepsi.com", "pat.home@gmail.com"]
    out = []
    for eid in draw(st.lists(st.sampled_from(EVENT_IDS), unique=True, max_size=5)):
        owner = draw(st.sampled_from(range(5)))
        end = draw(st.sampled_from([-1, 0, 5, 23.75, 24, 30]))
        out.append(event(
            id=eid, owner_id=USER_IDS[owner], start=instant(end - 1), end=instant(end),
            attendee_emails=";".join([f"u{owner}@gitlab.com", *draw(st.lists(st.sampled_from(pool), max_size=3))]),
            # Booked on an opportunity (open or not, by 15 or 18 characters), an account, or nothing: step 0.
            what_id=draw(st.sampled_from(["", "", ACC_IDS[0], *OPP_IDS]).flatmap(lambda i: maybe_short.map(lambda f: f(i)))),
        ))  # fmt: skip
    return out


POV_IDS = [f"a0P5e0000000P{i:02d}AAA" for i in range(8)]
POV_STATUSES = ["Planned", "In Progress", "In Progress", "In Progress", "Completed", "Cancelled"]


@st.composite
def povs(draw, opportunities):
    """Proofs of Value around the POV rules' boundaries: day 55/56, 3 vs 4 running, blank vs set
    fields, an opportunity open, closed, blank, with and without a start date. None: an org
    without the object (no file at all)."""
    if draw(st.integers(0, 4)) == 0:
        return None
    out = []
    opp_ids = [o["id"] for o in opportunities]
    for pid in draw(st.lists(st.sampled_from(POV_IDS), unique=True, max_size=8)):
        out.append(pov(
            id=pid, owner_id=draw(st.sampled_from(USER_IDS[:3])), status=draw(st.sampled_from(POV_STATUSES)),
            opportunity_id=draw(maybe_short)(draw(st.sampled_from(["", *opp_ids]))) if opp_ids else "",
            start_date=day(draw(st.sampled_from([None, -80, -56, -55, -10, 0, 3]))),
            end_date=day(draw(st.sampled_from([None, None, -1, 5]))),
            result=draw(st.sampled_from(["", " ", "Successful", "Unsuccessful"])),
            success_criteria=draw(st.sampled_from(["", " ", "Under 10 minutes"])),
        ))  # fmt: skip
    return out


@st.composite
def orgs(draw):
    current = {
        "User": draw(users()),
        "Opportunity": draw(opps()),
        "Task": draw(tasks()),
        "Event": draw(events()),
        "Account": [account(id=ACC_IDS[0], website="https://www.acme.com/x"), account(id=ACC_IDS[1], website="pepsi.com"),
                    account(id=ACC_IDS[2], website="gmail.com")],
        "Contact": [contact(id=CON_IDS[0], email="Pat@Acme.com"), contact(id=CON_IDS[1], email="pat.home@gmail.com")],
    }
    current["OpportunityContactRole"] = [
        contact_role(opportunity_id=o["id"], contact_id=draw(st.sampled_from(CON_IDS)))
        for o in current["Opportunity"] if draw(st.booleans())
    ]  # fmt: skip
    proofs = draw(povs(current["Opportunity"]))
    if proofs is not None:
        current["Proof_of_Value__c"] = proofs
    previous = None
    if draw(st.booleans()):
        previous = {"User": current["User"], "Opportunity": draw(changed(current["Opportunity"]))}
    return current, previous
