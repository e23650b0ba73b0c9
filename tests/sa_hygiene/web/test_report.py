"""The hygiene report's numbers against counts made here from the run's alerts and the snapshot:
per workflow and region, per SA, SA activity, the fiscal quarter's evaluations at its edges, data
quality; then the rendered pages (every number links to a list of exactly that many records) and
a whole report written to a store."""

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
from builders import contact, contact_role, event, opportunity, task, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.engine.rules import evaluate
from sa_hygiene.pipeline.report import write_report
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.source.store import SnapshotStore
from sa_hygiene.state.ledger import unknown_slack_users
from sa_hygiene.web.report import render
from sa_hygiene.web.report_model import ReportInputs, ReportModel
from sa_hygiene.web.report_records import fiscal_quarter

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)
SA_E = user(id="0055e0000000SE1AAA", name="Erin East", email="erin@gitlab.com", geo="AMER", region="East")
SA_E2 = user(id="0055e0000000SE2AAA", name="Eli East", email="eli@gitlab.com", geo="AMER", region="East")
SA_M = user(id="0055e0000000SM1AAA", name="Mo Emea", email="mo@gitlab.com", geo="EMEA", region="UKI")
SA_X = user(id="0055e0000000SX1AAA", name="Xu Latam", email="xu@gitlab.com", geo="LATAM", region="Brazil")
AE_E = user(id="0055e0000000AE1AAA", name="Ann Exec", role_type="AE", email="ann@gitlab.com", geo="AMER", region="East")
AE_M = user(id="0055e0000000AM1AAA", name="Max Exec", role_type="AE", email="max@gitlab.com", geo="EMEA", region="UKI")
AE_X = user(id="0055e0000000AX1AAA", name="Ada Exec", role_type="AE", email="ada@gitlab.com", geo="", region="")
USERS = [SA_E, SA_E2, SA_M, SA_X, AE_E, AE_M, AE_X]
REGION = {SA_E["id"]: "east-sa", SA_E2["id"]: "east-sa", SA_M["id"]: "emea-sa", SA_X["id"]: "(unrouted)",
          AE_E["id"]: "east-sa", AE_M["id"]: "emea-sa", AE_X["id"]: "(unrouted)"}  # fmt: skip


def day(offset: int, base: date = AS_OF) -> str:
    return (base + timedelta(days=offset)).isoformat()


def opp(owner=AE_E, sa=None, **kw) -> dict:
    return opportunity(owner_id=owner["id"], sa=sa["id"] if sa else "", **kw)


def activity(owner, created: str, types: str = "Demo", **kw) -> dict:
    return task(**{"owner_id": owner["id"], "created": created, "activity_types": types, "sentiment": "Positive",
                   "persona_levels": "Executive", **kw})  # fmt: skip


def model_of(tmp_path, tables: dict, as_of: date = AS_OF, config: str | None = None):
    """(the page's numbers, the ReportModel, the evaluation) of one snapshot: what write_report renders."""
    folder = write_snapshot(tmp_path / "snap", {"User": USERS, **tables})
    cfg = load_config(config)
    snap = read_snapshot(folder, cfg)
    evaluation = evaluate(snap, None, cfg, as_of)
    m = ReportModel(ReportInputs(cfg, evaluation, snap, as_of, "20261124T040000Z"))
    return m.build(), m, evaluation


def ids(drill_rows: list[dict]) -> set[str]:
    return {re.search(r"/r/\w+/(\w+)/view", r["url"]).group(1) for r in drill_rows}


# --------------------------------------------------------------------------- the fiscal quarter


@pytest.mark.parametrize(
    "when, start_month, label, first, last",
    [
        # GitLab's fiscal year starts in February and is named by the year it ends in.
        ("2026-01-31", 2, "FY26-Q4", "2025-11-01", "2026-01-31"),
        ("2026-02-01", 2, "FY27-Q1", "2026-02-01", "2026-04-30"),
        ("2026-04-30", 2, "FY27-Q1", "2026-02-01", "2026-04-30"),
        ("2026-05-01", 2, "FY27-Q2", "2026-05-01", "2026-07-31"),
        ("2026-07-31", 2, "FY27-Q2", "2026-05-01", "2026-07-31"),
        ("2026-08-01", 2, "FY27-Q3", "2026-08-01", "2026-10-31"),
        ("2026-11-01", 2, "FY27-Q4", "2026-11-01", "2027-01-31"),
        ("2027-01-31", 2, "FY27-Q4", "2026-11-01", "2027-01-31"),
        ("2026-12-31", 1, "FY26-Q4", "2026-10-01", "2026-12-31"),
        ("2026-10-01", 10, "FY27-Q1", "2026-10-01", "2026-12-31"),
    ],
)
def test_fiscal_quarter(when, start_month, label, first, last):
    q = fiscal_quarter(date.fromisoformat(when), start_month)
    assert (q.label, q.start.isoformat(), q.end.isoformat()) == (label, first, last)


