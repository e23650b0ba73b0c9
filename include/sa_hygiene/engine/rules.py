"""The rule engine: every workflow of the configuration, run as Great Expectations.

A workflow is data (``defaults.yaml``): the frame it reads, a scope, and the
expectations each row in scope must meet. The engine

1. prepares five frames once per run (``prepare_frames``): opportunities with
   their rank and derived dates, the previous-to-current change frame, the SA
   activities of the review period, all tasks, and the window's meetings with the
   record each one suggests;
2. narrows each frame to a workflow's scope with pandas (cheap, vectorised) and
   hands GX only the rows and columns the expectations need: GX's own
   ``row_condition`` costs several times the load of the data, and so does asking
   it for index *columns* rather than the frame's index labels;
3. reads the unexpected rows of each expectation back by index label: they are the
   alerts, and the expectation's ``reason`` is their reason code.

The GX validation results of every run are kept for the report's Data Docs.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sa_hygiene.contract.config import Config, Expectation, Workflow, load_config
from sa_hygiene.contract.recipients import CHANNEL, as_recipient
from sa_hygiene.contract.schema import FRAMES
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.frames import is_in, select_rows
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, Snapshot, read_snapshot

log = logging.getLogger(__name__)

class RuleError(RuntimeError):
    """An expectation Great Expectations could not compute (a regex its engine refuses, say).

    Zero alerts would read as "all clean" when nothing was checked, so the run stops and
    names the workflow and the expectation instead.
    """


class WindowError(ValueError):
    """An activity window that holds no instant (``since`` not before ``until``)."""


ALERT_COLUMNS = ["workflow", "object", "record_id", "recipient", "reasons", "slot", "suggested_what_id", "unrouted"]


# --------------------------------------------------------------------------- helpers


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block that allocates many small objects.

    An evaluation builds hundreds of thousands of lists and dicts (reasons, alert lines), and
    every collection they trigger walks all the objects GX, pydantic and pandas hold: 0.6 s of
    3.3 s of the workflows at scale 150. The block makes no garbage cycles worth collecting
    early; the collector runs again as soon as it ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    return (later - earlier).dt.days.astype("float64")


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


# --------------------------------------------------------------------------- frames


def _sa_activity(tasks: pd.DataFrame) -> pd.Series:
    """SA activities: an activity type is set and the task is not a Chorus recording."""
    return nonempty(tasks["activity_types"]) & tasks["chorus_call_id"].isna()


def _opportunities(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config, sa_tasks: pd.DataFrame) -> pd.DataFrame:
    o = snap["Opportunity"]
    stall = cfg.thresholds.stall_days
    recent = select_rows(sa_tasks, (sa_tasks["activity_date"] > w.as_of - pd.Timedelta(days=stall))
                         & (sa_tasks["activity_date"] <= w.as_of), ["what_id"])  # fmt: skip
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
        }
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
    ch = opps[cols].merge(prev, on="key", how="left", indicator=True)
    ch["is_new"] = ch.pop("_merge") == "left_only"
    ch["prev_rank"] = ch["prev_rank"].fillna(-1).astype("int64")
    ch["prev_has_sa"] = ch["prev_sa"].notna()
    ch.index = opps.index
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
            "is_closed": t["is_closed"],
            "created": t["created"],
            "is_chorus": t["chorus_call_id"].notna(),
            "chorus_call_id": t["chorus_call_id"],
            "owner_is_sa": d.is_sa_ref(t["owner_id"]),
            "created_in_window": _in(t["created"], w.since, w.until),
            "is_sa_activity": sa_activity,
        }
    )


def _untyped_call(tasks: pd.DataFrame, d: Directory) -> pd.Series:
    """A call an active SA logged without an activity type: an SA activity whose type is missing.

    The handbook asks every customer interaction to carry a type; a call logged with the
    standard "Log a Call" button (``TaskSubtype`` = Call) and no type is the usual slip.
    """
    owner_is_sa = tasks["owner_id"].str.slice(0, 15).map(d.is_sa).fillna(False).astype(bool)
    is_call = (tasks["task_subtype"].str.strip() == "Call").fillna(False).astype(bool)
    return is_call & ~nonempty(tasks["activity_types"]) & tasks["chorus_call_id"].isna() & owner_is_sa


_ACTIVITY_COLUMNS = ["id", "owner_id", "what_id", "who_id", "account_id", "subject", "description", "activity_date",
                     "created", "activity_types", "persona_levels", "sentiment"]  # fmt: skip


def _activities(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config, sa_activity: pd.Series) -> pd.DataFrame:
    """SA activities and untyped calls created in the window or the review period (the only ones any rule reads)."""
    t = snap["Task"]
    review_from = w.as_of_utc - pd.Timedelta(days=cfg.thresholds.review_days)
    in_window = _in(t["created"], w.since, w.until)
    in_review = _in(t["created"], review_from, w.as_of_utc)
    untyped = _untyped_call(t, d)
    # Only the columns read: filtering the whole Task frame copies every string of every column.
    a = select_rows(t, (sa_activity | untyped) & (in_window | in_review), _ACTIVITY_COLUMNS)
    tax = cfg.taxonomy
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
            "created_in_window": in_window[a.index],
            "created_in_review_period": in_review[a.index],
            "has_subject": a["subject"].notna(),
            "has_description": a["description"].notna(),
            "has_who": a["who_id"].notna(),
            "is_sa_activity": sa_activity[a.index],
            "untyped_call": untyped[a.index],
        }
    )


def _local_dates(ts: pd.Series, zones: pd.Series) -> pd.Series:
    """The calendar date of each UTC instant in its own IANA zone (UTC when the zone is unknown)."""
    out = pd.Series(pd.NaT, index=ts.index, dtype="datetime64[us]")
    for zone, idx in zones.fillna("UTC").groupby(zones.fillna("UTC")).groups.items():
        try:
            local = ts[idx].dt.tz_convert(zone)
        except Exception:  # an unknown TimeZoneSidKey: fall back to UTC rather than drop the meeting
            local = ts[idx]
        out[idx] = local.dt.tz_localize(None).dt.normalize()
    return out


def _meetings(snap: Snapshot, d: Directory, w: RunWindow, cfg: Config, opps: pd.DataFrame, sa_tasks: pd.DataFrame) -> pd.DataFrame:
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
    domains = emails.str.rsplit("@", n=1).str[-1].where(emails.str.contains("@", regex=False))
    is_external = domains.notna() & ~domains.isin(internal)
    ext_emails, ext_domains = emails[is_external], domains[is_external & ~domains.isin(generic)]
    m["external_attendees"] = ext_emails.groupby(level=0).size().reindex(m.index, fill_value=0).astype("int64")
    m["has_external_attendee"] = m["external_attendees"] > 0

    # (1) attendee = a contact with a role on an open opportunity: highest IACV, then lowest Id.
    contacts = snap["Contact"]
    c = pd.DataFrame({"email": contacts["email"].str.lower(), "contact_key": contacts["key"]}).dropna()
    roles = snap["OpportunityContactRole"]
    r = pd.DataFrame({"contact_key": roles["contact_id"].str.slice(0, 15), "opp_key": roles["opportunity_id"].str.slice(0, 15)})
    open_opps = opps.loc[opps["is_open"] & ~opps["lost"], ["key", "id", "iacv"]].rename(columns={"key": "opp_key"})
    cand = (
        pd.DataFrame({"event": ext_emails.index, "email": ext_emails.to_numpy()})
        .merge(c, on="email")
        .merge(r, on="contact_key")
        .merge(open_opps, on="opp_key")
        .sort_values(["event", "iacv", "opp_key"], ascending=[True, False, True])
        .drop_duplicates("event")
        .set_index("event")
    )
    m["suggested_what_id"] = cand["id"].reindex(m.index)
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
    acc_opps = (
        opps.loc[opps["is_open"] & ~opps["lost"] & opps["account_id"].notna(), ["key", "id", "iacv", "account_id"]]
        .assign(acc_key=lambda f: f["account_id"].str.slice(0, 15), iacv=lambda f: f["iacv"].fillna(0.0))
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
    near = sa_tasks["owner_id"].notna() & sa_tasks["activity_date"].notna()
    if len(m):
        near &= sa_tasks["activity_date"].between(m["local_start_date"].min(), m["local_start_date"].max())
    t = select_rows(sa_tasks, near, ["owner_id", "activity_date", "what_id"])
    t = pd.DataFrame({"owner_key": t["owner_id"].str.slice(0, 15), "day": t["activity_date"], "what_key": t["what_id"].str.slice(0, 15)})
    on_day = set(zip(t["owner_key"], t["day"], strict=True))
    on_record = set(zip(t["owner_key"], t["day"], t["what_key"], strict=True))
    sugg_key = m["suggested_what_id"].str.slice(0, 15)
    m["logged"] = [
        (o, day, s) in on_record if isinstance(s, str) else (o, day) in on_day
        for o, day, s in zip(owner_key, m["local_start_date"], sugg_key, strict=True)
    ]
    m["logged"] = m["logged"].astype(bool)
    return m


def prepare_frames(
    current: Snapshot, previous: Snapshot | None, cfg: Config, w: RunWindow, only: set[str] | None = None
) -> tuple[dict[str, pd.DataFrame], Directory]:
    """The frames workflows read (``only``: just these, for benchmarks that must not share work)."""
    wanted = set(only) if only is not None else {"opportunities", "tasks", "activities", "meetings", "changes"}
    d = Directory(current["User"], cfg)
    tasks = current["Task"]
    sa_activity = _sa_activity(tasks)
    sa_tasks = select_rows(tasks, sa_activity, ["owner_id", "activity_date", "what_id"])  # what opportunities and meetings read
    frames: dict[str, pd.DataFrame] = {}
    opps = _opportunities(current, d, w, cfg, sa_tasks) if wanted & {"opportunities", "meetings", "changes"} else None
    if "opportunities" in wanted:
        frames["opportunities"] = opps
    if "tasks" in wanted:
        frames["tasks"] = _tasks(current, d, w, sa_activity)
    if "activities" in wanted:
        frames["activities"] = _activities(current, d, w, cfg, sa_activity)
    if "meetings" in wanted:
        frames["meetings"] = _meetings(current, d, w, cfg, opps, sa_tasks)
    if "changes" in wanted and previous is not None:
        frames["changes"] = _changes(opps, previous, d)
    for name, frame in frames.items():
        _check_declared(name, frame)
    return frames, d


def _check_declared(name: str, frame: pd.DataFrame) -> None:
    """The configuration was validated against ``schema.FRAMES``; a frame that differs from it
    would let a scope pass at load time and fail at run time, so the engine refuses to drift."""
    declared = list(FRAMES[name])
    if list(frame.columns) != declared:
        raise AssertionError(f"frame {name!r} has columns {list(frame.columns)}, schema.FRAMES declares {declared}")


# --------------------------------------------------------------------------- expectations


def _gx():
    """Import GX quietly: it is slow to import and chatty once Airflow has configured logging."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


