"""The frames workflows read, prepared once per run from a snapshot (``prepare_frames``).

Opportunities with their rank and derived dates, the previous-to-current change frame, the SA
activities of the review period, all tasks, and the window's meetings with the record each
one suggests. Every derived column a workflow's YAML names is computed here, once, for all
workflows; ``contract.schema.FRAMES`` declares them and the engine refuses to drift from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sa_hygiene.contract.config import Config, Taxonomy
from sa_hygiene.contract.schema import FRAMES
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.frames import is_in, positions_in, select_rows
from sa_hygiene.source.snapshot import Snapshot

log = logging.getLogger(__name__)


class WindowError(ValueError):
    """An activity window that holds no instant (``since`` not before ``until``)."""


def _lists(series: pd.Series) -> pa.ListArray:
    arr = pa.array(series.array) if not isinstance(series.array, pa.Array) else series.array
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def contains(series: pd.Series, value: str) -> pd.Series:
    """Whether each multi-select list holds ``value``."""
    lists = _lists(series)
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    hits = parents[pc.equal(flat, value).to_numpy(zero_copy_only=False)]
    out = np.zeros(len(series), dtype=bool)
    out[hits] = True
    return pd.Series(out, index=series.index)


def nonempty(series: pd.Series) -> pd.Series:
    lengths = pc.fill_null(pc.list_value_length(_lists(series)), 0).to_numpy()
    return pd.Series(lengths > 0, index=series.index)


def exploded(series: pd.Series) -> pd.Series:
    """One row per list value, indexed by the label of the row it came from."""
    lists = _lists(series)
    parents = pc.list_parent_indices(lists).to_numpy()
    values = pc.list_flatten(lists).to_pandas()
    return pd.Series(values.to_numpy(), index=series.index[parents], dtype="str")


def _in(ts: pd.Series, since: pd.Timestamp, until: pd.Timestamp) -> pd.Series:
    return (ts >= since) & (ts < until)


def _days_between(later: pd.Timestamp | pd.Series, earlier: pd.Series | pd.Timestamp) -> pd.Series:
    """Whole days from ``earlier`` to ``later`` (floored, as ``Timedelta.days``), blank where
    either is. Dates without a zone are counted in microseconds by NumPy: pandas' ``.dt.days``
    of a million due dates cost four times as much."""
    series = later if isinstance(later, pd.Series) else earlier
    if not all(isinstance(x, pd.Timestamp) and x.tz is None or isinstance(x, pd.Series) and x.dtype == "datetime64[us]"
               for x in (later, earlier)):  # fmt: skip
        return (later - earlier).dt.days.astype("float64")
    a, b = (np.asarray(x.to_numpy()) if isinstance(x, pd.Series) else np.datetime64(x, "us") for x in (later, earlier))
    blank = np.isnat(a) | np.isnat(b)
    days = np.floor_divide(a.view(np.int64) - b.view(np.int64), 86_400_000_000).astype("float64")
    days[blank] = np.nan
    return pd.Series(days, index=series.index)


def _website_domain(website: pd.Series) -> pd.Series:
    """``https://www.Acme.com/about`` -> ``acme.com``: scheme, ``www.``, path, port stripped."""
    d = website.str.lower().str.strip()
    d = d.str.replace(r"^[a-z][a-z0-9+.\-]*://", "", regex=True)
    d = d.str.replace(r"^[^/@]*@", "", regex=True)
    d = d.str.replace(r"[/?#:].*$", "", regex=True)
    d = d.str.replace(r"^www\.", "", regex=True).str.rstrip(".")
    return d.where(d.str.len() > 0)


