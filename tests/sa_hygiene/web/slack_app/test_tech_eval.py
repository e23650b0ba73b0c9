"""The tech evaluation form and the rule engine agree: on 1,000 generated combinations of an
opportunity's stage and the five fields the form edits, the form refuses exactly the records the
engine (``evaluate``, through Great Expectations) then flags in a workflow the form fixes, for the
same workflows and reasons. And the form's smaller parts: what it writes, the Chatter request."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from builders import opportunity, user, write_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sa_hygiene.contract.config import load_config
from sa_hygiene.engine.rules import evaluate
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.web.slack_app import tech_eval as te

pytestmark = pytest.mark.integration

AS_OF = date(2026, 11, 24)
SA = user(name="Sam Architect", email="sam@gitlab.com")
OWNER = user(name="Olga Owner", email="olga@gitlab.com", role_type="AE")
STAGES = ["1-Discovery", "3-Technical Evaluation", "4-Proposal", "5-Negotiating", "7-Closing", "Closed Won",
          "8-Closed Lost", "9-Unqualified"]  # fmt: skip
EXAMPLES = 1000


def day(offset: int | None) -> str:
    return "" if offset is None else (AS_OF + timedelta(days=offset)).isoformat()


# What a user may type: dates around today (the future included), statuses in and out of the
# handbook's three, blank and white-space text.
combos = st.fixed_dictionaries({
    "stage": st.sampled_from(STAGES),
    "iacv": st.sampled_from(["5000", "25000"]),
    "stage3": st.sampled_from([None, -3, -10, -40]),
    "sa": st.sampled_from([SA["id"], ""]),
    "te_start": st.one_of(st.none(), st.integers(-60, 5)),
    "te_end": st.one_of(st.none(), st.integers(-60, 10)),
    "te_status": st.sampled_from(["", " ", "Win", "Loss", "Stalled", "Won", "stalled"]),
    "te_details": st.sampled_from(["", "  ", "Passed the security review."]),
})  # fmt: skip


def record(n: int, c: dict, typed: bool) -> dict:
    """Opportunity ``n``: before the form (``typed`` False: the five fields blank) or as the form leaves it."""
    closed = c["stage"] in ("Closed Won", "8-Closed Lost", "9-Unqualified")
    values = {"sa": c["sa"], "te_start": day(c["te_start"]), "te_end": day(c["te_end"]), "te_status": c["te_status"],
              "te_details": c["te_details"]} if typed else {"sa": SA["id"]}  # fmt: skip
    return opportunity(id=f"0065e{n:010d}AAA", name=f"Opp {n}", owner_id=OWNER["id"], stage=c["stage"], iacv=c["iacv"],
                       stage3_date=day(c["stage3"]), is_closed=str(closed).lower(),
                       is_won=str(c["stage"] == "Closed Won").lower(), **values)  # fmt: skip


def form_of(c: dict) -> dict:
    """The submission as ``tech_eval.form_values`` reads it: stripped text, None when blank."""
    raw = {"sa": c["sa"], "te_start": day(c["te_start"]), "te_end": day(c["te_end"]), "te_status": c["te_status"],
           "te_details": c["te_details"]}  # fmt: skip
    return {k: (v.strip() or None) for k, v in raw.items()}


def test_the_form_refuses_exactly_what_the_engine_then_flags(tmp_path):
    cfg = load_config()
    fixes = te.fix_workflows(cfg)
    # Each fix workflow checks only form fields, or none: so "refused" and "flagged" compare exactly.
    checks_form = {w for w, wf in fixes.items() if all(e.column in te.FIELDS for e in wf.expect)}
    assert checks_form and all(w in checks_form or not any(e.column in te.FIELDS for e in wf.expect) for w, wf in fixes.items())

    drawn: list[dict] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(combos)
    def draw(c):
        drawn.append(c)

    draw()
    assert len(drawn) == EXAMPLES
    before = read_snapshot(write_snapshot(tmp_path / "before", {"User": [SA, OWNER], "Opportunity": [
        record(n, c, typed=False) for n, c in enumerate(drawn)]}), cfg)  # fmt: skip
    after = read_snapshot(write_snapshot(tmp_path / "after", {"User": [SA, OWNER], "Opportunity": [
        record(n, c, typed=True) for n, c in enumerate(drawn)]}), cfg)  # fmt: skip
    assert len(after.quarantine) == 0
    engine: dict[str, dict[str, set[str]]] = {}
    for a in evaluate(after, None, cfg, AS_OF, slots={"sa_digest"}).alert_records():
        if a["workflow"] in checks_form:
            engine.setdefault(a["record_id"][:15], {})[a["workflow"]] = set(a["reasons"])
    ids = [f"0065e{n:010d}AAA" for n in range(len(drawn))]
    forms = {i: form_of(c) for i, c in zip(ids, drawn, strict=True)}
    # The form's own path, for all the records at once (``refusals`` is this path for one record).
    frame = te.as_of_frame(cfg, before, forms, AS_OF)
    assert len(frame) == EXAMPLES
    by_key = dict(zip(frame["key"], frame.index, strict=True))
    found_all = te.flagged(cfg, frame, AS_OF)
    refused = 0
    for n, (opp_id, c) in enumerate(zip(ids, drawn, strict=True)):
        found = found_all.get(by_key[opp_id[:15]], [])
        form_flags: dict[str, set[str]] = {}
        for wid, e in found:
            form_flags.setdefault(wid, set()).update([e.reason] if e.reason and cfg.workflows[wid].report_reasons else [])
        assert form_flags == engine.get(opp_id[:15], {}), (c, form_flags, engine.get(opp_id[:15]))
        refused += bool(found)
        if n % 50 == 0:  # one record at a time, as a submission is checked: the same answer
            assert te.refusals(cfg, before, opp_id, forms[opp_id], AS_OF) == te.words(cfg, found), c
    assert 0 < refused < EXAMPLES  # both sides of the rules were drawn


def test_what_the_form_writes_and_the_chatter_request_it_drafts():
    cfg = load_config()
    rec = te.Record("0065e0000000001AAA", "Globex <b>", SA["id"], True,
                    {"sa": SA["id"], "te_start": "2026-09-01", "te_end": None, "te_status": None, "te_details": None})  # fmt: skip
    form = {"sa": SA["id"], "te_start": "2026-09-01", "te_end": "2021-10-14", "te_status": "Win", "te_details": None}
    changed = te.changes(cfg, rec, form)
    assert changed == {"te_end": "2021-10-14", "te_status": "Win"}
    assert te.api_fields(cfg, {**changed, "te_details": None}) == {
        "SA_Validated_Tech_Evaluation_End_Date__c": "2021-10-14", "SA_Validated_Tech_Evaluation_Close_Statu__c": "Win",
        "SA_Validated_Tech_Evaluation_Close_Details__c": None}  # fmt: skip
    # The handbook's own example, from the values entered.
    assert te.chatter_post(rec, changed, {}) == ("@Sales-Support please update the SA Validated Tech Evaluation End "
                                                 "Date to 10/14/2021, and SA Validated Tech Evaluation Close Status to "
                                                 "Win on this closed opportunity (Globex <b>).")  # fmt: skip
    assert te.chatter_post(rec, {"sa": SA["id"]}, {SA["id"][:15]: "Sam Architect"}).startswith(
        "@Sales-Support please update the Primary SA to Sam Architect on")  # fmt: skip
