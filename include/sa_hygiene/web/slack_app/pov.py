"""The Proof of Value forms' substance (issue 26; the handbook's "Add a Proof of Value" and
"Update a Proof of Value"): the records they show, how a submission is checked, what they write.

A submission is checked as what the POV will be: its row, with the owner's other POVs and the
opportunity it names, prepared by the engine's own ``prepare_frames`` into the ``povs`` and
``pov_owners`` frames and judged by the engine's predicates against the expectations of every
enabled workflow reading those frames (the ``pov-*`` rules of ``workflows.yaml``). So the
guidelines (1 to 8 weeks, success criteria agreed before it starts, at most 3 running at once)
are the rules' own thresholds, never a second copy: the form refuses exactly what a digest would
flag, in the rules' own words, on the field that puts it right. What no field of the form can
change (its opportunity's tech-evaluation start date) is never a refusal. A POV that already ran
one too many before the form is not refused for it either: the form did not cause that.

The Add form asks for a planned end date: the POV is checked as it will be on that day, still
running with no end date recorded, so a plan of 8 weeks or more is what ``pov-overdue`` would flag
then. Salesforce's ``End_Date__c`` is the day a POV ended (``pov-overdue`` reads a set end date as
"ended"), so the planned end is checked and said so, never written there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pandas as pd

from sa_hygiene.contract.config import Config, Workflow
from sa_hygiene.delivery.blockkit import ADD_POV, UPDATE_POV, cut, esc, record_url
from sa_hygiene.engine.predicates import unmet
from sa_hygiene.engine.prepare import RunWindow, prepare_frames
from sa_hygiene.source.snapshot import Snapshot
from sa_hygiene.web.slack_app.items import RELATED_TO
from sa_hygiene.web.slack_app.tech_eval import _row, _text
from sa_hygiene.web.slack_app.views import _input, _option

POV = "Proof_of_Value__c"
FIX = "pov"  # the workflows' ``fix`` the Update form serves
ADD_VIEW = "sa_pov_add_form"  # callback_id of the Add a Proof of Value modal
UPDATE_VIEW = "sa_pov_update_form"  # callback_id of the Update a Proof of Value modal
FRAMES = ("povs", "pov_owners")
DATES = ("start_date", "end_date", "planned_end")
ADD_FIELDS = ("opportunity_id", "name", "start_date", "planned_end", "success_criteria")
UPDATE_FIELDS = ("status", "start_date", "end_date", "result", "success_criteria")
# The form block a rule's column is put right on: what the column of the engine's frame reads.
ADD_BLOCKS = {"end_date": "planned_end", "success_criteria": "success_criteria", "opportunity_open": "opportunity_id",
              "running_povs": "start_date", "result": "status"}  # fmt: skip
UPDATE_BLOCKS = {"end_date": "end_date", "success_criteria": "success_criteria", "opportunity_open": "status",
                 "running_povs": "status", "result": "result"}  # fmt: skip
NAME_CHARS = 80  # Salesforce's Name field
CRITERIA_CHARS = 3000


@dataclass
class Pov:
    """A POV as the forms show it: the snapshot's row with what this app wrote since on top."""

    id: str | None  # None: one the Add form is making
    name: str
    owner_id: str | None
    opportunity_id: str | None
    values: dict[str, str | None]  # UPDATE_FIELDS -> text as the form shows it (ISO dates), None when blank


def rule_workflows(cfg: Config) -> dict[str, Workflow]:
    """The enabled workflows reading the POV frames: the guidelines the forms apply."""
    return {k: wf for k, wf in cfg.enabled_workflows().items() if wf.frame in FRAMES}


def fix_workflows(cfg: Config) -> dict[str, Workflow]:
    """The enabled workflows whose items the Update form fixes (``fix: [pov]``)."""
    return {k: wf for k, wf in cfg.enabled_workflows().items() if FIX in wf.fix and wf.object == POV}