RESULT_FORMAT = {
    "result_format": "COMPLETE",
    # Index *labels* of the unexpected rows, not their values or an index column: asking GX
    # for index columns costs ~20 µs per unexpected row, labels cost almost nothing.
    "return_unexpected_index_query": False,
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
}


def _resolve(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return params[value[1:]]
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    return value


def build_expectation(e: Expectation, params: dict[str, Any], meta: dict, **extra: Any):
    """The GX expectation of one configured expectation (``extra``: more GX arguments, e.g. a row_condition)."""
    E = _gx().expectations
    kw: dict[str, Any] = {"meta": meta, **extra}
    match e.expectation:
        case "not_null":
            return E.ExpectColumnValuesToNotBeNull(column=e.column, **kw)
        case "in_set" | "each_in_set":
            return E.ExpectColumnValuesToBeInSet(column=e.column, value_set=_resolve(e.values, params), **kw)
        case "not_in_set":
            return E.ExpectColumnValuesToNotBeInSet(column=e.column, value_set=_resolve(e.values, params), **kw)
        case "between":
            return E.ExpectColumnValuesToBeBetween(
                column=e.column, min_value=_resolve(e.min, params), max_value=_resolve(e.max, params), **kw
            )
        case "pair_equal":
            return E.ExpectColumnPairValuesToBeEqual(
                column_A=e.column, column_B=e.other, ignore_row_if="both_values_are_missing", **kw
            )
        case "pair_greater":
            return E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=e.column, column_B=e.other, or_equal=e.or_equal, ignore_row_if="either_value_is_missing", **kw
            )
        case "match_regex":
            return E.ExpectColumnValuesToMatchRegex(column=e.column, regex=e.regex, **kw)
        case "min_length":
            return E.ExpectColumnValueLengthsToBeBetween(column=e.column, min_value=_resolve(e.min, params), **kw)
    raise AssertionError(e.expectation)