# --------------------------------------------------------------------------- alerts per workflow and region, per SA

SCENARIO = {
    "Opportunity": [
        # wf-06 + wf-15 + te-stalled, east (its SA's region)
        opp(sa=SA_E, stage="4-Proposal", te_start=day(-30)),
        opp(sa=SA_E2, stage="5-Negotiating", te_start=day(-20)),
        # wf-13 + wf-12 without an SA: the owner's region, emea
        opp(owner=AE_M, stage="3-Technical Evaluation", iacv="50000", stage3_date=day(-10)),
        # wf-13 in the owner's region when the SA is blank: east, and unrouted (to the operations channel)
        opp(owner=AE_E, stage="4-Proposal", iacv="15000"),
        opp(owner=AE_X, stage="4-Proposal", iacv="15000"),
        # the SA's region wins over the owner's: emea SA, east owner; wf-06 + wf-15 + te-stalled
        opp(owner=AE_E, sa=SA_M, stage="6-Awaiting Signature", te_start=day(-40)),
        # an SA no routing rule matches: unrouted; wf-06 + wf-15 + te-stalled
        opp(owner=AE_M, sa=SA_X, stage="7-Closing", te_start=day(-15)),
        # te-consistency (end before start), emea
        opp(sa=SA_M, stage="Closed Won", is_closed="true", is_won="true", te_start=day(-5), te_end=day(-9),
            te_status="Win", te_details="done"),
        {**opp(sa=SA_E), "id": "not-an-id"},  # quarantined
    ],
    "Task": [
        # act-fields (no Related To, no contact) and wf-02 (created in the window)
        activity(SA_E, day(-1) + "T10:00:00Z"),
        activity(SA_M, day(-1) + "T11:00:00Z", types="Demo;Discovery Session"),
        activity(SA_X, day(-1) + "T12:00:00Z"),  # its wf-02 goes to the operations channel: unrouted
        # wf-11: due today, open, owned by an SA
        task(owner_id=SA_E2["id"], activity_date=AS_OF.isoformat(), is_closed="false", status="Open"),
    ],
}


def test_alerts_per_workflow_and_region_are_the_runs_alerts(tmp_path):
    m, _, evaluation = model_of(tmp_path, {k: list(v) for k, v in SCENARIO.items()})
    records = evaluation.alert_records()
    whose = {o["id"]: o["sa"] or o["owner_id"] for o in SCENARIO["Opportunity"]}
    whose |= {t["id"]: t["owner_id"] for t in SCENARIO["Task"]}
    expected = Counter((a["workflow"], REGION[whose[a["record_id"]]]) for a in records)
    assert {"wf-06", "wf-12", "wf-13", "wf-15", "te-consistency", "te-stalled", "act-fields", "wf-02", "wf-11"} <= {
        w for w, _ in expected
    }
    assert {r for _, r in expected} == {"east-sa", "emea-sa", "(unrouted)"}
    got = Counter()
    for row in m["matrix"]["rows"]:
        for region, cell in zip(m["matrix"]["regions"], row["cells"], strict=True):
            if cell["n"]:
                got[(row["wid"], region)] = cell["n"]
        assert row["total"]["n"] == sum(n for (w, _), n in expected.items() if w == row["wid"])
    assert got == expected
    news = set(load_config().report.news_workflows)
    assert m["issues"] == sum(1 for a in records if a["workflow"] not in news)
    assert m["news"] == sum(1 for a in records if a["workflow"] in news) == 3  # the window's three activities (wf-02)
    # Region totals: the column sums, and the region summary row of each region.
    for region, total in zip(m["matrix"]["regions"], m["matrix"]["totals"], strict=True):
        assert total["n"] == sum(n for (_, r), n in expected.items() if r == region)
    summary = {r["region"]: r["issues"] + r["news"] for r in m["regions"]}
    assert summary == {r: n for r, n in Counter(REGION[whose[a["record_id"]]] for a in records).items()}


