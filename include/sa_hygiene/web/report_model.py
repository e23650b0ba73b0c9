"""The hygiene report's model: every number of the page, each a count of records it also lists.

Built from one evaluation of the latest snapshot (the same rules and alerts as the digests) and
the snapshot itself; each count links to a drill-down of the records behind it, each record to
Salesforce. Pure: a ``ReportInputs`` in, a dict for the templates out; no I/O but the alert
state's history, which the page shows when it can be read and names when it cannot.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from sa_hygiene.contract.config import Config
from sa_hygiene.engine.prepare import is_sa_activity
from sa_hygiene.engine.rules import Evaluation
from sa_hygiene.source.snapshot import ID_RE, Snapshot
from sa_hygiene.web.report_povs import pov_section
from sa_hygiene.web.report_records import (
    UNROUTED,
    Drill,
    Records,
    as_text,
    date_cell,
    fiscal_quarter,
    object_of,
    reason_words,
    region_of,
    responsible,
    slug,
)

log = logging.getLogger(__name__)


NOT_SET = "(not set)"


OUTCOMES = ("Win", "Loss", "Stalled")


@dataclass
class ReportInputs:
    """What one report is built from: one evaluation of a snapshot, and what the report shows
    beside it (the trend of earlier snapshots, Slack's unknown users, the alert state's history)."""

    cfg: Config
    evaluation: Evaluation
    snapshot: Snapshot
    as_of: date
    snapshot_name: str
    previous_name: str | None = None
    trend: list[dict] = field(default_factory=list)  # counts.json of earlier snapshots and this one
    slack: dict = field(default_factory=dict)  # from unknown_slack_users()
    memory: dict = field(default_factory=dict)  # from alert_memory(): episodes, evaluation dates, snoozes


class ReportModel:
    """Every number of the report and the records behind it, computed once, rendered twice
    (``index.html`` and ``activity.html``). Pure: tests compare it with their own counts."""

    def __init__(self, inputs: ReportInputs):
        self.inputs = inputs
        self.cfg = inputs.cfg
        self.d = inputs.evaluation.directory
        self.records = Records(inputs.snapshot, self.d, inputs.cfg)
        self.drills: dict[str, Drill] = {}  # index.html
        self.activity_drills: dict[str, Drill] = {}  # activity.html
        self.regions = [*self.cfg.regions, UNROUTED]
        alerts = inputs.evaluation.alerts.copy()
        by_region, person = responsible(alerts, inputs.snapshot)
        alerts["region"] = region_of(by_region, self.d)
        alerts["person"] = person
        news = set(self.cfg.report.news_workflows)
        alerts["news"] = alerts["workflow"].isin(news)
        self.alerts = alerts
        self.workflows = list(self.cfg.enabled_workflows())
        self.quarter = fiscal_quarter(inputs.as_of, self.cfg.report.fiscal_year_start_month)

    # ------------------------------------------------------------------ helpers
    def _drill(self, drills: dict[str, Drill], drill_id: str, title: str, rows: list[dict]) -> dict:
        """Register the records behind a number; returns the number as {n, id, href}."""
        base, n = drill_id, 1
        while drill_id in self.drills or drill_id in self.activity_drills:  # "Lunch & Learn", "Lunch + Learn"
            n += 1
            drill_id = f"{base}-{n}"
        drills[drill_id] = Drill(drill_id, title, rows)
        page = "activity.html" if drills is self.activity_drills else ""
        return {"n": len(rows), "id": drill_id, "href": f"{page}#{drill_id}" if rows else None}

    def _alert_rows(self, alerts: pd.DataFrame) -> list[dict]:
        rows = []
        for a in alerts.itertuples(index=False):
            note = reason_words(self.cfg, a.reasons)
            shows = self.cfg.workflows[a.workflow].message.show
            if "suggested_record" in shows and isinstance(a.suggested_what_id, str):
                note = f"log it on {self.records.line(object_of(a.suggested_what_id), a.suggested_what_id)['label']}"
            rows.append(self.records.line(a.object, a.record_id, note))
        # The biggest opportunities first, as in the digests; other records keep the run's order.
        return sorted(rows, key=lambda r: -r["iacv"])

    # ------------------------------------------------------------------ alerts
    def matrix(self) -> dict:
        """Alerts per workflow and region; each cell drills down to its records."""
        rows = []
        previous = self.inputs.trend[-2]["workflows"] if len(self.inputs.trend) > 1 else None
        for wid in self.workflows:
            wf = self.cfg.workflows[wid]
            mine = self.alerts[self.alerts["workflow"] == wid]
            cells = []
            for region in self.regions:
                cell = mine[mine["region"] == region]
                cells.append(self._drill(self.drills, slug("a", wid, region), f"{wid} · {region}", self._alert_rows(cell)))
            total = len(mine)
            anchor = slug("w", wid)
            rows.append({"wid": wid, "id": anchor, "title": wf.title, "news": wid in self.cfg.report.news_workflows,
                         "cells": cells, "total": {"n": total, "href": f"#{anchor}" if total else None},
                         "delta": None if previous is None else total - int(previous.get(wid, 0))})  # fmt: skip
        totals = []
        for region in self.regions:
            n = int((self.alerts["region"] == region).sum())
            totals.append({"n": n, "href": f"#{slug('r', region)}" if n else None})
        # Shading of each cell, relative to the largest cell of its kind (issues or news).
        for news in (False, True):
            cells = [c for r in rows if r["news"] is news for c in r["cells"]]
            top = max((c["n"] for c in cells), default=0) or 1
            for c in cells:
                c["heat"] = round(c["n"] / top, 2)
        self.matrix_rows = rows
        return {"regions": self.regions, "rows": rows, "totals": totals, "total": len(self.alerts)}

    def region_issues(self, matrix: dict) -> list[dict]:
        """Per region, the workflows with alerts there: the drill-down of a region's total."""
        out = []
        for i, region in enumerate(self.regions):
            items = [{"wid": r["wid"], "title": r["title"], **r["cells"][i]} for r in matrix["rows"] if r["cells"][i]["n"]]
            out.append({"region": region, "id": slug("r", region), "items": items, "n": sum(x["n"] for x in items)})
        return out

    def people(self) -> list[dict]:
        """Per region, the SAs (and owners) with the most open items of their daily digest."""
        mine = self.alerts[(self.alerts["slot"] == "sa_digest") & self.alerts["person"].notna()]
        if mine.empty:
            return []
        person_region = region_of(mine["person"], self.d)
        out = []
        for region in self.regions:
            here = mine[person_region == region]
            if here.empty:
                continue
            counts = here.groupby("person").size()
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], self.records.user_name(kv[0])))
            rows = []
            for user_id, _ in ranked[: self.cfg.report.top_sas]:
                theirs = here[here["person"] == user_id]
                by_wf = theirs.groupby("workflow").size()
                rows.append({
                    **self.records.line("User", user_id),
                    "active": bool(self.d.active.get(str(user_id)[:15], False)),
                    "items": self._drill(self.drills, slug("p", user_id), f"{self.records.user_name(user_id)}: open items",
                                         self._alert_rows(theirs)),
                    "by_workflow": ", ".join(f"{w} {n}" for w, n in by_wf.items()),
                })  # fmt: skip
            out.append({"region": region, "people": int(counts.size), "rows": rows})
        return out

    # ------------------------------------------------------------------ SA activity
    def activities(self) -> dict:
        """SA activity logged (CreatedDate) in the run's window and in the weeks before its end."""
        w = self.inputs.evaluation.window
        tasks = self.inputs.snapshot["Task"]
        sa = tasks[is_sa_activity(tasks)]
        weeks = self.cfg.report.activity_weeks
        periods = {"window": (w.since, w.until), "weeks": (w.until - pd.Timedelta(weeks=weeks), w.until)}
        frames = {p: sa[(sa["created"] >= a) & (sa["created"] < b)] for p, (a, b) in periods.items()}
        rows = {p: {k: self.records.line("Task", i) for k, i in zip(f["key"], f["id"], strict=True)} for p, f in frames.items()}

        def values(frame: pd.DataFrame, dimension: str) -> pd.Series:
            """Each activity's value(s) of a dimension, indexed by its key (multi-selects repeat it)."""
            if dimension in ("activity_types", "persona_levels", "products", "persona_functions"):
                lists = frame[dimension].map(lambda v: list(v) if v is not None and len(v) else [NOT_SET])
                return pd.Series(lists.to_numpy(), index=frame["key"].to_numpy()).explode()
            if dimension == "region":
                return pd.Series(region_of(frame["owner_id"], self.d).to_numpy(), index=frame["key"].to_numpy())
            if dimension == "sa":
                return pd.Series([self.records.user_name(o) for o in frame["owner_id"]], index=frame["key"].to_numpy(), dtype=object)
            return pd.Series(frame[dimension].fillna(NOT_SET).to_numpy(), index=frame["key"].to_numpy())

        order = {
            "activity_types": self.cfg.taxonomy.all_activity_types,
            "sentiment": list(self.cfg.taxonomy.sentiments),
            "persona_levels": list(self.cfg.taxonomy.persona_levels),
            "region": self.regions,
            # The handbook's report is per SA, per product positioned and per persona function
            # too; these have no closed list of values, so none is flagged as unknown.
            "sa": None,
            "products": None,
            "persona_functions": None,
        }
        tables = {}
        for dimension, known in order.items():
            free = known is None
            known = known or []
            by_period = {p: values(frames[p], dimension) for p in periods}
            seen = set().union(*(set(v.dropna()) for v in by_period.values()))
            labels = [k for k in known if k in seen] + sorted(seen - set(known))
            table = []
            for label in labels:
                row = {"label": label, "known": free or label in known or label == NOT_SET}
                for p in periods:
                    keys = by_period[p][by_period[p] == label].index.unique()
                    row[p] = self._drill(self.activity_drills, slug("t", dimension, label, p),
                                         f"{label} · {'window' if p == 'window' else f'last {weeks} weeks'}",
                                         [rows[p][k] for k in keys])  # fmt: skip
                table.append(row)
            if dimension == "activity_types":
                table.sort(key=lambda r: -r["weeks"]["n"])
            elif free:  # the busiest first, "(not set)" last
                table.sort(key=lambda r: (r["label"] == NOT_SET, -r["weeks"]["n"], -r["window"]["n"]))
            tables[dimension] = table
        totals = {p: self._drill(self.activity_drills, slug("t", "all", p), f"All SA activity · {p}", list(rows[p].values()))
                  for p in periods}  # fmt: skip
        return {"since": w.since, "until": w.until, "weeks": weeks, "tables": tables, "totals": totals}

    # ------------------------------------------------------------------ technical evaluations
    def evaluations(self) -> dict:
        """The current fiscal quarter's technical evaluations (proofs of value): started, ended,
        their outcomes, how long they took, and the ones open the longest."""
        q = self.quarter
        o = self.inputs.snapshot["Opportunity"]
        region = region_of(o["sa"].where(o["sa"].notna(), o["owner_id"]), self.d)
        started = o[q.holds(o["te_start"])]
        ended = o[q.holds(o["te_end"])]

        def line(frame: pd.DataFrame) -> list[dict]:
            return [self.records.line("Opportunity", i) for i in frame["id"]]

        out = {"quarter": q, "started": self._drill(self.drills, "e-started", f"Evaluations started in {q.label}", line(started)),
               "ended": self._drill(self.drills, "e-ended", f"Evaluations ended in {q.label}", line(ended))}  # fmt: skip
        outcomes = []
        for status in (*OUTCOMES, None):
            these = ended[ended["te_status"] == status] if status else ended[~ended["te_status"].isin(OUTCOMES)]
            name = status or "No valid status"
            n = self._drill(self.drills, slug("e", name), f"Evaluations ended in {q.label}: {name}", line(these))
            outcomes.append({"status": name, **n, "rate": n["n"] / len(ended) if len(ended) else None})
        out["outcomes"] = outcomes
        timed = ended[ended["te_start"].notna() & (ended["te_end"] >= ended["te_start"])]
        days = (timed["te_end"] - timed["te_start"]).dt.days
        out["median_days"] = float(days.median()) if len(days) else None
        out["timed"] = self._drill(self.drills, "e-timed", f"Evaluations ended in {q.label} with a start date",
                                   [{**self.records.line("Opportunity", i), "note": f"{n} days"}
                                    for i, n in zip(timed["id"], days, strict=True)])  # fmt: skip
        as_of = pd.Timestamp(self.inputs.as_of)
        running = o[o["te_start"].notna() & (o["te_start"] <= as_of) & o["te_end"].isna() & ~o["is_closed"] & ~o["lost"]]
        running = running.assign(days=(as_of - running["te_start"]).dt.days).sort_values(["days", "id"], ascending=[False, True])
        out["open"] = self._drill(self.drills, "e-open", "Evaluations open (started, no end date)", line(running))
        out["longest"] = [{**self.records.line("Opportunity", r.id), "started": date_cell(r.te_start), "days": int(r.days),
                           "region": region[r.Index]} for r in running.head(self.cfg.report.longest_open).itertuples()]  # fmt: skip
        by_region = []
        for r in self.regions:
            here = region == r
            s, e = started[here[started.index]], ended[here[ended.index]]
            if not len(s) and not len(e):
                continue
            wins = e[e["te_status"] == "Win"]
            by_region.append({"region": r,
                              "started": self._drill(self.drills, slug("e", r, "started"), f"Started in {q.label} · {r}", line(s)),
                              "ended": self._drill(self.drills, slug("e", r, "ended"), f"Ended in {q.label} · {r}", line(e)),
                              "win": self._drill(self.drills, slug("e", r, "win"), f"Won in {q.label} · {r}", line(wins)),
                              "rate": len(wins) / len(e) if len(e) else None})  # fmt: skip
        out["by_region"] = by_region
        return out

    # ------------------------------------------------------------------ data quality
    def quality(self) -> dict:
        q = self.inputs.snapshot.quarantine
        quarantined = []
        for (obj, reason), rows in q.groupby(["object", "reason"], sort=True):
            lines = [{"label": as_text(r.record_id) or "(no Id)", "facts": as_text(r.detail), "note": "",
                      "url": self.records.url(obj, r.record_id) if re.fullmatch(ID_RE, as_text(r.record_id)) else None}
                     for r in rows.itertuples()]  # fmt: skip
            quarantined.append({"object": obj, "reason": reason,
                                **self._drill(self.drills, slug("q", obj, reason), f"Quarantined {obj}: {reason}", lines)})  # fmt: skip
        unrouted = []
        unrouted_alerts = self.alerts[self.alerts["unrouted"].astype(bool)]
        for wid, rows in unrouted_alerts.groupby("workflow", sort=False):
            unrouted.append({"wid": wid, **self._drill(self.drills, slug("u", wid), f"Unrouted {wid}", self._alert_rows(rows))})
        slack = dict(self.inputs.slack)
        users = slack.get("users") or []
        slack["users"] = [{**self.records.line("User", u["user_id"]), "digests": u["digests"], "sent_to": u["sent_to"]} for u in users]
        return {"quarantined": quarantined, "quarantined_total": len(q), "unrouted": unrouted,
                "unrouted_total": len(unrouted_alerts), "slack": slack}  # fmt: skip

    # ------------------------------------------------------------------ alert memory
    def memory(self) -> dict:
        """Ages of the open items, time to fix, fixes per week and snoozes, from the alert state.

        The open items are this evaluation's hygiene alerts (what the digests show), aged by
        their episodes; fixes are the episodes the state resolved."""
        m = self.inputs.memory
        if not m or m.get("down") or not m["days"] or (m.get("began") or self.inputs.as_of) >= self.inputs.as_of:
            # No evaluation before this one (the state began with this snapshot): every age would
            # read 0 days, which no manager should believe.
            return {"available": False, "down": m.get("down") if m else None}
        as_of = self.inputs.as_of
        first = {(e["workflow"], e["record_key"]): e["first_seen"] for e in m["episodes"] if e["resolved_on"] is None}
        issues = self.alerts[~self.alerts["news"]].drop_duplicates(["workflow", "record_id"])
        keys = zip(issues["workflow"], issues["record_id"].astype(str).str.slice(0, 15), strict=True)
        ages = pd.Series([(as_of - first.get(k, as_of)).days for k in keys], index=issues.index, dtype="int64")
        bands = pd.cut(ages, [-1, *AGE_BANDS[1:], 10**6], labels=AGE_BAND_LABELS)

        def by(column: str, values: list[str]) -> list[dict]:
            table = pd.crosstab(issues[column], bands).reindex(index=values, columns=AGE_BAND_LABELS, fill_value=0)
            rows = []
            for v in values:
                mine = ages[issues[column] == v]
                if mine.empty:
                    continue
                rows.append({"label": v, "bands": [int(n) for n in table.loc[v]], "n": len(mine),
                             "median": float(mine.median()), "p90": float(mine.quantile(0.9))})  # fmt: skip
            return rows

        # Only fixes count (WORKFLOWS.md "Alert memory"): an item that left the scope is gone, not fixed.
        fixed = [e for e in m["episodes"] if e["resolved_on"] is not None and e.get("how") == "fixed"]
        days_to_fix = pd.Series([(e["resolved_on"] - e["first_seen"]).days for e in fixed], dtype="float64")
        weeks = self.cfg.report.activity_weeks
        week_of = [e["resolved_on"] - timedelta(days=e["resolved_on"].weekday()) for e in fixed]
        starts = sorted({as_of - timedelta(days=as_of.weekday() + 7 * i) for i in range(weeks)})
        people = pd.Series([_first_user(e["recipients"]) for e in fixed], dtype=object)
        region = region_of(people, self.d) if len(fixed) else pd.Series([], dtype=object)
        per_week = pd.DataFrame({"week": week_of, "person": people, "region": region})

        def weekly(column: str, label) -> list[dict]:
            if per_week.empty:
                return []
            counts = per_week[per_week["week"].isin(starts)].groupby([column, "week"]).size()
            out = []
            for key in sorted({k for k, _ in counts.index}, key=str):
                out.append({"label": label(key), "weeks": [int(counts.get((key, w), 0)) for w in starts]})
            return sorted(out, key=lambda r: -sum(r["weeks"]))

        trend = []
        for day in m["days"]:
            open_n = sum(1 for e in m["episodes"] if e["first_seen"] <= day and (e["resolved_on"] is None or e["resolved_on"] > day))
            trend.append({"day": day, "open": open_n, "fixed": sum(1 for e in fixed if e["resolved_on"] == day)})
        snoozed = [{"line": self.records.line(object_of(s["record_key"]), s["record_key"], ""), "workflow": s["workflow"],
                    "until": s["until"], "by": s["snoozed_by"], "reason": s["reason"]}
                   for s in m["snoozes"] if s["until"] > as_of]  # fmt: skip
        return {
            "available": True, "bands": AGE_BAND_LABELS,
            "by_region": by("region", self.regions), "by_workflow": by("workflow", self.workflows),
            "median": float(ages.median()) if len(ages) else None, "p90": float(ages.quantile(0.9)) if len(ages) else None,
            "fixed": len(fixed), "median_days_to_fix": float(days_to_fix.median()) if len(fixed) else None,
            "weeks": starts, "fixed_by_region": weekly("region", str),
            "fixed_by_person": weekly("person", lambda u: self.records.user_name(u))[: self.cfg.report.top_sas * 4],
            "trend": trend, "snoozes": snoozed,
        }  # fmt: skip

    # ------------------------------------------------------------------ all of it
    def build(self) -> dict:
        matrix = self.matrix()
        issues = self.alerts[~self.alerts["news"]]
        news = self.alerts[self.alerts["news"]]
        previous = self.inputs.trend[-2] if len(self.inputs.trend) > 1 else None
        prev_issues = None
        if previous:
            prev_issues = sum(n for w, n in previous["workflows"].items() if w not in self.cfg.report.news_workflows)
        activity = self.activities()
        evaluations = self.evaluations()
        quality = self.quality()
        regions = self.region_summary(matrix, activity, evaluations)
        people = self.people()
        return {
            "as_of": self.inputs.as_of, "snapshot": self.inputs.snapshot_name, "previous": self.inputs.previous_name,
            "taken_at": self.inputs.snapshot.taken_at, "window": self.inputs.evaluation.window,
            "issues": len(issues), "issues_delta": None if prev_issues is None else len(issues) - prev_issues,
            "news": len(news), "matrix": matrix, "region_issues": self.region_issues(matrix), "regions": regions,
            "people": people, "activity": activity, "evaluations": evaluations, "quality": quality,
            "trend": self.inputs.trend, "memory": self.memory(),
            # Proofs of Value (spec v3): None for an org without them; one page per region.
            "povs": pov_section(self),
            "region_pages": self.region_pages(regions, people),
        }  # fmt: skip

    def region_pages(self, regions: list[dict], people: list[dict]) -> list[dict]:
        """One page per region (the handbook lists one SA dashboard per region): its summary row,
        its open alerts by workflow, its SAs, its Proofs of Value."""
        matrix = self.matrix_rows
        by_region = {g["region"]: g for g in people}
        pages = []
        for row in regions:
            region = row["region"]
            i = self.regions.index(region)
            alerts = [{"wid": r["wid"], "title": r["title"], "news": r["news"], **r["cells"][i]} for r in matrix if r["cells"][i]["n"]]
            pages.append({"region": region, "file": f"region-{slug(region)}.html", "summary": row, "alerts": alerts,
                          "people": by_region.get(region), "povs": pov_section(self, region)})  # fmt: skip
        return pages

    def region_summary(self, matrix: dict, activity: dict, evaluations: dict) -> list[dict]:
        """One row per region: its open issues, news, activity and evaluations."""
        rows = []
        act = {p: {r["label"]: r[p] for r in activity["tables"]["region"]} for p in ("window", "weeks")}
        te = {r["region"]: r for r in evaluations["by_region"]}
        for i, region in enumerate(self.regions):
            issue = sum(r["cells"][i]["n"] for r in matrix["rows"] if not r["news"])
            news = sum(r["cells"][i]["n"] for r in matrix["rows"] if r["news"])
            if not (issue or news or region in act["weeks"] or region in te):
                continue
            rows.append({"region": region, "issues": issue, "news": news, "href": f"#{slug('r', region)}",
                         "window": act["window"].get(region, {"n": 0, "href": None}),
                         "weeks": act["weeks"].get(region, {"n": 0, "href": None}),
                         "started": te.get(region, {}).get("started", {"n": 0, "href": None}),
                         "ended": te.get(region, {}).get("ended", {"n": 0, "href": None})})  # fmt: skip
        return rows


# Age bands of open items, in days: [0, 7), [7, 14), [14, 30), 30 and more.
AGE_BANDS = (0, 6, 13, 29)


AGE_BAND_LABELS = ["under 7 days", "7-13 days", "14-29 days", "30+ days"]


def _first_user(recipients: list[str]) -> str | None:
    """The person an episode was addressed to (its first user recipient)."""
    return next((r.split(":", 1)[1] for r in recipients if r.startswith("user:")), None)


def alert_memory(cfg: Config, as_of: date, state_url: str | None = None) -> dict:
    """What the report shows of the alert state; a state that is down is said, not fatal."""
    from sa_hygiene.state.alerts import open_state
    from sa_hygiene.state.db import DatabaseError

    since = as_of - timedelta(days=max(7 * cfg.report.activity_weeks, cfg.report.trend_snapshots))
    try:
        with open_state(cfg, cfg.state.url or state_url) as state:
            episodes, days = state.history(since)
            return {"episodes": episodes, "days": days, "snoozes": state.all_snoozes(), "began": state.first_recorded()}
    except DatabaseError as exc:
        log.warning("report without alert memory: %s", exc)
        return {"down": str(exc)}