def has_povs(cfg: Config, snapshot: Snapshot) -> bool:
    """The org has the object (an org without it gets no POV button) and a POV rule runs."""
    return POV in snapshot.tables and POV not in snapshot.absent and bool(rule_workflows(cfg))


def pov_of(snapshot: Snapshot, pov_id: str, pending: Mapping[str, str | None] | None = None) -> Pov | None:
    """The POV of the latest snapshot (None when it has none), ``pending`` values on top."""
    row = _row(snapshot, POV, pov_id)
    if row.empty:
        return None
    r = row.iloc[0].to_dict()
    values = {f: _text(r.get(f)) for f in UPDATE_FIELDS}
    values.update({f: v for f, v in (pending or {}).items() if f in UPDATE_FIELDS})
    return Pov(str(r["id"]), str(r.get("name") or r["id"]), _text(r.get("owner_id")), _text(r.get("opportunity_id")), values)


def opportunity_label(snapshot: Snapshot, opportunity_id: str | None) -> str | None:
    row = _row(snapshot, "Opportunity", opportunity_id)
    return None if row.empty else str(row.iloc[0].get("name") or opportunity_id)


def new_status(cfg: Config, start: str | None, today: date) -> str:
    """The status a new POV is created with: running from its start date, planned before it."""
    pov = cfg.proofs_of_value
    planned = next((s for s in pov.active if s not in pov.running), pov.active[0] if pov.active else pov.statuses[0])
    running = pov.running[0] if pov.running else planned
    when = pd.to_datetime(start, errors="coerce") if start else pd.NaT
    return running if not pd.isna(when) and when.date() <= today else planned


def running_count(cfg: Config, snapshot: Snapshot, owner_id: str | None, leave_out: str | None = None) -> int:
    """How many POVs ``owner_id`` runs in the snapshot (``leave_out``: the one a form edits)."""
    table = snapshot.tables.get(POV)
    if table is None or not owner_id:
        return 0
    mine = table[(table["owner_id"].str.slice(0, 15) == owner_id[:15]) & table["status"].isin(cfg.proofs_of_value.running)]
    return int((mine["key"] != (leave_out or "")[:15]).sum())


# --------------------------------------------------------------------------- the check


def with_live_povs(snapshot: Snapshot, owner_id: str, live: Mapping[str, str | None]) -> Snapshot:
    """The snapshot with ``owner_id``'s POVs as Salesforce has them now (``live``: {Id: status}):
    one created since the snapshot (from Slack a minute ago, or in Salesforce) counts toward the
    owner's load at once, one ended or given away no longer does. A POV the snapshot lacks has its
    status only: the rules on the owner's load read no more of the others."""
    table = snapshot[POV]
    owner = owner_id[:15]
    status = {i[:15]: s for i, s in live.items()}
    theirs = table["owner_id"].str.slice(0, 15) == owner
    kept = table[theirs & table["key"].isin(list(status))].copy()
    kept["status"] = pd.Series(kept["key"].map(status).tolist(), index=kept.index, dtype=table["status"].dtype)
    known = set(kept["key"])
    added = _typed_rows(table, [{"id": i, "key": i[:15], "owner_id": owner_id, "status": s}
                                for i, s in live.items() if i[:15] not in known])  # fmt: skip
    povs = pd.concat([table[~theirs], kept, added], ignore_index=True)
    return replace(snapshot, tables={**snapshot.tables, POV: povs})