def test_sas_with_the_most_open_items_are_their_daily_digest(tmp_path):
    m, _, evaluation = model_of(tmp_path, {k: list(v) for k, v in SCENARIO.items()})
    opps = {o["id"]: o["sa"] for o in SCENARIO["Opportunity"]}
    tasks = {t["id"]: t["owner_id"] for t in SCENARIO["Task"]}
    expected = Counter(opps.get(a["record_id"]) or tasks.get(a["record_id"]) for a in evaluation.alert_records()
                       if a["slot"] == "sa_digest")  # fmt: skip
    expected.pop("", None)
    got = {}
    for group in m["people"]:
        for row in group["rows"]:
            user_id = re.search(r"/r/User/(\w+)/view", row["url"]).group(1)
            assert REGION[user_id] == group["region"]
            got[user_id] = row["items"]["n"]
    assert got == dict(expected)
    assert got[SA_E["id"]] == 4  # wf-06, wf-15, te-stalled on one opportunity; act-fields on an activity
    east = next(g for g in m["people"] if g["region"] == "east-sa")
    assert [r["items"]["n"] for r in east["rows"]] == sorted((r["items"]["n"] for r in east["rows"]), reverse=True)


def test_data_quality_counts_the_quarantine_and_the_unrouted(tmp_path):
    m, _, evaluation = model_of(tmp_path, {k: list(v) for k, v in SCENARIO.items()})
    q = m["quality"]
    assert q["quarantined_total"] == 1
    assert [(r["object"], r["reason"], r["n"]) for r in q["quarantined"]] == [("Opportunity", "malformed_id", 1)]
    unrouted = Counter(a["workflow"] for a in evaluation.alert_records() if a.get("unrouted"))
    assert unrouted and {r["wid"]: r["n"] for r in q["unrouted"]} == dict(unrouted)
    assert q["unrouted_total"] == sum(unrouted.values())


# --------------------------------------------------------------------------- SA activity

UNTIL = "2026-11-24T00:00:00Z"  # the default window is [as_of - 1 day, as_of) at 00:00 UTC


def test_sa_activity_in_the_window_and_the_last_four_weeks(tmp_path):
    tasks = [
        activity(SA_E, "2026-11-23T00:00:00Z", types="Demo;Discovery Session", sentiment="Negative"),  # window
        activity(SA_M, "2026-11-23T23:59:59Z", persona_levels="Executive;Manager/Director"),  # window
        activity(SA_X, "2026-11-22T12:00:00Z", sentiment=""),  # weeks only, unrouted, sentiment not set
        activity(SA_E, "2026-10-27T00:00:00Z", types="Webinar"),  # exactly 28 days before: in
        activity(SA_E, "2026-10-26T23:59:59Z"),  # a second before: out
        activity(SA_E, UNTIL),  # at the end of the window: out of both
        activity(SA_M, "2026-11-23T09:00:00Z", chorus_call_id="CH-1"),  # a Chorus call: never SA activity
        task(owner_id=SA_M["id"], created="2026-11-23T09:00:00Z"),  # no activity type: not SA activity
    ]
    m, model, _ = model_of(tmp_path, {"Task": tasks})
    a = m["activity"]
    assert (a["totals"]["window"]["n"], a["totals"]["weeks"]["n"]) == (2, 4)

    def table(dimension: str) -> dict:
        return {r["label"]: (r["window"]["n"], r["weeks"]["n"]) for r in a["tables"][dimension]}

    assert table("activity_types") == {"Demo": (2, 3), "Discovery Session": (1, 1), "Webinar": (0, 1)}
    assert table("sentiment") == {"Positive": (1, 2), "Negative": (1, 1), "(not set)": (0, 1)}
    assert table("persona_levels") == {"Executive": (2, 4), "Manager/Director": (1, 1)}
    assert table("region") == {"east-sa": (1, 2), "emea-sa": (1, 1), "(unrouted)": (0, 1)}
    webinar = next(r for r in a["tables"]["activity_types"] if r["label"] == "Webinar")
    assert webinar["known"] is False and webinar["weeks"]["href"].startswith("activity.html#")
    demo = next(r for r in a["tables"]["activity_types"] if r["label"] == "Demo")
    assert ids(model.activity_drills[demo["weeks"]["id"]].rows) == {tasks[0]["id"], tasks[1]["id"], tasks[2]["id"]}