@dataclass
class RunWindow:
    as_of: pd.Timestamp  # naive midnight, for date comparisons
    since: pd.Timestamp  # UTC
    until: pd.Timestamp  # UTC

    @classmethod
    def of(cls, as_of: date, since: datetime | None = None, until: datetime | None = None,
           allow_empty: bool = False) -> RunWindow:
        """``allow_empty``: a feed whose data has not moved since its last window (no new
        snapshot) has an empty window, and rightly nothing new to post."""
        midnight = pd.Timestamp(as_of)
        s = pd.Timestamp(since) if since is not None else (midnight - pd.Timedelta(days=1)).tz_localize("UTC")
        u = pd.Timestamp(until) if until is not None else midnight.tz_localize("UTC")
        s = s.tz_localize("UTC") if s.tzinfo is None else s.tz_convert("UTC")
        u = u.tz_localize("UTC") if u.tzinfo is None else u.tz_convert("UTC")
        if s > u or (s == u and not allow_empty):
            # An empty window would report no new activity and no meeting: a silent wrong answer.
            raise WindowError(f"the window [since, until) is empty or inverted: since {s.isoformat()} is not before until {u.isoformat()}")
        return cls(midnight, s, u)

    @property
    def as_of_utc(self) -> pd.Timestamp:
        return self.as_of.tz_localize("UTC")


def is_sa_activity(tasks: pd.DataFrame) -> pd.Series:
    """SA activities: an activity type is set and the task is not a Chorus recording."""
    return nonempty(tasks["activity_types"]) & tasks["chorus_call_id"].isna()


# The frames below take the snapshot's columns and the derived ones as they are (``copy=False``):
# pandas' copy-on-write keeps the snapshot unchanged should a frame be written to, while copying
# and consolidating them cost a quarter of a second and 300 MB for ten million tasks.


def _opportunities(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config, sa_activity: pd.Series) -> pd.DataFrame:
    o = snap["Opportunity"]
    t = snap["Task"]
    stall = cfg.thresholds.stall_days
    recent = select_rows(t, sa_activity & (t["activity_date"] > w.as_of - pd.Timedelta(days=stall))
                         & (t["activity_date"] <= w.as_of), ["what_id"])  # fmt: skip
    recent_keys = recent["what_id"].dropna().str.slice(0, 15)
    return pd.DataFrame(
        {
            "id": o["id"],
            "key": o["key"],
            "name": o["name"],
            "account_id": o["account_id"],
            "owner_id": d.canonical(o["owner_id"]),
            "stage": o["stage"],
            "rank": o["rank"].fillna(-1).astype("int64"),
            "is_open": ~o["is_closed"],
            "is_won": o["is_won"],
            "lost": o["lost"],
            "iacv": o["iacv"],
            "sa": d.canonical(o["sa"]),
            "has_sa": o["sa"].notna(),
            "stage3_date": o["stage3_date"],
            "te_start": o["te_start"],
            "te_end": o["te_end"],
            "te_status": o["te_status"],
            "te_details": o["te_details"],
            "is_ps": o["is_ps"],
            "close_date": o["close_date"],
            "has_te_start": o["te_start"].notna(),
            "has_te_end": o["te_end"].notna(),
            "has_te_status": o["te_status"].notna(),
            "has_te_details": o["te_details"].notna(),
            "days_since_stage3": _days_between(w.as_of, o["stage3_date"]),
            "days_since_te_start": _days_between(w.as_of, o["te_start"]),
            "days_te_end_ahead": _days_between(o["te_end"], w.as_of),
            "recent_sa_activity": pd.Series(is_in(o["key"], recent_keys), index=o.index),
        },
        copy=False,
    )


