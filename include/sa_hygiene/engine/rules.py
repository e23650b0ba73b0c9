"""The rule engine: every workflow of the configuration, run as Great Expectations.

A workflow is data (``contract/workflows.yaml``): the frame it reads, a scope, and the
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
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from sa_hygiene.contract.config import Config, Expectation, Workflow
from sa_hygiene.contract.recipients import CHANNEL, as_recipient
from sa_hygiene.engine.columns import Columns
from sa_hygiene.engine.gx import Check, Validator, frame_batches
from sa_hygiene.engine.prepare import RunWindow, prepare_frames
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.frames import select_rows
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, Snapshot, read_snapshot

log = logging.getLogger(__name__)


ALERT_COLUMNS = ["workflow", "object", "record_id", "recipient", "reasons", "slot", "suggested_what_id", "unrouted"]


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


@dataclass
class Evaluation:
    alerts: pd.DataFrame
    quarantine: pd.DataFrame
    window: RunWindow
    frames: dict[str, pd.DataFrame] = field(repr=False)
    directory: Directory = field(repr=False)
    results: list = field(default_factory=list, repr=False)
    snapshot: Snapshot | None = field(default=None, repr=False)  # the one evaluated (the report renders it)
    # {workflow: 15-character keys of the records in its scope}: the alert state tells an episode
    # that ended "fixed" (still in scope, passes) from "gone" (left the scope or the data).
    # Read-only sets (``columns.ScopeKeys``), shared by the workflows of one scope.
    scope: dict[str, AbstractSet[str]] = field(default_factory=dict, repr=False)

    def quarantined_keys(self) -> set[str]:
        """Keys of the records that could not be read today: their episodes stay open until they
        can. The quarantined rows, and the POVs whose opportunity row is quarantined: the rules
        reading the opportunity leave such a POV out of their scope, yet the POV did not go away
        (only its reference is unreadable this run), so its episodes must not end as "gone". A fix
        of such a POV is confirmed once its opportunity can be read again."""
        ids = self.quarantine["record_id"] if "record_id" in self.quarantine else []
        keys = {str(r)[:15] for r in ids if isinstance(r, str) and r}
        povs = self.frames.get("povs")
        if povs is not None and "opportunity_quarantined" in povs and len(povs):
            keys |= {str(k)[:15] for k in povs.loc[povs["opportunity_quarantined"].astype(bool), "id"] if isinstance(k, str)}
        return keys

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


def _recipients(wf: Workflow, rows: pd.DataFrame, d: Directory) -> tuple[pd.Series, pd.Series]:
    """(encoded recipient, unrouted flag) of each alert row."""
    rcpt = wf.recipient
    owner = rows["owner_id"]
    if rcpt.channel:
        return pd.Series(CHANNEL + rcpt.channel, index=rows.index), pd.Series(False, index=rows.index)
    if rcpt.user:  # a user alert's maker: their DM, with the DM fallbacks of CONTRACT.md § 3
        person = pd.Series(rcpt.user, index=rows.index, dtype=object)
        to = d.direct(person, fallback=d.region_channel(person))
        return to, pd.Series(False, index=rows.index)
    if rcpt.dm == "sa":
        owner_channel = d.region_channel(owner)
        to = d.direct(rows["sa"], fallback=owner_channel)
        routed_by = owner.where(to.str.startswith(CHANNEL))
    elif rcpt.dm == "owner":
        to = d.direct(owner, fallback=d.region_channel(owner))
        routed_by = owner.where(to.str.startswith(CHANNEL))
    elif rcpt.dm == "manager":  # the manager of the user the row is about (the row's owner_id)
        to = d.direct(rows["manager_id"], fallback=d.region_channel(owner))
        routed_by = owner.where(to.str.startswith(CHANNEL))
    else:
        routed_by = rows["sa"].where(rows["has_sa"], owner) if "has_sa" in rows else owner
        to = d.region_channel(routed_by)
    unrouted = routed_by.notna() & d.is_unrouted(routed_by.fillna(""))
    return to, unrouted


def run_workflows(
    frames: dict[str, pd.DataFrame], d: Directory, workflows: dict[str, Workflow], params: dict, validator: Validator,
    scopes: dict[str, AbstractSet[str]] | None = None, columns: dict[str, Columns] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The alerts of ``workflows``; ``scopes``, when given, receives each workflow's in-scope keys;
    ``columns``: the frames' ``Columns``, to share with a later ``columnwise.column_alerts`` on
    the same frames (filled in when given).

    Every expectation of every workflow reading a frame is validated in one GX suite of that
    frame (``gx.frame_batches``), each on the rows of its workflow's scope and its ``when``;
    the rows an expectation finds unexpected are that workflow's alerts, with its reasons.
    Scopes and ``when`` expressions are evaluated once per distinct expression and frame, and
    the in-scope keys cut from the frame's Ids once (``Columns``): workflows repeat them.
    """
    columns = {} if columns is None else columns
    checks: dict[str, list[Check]] = {}
    same: dict[tuple[str, str], int] = {}  # (frame, what a check judges) -> its position in checks[frame]
    # workflow -> (expectation, its check, the rows it judges)
    owners: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    for wid, wf in workflows.items():
        frame = frames.get(wf.frame)
        if frame is None:  # change workflows without a previous snapshot
            continue
        cols = columns.setdefault(wf.frame, Columns(frame, params))
        scope = cols.holds(wf.scope)
        if scopes is not None:
            scopes[wid] = cols.scope_keys(wf.scope)  # shared by workflows of the same scope: read only
        owners[wid] = []
        if not scope.any():
            continue
        for i, e in enumerate(wf.expect):
            domain = scope & cols.holds(e.when) if e.when else scope
            if not domain.any():
                continue
            # The same expectation in several workflows (te_end set, say) is one GX check on
            # the rows of all their domains; each workflow keeps the unexpected rows of its own.
            what = e.model_dump_json(exclude={"reason", "when"})
            j = same.setdefault((wf.frame, what), len(checks.setdefault(wf.frame, [])))
            if j == len(checks[wf.frame]):
                checks[wf.frame].append(Check(e, domain, {"workflow": wid, "reason": e.reason}))
            else:
                c = checks[wf.frame][j]
                c.domain = c.domain | domain
                c.meta = {"workflow": f"{c.meta['workflow']}, {wid}", "reason": c.meta["reason"] or e.reason}
            owners[wid].append((i, j, domain))
    unexpected: dict[str, list[np.ndarray]] = {}  # frame -> each check's unexpected rows (bool per row)
    for name, these in checks.items():
        frame = frames[name]
        found = [np.zeros(len(frame), dtype=bool) for _ in these]
        for kind, batch, expectations, members in frame_batches(frame, these, params):
            suite = name if kind == "rows" else f"{name} {kind}"  # a page path: no brackets
            for j, positions in zip(members, validator.unexpected(name, batch, suite, expectations), strict=True):
                found[j][np.asarray(positions, dtype=np.int64)] = True
        unexpected[name] = found
    pieces = []
    unique = True  # each workflow's records once: the alerts have no repeat to drop
    for wid, wf in workflows.items():
        if not owners.get(wid):
            continue
        failed = [(wf.expect[i], unexpected[wf.frame][j] & domain) for i, j, domain in owners[wid]]
        piece = _alerts_of(wid, wf, frames[wf.frame], failed, d)
        if piece is not None:
            pieces.append(piece)
            unique = unique and pd.Index(piece["record_id"]).is_unique
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    alerts = pd.concat(pieces, ignore_index=True)
    if unique:
        return alerts
    return alerts.drop_duplicates(["workflow", "record_id", "recipient"]).reset_index(drop=True)  # a frame holding a record twice