def test_sa_activity_per_sa_product_and_persona_function_with_drill_downs(tmp_path):
    tasks = [
        activity(SA_E, "2026-11-23T08:00:00Z", products="Ultimate;Duo Pro", persona_functions="Security"),  # window
        activity(SA_E, "2026-11-20T08:00:00Z", products="Ultimate", persona_functions="Development;Security"),
        activity(SA_M, "2026-11-23T09:00:00Z", products="", persona_functions=""),  # window
        activity(SA_X, "2026-11-10T09:00:00Z", products="Premium", persona_functions="IT"),
        activity(SA_M, "2026-11-23T10:00:00Z", chorus_call_id="CH-2", products="Ultimate"),  # Chorus: never
        task(owner_id=SA_E["id"], created="2026-11-23T09:00:00Z", products="Ultimate"),  # no type: not SA activity
    ]
    m, model, _ = model_of(tmp_path, {"Task": tasks})
    a = m["activity"]

    def table(dimension: str) -> list:
        return [(r["label"], r["window"]["n"], r["weeks"]["n"]) for r in a["tables"][dimension]]

    # The busiest first, "(not set)" last; nothing is flagged as outside a taxonomy.
    assert table("sa") == [("Erin East", 1, 2), ("Mo Emea", 1, 1), ("Xu Latam", 0, 1)]
    assert table("products") == [("Ultimate", 1, 2), ("Duo Pro", 1, 1), ("Premium", 0, 1), ("(not set)", 1, 1)]
    assert table("persona_functions") == [("Security", 1, 2), ("Development", 0, 1), ("IT", 0, 1), ("(not set)", 1, 1)]
    assert all(r["known"] for d in ("sa", "products", "persona_functions") for r in a["tables"][d])
    erin = a["tables"]["sa"][0]
    assert ids(model.activity_drills[erin["weeks"]["id"]].rows) == {tasks[0]["id"], tasks[1]["id"]}
    assert erin["weeks"]["href"].startswith("activity.html#")
    security = a["tables"]["persona_functions"][0]
    assert ids(model.activity_drills[security["window"]["id"]].rows) == {tasks[0]["id"]}


# --------------------------------------------------------------------------- technical evaluations


@pytest.mark.parametrize("boundary", ["2026-02-01", "2026-05-01", "2026-08-01", "2026-11-01"])
def test_evaluations_ended_on_the_last_day_of_a_quarter_or_the_first_of_the_next(tmp_path, boundary):
    first = date.fromisoformat(boundary)
    last = first - timedelta(days=1)
    ended_last = opp(sa=SA_E, stage="Closed Won", is_closed="true", is_won="true", te_start=day(-20, last),
                     te_end=last.isoformat(), te_status="Win", te_details="won")  # fmt: skip
    ended_first = opp(sa=SA_M, stage="8-Closed Lost", is_closed="true", te_start=day(-9, first),
                      te_end=first.isoformat(), te_status="Loss", te_details="lost")  # fmt: skip
    started_last = opp(sa=SA_E, stage="3-Technical Evaluation", te_start=last.isoformat())
    started_first = opp(sa=SA_M, stage="3-Technical Evaluation", te_start=first.isoformat())
    tables = {"Opportunity": [ended_last, ended_first, started_last, started_first]}

    m, model, _ = model_of(tmp_path / "last", {k: list(v) for k, v in tables.items()}, as_of=last)
    e = m["evaluations"]
    assert e["quarter"].end == last
    assert ids(model.drills[e["ended"]["id"]].rows) == {ended_last["id"]}
    # Both that ended near the boundary started in this quarter (20 and 9 days before its end).
    assert ids(model.drills[e["started"]["id"]].rows) == {started_last["id"], ended_last["id"], ended_first["id"]}
    assert [(o["status"], o["n"], o["rate"]) for o in e["outcomes"]] == [("Win", 1, 1.0), ("Loss", 0, 0.0),
                                                                          ("Stalled", 0, 0.0), ("No valid status", 0, 0.0)]  # fmt: skip
    assert e["median_days"] == 20

    m, model, _ = model_of(tmp_path / "first", {k: list(v) for k, v in tables.items()}, as_of=first)
    e = m["evaluations"]
    assert e["quarter"].start == first
    assert ids(model.drills[e["ended"]["id"]].rows) == {ended_first["id"]}
    # It started 9 days before the quarter: in the one before.
    assert ids(model.drills[e["started"]["id"]].rows) == {started_first["id"]}
    assert [(o["status"], o["n"]) for o in e["outcomes"]] == [("Win", 0), ("Loss", 1), ("Stalled", 0), ("No valid status", 0)]
    assert e["outcomes"][1]["rate"] == 1.0 and e["median_days"] == 9


