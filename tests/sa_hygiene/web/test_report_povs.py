"""The report's Proofs of Value (spec v3): by region and status, running against the 8-week
guideline, per SA against the limit of 3, results of the quarter's completed POVs and their
opportunities' outcomes, each number drilling down to its records; a page per region; no
section at all for an org without the object."""

from datetime import date, timedelta

import pytest
from builders import opportunity, pov, user
from web.test_report import ids, model_of, numbers_open_their_records

from sa_hygiene.contract.config import load_config
from sa_hygiene.web.report import render

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)  # FY27-Q4: 2026-11-01 to 2027-01-31
EAST = user(id="0055e0000000SE1AAA", name="Erin East", email="erin@gitlab.com", geo="AMER", region="East")
EMEA = user(id="0055e0000000SM1AAA", name="Mo Emea", email="mo@gitlab.com", geo="EMEA", region="UKI")
AE = user(id="0055e0000000AE1AAA", name="Ann Exec", role_type="AE", email="ann@gitlab.com")
OPEN = opportunity(id="0065e0000000OPNAAA", owner_id=AE["id"], sa=EAST["id"], stage="3-Technical Evaluation", te_start="2026-10-01")
WON = opportunity(id="0065e0000000WONAAA", owner_id=AE["id"], sa=EAST["id"], stage="Closed Won", is_closed="true", is_won="true")
LOST = opportunity(id="0065e0000000LSTAAA", owner_id=AE["id"], sa=EMEA["id"], stage="8-Closed Lost", is_closed="true")


def day(offset: int) -> str:
    return (AS_OF + timedelta(days=offset)).isoformat()


def p(i: int, owner, **kw) -> dict:
    return pov(**{"id": f"a0P5e0000000P{i:02d}AAA", "name": f"POV {i}", "owner_id": owner["id"], "opportunity_id": OPEN["id"], **kw})


POVS = [
    *[p(i, EAST, start_date=day(-7 * i)) for i in range(1, 4)],  # Erin runs 5: weeks 2, 3, 4,
    p(4, EAST, start_date=day(-56)),  # day 56: past 8 weeks
    p(5, EAST, start_date=day(-60)),  # and another
    p(6, EMEA, start_date=""),  # running without a start date
    p(7, EMEA, status="Planned", start_date=day(5), name="Acme <b>POV</b> & Co"),
    p(8, EAST, status="Completed", start_date=day(-40), end_date=day(-10), result="Successful", opportunity_id=WON["id"]),
    p(9, EMEA, status="Completed", start_date=day(-40), end_date=day(-5), result="Unsuccessful", opportunity_id=LOST["id"]),
    p(10, EMEA, status="Completed", start_date=day(-40), end_date=day(-3), result=""),
    p(11, EAST, status="Completed", start_date=day(-200), end_date=day(-100), result="Successful"),  # a past quarter
    p(12, EMEA, status="Cancelled", start_date=day(-30), end_date=day(-20)),
]


def model(tmp_path, povs=POVS):
    tables = {"User": [EAST, EMEA, AE], "Opportunity": [OPEN, WON, LOST]}
    if povs is not None:
        tables["Proof_of_Value__c"] = povs
    return model_of(tmp_path, tables)


def test_pov_numbers_each_drilling_down_to_their_records(tmp_path):
    m, rm, _ = model(tmp_path)
    v = m["povs"]
    d = rm.drills
    by = {r["region"]: {s: c for s, c in zip(v["statuses"], r["cells"], strict=True)} for r in v["by_region"]}
    assert {r: {s: c["n"] for s, c in cells.items()} for r, cells in by.items()} == {
        "east-sa": {"Planned": 0, "In Progress": 5, "Completed": 2, "Cancelled": 0},
        "emea-sa": {"Planned": 1, "In Progress": 1, "Completed": 2, "Cancelled": 1}}  # fmt: skip
    assert ids(d[by["emea-sa"]["Planned"]["id"]].rows) == {POVS[6]["id"]}
    within, past, nostart = v["guideline"]
    assert (within["n"], past["n"], nostart["n"]) == (3, 2, 1)  # day 56 is past 8 weeks
    assert ids(d[past["id"]].rows) == {POVS[3]["id"], POVS[4]["id"]}
    assert [(s["name"], s["n"], s["over"]) for s in v["people"]] == [("Erin East", 5, True), ("Mo Emea", 1, False)]
    assert v["over_limit"] == 1
    results = {r["result"]: r for r in v["results"]}
    assert {k: r["n"] for k, r in results.items()} == {"Successful": 1, "Unsuccessful": 1, "No result": 1}
    assert {o: c["n"] for o, c in zip(v["outcomes"], results["Successful"]["outcomes"], strict=True)}["Won"] == 1
    assert {o: c["n"] for o, c in zip(v["outcomes"], results["Unsuccessful"]["outcomes"], strict=True)}["Lost"] == 1
    assert ids(d[v["completed"]["id"]].rows) == {POVS[7]["id"], POVS[8]["id"], POVS[9]["id"]}
    # Every drill of the section is rendered, and counts what it lists.
    assert all(d[i].count == len(d[i].rows) for i in v["drills"])


def test_pages_render_the_section_escaped_and_a_page_per_region(tmp_path):
    m, rm, _ = model(tmp_path)
    pages = render(m, rm, {"regions": "", "trend": "", "types": "", "outcomes": ""}, [], load_config())
    assert {"index.html", "region-east-sa.html", "region-emea-sa.html"} <= set(pages)
    index = pages["index.html"]
    assert 'id="povs"' in index and "Acme &lt;b&gt;POV&lt;/b&gt; &amp; Co" in index and "<b>POV</b>" not in index
    parsed, checked = numbers_open_their_records(pages)
    assert parsed["region-emea-sa.html"].drills and checked > 20
    emea = pages["region-emea-sa.html"]
    assert "Proofs of Value · emea-sa" in emea and "Erin East" not in emea.split('id="povs"')[1]


def test_an_org_without_the_object_has_no_section(tmp_path):
    m, _, _ = model(tmp_path, povs=None)
    assert m["povs"] is None and all(p["povs"] is None for p in m["region_pages"])
    m2, _, _ = model(tmp_path / "empty", povs=[])
    assert m2["povs"] is not None and m2["povs"]["total"]["n"] == 0