def _alerts_of(wid: str, wf: Workflow, frame: pd.DataFrame, failed: list[tuple[Expectation, np.ndarray]],
               d: Directory) -> pd.DataFrame | None:  # fmt: skip
    """One workflow's alerts from the rows each of its expectations found unexpected: ordered
    by the first expectation a row fails (in the workflow's order), then by row, with the
    reasons of every expectation it fails, each once."""
    seen = np.zeros(len(frame), dtype=bool)
    order = []
    for _, rows in failed:
        new = rows & ~seen
        order.append(np.flatnonzero(new))
        seen |= new
    positions = np.concatenate(order)
    if not len(positions):
        return None
    if wf.report_reasons:
        # Rows failing the same expectations share their reasons: one list per pattern, copied.
        pattern = np.zeros(len(positions), dtype=np.int64 if len(failed) < 63 else object)
        for k, (_, rows) in enumerate(failed):
            pattern = pattern + rows[positions].astype(pattern.dtype) * (1 << k)
        by_pattern = {}
        for p in set(pattern.tolist()):
            reasons: list[str] = []
            for k, (e, _) in enumerate(failed):
                if p >> k & 1 and e.reason and e.reason not in reasons:
                    reasons.append(e.reason)
            by_pattern[p] = reasons
        reasons_of = [list(by_pattern[p]) for p in pattern.tolist()]
    else:
        reasons_of = [[] for _ in range(len(positions))]
    wanted = [c for c in ("id", "owner_id", "sa", "has_sa", "suggested_what_id", "manager_id") if c in frame.columns]
    rows = select_rows(frame, seen, wanted)
    rows = rows.iloc[np.searchsorted(np.flatnonzero(seen), positions)]
    to, unrouted = _recipients(wf, rows, d)
    return pd.DataFrame(
        {
            "workflow": wid,
            "object": wf.object,
            "record_id": rows["id"].astype(object),
            "recipient": to.astype(object),
            "reasons": reasons_of,
            "slot": wf.slot,
            "suggested_what_id": rows["suggested_what_id"].astype(object) if "suggested_what_id" in rows else None,
            "unrouted": unrouted.astype(bool),
        }
    )


