"""The "Update tech evaluation" form's substance (the handbook's "Update Opportunity" button): the
record it shows, how a submission is checked, what it writes, and the Chatter post it drafts
for a closed opportunity.

The form edits the four SA Validated Tech Evaluation fields and the Primary SA. A submission is
checked as what the opportunity will be: the record's own row with the typed values put in,
prepared by the engine's own ``prepare_frames`` (so every derived column, the stage rank, the
recent activity, is the engine's) and judged by the engine's predicates against the
expectations of every workflow whose ``fix`` names ``tech_eval`` (``workflows.yaml``). The form
refuses exactly what those workflows would flag on the fields it edits, in their own words (a
reason's wording, else the workflow's call to action); what no field of the form can fix (a
stalled evaluation's missing activity) is never a refusal. A handbook change in the YAML
changes the form too.

A closed opportunity cannot be edited by an SA: the handbook has them ask ``@Sales-Support`` in
the record's Chatter feed, so the form drafts that post from the values entered instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from sa_hygiene.contract.config import Config, Workflow
from sa_hygiene.delivery.blockkit import cut, esc, record_url
from sa_hygiene.engine.predicates import unmet
from sa_hygiene.engine.prepare import RunWindow, prepare_frames
from sa_hygiene.source.snapshot import Snapshot
from sa_hygiene.web.slack_app.items import TECH_EVAL_VIEW
from sa_hygiene.web.slack_app.views import _input, _option  # the log form's inputs: one look for both forms

FIX = "tech_eval"  # the workflows' ``fix`` this form serves
# The form's fields (logical names of the Opportunity field map), in the form's order; each is
# also its block id.
FIELDS = ("sa", "te_start", "te_end", "te_status", "te_details")
DATES = ("te_start", "te_end")
# The handbook's names of the fields, for the form and the Chatter post.
LABELS = {"sa": "Primary SA", "te_start": "SA Validated Tech Evaluation Start Date",
          "te_end": "SA Validated Tech Evaluation End Date", "te_status": "SA Validated Tech Evaluation Close Status",
          "te_details": "SA Validated Tech Evaluation Close Details"}  # fmt: skip
SALES_SUPPORT = "@Sales-Support"
DETAILS_CHARS = 255  # a short 1-2 line description (the handbook)


@dataclass
class Record:
    """The opportunity as the form shows it: the snapshot's row, with what this app wrote since
    (``pending``) on top, since the next snapshot has not seen it yet."""

    id: str
    name: str
    owner_id: str | None
    is_closed: bool
    values: dict[str, str | None]  # FIELDS -> text as the form shows it (ISO dates), None when blank
    stage: str = ""
    sa_options: list[tuple[str, str]] = field(default_factory=list)  # (User Id, name) the Primary SA may be


def fix_workflows(cfg: Config) -> dict[str, Workflow]:
    """The enabled workflows whose items this form fixes, and whose rules it therefore applies."""
    return {k: wf for k, wf in cfg.enabled_workflows().items() if FIX in wf.fix and wf.object == "Opportunity"}


def status_options(cfg: Config) -> list[str]:
    """The close statuses the rules accept (their ``in_set`` on the status): what the select offers."""
    out: list[str] = []
    for wf in fix_workflows(cfg).values():
        for e in wf.expect:
            if e.column == "te_status" and e.expectation == "in_set" and isinstance(e.values, list):
                out += [str(v) for v in e.values if str(v) not in out]
    return out


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp | date):
        return pd.Timestamp(value).date().isoformat()
    text = str(value).strip()
    return text or None


def _row(snapshot: Snapshot, obj: str, record_id: str | None) -> pd.DataFrame:
    table = snapshot.tables.get(obj)
    if table is None or not isinstance(record_id, str):
        return pd.DataFrame()
    return table[table["key"] == record_id[:15]].head(1)


def record_of(cfg: Config, snapshot: Snapshot, opportunity_id: str, pending: Mapping[str, str | None] | None = None) -> Record | None:
    """The opportunity of the latest snapshot (None when it has none), ``pending`` values on top."""
    row = _row(snapshot, "Opportunity", opportunity_id)
    if row.empty:
        return None
    r = row.iloc[0].to_dict()
    values = {f: _text(r.get(f)) for f in FIELDS}
    values.update({f: v for f, v in (pending or {}).items() if f in FIELDS})
    users = snapshot["User"]
    sas = users[users["role_type"].isin(cfg.sa_role_types) & users["is_active"].astype(bool)] if "role_type" in users else users
    options = sorted(((u["id"], str(u.get("name") or u["id"])) for u in sas.to_dict("records")), key=lambda o: o[1].lower())
    current = values.get("sa")
    if current and all(u[:15] != current[:15] for u, _ in options):
        hit = _row(snapshot, "User", current)
        options.insert(0, (current, str(hit.iloc[0]["name"]) if not hit.empty else current))
    return Record(str(r["id"]), str(r.get("name") or r["id"]), _text(r.get("owner_id")), bool(r.get("is_closed")), values,
                  str(r.get("stage") or ""), options)  # fmt: skip


def as_of_frame(cfg: Config, snapshot: Snapshot, forms: Mapping[str, Mapping[str, str | None]], as_of: date) -> pd.DataFrame:
    """The records' rows of the engine's opportunities frame as they will be once each one's form
    (``forms``: opportunity Id -> form) is saved: the snapshot's rows with the forms' values typed
    as a snapshot types them, their activities (the stalled rule reads them) and the users they
    name, prepared by the engine itself. Only what the rows reference is handed over, so a form
    is checked in well under Slack's three seconds whatever the size of the org."""
    opps = snapshot["Opportunity"]
    keys = {k[:15]: k for k in forms}
    opp = opps[opps["key"].isin(list(keys))].drop_duplicates("key").copy()
    if opp.empty:
        return pd.DataFrame()
    given = [forms[keys[k]] for k in opp["key"]]
    for f in FIELDS:
        values = [g.get(f) or None for g in given]
        if f in DATES:
            opp[f] = pd.Series(pd.to_datetime(pd.Series(values, dtype=object), errors="coerce").to_numpy(), index=opp.index).astype(opp[f].dtype)
        else:
            opp[f] = pd.Series(values, index=opp.index, dtype=opp[f].dtype)
    users = snapshot["User"]
    named = {str(v)[:15] for f in ("owner_id", "sa") for v in opp[f].dropna()}
    tasks = snapshot["Task"]
    tables = {**snapshot.tables, "Opportunity": opp, "User": users[users["key"].isin(list(named))],
              "Task": tasks[tasks["what_id"].str.slice(0, 15).isin(list(keys))]}  # fmt: skip
    mini = Snapshot(tables, snapshot.quarantine.iloc[0:0], snapshot.path)
    frames, _ = prepare_frames(mini, None, cfg, RunWindow.of(as_of), only={"opportunities"})
    return frames["opportunities"]