def _changes(opps: pd.DataFrame, previous: Snapshot, d: Directory) -> pd.DataFrame:
    """Current opportunities beside their previous values; new records compare against blanks."""
    p = previous["Opportunity"]
    prev = pd.DataFrame(
        {
            "key": p["key"],
            "prev_stage": p["stage"],
            "prev_rank": p["rank"].fillna(-1).astype("int64"),
            "prev_sa": d.canonical(p["sa"]),
            "prev_te_start": p["te_start"],
            "prev_te_end": p["te_end"],
            "prev_te_status": p["te_status"],
        }
    )
    cols = ["id", "key", "name", "account_id", "owner_id", "stage", "rank", "is_open", "lost", "iacv", "sa",
            "has_sa", "te_start", "te_end", "te_status"]  # fmt: skip
    # Each opportunity's previous row by an Arrow look-up of its key (a key is one record), and
    # blanks for a new one (-1 is no row): a left merge on text keys costs several times more.
    at = positions_in(opps["key"], prev["key"])
    matched = prev.drop(columns="key").reset_index(drop=True).reindex(at).set_axis(opps.index, axis=0)
    ch = pd.concat([opps[cols], matched], axis=1)
    ch["is_new"] = at < 0
    ch["prev_rank"] = ch["prev_rank"].fillna(-1).astype("int64")
    ch["prev_has_sa"] = ch["prev_sa"].notna()
    return ch


def _tasks(snap: Snapshot, d: Directory, w: RunWindow, sa_activity: pd.Series) -> pd.DataFrame:
    t = snap["Task"]
    return pd.DataFrame(
        {
            "id": t["id"],
            "owner_id": t["owner_id"],
            "what_id": t["what_id"],
            "subject": t["subject"],
            "activity_date": t["activity_date"],
            # wf-11: days past the due date (0 = due today, negative = due later).
            "days_overdue": _days_between(w.as_of, t["activity_date"]),
            "is_closed": t["is_closed"],
            "created": t["created"],
            "is_chorus": t["chorus_call_id"].notna(),
            "chorus_call_id": t["chorus_call_id"],
            "owner_is_sa": d.is_sa_ref(t["owner_id"]),
            "created_in_window": _in(t["created"], w.since, w.until),
            "is_sa_activity": sa_activity,
        },
        copy=False,
    )


def _untyped_call(tasks: pd.DataFrame, d: Directory) -> pd.Series:
    """A call an active SA logged without an activity type: an SA activity whose type is missing.

    The handbook asks every customer interaction to carry a type; a call logged with the
    standard "Log a Call" button (``TaskSubtype`` = Call) and no type is the usual slip.
    """
    is_call = (tasks["task_subtype"].str.strip() == "Call").fillna(False).astype(bool)
    return is_call & ~nonempty(tasks["activity_types"]) & tasks["chorus_call_id"].isna() & d.is_sa_ref(tasks["owner_id"])


# The Task columns the activities frame is derived from: what a snapshot's Task table gives,
# and what the Slack app's log form gives for the Task it is about to create.
ACTIVITY_TASK_COLUMNS = ["id", "owner_id", "what_id", "who_id", "account_id", "subject", "description",
                         "activity_date", "created", "activity_types", "persona_levels", "sentiment"]  # fmt: skip
Flag = pd.Series | bool


def activity_rows(a: pd.DataFrame, tax: Taxonomy, *, created_in_window: Flag, created_in_review_period: Flag,
                  is_sa_activity: Flag, untyped_call: Flag) -> pd.DataFrame:  # fmt: skip
    """The activities frame of task-shaped rows (``ACTIVITY_TASK_COLUMNS``, typed as a snapshot
    types them): the fields as they are, and every column derived from them (Id prefixes,
    description length and link, the taxonomy's types, what is set).

    What depends on the run (its window, the directory of SAs) is given, per row or one value
    for all. The engine derives its activities here and so does the Slack app's log form, for
    the one Task it is about to create: the form is checked on exactly the columns a digest is.
    """
    return pd.DataFrame(
        {
            "id": a["id"],
            "owner_id": a["owner_id"],
            "what_id": a["what_id"],
            "what_prefix": a["what_id"].str.slice(0, 3).fillna(""),
            "who_id": a["who_id"],
            "who_prefix": a["who_id"].str.slice(0, 3).fillna(""),
            "account_id": a["account_id"],
            "subject": a["subject"],
            "description": a["description"],
            "description_length": a["description"].str.len().fillna(0).astype("int64"),
            "activity_date": a["activity_date"],
            "created": a["created"],
            "activity_types": a["activity_types"],
            "persona_levels": a["persona_levels"],
            "sentiment": a["sentiment"],
            "has_ride_along": contains(a["activity_types"], tax.ride_along_type),
            "has_csp": contains(a["activity_types"], tax.csp_type),
            "has_other": contains(a["activity_types"], tax.other_type),
            "description_has_link": a["description"].str.contains(r"https?://", regex=True).fillna(False).astype(bool),
            "created_in_window": created_in_window,
            "created_in_review_period": created_in_review_period,
            "has_subject": a["subject"].notna(),
            "has_description": a["description"].notna(),
            "has_who": a["who_id"].notna(),
            "is_sa_activity": is_sa_activity,
            "untyped_call": untyped_call,
        },
        index=a.index,
        copy=False,
    )


