"""The false-claims check: is each "N fixed since your last digest" of a demo's outbox true?

A digest that celebrates fixes nobody made teaches people to ignore it (issue #21: 64 of 71
listed fixes were false). So the demo checks its own claims against its own org: a claim
(a record and the workflows it was listed under) is true when the record changed, between
the snapshot of the day before the claim and the snapshot of the claim's day (the demo's
digests are daily), in a field its workflow's complaint reads (``week.fields_of``); a record the complaint reads
through other records (a meeting is "logged" by an activity, a tech evaluation is stalled until
one is logged) is true when the record changed or, for a meeting, an activity appeared on its
opportunity by its owner, for an opportunity, an activity appeared on it, or, for a Proof of
Value, its opportunity changed.

Only the records a digest names can be checked (it names the first few, "and N more"): the
counts say how many were checked.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

_CLAIM = re.compile(r"(\d+) (?:items? )?fixed since your last digest\*: (.*)")
_LINK = re.compile(r"<https?://[^|>]*/lightning/r/(\w+)/(\w{15,18})/view\|[^>]*>(?: \(([^)]*)\))?")
IGNORED = {"LastModifiedDate", "SystemModstamp"}


def claims_in(outbox: Path, runs: list[str]) -> list[dict]:
    """The fixed claims of some run folders: {total, listed: [(object, record_id, [titles])]}."""
    found = []
    for run in runs:
        path = outbox / run / "calls.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            call = json.loads(line)
            if call["method"] != "chat.postMessage":
                continue
            for text in _texts(call["args"]):
                for m in _CLAIM.finditer(text):
                    listed = [(o, i, [html.unescape(t) for t in (titles or "").split("; ") if t])
                              for o, i, titles in _LINK.findall(m[2])]  # fmt: skip
                    found.append({"run": run, "total": int(m[1]), "listed": listed})
    return found


def _texts(args: dict) -> list[str]:
    texts = []
    for block in args.get("blocks") or []:
        t = (block.get("text") or {}).get("text")
        if t:
            texts.append(t)
    return texts or [args.get("text") or ""]


def check_claims(root: Path, cfg) -> list[dict]:
    """Per day of the demo in ``root``: fixed claims made, checked, false (and the false ones)."""
    from sa_hygiene.demo.week import fields_of

    outbox, store = root / "outbox", root / "store"
    days = json.loads((outbox / "days.json").read_text(encoding="utf-8"))
    titles = {wf.title: wid for wid, wf in cfg.workflows.items()}
    out = []
    for entry in days:
        day = date.fromisoformat(entry["day"])
        claims = claims_in(outbox, entry["runs"])
        before, after = _snapshot(store, day - timedelta(days=1)), _snapshot(store, day)
        checked, false = 0, []
        for claim in claims:
            for obj, record_id, names in claim["listed"]:
                wids = [titles[n] for n in names if n in titles]
                fields = set()
                for wid in wids:
                    f = fields_of(cfg, wid)
                    fields = None if f is None or fields is None else fields | set(f)
                checked += 1
                if not _changed(before, after, obj, record_id, fields):
                    false.append({"run": claim["run"], "object": obj, "record_id": record_id, "workflows": wids})
        out.append({"day": entry["day"], "claims": sum(c["total"] for c in claims), "checked": checked,
                    "false": len(false), "false_by_workflow": dict(Counter(w for f in false for w in f["workflows"])),
                    "examples": false[:5]})  # fmt: skip
    return out


class _Snapshot:
    """One stored snapshot's raw tables, read on demand, rows by 15-character Id."""

    def __init__(self, folder: Path | None):
        self.folder, self.tables = folder, {}

    def rows(self, obj: str):
        if obj not in self.tables:
            import pyarrow.parquet as pq

            path = None if self.folder is None else self.folder / f"{obj}.parquet"
            frame = pq.read_table(path).to_pandas() if path and path.exists() else None
            if frame is not None:
                frame = frame[frame["Id"].astype(str).str.len() >= 15]
                frame.index = frame["Id"].astype(str).str[:15]
                frame = frame[~frame.index.duplicated()]
            self.tables[obj] = frame
        return self.tables[obj]


def _snapshot(store: Path, day: date) -> _Snapshot:
    found = sorted(p for p in store.glob(f"{day:%Y%m%d}T*") if p.is_dir())
    return _Snapshot(found[-1] if found else None)


def _changed(before: _Snapshot, after: _Snapshot, obj: str, record_id: str, fields: set | None) -> bool:
    a, b = before.rows(obj), after.rows(obj)
    key = record_id[:15]
    if a is None or b is None or key not in a.index or key not in b.index:
        return True  # created or deleted: not a claim this check can refute
    old, new = a.loc[key], b.loc[key]
    names = sorted(fields) if fields is not None else [c for c in a.columns if c not in IGNORED]
    if any(_differ(old.get(n), new.get(n)) for n in names):
        return True
    if fields is None and obj in ("Event", "Opportunity"):
        # Read through activities: a meeting is logged by an activity on its opportunity by its
        # owner; an opportunity's tech evaluation is no longer stalled once an activity is logged on it.
        tasks_before, tasks_after = before.rows("Task"), after.rows("Task")
        if tasks_before is None or tasks_after is None:
            return False
        new_tasks = tasks_after[~tasks_after.index.isin(tasks_before.index)]
        on_record = new_tasks["WhatId"].astype(str).str[:15] == (str(old["WhatId"])[:15] if obj == "Event" else key)
        if obj == "Event":
            on_record &= new_tasks["OwnerId"] == old["OwnerId"]
        return bool(on_record.any())
    if fields is None and obj == "Proof_of_Value__c":  # read through its opportunity (pov-tech-eval, pov-opportunity)
        opportunity = old.get("Opportunity__c")
        return isinstance(opportunity, str) and _changed(before, after, "Opportunity", opportunity, None)
    return False


def _differ(x, y) -> bool:
    import pandas as pd

    if pd.isna(x) if not isinstance(x, (list, tuple)) else False:
        return not (pd.isna(y) if not isinstance(y, (list, tuple)) else False)
    return bool(x != y)


def claims_line(day: dict, figures: dict | None = None) -> str:
    ended = ""
    if figures is not None:
        ended = (f"{figures['fixed']} fixed vs {figures['gone']} gone; " if figures.get("fixed") is not None
                 else f"{figures['ended']} fixed+gone (no 'how' yet); ")  # fmt: skip
    by = ", ".join(f"{w} {n}" for w, n in sorted(day["false_by_workflow"].items()))
    return (f"{day['day']}: {ended}{day['claims']} fixed claims in digests, {day['checked']} named and checked, "
            f"{day['false']} false" + (f" ({by})" if by else ""))
