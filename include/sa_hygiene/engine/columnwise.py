"""Workflows judged column-wise by the meaning of their expectations, many at once, without GX.

GX validates a workflow in tens of milliseconds whatever its size: a fixed cost that is
nothing for the configuration's workflows once a day, and everything for two hundred user
alerts in the same evaluation or a draft evaluated on thirty days of snapshots. Those are
judged here, by ``predicates`` (what GX decides, which ``test_predicates`` holds it to):

- each frame's columns are prepared once for every workflow that reads them (``columns.Columns``):
  a column is factorized once, and a set look-up (``owner_id in [...]``, ``in_set``) is a
  look-up among its distinct values, then one gather over the rows;
- scopes and ``when`` expressions are evaluated once per distinct expression; the scopes the
  user-alert compiler writes (``(sa in [...]) | (owner_id in [...])``, ``rank == 3``) are
  evaluated from those look-ups, any other expression by ``predicates.holds`` itself;
- an expectation's failing rows are computed once per distinct expectation and column;
- a workflow of one expectation (every user alert) reads its scope on the rows that fail it,
  not on the whole frame: two hundred alerts share a handful of triggers, each failing on
  a fraction of the rows, and each alert's own part is a look-up among those;
- a scope's keys (what the alert state reads to tell fixed from gone) are made when first
  read (``columns.ScopeKeys``): a run that delivers a slot never reads them;
- a recipient that does not depend on the row (a user alert's maker, a channel) is routed once.

The alerts are the lines ``rules.run_workflows`` makes, in its order: a workflow's rows by
the first expectation they fail, then in the frame's order.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from itertools import chain

import numpy as np
import pandas as pd
import pyarrow as pa

from sa_hygiene.contract.config import Workflow
from sa_hygiene.engine.columns import ROW_BY_ROW, Columns
from sa_hygiene.engine.routing import Directory
from sa_hygiene.engine.rules import ALERT_COLUMNS, _recipients
from sa_hygiene.source.frames import select_rows

ROUTED_BY = ("id", "owner_id", "sa", "has_sa", "suggested_what_id", "manager_id")


class _Makers:
    """The DM of each user alert's maker (``recipient: {user: ...}``), routed once for all of them."""

    def __init__(self, workflows: dict[str, Workflow], d: Directory):
        people = sorted({wf.recipient.user for wf in workflows.values() if wf.recipient.user})
        self.to: dict[str, str] = {}
        if people:
            person = pd.Series(people, dtype=object)
            to = d.direct(person, fallback=d.region_channel(person))  # as rules._recipients routes a maker
            self.to = dict(zip(people, to.tolist(), strict=True))


ROUTED_FROM = ("owner_id", "sa", "has_sa", "manager_id")  # what rules._recipients reads of a row


def _routed(wf: Workflow, rows: pd.DataFrame, d: Directory) -> tuple[np.ndarray, np.ndarray]:
    """``rules._recipients`` of ``rows``, routed once per distinct owner, SA and manager: a
    row's recipient depends on those alone, and a month of tasks has far fewer of them."""
    read = [c for c in ROUTED_FROM if c in rows.columns]
    if rows.empty or not read:
        to, unrouted = _recipients(wf, rows, d)
        return to.to_numpy(dtype=object), unrouted.to_numpy(dtype=bool)
    codes = np.stack([pd.factorize(rows[c].array)[0] for c in read], axis=1)
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    to, unrouted = _recipients(wf, rows.iloc[first], d)
    inverse = inverse.reshape(-1)
    return to.to_numpy(dtype=object)[inverse], unrouted.to_numpy(dtype=bool)[inverse]


def _joined(parts: list) -> np.ndarray:
    """One column of the alerts from each workflow's part: an array, or (one value, its rows)
    for a value every row of the workflow shares (its name, its slot, a user alert's DM)."""
    if not any(isinstance(p, tuple) for p in parts):
        return np.concatenate(parts)
    values = np.empty(len(parts), dtype=object)
    for i, p in enumerate(parts):
        values[i] = p[0] if isinstance(p, tuple) else None
    counts = [p[1] if isinstance(p, tuple) else len(p) for p in parts]
    out = np.repeat(values, counts)
    if not all(isinstance(p, tuple) for p in parts):
        at = 0
        for p, n in zip(parts, counts, strict=True):
            if not isinstance(p, tuple):
                out[at : at + n] = p
            at += n
    return out


def _text(parts: list[tuple[str, int]]) -> pd.Series:
    """A text column of the alerts from each workflow's (name, rows): a workflow's value repeated
    in Arrow, not a hundred thousand Python strings converted to text again."""
    names = pa.array([v for v, _ in parts], pa.large_string())
    which = np.repeat(np.arange(len(parts)), [n for _, n in parts])
    return pd.Series(pd.array(names.take(pa.array(which)), dtype="str"))


