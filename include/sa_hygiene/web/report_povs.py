"""The report's Proofs of Value section (spec v3), and the numbers of each region's page.

The handbook lists a "Proof of Values" dashboard among the SA reports; GitLab's POV page sets
its guidelines: a POV lasts 1 to 8 weeks (``thresholds.pov_max_days``), and an SA runs at most 3
at once (``thresholds.pov_max_running``). Every number drills down to its POVs (or people), each
linked to Salesforce. An org without the object (``Snapshot.absent``) has no section at all.
Pure, like ``report_model``: the model's drills and records in, a dict for the templates out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from sa_hygiene.web.report_records import region_of, slug

if TYPE_CHECKING:
    from sa_hygiene.web.report_model import ReportModel

POV = "Proof_of_Value__c"
NO_RESULT = "No result"


def pov_rows(model: ReportModel) -> pd.DataFrame | None:
    """The snapshot's POVs with their region (their SA's), days running and opportunity outcome;
    None for an org without the object."""
    snap = model.inputs.snapshot
    if POV in snap.absent or POV not in snap.tables:
        return None
    p = snap[POV].copy()
    p["region"] = region_of(p["owner_id"], model.d)
    as_of = pd.Timestamp(model.inputs.as_of)
    p["days"] = (as_of - p["start_date"]).dt.days
    o = snap["Opportunity"].set_index("key")
    opp_key = p["opportunity_id"].str.slice(0, 15)
    won = opp_key.map(o["is_won"]).fillna(False).astype(bool) & opp_key.map(o["is_closed"]).fillna(False).astype(bool)
    lost = opp_key.map(o["lost"]).fillna(False).astype(bool)
    found = opp_key.isin(o.index)
    p["outcome"] = ["Won" if w else "Lost" if lo else "Open" if f else "No opportunity"
                    for w, lo, f in zip(won, lost, found, strict=True)]  # fmt: skip
    return p


def pov_section(model: ReportModel, region: str | None = None) -> dict | None:
    """The POV numbers of the whole report, or of one ``region``'s page (drill ids prefixed by it)."""
    p = pov_rows(model)
    if p is None:
        return None
    cfg = model.cfg
    pov = cfg.proofs_of_value
    if region is not None:
        p = p[p["region"] == region]
    prefix = ("pov",) if region is None else ("pov", region)
    where = "" if region is None else f" · {region}"
    ids: list[str] = []  # every drill of the section, for the page to render

    def lines(frame: pd.DataFrame, note=None) -> list[dict]:
        return [model.records.line(POV, i, note(r) if note else "") for i, r in zip(frame["id"], frame.itertuples(), strict=True)]

    def drill(name: str, title: str, frame: pd.DataFrame, note=None) -> dict:
        cell = model._drill(model.drills, slug(*prefix, name), title + where, lines(frame, note))
        ids.append(cell["id"])
        return cell

    statuses = list(pov.statuses)
    regions = [r for r in model.regions if (p["region"] == r).any()]
    by_region = []
    for r in regions:
        here = p[p["region"] == r]
        by_region.append({"region": r, "href": f"region-{slug(r)}.html",
                          "cells": [drill(f"{r}-{s}", f"POVs {s} · {r}", here[here["status"] == s]) for s in statuses],
                          "total": drill(f"{r}-all", f"POVs · {r}", here)})  # fmt: skip
    totals = [drill(f"all-{s}", f"POVs {s}", p[p["status"] == s]) for s in statuses]

    max_days, limit = cfg.thresholds.pov_max_days, cfg.thresholds.pov_max_running
    running = p[p["status"].isin(pov.running)]
    weeks = lambda r: f"week {int(r.days) // 7 + 1}" if pd.notna(r.days) and r.days >= 0 else "not started"  # noqa: E731
    guideline = [
        {"label": f"Within {max_days // 7} weeks", **drill("within", f"Running within {max_days // 7} weeks",
                                                            running[running["days"] < max_days], weeks)},
        {"label": f"Past {max_days // 7} weeks", **drill("past", f"Running past {max_days // 7} weeks",
                                                          running[running["days"] >= max_days], weeks)},
        {"label": "No start date", **drill("nostart", "Running without a start date", running[running["days"].isna()])},
    ]  # fmt: skip

    people = []
    for owner, mine in running.groupby(running["owner_id"].str.slice(0, 15), sort=False):
        user_id = mine["owner_id"].iloc[0]
        people.append({"name": model.records.user_name(user_id), "url": model.records.url("User", user_id),
                       "region": mine["region"].iloc[0], "over": len(mine) > limit,
                       **drill(f"sa-{owner}", f"POVs {model.records.user_name(user_id)} runs", mine, weeks)})  # fmt: skip
    people.sort(key=lambda r: (-r["n"], r["name"]))

    q = model.quarter
    done = p[p["status"].isin(pov.completed) & q.holds(p["end_date"])]
    results = []
    outcomes = ["Won", "Lost", "Open", "No opportunity"]
    for result in [*pov.results, None]:
        these = done[done["result"] == result] if result else done[~done["result"].isin(pov.results)]
        name = result or NO_RESULT
        results.append({"result": name, **drill(f"r-{name}", f"Completed in {q.label}: {name}", these),
                        "rate": len(these) / len(done) if len(done) else None,
                        "outcomes": [drill(f"r-{name}-{o}", f"Completed in {q.label}: {name}, opportunity {o}",
                                           these[these["outcome"] == o]) for o in outcomes]})  # fmt: skip
    return {"statuses": statuses, "by_region": by_region, "totals": totals, "total": drill("all", "POVs", p),
            "guideline": guideline, "max_weeks": max_days // 7, "limit": limit, "people": people,
            "over_limit": sum(1 for r in people if r["over"]), "quarter": q, "results": results, "outcomes": outcomes,
            "completed": drill("completed", f"Completed in {q.label}", done), "drills": ids, "region": region}  # fmt: skip