def _activities(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config, sa_activity: pd.Series) -> pd.DataFrame:
    """SA activities and untyped calls created in the window or the review period (the only ones any rule reads)."""
    t = snap["Task"]
    review_from = w.as_of_utc - pd.Timedelta(days=cfg.thresholds.review_days)
    in_window = _in(t["created"], w.since, w.until)
    in_review = _in(t["created"], review_from, w.as_of_utc)
    # Untyped calls are looked for among the tasks of the window and the review period only: a
    # few days of ten million tasks, not every subtype and owner of them.
    recent = (in_window | in_review).to_numpy(bool)
    untyped = pd.Series(False, index=t.index)
    untyped[recent] = _untyped_call(select_rows(t, recent, ["owner_id", "task_subtype", "activity_types", "chorus_call_id"]), d).to_numpy(bool)
    # Only the columns read: filtering the whole Task frame copies every string of every column.
    a = select_rows(t, (sa_activity | untyped) & (in_window | in_review), ACTIVITY_TASK_COLUMNS)
    return activity_rows(a, cfg.taxonomy, created_in_window=in_window[a.index], created_in_review_period=in_review[a.index],
                         is_sa_activity=sa_activity[a.index], untyped_call=untyped[a.index])  # fmt: skip


def _local_dates(ts: pd.Series, zones: pd.Series) -> pd.Series:
    """The calendar date of each UTC instant in its own IANA zone (UTC when the zone is unknown).

    One conversion per zone, of that zone's instants by position: a group-by's label look-ups
    and assignments cost more than the conversions themselves."""
    codes, names = pd.factorize(zones.fillna("UTC"))
    out = np.full(len(ts), np.datetime64("NaT"), dtype="datetime64[us]")
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for k, zone in enumerate(names):
        at = order[bounds[k] : bounds[k + 1]]
        part = pd.DatetimeIndex(ts.array[at])
        try:
            local = part.tz_convert(zone)
        except Exception:  # an unknown TimeZoneSidKey: fall back to UTC rather than drop the meeting
            local = part
        out[at] = local.tz_localize(None).normalize().to_numpy(dtype="datetime64[us]")
    return pd.Series(out, index=ts.index)