def test_evaluation_figures_of_the_quarter(tmp_path):
    q_start = "2026-11-01"  # FY27-Q4 holds AS_OF
    rows = [
        opp(sa=SA_E, stage="Closed Won", is_closed="true", is_won="true", te_start="2026-10-01", te_end="2026-11-10",
            te_status="Win", te_details="x"),  # 40 days
        opp(sa=SA_E, stage="Closed Won", is_closed="true", is_won="true", te_start="2026-11-02", te_end="2026-11-12",
            te_status="Win", te_details="x"),  # 10 days
        opp(sa=SA_M, stage="5-Negotiating", te_start="2026-11-01", te_end="2026-11-21", te_status="Stalled", te_details="x"),
        opp(sa=SA_M, stage="5-Negotiating", te_start="", te_end="2026-11-05", te_status="Won", te_details="x"),
        # open evaluations, the oldest first; closed or lost ones are not "open"
        opp(sa=SA_E, stage="3-Technical Evaluation", te_start="2026-09-01", name="Oldest"),
        opp(sa=SA_M, stage="4-Proposal", te_start="2026-10-15", name="Second"),
        opp(sa=SA_E, stage="8-Closed Lost", is_closed="true", te_start="2026-08-01"),
        opp(sa=SA_E, stage="3-Technical Evaluation", te_start="2026-12-01"),  # starts after as_of: not open yet
    ]  # fmt: skip
    m, _, _ = model_of(tmp_path, {"Opportunity": rows})
    e = m["evaluations"]
    assert e["quarter"].start.isoformat() == q_start
    assert (e["started"]["n"], e["ended"]["n"]) == (3, 4)  # started Nov 1, Nov 2, Dec 1
    assert {o["status"]: (o["n"], o["rate"]) for o in e["outcomes"]} == {
        "Win": (2, 0.5), "Loss": (0, 0.0), "Stalled": (1, 0.25), "No valid status": (1, 0.25)}
    assert e["median_days"] == 20  # 40, 10, 20: the one without a start date has no duration
    assert [r["label"] for r in e["longest"]] == ["Oldest", "Second"]
    assert [r["days"] for r in e["longest"]] == [84, 40]
    assert e["open"]["n"] == 2
    by_region = {r["region"]: (r["started"]["n"], r["ended"]["n"], r["win"]["n"]) for r in e["by_region"]}
    assert by_region == {"east-sa": (2, 2, 2), "emea-sa": (1, 2, 0)}


# --------------------------------------------------------------------------- the rendered pages


class _Page(HTMLParser):
    """Drill-downs (id, data-count, records listed), every id, and every number link."""

    def __init__(self):
        super().__init__()
        self.ids, self.drills, self.links = set(), {}, []
        self._drill, self._link = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "details" and "drill" in (a.get("class") or ""):
            self._drill = a["id"]
            self.drills[a["id"]] = [int(a["data-count"]), 0]
        elif tag == "li" and self._drill:
            self.drills[self._drill][1] += 1
        elif tag == "a" and a.get("class") == "n":
            self._link = [a["href"], ""]

    def handle_endtag(self, tag):
        if tag == "details":
            self._drill = None
        elif tag == "a" and self._link:
            self.links.append(tuple(self._link))
            self._link = None

    def handle_data(self, data):
        if self._link:
            self._link[1] += data


def numbers_open_their_records(pages: dict[str, str]) -> tuple[dict[str, _Page], int]:
    """(each page parsed, how many numbers were checked): every drill-down counts what it lists,
    and every number links to a drill-down (on its page or another) of exactly that many records."""
    parsed = {}
    for name, html in pages.items():
        parsed[name] = page = _Page()
        page.feed(html)
        for drill_id, (count, listed) in page.drills.items():
            assert count == listed, (name, drill_id)
    checked = 0
    for name, page in parsed.items():
        for href, text in page.links:
            target_page, _, anchor = href.partition("#")
            target = parsed[target_page or name]
            assert anchor in target.ids, (name, href)
            if anchor in target.drills:
                assert int(text.replace(",", "")) == target.drills[anchor][0], (name, href)
                checked += 1
    return parsed, checked