def _batch_frame(rows: pd.DataFrame, e: Expectation) -> pd.DataFrame:
    """Only the columns an expectation reads, shaped the way GX expects them."""
    if e.expectation == "each_in_set":
        return exploded(rows[e.column]).to_frame(e.column)
    cols = [e.column] + ([e.other] if e.other else [])
    frame = rows[cols]
    if e.expectation in ("match_regex", "min_length"):
        # Blank text has no link and no length: it must fail these, not be skipped as null.
        frame = frame.fillna({e.column: ""})
    return frame


class Validator:
    """One GX ephemeral context per run; batches are made from prepared frames."""

    def __init__(self):
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("sa_hygiene")
        self.batch_definitions: dict[str, Any] = {}
        self.results: list[Any] = []

    def _definition(self, asset: str):
        if asset not in self.batch_definitions:
            self.batch_definitions[asset] = self.source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe("run")
        return self.batch_definitions[asset]

    def unexpected(self, asset: str, frame: pd.DataFrame, suite_name: str, expectations: list) -> list[list]:
        """Unexpected index labels of each expectation, validated together as one suite."""
        batch = self._definition(asset).get_batch(batch_parameters={"dataframe": frame})
        suite = self.gx.ExpectationSuite(name=suite_name, expectations=expectations)
        result = batch.validate(suite, result_format=RESULT_FORMAT)
        self.results.append(result)
        out = []
        for r in result.results:
            message = raised(r.exception_info)
            if message is not None:
                workflow = (r.expectation_config.meta or {}).get("workflow", suite_name)
                raise RuleError(f"{workflow}: {r.expectation_config.type}: {message}")
            out.append(r.result.get("unexpected_index_list") or [])
        return out