def as_of_row(cfg: Config, snapshot: Snapshot, opportunity_id: str, form: Mapping[str, str | None], as_of: date) -> pd.DataFrame:
    """One record's row as it will be once ``form`` is saved (``as_of_frame``)."""
    return as_of_frame(cfg, snapshot, {opportunity_id: form}, as_of)


def flagged(cfg: Config, frame: pd.DataFrame, as_of: date) -> dict[Any, list[tuple[str, Any]]]:
    """{row label: [(workflow, expectation)]} of what the fix workflows' rules flag on the form's
    fields in ``frame`` (an opportunities frame): the engine's predicates, row by row."""
    if frame.empty:
        return {}
    params = {**cfg.params(), "as_of": pd.Timestamp(as_of)}
    out: dict[Any, list[tuple[str, Any]]] = {}
    for wid, wf in fix_workflows(cfg).items():
        for label, expectations in unmet(frame, wf, params).items():
            for e in expectations:
                if e.column in FIELDS:  # what a field of the form can put right
                    out.setdefault(label, []).append((wid, e))
    return {label: out[label] for label in frame.index if label in out}


def words(cfg: Config, found: list[tuple[str, Any]]) -> dict[str, str]:
    """{block id: the rules' own words} for what ``flagged`` found on one row: a reason's wording,
    else the workflow's call to action (the first per field)."""
    errors: dict[str, str] = {}
    for wid, e in found:
        wf = cfg.workflows[wid]
        errors.setdefault(e.column, cfg.reasons.get(e.reason or "") or wf.message.text or wf.title)
    return errors


def refusals(cfg: Config, snapshot: Snapshot, opportunity_id: str, form: Mapping[str, str | None], as_of: date) -> dict[str, str]:
    """{block id: the rules' own words} of what the form refuses; empty when it may be saved."""
    errors = {f: "not a date" for f in DATES if form.get(f) and pd.isna(pd.to_datetime(form[f], errors="coerce"))}
    if errors:
        return errors
    row = as_of_row(cfg, snapshot, opportunity_id, form, as_of)
    return words(cfg, next(iter(flagged(cfg, row, as_of).values()), []))


def changes(cfg: Config, record: Record, form: Mapping[str, str | None]) -> dict[str, str | None]:
    """The fields the form changes, by logical name (a blank field clears its value)."""
    return {f: form.get(f) for f in FIELDS if (form.get(f) or None) != (record.values.get(f) or None)}


def api_fields(cfg: Config, changed: Mapping[str, str | None]) -> dict[str, str | None]:
    """The update's body, by API name (the configured field map); ``None`` clears a field."""
    return {cfg.api_name("Opportunity", f): v for f, v in changed.items()}


def _shown(f: str, value: str | None, names: Mapping[str, str]) -> str:
    if not value:
        return "blank"
    if f in DATES:
        d = date.fromisoformat(value)
        return f"{d.month}/{d.day}/{d.year}"  # the handbook's example writes 10/14/2021
    if f == "sa":
        return names.get(value[:15], value)
    return value