def _meetings(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config, opps: pd.DataFrame, sa_activity: pd.Series) -> pd.DataFrame:
    """The window's meetings, their external attendees, the record they suggest, and whether they are logged."""
    ev = snap["Event"]
    ev = select_rows(ev, _in(ev["end"], w.since, w.until))
    owner_key = ev["owner_id"].str.slice(0, 15)
    m = pd.DataFrame(
        {
            "id": ev["id"],
            "owner_id": d.canonical(ev["owner_id"]),
            "subject": ev["subject"],
            "start": ev["start"],
            "end": ev["end"],
            "local_start_date": _local_dates(ev["start"], owner_key.map(d.users["timezone"])),
            "owner_is_sa": owner_key.map(d.is_sa).fillna(False).astype(bool),
        }
    )
    # A customer on gmail.com is still a customer: generic domains are external attendees,
    # they only never name an account (below).
    internal = {x.lower() for x in cfg.email_domains.company}
    generic = {x.lower() for x in cfg.email_domains.generic}
    emails = exploded(ev["attendee_emails"]).str.lower()
    domains = emails.str.extract(r"@([^@]*)$", expand=False)  # after the last "@"; none without one
    is_external = domains.notna() & ~domains.isin(internal)
    ext_emails, ext_domains = emails[is_external], domains[is_external & ~domains.isin(generic)]
    m["external_attendees"] = ext_emails.groupby(level=0).size().reindex(m.index, fill_value=0).astype("int64")
    m["has_external_attendee"] = m["external_attendees"] > 0

    # (0) the meeting was booked on an open opportunity (its own WhatId): that one, because the
    # SA met about it; an attendee's contact role could name a different, bigger deal.
    open_opps = opps.loc[opps["is_open"] & ~opps["lost"], ["key", "id", "iacv"]].rename(columns={"key": "opp_key"})
    own = ev["what_id"].str.slice(0, 15).map(open_opps.drop_duplicates("opp_key").set_index("opp_key")["id"])

    # (1) attendee = a contact with a role on an open opportunity: highest IACV, then lowest Id.
    contacts = snap["Contact"]
    c = pd.DataFrame({"email": contacts["email"].str.lower(), "contact_key": contacts["key"]}).dropna()
    c = c[is_in(c["email"], ext_emails)]  # the attendees' contacts only: the joins below stay small
    roles = snap["OpportunityContactRole"]
    r = pd.DataFrame({"contact_key": roles["contact_id"].str.slice(0, 15), "opp_key": roles["opportunity_id"].str.slice(0, 15)})
    r = r[is_in(r["contact_key"], c["contact_key"])]
    cand = (
        pd.DataFrame({"event": ext_emails.index, "email": ext_emails.to_numpy()})
        .merge(c, on="email")
        .merge(r, on="contact_key")
        .merge(open_opps, on="opp_key")
        .sort_values(["event", "iacv", "opp_key"], ascending=[True, False, True])
        .drop_duplicates("event")
        .set_index("event")
    )
    m["suggested_what_id"] = own.where(own.notna(), cand["id"].reindex(m.index))
    m["suggested_object"] = pd.Series(np.where(m["suggested_what_id"].notna(), "Opportunity", None), index=m.index, dtype=object)

    # (2) else an attendee's domain is exactly an account's website domain (the lowest Id):
    # that account's open opportunity with the highest IACV, because the handbook wants
    # activity logged on the opportunity; the account itself only when it has none.
    acc = snap["Account"]
    a = pd.DataFrame({"domain": _website_domain(acc["website"]), "acc_key": acc["key"], "acc_id": acc["id"]}).dropna()
    by_domain = (
        pd.DataFrame({"event": ext_domains.index, "domain": ext_domains.to_numpy()})
        .merge(a, on="domain")
        .sort_values(["event", "acc_key"])
        .drop_duplicates("event")
        .set_index("event")
    )
    # Of the accounts an attendee's domain names only: sorting every open opportunity by
    # account, IACV and key cost more than all the rest of the meetings.
    acc_opps = (
        opps.loc[opps["is_open"] & ~opps["lost"] & opps["account_id"].notna(), ["key", "id", "iacv", "account_id"]]
        .assign(acc_key=lambda f: f["account_id"].str.slice(0, 15), iacv=lambda f: f["iacv"].fillna(0.0))
        .loc[lambda f: is_in(f["acc_key"], by_domain["acc_key"])]
        .sort_values(["acc_key", "iacv", "key"], ascending=[True, False, True])
        .drop_duplicates("acc_key")
        .set_index("acc_key")["id"]
    )
    need = m["suggested_what_id"].isna()
    account_pick = by_domain["acc_id"].reindex(m.index)
    opp_pick = by_domain["acc_key"].reindex(m.index).map(acc_opps)
    use_opp = need & opp_pick.notna()
    use_acc = need & ~use_opp & account_pick.notna()
    m.loc[use_opp, "suggested_what_id"] = opp_pick[use_opp]
    m.loc[use_opp, "suggested_object"] = "Opportunity"
    m.loc[use_acc, "suggested_what_id"] = account_pick[use_acc]
    m.loc[use_acc, "suggested_object"] = "Account"

    # Logged: an SA activity by the same user on the meeting's local date, on the suggested record if any.
    tasks = snap["Task"]
    near = sa_activity & tasks["owner_id"].notna() & tasks["activity_date"].notna()
    if len(m):
        near &= tasks["activity_date"].between(m["local_start_date"].min(), m["local_start_date"].max())
    t = select_rows(tasks, near, ["owner_id", "activity_date", "what_id"])
    t = pd.DataFrame({"owner_key": t["owner_id"].str.slice(0, 15), "day": t["activity_date"], "what_key": t["what_id"].str.slice(0, 15)})
    sugg_key = m["suggested_what_id"].str.slice(0, 15)
    # Hash joins on (owner, day[, record]), not a Python tuple per meeting and task.
    on_day = pd.MultiIndex.from_arrays([owner_key, m["local_start_date"]]).isin(
        pd.MultiIndex.from_arrays([t["owner_key"], t["day"]]))
    on_record = pd.MultiIndex.from_arrays([owner_key, m["local_start_date"], sugg_key]).isin(
        pd.MultiIndex.from_arrays([t["owner_key"], t["day"], t["what_key"]]))
    m["logged"] = np.where(sugg_key.notna().to_numpy(bool), on_record, on_day).astype(bool)
    return m