def raised(exception_info: dict | None) -> str | None:
    """The message of an exception GX caught while validating, or None.

    GX 0.x put ``raised_exception`` at the top of ``exception_info``; GX 1.x keys one such
    record per metric id. Either shape counts.
    """
    if not exception_info:
        return None
    records = [exception_info] + [v for v in exception_info.values() if isinstance(v, dict)]
    for rec in records:
        if rec.get("raised_exception"):
            return str(rec.get("exception_message") or "an exception without a message")
    return None


@dataclass
class Evaluation:
    alerts: pd.DataFrame
    quarantine: pd.DataFrame
    window: RunWindow
    frames: dict[str, pd.DataFrame] = field(repr=False)
    directory: Directory = field(repr=False)
    results: list = field(default_factory=list, repr=False)

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.alerts["workflow"].value_counts().sort_index().items()}

    def alert_records(self) -> list[dict]:
        """The alerts as CONTRACT.md § 2 lines (``suggested_what_id`` on wf-01 only)."""
        with gc_paused():
            return self._alert_records()

    def _alert_records(self) -> list[dict]:
        out = []
        # Column lists, not itertuples: a million alerts at the largest scale.
        columns = [self.alerts[c].tolist() for c in ALERT_COLUMNS]
        for workflow, obj, record_id, recipient, reasons, slot, suggested, unrouted in zip(*columns, strict=True):
            rec = {
                "workflow": workflow,
                "object": obj,
                "record_id": record_id,
                "recipient": as_recipient(recipient),
                "reasons": list(reasons),
                "slot": slot,
            }
            if obj == "Event":
                rec["suggested_what_id"] = suggested if isinstance(suggested, str) else None
            if unrouted:
                rec["unrouted"] = True  # no routing rule matched: counted in the operations summary
            out.append(rec)
        return out

    def quarantine_records(self) -> list[dict]:
        q = self.quarantine
        return [
            {"object": r.object, "record_id": r.record_id if isinstance(r.record_id, str) else None,
             "reason": r.reason, "detail": r.detail}
            for r in q.itertuples(index=False)
        ]  # fmt: skip