def _typed_rows(table: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``rows`` (logical fields, ISO dates) as rows of the snapshot's POV ``table``, typed as it is."""
    out = pd.DataFrame([{c: row.get(c) for c in table.columns} for row in rows], columns=table.columns)
    for c in table.columns:  # typed as the snapshot types them
        if str(table[c].dtype).startswith("datetime"):
            when = [pd.to_datetime(row.get(c), errors="coerce") if c in ("start_date", "end_date") and row.get(c) else None
                    for row in rows]  # fmt: skip
            out[c] = pd.Series([None if w is None or pd.isna(w) else w for w in when], dtype=table[c].dtype)
        else:
            out[c] = out[c].astype(table[c].dtype)
    return out


def _frames(cfg: Config, snapshot: Snapshot, row: dict[str, Any], as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the POV's row of the ``povs`` frame, its owner's row of ``pov_owners``) as they will be once
    ``row`` (logical fields) is saved: prepared by the engine from the owner's other POVs, the POV's
    opportunity and the users they name only, so a form is checked well inside Slack's 3 seconds."""
    table = snapshot[POV]
    key = (row.get("id") or "")[:15]
    owner = (row.get("owner_id") or "")[:15]
    others = table[(table["owner_id"].str.slice(0, 15) == owner) & (table["key"] != key)] if owner else table.iloc[0:0]
    mine = _typed_rows(table, [{**row, "key": key or "new"}])
    povs = pd.concat([mine, others], ignore_index=True)
    opps = snapshot["Opportunity"]
    users = snapshot["User"]
    named = {owner} | {str(v)[:15] for v in users.loc[users["key"] == owner, "manager_id"].dropna()}
    tables = {**snapshot.tables, POV: povs, "Opportunity": opps[opps["key"].isin(list({str(v)[:15] for v in povs["opportunity_id"].dropna()}))],
              "User": users[users["key"].isin(list(named))], "Task": snapshot["Task"].iloc[0:0]}  # fmt: skip
    mini = Snapshot(tables, snapshot.quarantine.iloc[0:0], snapshot.path)
    frames, _ = prepare_frames(mini, None, cfg, RunWindow.of(as_of), only=set(FRAMES))
    owners = frames["pov_owners"]
    return frames["povs"].iloc[[0]], owners[owners["key"] == owner]


def _flagged(cfg: Config, frames: tuple[pd.DataFrame, pd.DataFrame], as_of: date) -> list[tuple[str, Any]]:
    """[(workflow, expectation)] the POV rules flag on the POV's row and its owner's row."""
    params = {**cfg.params(), "as_of": pd.Timestamp(as_of)}
    found: list[tuple[str, Any]] = []
    for wid, wf in rule_workflows(cfg).items():
        frame = frames[FRAMES.index(wf.frame)]
        if frame.empty:
            continue
        for expectations in unmet(frame, wf, params).values():
            found += [(wid, e) for e in expectations]
    return found


def _words(cfg: Config, wid: str, e: Any) -> str:
    """The rules' own words: a reason's wording, else the workflow's call to action (its title
    when the call names someone, as pov-load's ``{owner}`` does)."""
    wf = cfg.workflows[wid]
    text = cfg.reasons.get(e.reason or "") or wf.message.text or wf.title
    return wf.title if "{" in text else text


def _errors(cfg: Config, found: list[tuple[str, Any]], blocks: Mapping[str, str], keep: set[str] | None = None) -> dict[str, str]:
    errors: dict[str, str] = {}
    for wid, e in found:
        block = blocks.get(e.column)
        if block and (keep is None or block in keep):
            errors.setdefault(block, _words(cfg, wid, e))
    return errors


def _dates(form: Mapping[str, str | None], fields: tuple[str, ...]) -> dict[str, str]:
    return {f: "not a date" for f in fields if f in DATES and form.get(f) and pd.isna(pd.to_datetime(form[f], errors="coerce"))}


def add_refusals(cfg: Config, snapshot: Snapshot, owner_id: str | None, form: Mapping[str, str | None], today: date) -> dict[str, str]:
    """{block id: why} of what the Add form refuses; empty when it may be saved."""
    errors = _dates(form, ADD_FIELDS)
    if not form.get("name"):
        errors["name"] = "Name the Proof of Value."
    opp = form.get("opportunity_id")
    if not opp or _row(snapshot, "Opportunity", opp).empty:
        errors["opportunity_id"] = "Choose the opportunity the POV supports (an opportunity, not an account)."
    if not form.get("start_date"):
        errors["start_date"] = "When does it start?"
    if not form.get("planned_end"):
        errors["planned_end"] = "When is it planned to end?"
    if errors:
        return errors
    start, end = (pd.Timestamp(form[f]).date() for f in ("start_date", "planned_end"))
    if end < start:
        return {"planned_end": "It ends before it starts."}
    row = {"id": None, "name": form["name"], "opportunity_id": opp, "owner_id": owner_id, "status": new_status(cfg, form["start_date"], today),
           "start_date": form["start_date"], "end_date": None, "result": None, "success_criteria": form.get("success_criteria")}  # fmt: skip
    now = _flagged(cfg, _frames(cfg, snapshot, row, today), today)
    # As it will be on its planned end day, still running and no end recorded: pov-overdue's 8 weeks.
    running = cfg.proofs_of_value.running[0] if cfg.proofs_of_value.running else row["status"]
    at_end = _flagged(cfg, _frames(cfg, snapshot, {**row, "status": running}, max(end, today)), max(end, today))
    errors = _errors(cfg, now, ADD_BLOCKS, {"success_criteria", "opportunity_id", "start_date"})
    errors.update({k: v for k, v in _errors(cfg, at_end, ADD_BLOCKS, {"planned_end"}).items() if k not in errors})
    return errors


def update_refusals(cfg: Config, snapshot: Snapshot, pov: Pov, form: Mapping[str, str | None], today: date) -> dict[str, str]:
    """{block id: why} of what the Update form refuses; empty when it may be saved."""
    errors = _dates(form, UPDATE_FIELDS)
    if not form.get("status"):
        errors["status"] = "Choose a status."
    if errors:
        return errors
    row = {"id": pov.id, "name": pov.name, "opportunity_id": pov.opportunity_id, "owner_id": pov.owner_id,
           **{f: form.get(f) for f in UPDATE_FIELDS}}  # fmt: skip
    found = _flagged(cfg, _frames(cfg, snapshot, row, today), today)
    running = cfg.proofs_of_value.running
    if pov.values.get("status") in running or form.get("status") not in running:  # the load is not this form's doing
        found = [(w, e) for w, e in found if e.column != "running_povs"]
    return _errors(cfg, found, UPDATE_BLOCKS)


def changes(pov: Pov, form: Mapping[str, str | None]) -> dict[str, str | None]:
    """The fields the Update form changes, by logical name (a blank field clears its value)."""
    return {f: form.get(f) for f in UPDATE_FIELDS if (form.get(f) or None) != (pov.values.get(f) or None)}


def api_fields(cfg: Config, fields: Mapping[str, str | None]) -> dict[str, str | None]:
    """A write's body by API name (the configured field map); ``None`` clears a field."""
    return {cfg.api_name(POV, f): v for f, v in fields.items()}


def new_pov(cfg: Config, snapshot: Snapshot, owner_id: str, form: Mapping[str, str | None], today: date) -> dict[str, str | None]:
    """The new POV's fields by logical name: the form's, its opportunity's account, the person
    adding it as its owner, the status its start date gives (the planned end is not written)."""
    opp = _row(snapshot, "Opportunity", form["opportunity_id"])
    account = _text(opp.iloc[0].get("account_id")) if not opp.empty else None
    fields = {"name": form["name"], "opportunity_id": form["opportunity_id"], "account_id": account, "owner_id": owner_id,
              "status": new_status(cfg, form["start_date"], today), "start_date": form["start_date"],
              "success_criteria": form.get("success_criteria")}  # fmt: skip
    return {f: v for f, v in fields.items() if v is not None}


# --------------------------------------------------------------------------- the modals


def _hints(cfg: Config) -> dict[str, str]:
    """The handbook's guidelines, with the rules' own thresholds."""
    t = cfg.thresholds
    weeks = f"{t.pov_max_days // 7} weeks" if t.pov_max_days % 7 == 0 else f"{t.pov_max_days} days"
    return {"duration": f"A POV lasts 1 to {weeks}: plan its end before day {t.pov_max_days} (the rules flag it then)",
            "criteria": "Success criteria agreed with the customer before the POV starts",
            "load": f"An SA runs at most {t.pov_max_running} POVs at a time"}  # fmt: skip


def _date(value: str | None) -> dict:
    return {"type": "datepicker", **({"initial_date": value} if value else {})}


def _text_input(value: str | None, chars: int, multiline: bool = False) -> dict:
    element = {"type": "plain_text_input", "max_length": chars, **({"multiline": True} if multiline else {})}
    return {**element, "initial_value": value[:chars]} if value else element


def _select(options: list[str], value: str | None) -> dict:
    options = options + ([value] if value and value not in options else [])  # shown as it is: the rules say what is wrong
    element = {"type": "static_select", "options": [_option(o, o) for o in options]}
    return {**element, "initial_option": _option(value, value)} if value else element


def _modal(callback_id: str, title: str, meta: dict, blocks: list[dict], submit: str = "Save") -> dict:
    return {"type": "modal", "callback_id": callback_id, "title": {"type": "plain_text", "text": title[:24]},
            "submit": {"type": "plain_text", "text": submit}, "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": json.dumps(meta), "blocks": blocks}  # fmt: skip


def _error_block(error: str | None) -> list[dict]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": cut(f":warning: *Not saved:* {esc(error)}", 3000)}}] if error else []


def add_view(cfg: Config, snapshot: Snapshot, owner_id: str, values: Mapping[str, str | None] | None = None, *,
             error: str | None = None) -> dict:  # fmt: skip
    """The Add modal: the opportunity pre-selected (a search like the log form's Related To)."""
    v = dict(values or {})
    hints = _hints(cfg)
    opp = {"type": "external_select", "action_id": RELATED_TO, "min_query_length": 0,
           "placeholder": {"type": "plain_text", "text": "Search opportunities"}}  # fmt: skip
    label = opportunity_label(snapshot, v.get("opportunity_id"))
    if label:
        opp["initial_option"] = {"text": {"type": "plain_text", "text": cut(label, 75) or v["opportunity_id"]}, "value": v["opportunity_id"]}
    running = running_count(cfg, snapshot, owner_id)
    head = (f"_{esc(hints['duration'])}. {esc(hints['criteria'])}. {esc(hints['load'])}: you run {running} now._\n"
            "_The planned end date is checked against the guideline, not saved: record the End Date when the POV ends._")  # fmt: skip
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}, *_error_block(error),
              _input("opportunity_id", "Opportunity", opp, "The open opportunity the POV supports"),
              _input("name", "Name", _text_input(v.get("name"), NAME_CHARS)),
              _input("start_date", "Start date", _date(v.get("start_date")), "In progress from this day; planned before it"),
              _input("planned_end", "Planned end date", _date(v.get("planned_end")), hints["duration"]),
              _input("success_criteria", "Success criteria", _text_input(v.get("success_criteria"), CRITERIA_CHARS, True),
                     hints["criteria"])]  # fmt: skip
    return _modal(ADD_VIEW, "Add a Proof of Value", {"owner": owner_id}, blocks)