POV = "Proof_of_Value__c"


def _pov_table(snap: Snapshot) -> pd.DataFrame:
    """The snapshot's POVs; none when it was read without them (an org without the object
    reads as an empty table already)."""
    if POV in snap.tables:
        return snap[POV]
    return pd.DataFrame({"id": pd.Series(dtype="str"), "key": pd.Series(dtype="str"), "name": pd.Series(dtype="str"),
                         "opportunity_id": pd.Series(dtype="str"), "account_id": pd.Series(dtype="str"),
                         "owner_id": pd.Series(dtype="str"), "status": pd.Series(dtype="str"),
                         "start_date": pd.Series(dtype="datetime64[us]"), "end_date": pd.Series(dtype="datetime64[us]"),
                         "result": pd.Series(dtype="str"), "success_criteria": pd.Series(dtype="str")})  # fmt: skip


def _povs(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config) -> pd.DataFrame:
    """The Proofs of Value with their status groups (configuration: ``proofs_of_value``) and what
    the POV rules read of each one's opportunity. An opportunity Id that is set but not among the
    readable opportunities names a quarantined row (an Id the snapshot lacks was quarantined with
    the POV itself): the rules reading the opportunity leave that POV out."""
    p = _pov_table(snap)
    pov = cfg.proofs_of_value
    o = snap["Opportunity"] if "Opportunity" in snap.tables else pd.DataFrame({"key": pd.Series(dtype="str")})
    opp_key = p["opportunity_id"].str.slice(0, 15)
    found = pd.Series(is_in(opp_key, o["key"]), index=p.index)
    # Each POV's opportunity row (-1, the last entry below, when none is readable).
    at = positions_in(opp_key, o["key"]) if len(o) else np.full(len(p), -1)
    is_open = np.append((~o["is_closed"] & ~o["lost"]).to_numpy(bool), False) if len(o) else np.zeros(1, bool)
    has_start = np.append(o["te_start"].notna().to_numpy(bool), False) if len(o) else np.zeros(1, bool)
    has_opp = p["opportunity_id"].notna()
    return pd.DataFrame(
        {
            "id": p["id"],
            "key": p["key"],
            "name": p["name"],
            "opportunity_id": p["opportunity_id"],
            "account_id": p["account_id"],
            "owner_id": d.canonical(p["owner_id"]),
            "status": p["status"],
            "result": p["result"],
            "success_criteria": p["success_criteria"],
            "start_date": p["start_date"],
            "end_date": p["end_date"],
            "is_active": p["status"].isin(pov.active).astype(bool),
            "is_running": p["status"].isin(pov.running).astype(bool),
            "is_completed": p["status"].isin(pov.completed).astype(bool),
            "days_since_start": _days_between(w.as_of, p["start_date"]),
            "has_opportunity": has_opp.astype(bool),
            "opportunity_quarantined": (has_opp & ~found).astype(bool),
            "opportunity_open": pd.Series(is_open[at], index=p.index),
            "opportunity_has_te_start": pd.Series(has_start[at], index=p.index),
        },
        index=p.index,
        copy=False,
    )