def _mask(frame: pd.DataFrame, expr: str, params: dict) -> np.ndarray:
    """Rows of ``frame`` where a scope expression holds (pandas, vectorised)."""
    if expr.strip() == "True":
        return np.ones(len(frame), dtype=bool)
    if frame.empty:
        return np.zeros(0, dtype=bool)
    return frame.eval(expr, local_dict=params, engine="python").fillna(False).to_numpy(dtype=bool)


def _recipients(wf: Workflow, rows: pd.DataFrame, d: Directory) -> tuple[pd.Series, pd.Series]:
    """(encoded recipient, unrouted flag) of each alert row."""
    rcpt = wf.recipient
    owner = rows["owner_id"]
    if rcpt.channel:
        return pd.Series(CHANNEL + rcpt.channel, index=rows.index), pd.Series(False, index=rows.index)
    if rcpt.dm == "sa":
        owner_channel = d.region_channel(owner)
        to = d.direct(rows["sa"], fallback=owner_channel)
        routed_by = owner.where(to.str.startswith(CHANNEL))
    elif rcpt.dm == "owner":
        to = d.direct(owner, fallback=d.region_channel(owner))
        routed_by = owner.where(to.str.startswith(CHANNEL))
    else:
        routed_by = rows["sa"].where(rows["has_sa"], owner) if "has_sa" in rows else owner
        to = d.region_channel(routed_by)
    unrouted = routed_by.notna() & d.is_unrouted(routed_by.fillna(""))
    return to, unrouted