def update_view(cfg: Config, snapshot: Snapshot, pov: Pov, values: Mapping[str, str | None] | None = None, *,
                channel: str = "", ts: str = "", error: str | None = None) -> dict:  # fmt: skip
    """The Update modal, pre-filled from the record (or ``values``, a submission shown again)."""
    v = dict(pov.values if values is None else values)
    hints = _hints(cfg)
    url = record_url(cfg.salesforce.instance_url, POV, pov.id or "")
    opp = opportunity_label(snapshot, pov.opportunity_id)
    head = f"*<{url}|{cut(esc(pov.name), 200)}>*" + (f" · {esc(opp)}" if opp else "")
    head += f"\n_{esc(hints['duration'])}. {esc(hints['load'])}._"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": cut(head, 3000)}}, *_error_block(error),
              _input("status", "Status", _select(list(cfg.proofs_of_value.statuses), v.get("status")), hints["load"]),
              _input("start_date", "Start date", _date(v.get("start_date"))),
              _input("end_date", "End date", _date(v.get("end_date")), "The day it ended: required once it runs past the guideline"),
              _input("result", "Result", _select(list(cfg.proofs_of_value.results), v.get("result")), "Once it is completed"),
              _input("success_criteria", "Success criteria", _text_input(v.get("success_criteria"), CRITERIA_CHARS, True),
                     hints["criteria"])]  # fmt: skip
    return _modal(UPDATE_VIEW, "Update a Proof of Value", {"pov": pov.id, "channel": channel, "ts": ts}, blocks)