def _pov_owners(povs: pd.DataFrame, d: Directory) -> pd.DataFrame:
    """One row per user owning a POV, with the POVs they run at once (pov-load is about the user)."""
    owner_key = povs["owner_id"].str.slice(0, 15)
    running = povs["is_running"].groupby(owner_key).sum()
    keys = pd.Series(running.index, dtype="str")
    ids = keys.map(d.users["id"]).where(lambda s: s.notna(), keys)
    managers = keys.map(d.users["manager_id"])
    return pd.DataFrame(
        {
            "id": ids.to_numpy(dtype=object),
            "key": keys.to_numpy(dtype=object),
            "owner_id": ids.to_numpy(dtype=object),
            "manager_id": d.canonical(managers.astype("str")).to_numpy(dtype=object),
            "running_povs": running.to_numpy(dtype="float64"),
        }
    ).astype({"id": "str", "key": "str", "owner_id": "str", "manager_id": "str"})


def prepare_frames(
    current: Snapshot, previous: Snapshot | None, cfg: Config, w: RunWindow, only: set[str] | None = None,
    directory: Directory | None = None,
) -> tuple[dict[str, pd.DataFrame], Directory]:  # fmt: skip
    """The frames workflows read (``only``: just these, for benchmarks that must not share work);
    ``directory``: the current snapshot's, when the caller has built it already."""
    wanted = set(only) if only is not None else {"opportunities", "tasks", "activities", "meetings", "changes", "povs",
                                                 "pov_owners"}  # fmt: skip
    d = directory if directory is not None else Directory(current["User"], cfg)
    tasks = current["Task"]
    # Opportunities and meetings read a few SA activities each (of the stall window, of the
    # meetings' days): filtered from the tasks by this flag, not from a copy of every SA
    # activity's owner, date and record (300 MB for ten million tasks, held through the frames).
    sa_activity = is_sa_activity(tasks)
    frames: dict[str, pd.DataFrame] = {}
    opps = _opportunities(current, d, w, cfg, sa_activity) if wanted & {"opportunities", "meetings", "changes"} else None
    if "opportunities" in wanted:
        frames["opportunities"] = opps
    if "tasks" in wanted:
        frames["tasks"] = _tasks(current, d, w, sa_activity)
    if "activities" in wanted:
        frames["activities"] = _activities(current, d, w, cfg, sa_activity)
    if "meetings" in wanted:
        frames["meetings"] = _meetings(current, d, w, cfg, opps, sa_activity)
    if "changes" in wanted and previous is not None:
        frames["changes"] = _changes(opps, previous, d)
    if wanted & {"povs", "pov_owners"}:
        povs = _povs(current, d, w, cfg)
        if "povs" in wanted:
            frames["povs"] = povs
        if "pov_owners" in wanted:
            frames["pov_owners"] = _pov_owners(povs, d)
    for name, frame in frames.items():
        _check_declared(name, frame)
    return frames, d


def _check_declared(name: str, frame: pd.DataFrame) -> None:
    """The configuration was validated against ``schema.FRAMES``; a frame that differs from it
    would let a scope pass at load time and fail at run time, so the engine refuses to drift."""
    declared = list(FRAMES[name])
    if list(frame.columns) != declared:
        raise AssertionError(f"frame {name!r} has columns {list(frame.columns)}, schema.FRAMES declares {declared}")