def run_workflows(
    frames: dict[str, pd.DataFrame], d: Directory, workflows: dict[str, Workflow], params: dict, validator: Validator
) -> pd.DataFrame:
    pieces = []
    for wid, wf in workflows.items():
        frame = frames.get(wf.frame)
        if frame is None:  # change workflows without a previous snapshot
            continue
        scope = _mask(frame, wf.scope, params)
        reasons: dict[Any, list[str]] = {}
        if scope.any():
            groups: dict[tuple, list[tuple[int, Expectation]]] = {}
            for i, e in enumerate(wf.expect):
                # Expectations share a batch when they read the same rows shaped the same way:
                # exploded lists go alone per column, blank-filled text apart from raw columns.
                shape = {"each_in_set": "exploded", "match_regex": "text", "min_length": "text"}.get(e.expectation, "raw")
                groups.setdefault((e.when or "True", shape, e.column if shape == "exploded" else ""), []).append((i, e))
            hits: dict[int, list] = {}
            for (when, _shape, _column), members in groups.items():
                mask = scope & _mask(frame, when, params)
                if not mask.any():
                    continue
                # Only the rows in scope and the columns read: GX never sees the rest.
                cols = list(dict.fromkeys(c for _, e in members for c in (e.column, e.other) if c))
                rows = select_rows(frame, mask, cols)
                batch = pd.concat([_batch_frame(rows, e) for _, e in members], axis=1)
                batch = batch.loc[:, ~batch.columns.duplicated()]
                expectations = [build_expectation(e, params, {"workflow": wid, "reason": e.reason}) for _, e in members]
                name = f"{wid}" + ("" if when == "True" else f" when {when}")
                for (i, _), labels in zip(members, validator.unexpected(wf.frame, batch, name, expectations), strict=True):
                    hits[i] = labels
            for i, e in enumerate(wf.expect):
                for label in hits.get(i, []):
                    got = reasons.setdefault(label, [])
                    if e.reason and e.reason not in got:
                        got.append(e.reason)
        if not reasons:
            continue
        wanted = [c for c in ("id", "owner_id", "sa", "has_sa", "suggested_what_id") if c in frame.columns]
        rows = select_rows(frame, frame.index.isin(list(reasons)), wanted).loc[list(reasons)]
        to, unrouted = _recipients(wf, rows, d)
        pieces.append(
            pd.DataFrame(
                {
                    "workflow": wid,
                    "object": wf.object,
                    "record_id": rows["id"].astype(object),
                    "recipient": to.astype(object),
                    # rows are in the order of ``reasons``: its values are theirs, without a look-up each
                    "reasons": list(reasons.values()) if wf.report_reasons else [[] for _ in range(len(rows))],
                    "slot": wf.slot,
                    "suggested_what_id": rows["suggested_what_id"].astype(object) if "suggested_what_id" in rows else None,
                    "unrouted": unrouted.astype(bool),
                }
            )
        )
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    alerts = pd.concat(pieces, ignore_index=True)
    return alerts.drop_duplicates(["workflow", "record_id", "recipient"]).reset_index(drop=True)


def evaluate(
    current: Snapshot,
    previous: Snapshot | None,
    cfg: Config,
    as_of: date,
    since: datetime | None = None,
    until: datetime | None = None,
    slots: set[str] | None = None,
    allow_empty_window: bool = False,
) -> Evaluation:
    """Run the enabled workflows (of ``slots``, or all) on a snapshot and the one before it.

    Only the frames those workflows read are prepared: a 15-minute reminder run reads
    meetings, not ten million tasks' worth of activity checks.
    """
    w = RunWindow.of(as_of, since, until, allow_empty=allow_empty_window)
    workflows = {k: wf for k, wf in cfg.enabled_workflows().items() if slots is None or wf.slot in slots}
    with gc_paused():
        frames, d = prepare_frames(current, previous, cfg, w, only={wf.frame for wf in workflows.values()})
        params = {**cfg.params(), "as_of": w.as_of}
        validator = Validator()
        alerts = run_workflows(frames, d, workflows, params, validator)
    return Evaluation(alerts, current.quarantine, w, frames, d, validator.results)


def evaluate_paths(
    snapshot: str,
    previous: str | None,
    as_of: date,
    since: datetime | None = None,
    until: datetime | None = None,
    config: str | None = None,
    changes: str | None = None,
) -> Evaluation:
    """``evaluate`` from snapshot paths: what the command line and the DAGs call.

    ``changes``: a changes folder applied to the current snapshot (CONTRACT.md § 1b).
    """
    cfg = load_config(config)
    current = read_snapshot(snapshot, cfg, changes=changes)
    before = read_snapshot(previous, cfg, objects=PREVIOUS_OBJECTS) if previous else None
    return evaluate(current, before, cfg, as_of, since, until)