def note_view(callback_id: str, title: str, text: str) -> dict:
    return {"type": "modal", "callback_id": callback_id, "title": {"type": "plain_text", "text": title[:24]},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}]}  # fmt: skip


def form_values(view: dict, fields: tuple[str, ...]) -> dict[str, str | None]:
    """The submitted form by field: stripped text, ISO dates, a chosen option's value; None when blank."""
    state = (view.get("state") or {}).get("values") or {}
    out: dict[str, str | None] = {}
    for f in fields:
        found = state.get(f) if isinstance(state.get(f), dict) else {}
        e = (found.get(f) or next(iter(found.values()), {})) if found else {}
        e = e if isinstance(e, dict) else {}
        value = e.get("selected_date") if f in DATES else (e.get("selected_option") or {}).get("value") if "selected_option" in e else e.get("value")
        out[f] = (value.strip() or None) if isinstance(value, str) else None
    return out


def metadata(view: dict) -> dict:
    return json.loads(view.get("private_metadata") or "{}")


# --------------------------------------------------------------------------- /sa search


def search_povs(cfg: Config, snapshot: Snapshot, query: str | None, limit: int = 10) -> list[Pov]:
    """The POVs whose names hold every word of ``query`` (ignoring case), active ones first."""
    table = snapshot.tables.get(POV)
    words = [w for w in (query or "").lower().split() if w][:8]
    if table is None or table.empty or not words:
        return []
    names = table["name"].fillna("").astype(str).str.lower()
    hit = pd.Series(True, index=table.index)
    for w in words:
        hit &= names.str.contains(w, regex=False)
    found = table[hit].assign(_idle=~table["status"].isin(cfg.proofs_of_value.active)).sort_values(["_idle", "name"]).head(limit)
    return [p for p in (pov_of(snapshot, i) for i in found["id"]) if p is not None]


def pov_cards(cfg: Config, snapshot: Snapshot, povs: list[Pov]) -> list[dict]:
    """A card per POV: its link, status and opportunity, and Update a Proof of Value."""
    blocks: list[dict] = []
    for p in povs:
        url = record_url(cfg.salesforce.instance_url, POV, p.id or "")
        detail = " · ".join(esc(x) for x in ("Proof of Value", p.values.get("status"), opportunity_label(snapshot, p.opportunity_id)) if x)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f"*<{url}|{cut(esc(p.name), 1000)}>*\n{detail}", 3000)}})
        blocks.append({"type": "actions", "block_id": f"pov:{p.id}", "elements": [
            {"type": "button", "action_id": UPDATE_POV, "text": {"type": "plain_text", "text": "Update a Proof of Value"}, "value": p.id}]})  # fmt: skip
    return blocks


def add_button(opportunity_id: str) -> dict:
    return {"type": "button", "action_id": ADD_POV, "text": {"type": "plain_text", "text": "Add a Proof of Value"}, "value": opportunity_id}