def test_every_number_on_the_pages_opens_exactly_that_many_records(tmp_path):
    tables = {k: list(v) for k, v in SCENARIO.items()}
    tables["Opportunity"].append(opp(sa=SA_E, stage="4-Proposal", te_start=day(-30), name='Acme <script>alert("x")</script> & Co'))
    m, model, evaluation = model_of(tmp_path, tables)
    cfg = load_config()
    pages = render(m, model, {"regions": "", "trend": "", "types": "", "outcomes": ""}, [], cfg)
    parsed, checked = numbers_open_their_records(pages)
    assert all(page.drills for name, page in parsed.items() if not name.startswith("region-"))
    assert checked > 30
    # The matrix cell of wf-06 in east-sa says what the alerts say.
    wf06_east = sum(1 for a in evaluation.alert_records() if a["workflow"] == "wf-06" and a["record_id"] in
                    {o["id"] for o in tables["Opportunity"] if o["sa"] in (SA_E["id"], SA_E2["id"])})  # fmt: skip
    assert wf06_east == 3
    assert ("#a-wf-06-east-sa", "3") in parsed["index.html"].links
    # Salesforce text is escaped, wherever it lands.
    assert "<script>alert" not in pages["index.html"]
    assert "Acme &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in pages["index.html"]


# --------------------------------------------------------------------------- Slack users not found


def test_slack_users_not_found_come_from_the_delivery_ledger(ledger, ledger_url):
    def delivered(key, target):
        ledger.claim("outbox", key, 0, owner="me", run_id="r")
        ledger.mark_pending("outbox", key, 0, owner="me", target=target, channel="D1")
        ledger.mark_sent("outbox", key, 0, ts="1.0")

    delivered(f"sa_digest|user:{SA_E['id']}|2026-11-23", {"type": "user", "id": SA_E["id"]})  # Slack knew her
    delivered(f"sa_digest|user:{SA_M['id']}|2026-11-23", {"type": "user", "id": AE_M["id"]})  # went to the manager
    delivered(f"sa_digest|user:{SA_M['id']}|2026-11-22", {"type": "channel", "name": "#sa-activities-emea-sa"})
    ledger.claim("outbox", f"sa_digest|user:{SA_X['id']}|2026-11-23", 0, owner="me", run_id="r")
    ledger.mark_failed("outbox", f"sa_digest|user:{SA_X['id']}|2026-11-23", 0, owner="me", run_id="r",
                       error="users_not_found")  # fmt: skip
    delivered("regional_digest|channel:#sa-activities-east-sa|2026-11-23", {"type": "channel", "name": "#x"})
    got = unknown_slack_users(ledger_url, datetime.now(UTC) - timedelta(hours=1))
    assert got["checked"] and got["error"] is None
    assert [(u["user_id"], u["digests"], u["sent_to"]) for u in got["users"]] == [
        (SA_M["id"], 2, f"#sa-activities-emea-sa, {AE_M['id']}"), (SA_X["id"], 1, "nobody")]  # fmt: skip
    assert unknown_slack_users(ledger_url, datetime.now(UTC) + timedelta(hours=1))["users"] == []


def test_a_ledger_that_cannot_be_read_is_reported_not_raised(tmp_path):
    got = unknown_slack_users("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", datetime.now(UTC))
    assert got["users"] == [] and "OperationalError" in got["error"]
    missing = unknown_slack_users(f"sqlite:///{tmp_path}/absent.sqlite", datetime.now(UTC))
    assert missing == {"users": [], "error": None, "checked": False}
    assert not (tmp_path / "absent.sqlite").exists()


# --------------------------------------------------------------------------- a whole report