def chatter_post(record: Record, changed: Mapping[str, str | None], names: Mapping[str, str]) -> str:
    """The handbook's request to Sales Support for a closed opportunity, from the values entered:
    "@Sales-Support please update the SA Validated Tech Evaluation Close Status field to Win, and
    ..." (plain text: it is a Chatter post, not Slack markup)."""
    parts = [f"{LABELS[f]} to {_shown(f, changed[f], names)}" for f in FIELDS if f in changed]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return f"{SALES_SUPPORT} please update the {body} on this closed opportunity ({record.name})."


def feed_item(record: Record, text: str) -> dict[str, str]:
    """A Chatter text post on the opportunity's feed (``FeedItem``)."""
    return {"ParentId": record.id, "Body": text, "Type": "TextPost"}


# --------------------------------------------------------------------------- the modal

SA_OPTIONS = 100  # Slack's most options in a static select


def form_view(cfg: Config, record: Record, values: Mapping[str, str | None] | None = None, *, actor_id: str | None = None,
              channel: str = "", ts: str = "", error: str | None = None) -> dict:  # fmt: skip
    """The modal: the record's values (or ``values``, a submission shown again with ``error``)."""
    v = dict(record.values if values is None else values)
    sa_options = list(record.sa_options)
    for first in (actor_id, v.get("sa")):  # the clicking SA and the current one always among the 100
        hit = next((o for o in sa_options if first and o[0][:15] == first[:15]), None)
        if hit:
            sa_options.remove(hit)
            sa_options.insert(0, hit)
    sa = {"type": "static_select", "placeholder": {"type": "plain_text", "text": "Choose the Primary SA"},
          "options": [_option(name, uid) for uid, name in sa_options[:SA_OPTIONS]]}  # fmt: skip
    chosen = next((o for o in sa["options"] if v.get("sa") and o["value"][:15] == v["sa"][:15]), None)
    if chosen:
        sa["initial_option"] = chosen
    statuses = status_options(cfg)
    if v.get("te_status") and v["te_status"] not in statuses:
        statuses.append(v["te_status"])  # shown as it is, so that the rules can say what is wrong with it
    status = {"type": "static_select", "options": [_option(s, s) for s in statuses]}
    if v.get("te_status"):
        status["initial_option"] = _option(v["te_status"], v["te_status"])
    dates = {}
    for f in DATES:
        dates[f] = {"type": "datepicker"}
        if v.get(f):
            dates[f]["initial_date"] = v[f]
    details = {"type": "plain_text_input", "multiline": True, "max_length": DETAILS_CHARS}
    if v.get("te_details"):
        details["initial_value"] = v["te_details"][:DETAILS_CHARS]
    url = record_url(cfg.salesforce.instance_url, "Opportunity", record.id)
    head = f"*<{url}|{cut(esc(record.name), 200)}>* · {esc(record.stage)}"
    if record.is_closed:
        head += ("\n:lock: *Closed*: an SA cannot edit it. Saving posts your request to Sales Support in its "
                 f"Chatter feed (`{SALES_SUPPORT} please update …`), written from the values below.")  # fmt: skip
    else:
        head += "\n_Record the end date and close status when the evaluation ends; never forecast them._"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": cut(head, 3000)}}]
    if error:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f":warning: *Salesforce did not save it:* {esc(error)}", 3000)}})
    blocks += [
        _input("sa", LABELS["sa"], sa, "You may set it to yourself"),
        _input("te_start", "Start date", dates["te_start"], "When the customer seriously started evaluating, with you"),
        _input("te_end", "End date", dates["te_end"], "When the evaluation ended: never in the future"),
        _input("te_status", "Close status", status, "Win, Loss or Stalled"),
        _input("te_details", "Close details", details, "A short 1-2 line description of the close status"),
    ]  # fmt: skip
    meta = {"opp": record.id, "channel": channel, "ts": ts}
    return {"type": "modal", "callback_id": TECH_EVAL_VIEW, "title": {"type": "plain_text", "text": "Tech evaluation"},
            "submit": {"type": "plain_text", "text": "Post to Chatter" if record.is_closed else "Save"},
            "close": {"type": "plain_text", "text": "Cancel"}, "private_metadata": json.dumps(meta),
            "blocks": blocks}  # fmt: skip


def note_view(title: str, text: str) -> dict:
    return {"type": "modal", "callback_id": TECH_EVAL_VIEW, "title": {"type": "plain_text", "text": title[:24]},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}]}  # fmt: skip


def form_values(view: dict) -> dict[str, str | None]:
    """The submitted form by field: stripped text, ISO dates, a User Id; None when blank."""
    state = (view.get("state") or {}).get("values") or {}
    out: dict[str, str | None] = {}
    for f in FIELDS:
        found = state.get(f) if isinstance(state.get(f), dict) else {}
        e = found.get(f) or next(iter(found.values()), {}) if found else {}
        e = e if isinstance(e, dict) else {}
        value = e.get("selected_date") if f in DATES else (e.get("selected_option") or {}).get("value") if f in ("sa", "te_status") else e.get("value")
        out[f] = value.strip() or None if isinstance(value, str) else None
    return out


def metadata(view: dict) -> dict[str, str]:
    return json.loads(view["private_metadata"])