def column_alerts(
    frames: dict[str, pd.DataFrame], d: Directory, workflows: dict[str, Workflow], params: dict,
    scopes: dict[str, AbstractSet[str]] | None = None, columns: dict[str, Columns] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The alerts of ``workflows``, as ``rules.run_workflows`` makes them (its columns, its order);
    ``scopes``, when given, receives each workflow's in-scope keys. ``columns``: the frames'
    ``Columns`` of an earlier call on the same frames, to share (filled in when given)."""
    columns = {} if columns is None else columns
    makers = _Makers(workflows, d)
    out: dict[str, list] = {c: [] for c in ALERT_COLUMNS}  # arrays, (one value, rows), and lists of reasons
    unique = True
    for wid, wf in workflows.items():
        frame = frames.get(wf.frame)
        if frame is None:  # change workflows without a previous snapshot
            continue
        cols = columns.setdefault(wf.frame, Columns(frame, params))
        if scopes is not None:
            scopes[wid] = cols.scope_keys(wf.scope)  # its rows evaluated when first read
        one = wf.expect[0] if len(wf.expect) == 1 and wf.expect[0].expectation not in ROW_BY_ROW else None
        if one is not None:  # its failing rows, then its scope and when on those rows alone
            failing = None
            positions = order = cols.failing_positions(one)
            if len(positions):
                keep = cols.holds_at(wf.scope, positions)
                if one.when:
                    keep = keep & cols.holds_at(one.when, positions)  # not in place: a verdict may be kept
                positions = order = positions[keep]
        else:
            scope = cols.holds(wf.scope)
            if not scope.any():
                continue
            hits = [cols.fails(e, scope & cols.holds(e.when) if e.when else scope) for e in wf.expect]
            if len(hits) == 1:  # one expectation judged row by row: its rows in the frame's order
                failing = hits[0]
                positions = order = np.flatnonzero(failing)
            else:
                first = np.full(len(frame), len(hits), dtype=np.int64)
                for i in reversed(range(len(hits))):
                    first[hits[i]] = i
                failing = first < len(hits)
                positions = np.flatnonzero(failing)
                order = np.argsort(first[positions], kind="stable")  # by first failed expectation, then frame order
                positions = positions[order]
        if not len(positions):
            continue
        n = len(positions)
        if wf.recipient.user:  # the same DM for every row: no row is read but its Id
            record_ids = cols.take("id", positions)
            suggested = cols.take("suggested_what_id", positions) if "suggested_what_id" in frame else (None, n)
            to, unrouted = (makers.to[wf.recipient.user], n), np.zeros(n, dtype=bool)
        else:
            if failing is None:
                failing = np.zeros(len(frame), dtype=bool)
                failing[positions] = True
            rows = select_rows(frame, failing, [c for c in ROUTED_BY if c in frame.columns])
            rows = rows.iloc[order] if len(wf.expect) > 1 else rows
            to, unrouted = _routed(wf, rows, d)
            record_ids = rows["id"].to_numpy(dtype=object)
            suggested = rows["suggested_what_id"].to_numpy(dtype=object) if "suggested_what_id" in rows else (None, n)
        reasons_of = [e.reason for e in wf.expect]
        # Rows of the same reasons share one list (the alerts' reasons are read, never changed
        # in place): a hundred thousand lists, each tracked by the garbage collector, for one value.
        if not (wf.report_reasons and any(reasons_of)):
            reasons = [[]] * n
        elif len(wf.expect) == 1:  # every row failed the one expectation
            reasons = [[reasons_of[0]]] * n
        else:
            reasons = [list(dict.fromkeys(r for h, r in zip(hits, reasons_of, strict=True) if r and h[p])) for p in positions]
        unique = unique and pd.Index(record_ids, dtype=object).is_unique  # no inference of a text dtype
        out["workflow"].append((wid, n))
        out["object"].append((wf.object, n))
        out["record_id"].append(record_ids)
        out["recipient"].append(to)
        out["reasons"].append(reasons)
        out["slot"].append((wf.slot, n))
        out["suggested_what_id"].append(suggested)
        out["unrouted"].append(unrouted)
    if not out["workflow"]:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    # The dtypes run_workflows' frames have: names as text, Ids and recipients as objects.
    dtypes = {"workflow": "str", "object": "str", "slot": "str", "unrouted": bool}
    alerts = pd.DataFrame({c: list(chain.from_iterable(v)) if c == "reasons" else _text(v) if dtypes.get(c) == "str"
                           else pd.Series(_joined(v), dtype=dtypes.get(c, object)) for c, v in out.items()},
                          copy=False)  # the columns were made for it: not copied again (4 ms of 170k lines)  # fmt: skip
    if not unique:  # a frame holding a record twice: as run_workflows drops the repeats
        alerts = alerts.drop_duplicates(["workflow", "record_id", "recipient"]).reset_index(drop=True)
    return alerts