def test_write_report_publishes_the_latest_snapshot_keeps_the_trend_and_prunes_with_the_store(tmp_path):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(f"store: {{url: {tmp_path / 'store'}, keep: 2}}\n"
                        f"slack: {{ledger_url: 'sqlite:///{tmp_path}/ledger.sqlite'}}\n")  # fmt: skip
    cfg = load_config(cfg_path)
    store = SnapshotStore(cfg.store.url, keep=cfg.store.keep)
    days = [datetime(2026, 11, d, 4, tzinfo=UTC) for d in (22, 23, 24)]
    rows = {k: list(v) for k, v in SCENARIO.items()}
    store.commit_folder(write_snapshot(tmp_path / "a", {"User": USERS, **rows}), days[0])
    first = write_report(cfg)
    assert first["snapshot"] == "20261122T040000Z"
    rows["Opportunity"] = rows["Opportunity"][:3]  # fixed, between the 22nd and the 23rd
    store.commit_folder(write_snapshot(tmp_path / "b", {"User": USERS, **rows}), days[1])
    store.commit_folder(write_snapshot(tmp_path / "c", {"User": USERS, **rows}), days[2])  # prunes the 22nd
    info = write_report(cfg, as_of=date(2026, 11, 24))
    reports = tmp_path / "store" / "_reports"
    assert json.loads((reports / "latest.json").read_text())["index"] == "20261124T040000Z/index.html"
    assert info["report"] == str(reports / "20261124T040000Z" / "index.html")
    assert sorted(p.name for p in reports.iterdir()) == ["20261123T040000Z", "20261124T040000Z", "latest.json"]
    # The 23rd was never reported: evaluated once for the trend, its counts kept for the next report.
    backfilled = json.loads((reports / "20261123T040000Z" / "counts.json").read_text())
    latest = json.loads((reports / "20261124T040000Z" / "counts.json").read_text())
    assert backfilled["as_of"] == "2026-11-23" and latest["as_of"] == "2026-11-24"
    assert latest["workflows"] == info["counts"] and sum(latest["workflows"].values()) == info["issues"] + info["news"]
    html = (reports / "20261124T040000Z" / "index.html").read_text()
    assert html.count('class="chart"') == 3 and "<img" not in html
    docs = reports / "20261124T040000Z" / "data_docs"
    pages = re.findall(r'href="data_docs/([^"]+)"', html)
    assert pages and all((docs / p.replace("%20", " ")).exists() for p in pages)
    assert (docs / "index.html").exists() and not (docs / "static").exists()


def test_values_that_read_alike_keep_their_own_records(tmp_path):
    # Both slug to "lunch-learn"; each count must still open its own activity.
    tasks = [activity(SA_E, "2026-11-23T10:00:00Z", types="Lunch & Learn"),
             activity(SA_E, "2026-11-23T11:00:00Z", types="Lunch + Learn")]  # fmt: skip
    m, model, _ = model_of(tmp_path, {"Task": tasks})
    rows = {r["label"]: r["window"] for r in m["activity"]["tables"]["activity_types"]}
    assert rows["Lunch & Learn"]["href"] != rows["Lunch + Learn"]["href"]
    assert ids(model.activity_drills[rows["Lunch & Learn"]["id"]].rows) == {tasks[0]["id"]}
    assert ids(model.activity_drills[rows["Lunch + Learn"]["id"]].rows) == {tasks[1]["id"]}


# --------------------------------------------------------------------------- a workflow's message


@pytest.mark.parametrize("show, note", [("[suggested_record]", "log it on Globex Renewal"), ("[]", "")])
def test_a_meeting_row_names_the_record_to_log_it_on_when_its_workflow_shows_it(tmp_path, show, note):
    o = opp(name="Globex Renewal", iacv="30000")
    pat = contact(email="pat@globex.com")
    meeting = event(owner_id=SA_E["id"], attendee_emails="erin@gitlab.com;pat@globex.com", end="2026-11-23T16:00:00Z")
    config = tmp_path / "project.yaml"
    config.write_text(f"workflows:\n  wf-01:\n    message: {{show: {show}}}\n")
    tables = {"Opportunity": [o], "Contact": [pat], "Event": [meeting],
              "OpportunityContactRole": [contact_role(opportunity_id=o["id"], contact_id=pat["id"])]}  # fmt: skip
    report, model, _ = model_of(tmp_path, tables, config=str(config))
    (row,) = [r for r in report["matrix"]["rows"] if r["wid"] == "wf-01"]
    (cell,) = [c for c in row["cells"] if c["n"]]
    assert [r["note"] for r in model.drills[cell["id"]].rows] == [note]