def evaluate(
    current: Snapshot,
    previous: Snapshot | None,
    cfg: Config,
    as_of: date,
    since: datetime | None = None,
    until: datetime | None = None,
    slots: set[str] | None = None,
    allow_empty_window: bool = False,
    workflows: set[str] | None = None,
    validator: Validator | None = None,
) -> Evaluation:
    """Run the enabled workflows (of ``slots``, or all; only ``workflows`` when given) on a
    snapshot and the one before it.

    Only the frames those workflows read are prepared: a 15-minute reminder run reads
    meetings, not ten million tasks' worth of activity checks. ``validator``: a GX context to
    reuse (the backtest evaluates thirty days; a context costs a second to make).
    """
    w = RunWindow.of(as_of, since, until, allow_empty=allow_empty_window)
    only = workflows
    workflows = {k: wf for k, wf in cfg.enabled_workflows().items()
                 if (slots is None or wf.slot in slots) and (only is None or k in only)}  # fmt: skip
    with gc_paused():
        frames, d = prepare_frames(current, previous, cfg, w, only={wf.frame for wf in workflows.values()})
        params = {**cfg.params(), "as_of": w.as_of}
        validator = validator or Validator()
        scopes: dict[str, AbstractSet[str]] = {}
        alerts = run_workflows(frames, d, workflows, params, validator, scopes)
    return Evaluation(alerts, current.quarantine, w, frames, d, validator.results, current, scopes)


def evaluate_snapshots(
    current,
    previous,
    cfg: Config,
    as_of: date,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    changes: str | os.PathLike | None = None,
    slots: set[str] | None = None,
    allow_empty_window: bool = False,
    workflows: set[str] | None = None,
) -> Evaluation:
    """Read a snapshot and the one before it, and ``evaluate``: what the DAG steps, the report,
    the command line and the demo all run, so that they read snapshots the same way.

    ``current`` and ``previous`` are folders or URLs, or references of the store (anything with
    a ``url``); ``previous`` may be None. Of the previous snapshot only ``PREVIOUS_OBJECTS`` are
    read (the change workflows compare nothing else). ``changes``: a changes folder applied to
    the current snapshot (CONTRACT.md § 1b). The evaluation keeps the snapshot it read
    (``Evaluation.snapshot``) for the caller that renders it.
    """
    snapshot = read_snapshot(_location(current), cfg, changes=changes)
    before = read_snapshot(_location(previous), cfg, objects=PREVIOUS_OBJECTS) if previous else None
    return evaluate(snapshot, before, cfg, as_of, since, until, slots=slots, allow_empty_window=allow_empty_window,
                    workflows=workflows)  # fmt: skip


def _location(snapshot) -> str | os.PathLike:
    """A snapshot's folder or URL: a path as given, a store reference by its ``url``."""
    return getattr(snapshot, "url", snapshot)
