"""Workflows judged column-wise by the meaning of their expectations, many at once, without GX.

GX validates a workflow in tens of milliseconds whatever its size: a fixed cost that is
nothing for the configuration's workflows once a day, and everything for two hundred user
alerts in the same evaluation or a draft evaluated on thirty days of snapshots. Those are
judged here, by ``predicates`` (what GX decides, which ``test_predicates`` holds it to):

- each frame's columns are prepared once for every workflow that reads them (``Columns``):
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
  read (``rules.ScopeKeys``): a run that delivers a slot never reads them;
- a recipient that does not depend on the row (a user alert's maker, a channel) is routed once.

The alerts are the lines ``rules.run_workflows`` makes, in its order: a workflow's rows by
the first expectation they fail, then in the frame's order.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sa_hygiene.contract.config import Expectation, Workflow
from sa_hygiene.contract.expressions import parse_scope
from sa_hygiene.engine.predicates import holds, meets, resolve_param
from sa_hygiene.engine.routing import Directory
from sa_hygiene.engine.rules import ALERT_COLUMNS, ScopeKeys, _recipients
from sa_hygiene.source.frames import select_rows

ROUTED_BY = ("id", "owner_id", "sa", "has_sa", "suggested_what_id", "manager_id")


class _Unsupported(Exception):
    """An expression outside the shapes evaluated here: ``predicates.holds`` evaluates it."""


@lru_cache(maxsize=4096)
def _plan(expr: str) -> tuple | None:
    """The expression as a tree of the shapes evaluated here, or None (``holds`` evaluates it);
    once per distinct text (two hundred user alerts share a few scopes and a handful of triggers).

    Only monotone shapes (no ``not``, no ``!=``): a blank then counts as false at each leaf
    exactly as ``holds`` counts the whole expression's unknowns as false.
    """
    try:
        return _node(parse_scope(expr).body)  # the tree the configuration check parsed
    except (SyntaxError, _Unsupported, ValueError):
        return None


_CMP = {ast.Eq: "==", ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}


def _constant(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value
    raise _Unsupported


def _members(elts: list[ast.expr]) -> tuple[tuple, bool]:
    """A list's constants, and whether all are text (an Arrow look-up). The lists of Ids a user
    alert's scope names run to thousands of items: the common case is read in one pass."""
    if all(type(v) is ast.Constant for v in elts):
        values = tuple(v.value for v in elts)  # type: ignore[attr-defined]
        if all(type(v) is str for v in values):
            return values, True
    values = tuple(_constant(v) for v in elts)
    return values, all(isinstance(v, str) for v in values)


def _node(node: ast.AST) -> tuple:
    if isinstance(node, ast.Constant) and node.value is True:
        return ("true",)
    if isinstance(node, ast.BoolOp):
        return ("and" if isinstance(node.op, ast.And) else "or", tuple(_node(v) for v in node.values))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
        return ("and" if isinstance(node.op, ast.BitAnd) else "or", (_node(node.left), _node(node.right)))
    if isinstance(node, ast.Name) and not node.id.startswith("__param_"):  # a @parameter: holds reads it
        return ("flag", node.id)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, ast.Name) and not node.left.id.startswith("__param_"):
        op, right = node.ops[0], node.comparators[0]
        if isinstance(op, ast.In) and isinstance(right, ast.List | ast.Tuple):
            members = getattr(right, "_members", None)  # a region's list: one node in many scopes
            if members is None:
                members = right._members = _members(right.elts)  # type: ignore[attr-defined]
            return ("in", node.left.id, *members)
        if type(op) in _CMP:
            return ("cmp", node.left.id, _CMP[type(op)], _constant(right))
    raise _Unsupported


class Columns:
    """One prepared frame, read by many workflows: what they share is computed once."""

    def __init__(self, frame: pd.DataFrame, params: dict[str, Any]):
        self.frame = frame
        self.params = params
        self._codes: dict[str, tuple[np.ndarray, Any]] = {}
        self._holds: dict[str, np.ndarray] = {}
        self._fails: dict[tuple, np.ndarray] = {}
        self._keys: np.ndarray | None = None
        self._values: dict[str, np.ndarray] = {}
        self._scope_keys: dict[str, set[str]] = {}
        self._positions: dict[tuple, np.ndarray] = {}
        self._verdicts: dict[tuple, np.ndarray] = {}
        self._codes_at: dict[tuple, np.ndarray] = {}
        self._combined: dict[str, pa.Array] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def values(self, column: str) -> np.ndarray:
        """The column as objects, made once (the Ids of many workflows' rows are read from it)."""
        if column not in self._values:
            self._values[column] = self.frame[column].to_numpy(dtype=object)
        return self._values[column]

    def take(self, column: str, positions: np.ndarray) -> np.ndarray:
        """The column's values at ``positions``, as objects (``values(column)[positions]``,
        without spelling out the rows no alert names)."""
        if column in self._values:
            return self._values[column][positions]
        col = self.frame[column]
        arrow = getattr(col.array, "_pa_array", None)
        if isinstance(arrow, pa.ChunkedArray) and pa.types.is_string(arrow.type):  # Arrow's take: no pandas per call
            if column not in self._combined:  # a chunked column's take copies it whole first, every time
                self._combined[column] = arrow.combine_chunks()
            out = self._combined[column].take(positions).to_numpy(zero_copy_only=False)
            if arrow.null_count:
                out[pd.isna(out)] = col.dtype.na_value  # a blank as pandas spells it
            return out
        return col.iloc[positions].to_numpy(dtype=object)

    def codes(self, column: str) -> tuple[np.ndarray, Any]:
        """The column factorized: (a code per row, 0 for a blank and 1 + the distinct value's
        position otherwise; the distinct values)."""
        if column not in self._codes:
            codes, uniques = pd.factorize(self.frame[column].array)
            self._codes[column] = ((codes + 1).astype(np.int32 if len(uniques) < 2**31 - 1 else np.int64), uniques)
        return self._codes[column]

    def by_value(self, column: str, verdict: np.ndarray, blank: bool, at: np.ndarray | None = None) -> np.ndarray:
        """A verdict on each distinct value of ``column`` (``blank``: on a blank), spread to the
        rows (to the rows at positions ``at`` only, when given)."""
        table = np.concatenate([[blank], np.asarray(verdict, dtype=bool)])
        return table[self.codes_at(column, at)]

    def codes_at(self, column: str, at: np.ndarray | None) -> np.ndarray:
        """``codes(column)`` at positions ``at`` (all, for None): kept for the positions of an
        expectation's failing rows, which every user alert of that trigger reads its scope on."""
        codes, _ = self.codes(column)
        if at is None:
            return codes
        shared = next((k for k, v in self._positions.items() if v is at), None)
        if shared is None:
            return codes[at]
        if (column, shared) not in self._codes_at:
            self._codes_at[(column, shared)] = codes[at]
        return self._codes_at[(column, shared)]

    def isin(self, column: str, values: list | tuple, at: np.ndarray | None = None, all_text: bool | None = None) -> np.ndarray:
        """``frame[column].isin(values)`` (at positions ``at``, when given), judged once per
        distinct value; ``all_text``: whether every value is text, when the caller knows."""
        if all_text is None:
            all_text = all(isinstance(v, str) for v in values)
        if not all_text and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
            found = self.frame[column].isin(values).to_numpy(bool)  # a blank among the values matches blanks
            return found if at is None else found[at]
        key = (column, values if isinstance(values, tuple) else tuple(values))
        if key not in self._verdicts:  # the owners of one region share its people's list
            _, uniques = self.codes(column)
            arrow = getattr(uniques, "_pa_array", None)
            text = arrow is not None and (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type))
            if text and all_text:  # Arrow's hash look-up (pandas spells values out first)
                found = pc.fill_null(pc.is_in(arrow, value_set=pa.array(values, arrow.type)), False)
                verdict = found.to_numpy(zero_copy_only=False)
            else:
                verdict = pd.Series(uniques).isin(values).to_numpy(bool)
            self._verdicts[key] = verdict
        return self.by_value(column, self._verdicts[key], False, at)

    # --- scopes -----------------------------------------------------------------------------

    def holds(self, expr: str) -> np.ndarray:
        """``predicates.holds(frame, expr, params)``, once per distinct expression."""
        if expr not in self._holds:
            plan = _plan(expr) if len(self.frame) else None  # once per expression and frame
            try:
                result = self._eval(plan) if plan is not None else None
            except (_Unsupported, KeyError, TypeError, ValueError):
                result = None
            self._holds[expr] = result if result is not None else holds(self.frame, expr, self.params)
        return self._holds[expr]

    def holds_at(self, expr: str, at: np.ndarray) -> np.ndarray:
        """``holds(expr)[at]``, judging only the rows at positions ``at`` when the expression has
        not been judged on the whole frame yet (a user alert's scope, on its trigger's rows)."""
        if expr not in self._holds and len(self.frame):
            plan = _plan(expr)
            try:
                if plan is not None:
                    return self._eval(plan, at)
            except (_Unsupported, KeyError, TypeError, ValueError):
                pass
        return self.holds(expr)[at]

    def _eval(self, plan: tuple, at: np.ndarray | None = None) -> np.ndarray:
        """The plan's verdict on every row, or on the rows at positions ``at``."""
        match plan:
            case ("true",):
                return np.ones(len(self.frame) if at is None else len(at), dtype=bool)
            case ("and" | "or" as op, parts):
                masks = [self._eval(p, at) for p in parts]
                return np.logical_and.reduce(masks) if op == "and" else np.logical_or.reduce(masks)
            case ("flag", name):
                col = self.frame[name]  # a KeyError (a parameter, say): holds evaluates it
                if col.dtype != bool:
                    raise _Unsupported
                return col.to_numpy(bool) if at is None else col.to_numpy(bool)[at]
            case ("in", name, values, all_text):
                return self.isin(name, values, at, all_text)
            case ("cmp", name, op, value):
                col = self.frame[name] if at is None else self.frame[name].iloc[at]
                result = {"==": col.__eq__, ">": col.__gt__, ">=": col.__ge__, "<": col.__lt__, "<=": col.__le__}[op](value)
                if not isinstance(result, pd.Series):
                    raise _Unsupported
                return result.fillna(False).to_numpy(dtype=bool)
        raise _Unsupported

    def scope_keys(self, expr: str) -> set[str]:
        """``rules._scope_keys`` of the rows where ``expr`` holds: the 15-character keys, made
        once per distinct scope (workflows of the same scope share the set: it is read only)."""
        if expr not in self._scope_keys:
            self._scope_keys[expr] = self._keys_of(self.holds(expr))
        return self._scope_keys[expr]

    def _keys_of(self, scope: np.ndarray) -> set[str]:
        if self._keys is None:
            ids = self.frame["id"]
            keys = ids.str.slice(0, 15).to_numpy(dtype=object)
            self._keys = np.where(ids.notna().to_numpy(bool), keys, None)
        found = set(self._keys[scope].tolist())
        found.discard(None)
        return found

    # --- expectations ---------------------------------------------------------------------

    def fails(self, e: Expectation, rows: np.ndarray) -> np.ndarray:
        """Of the rows where ``rows`` holds, those that do not meet ``e`` (``predicates.meets``)."""
        if e.expectation in ROW_BY_ROW:  # lists: judged row by row, in scope only
            return self._row_by_row(e, rows)
        return rows & self._failing_rows(e)[0]

    def failing_positions(self, e: Expectation) -> np.ndarray:
        """The positions of the rows of the whole frame that do not meet ``e`` (not ROW_BY_ROW)."""
        return self._failing_rows(e)[1]

    def _failing_rows(self, e: Expectation) -> tuple[np.ndarray, np.ndarray]:
        values = resolve_param(e.values, self.params)
        key = (e.expectation, e.column, e.other, repr(values), repr(resolve_param(e.min, self.params)),
               repr(resolve_param(e.max, self.params)), e.regex, e.or_equal)  # fmt: skip
        if key not in self._fails:
            self._fails[key] = self._failing(e, values)
        if key not in self._positions:
            self._positions[key] = np.flatnonzero(self._fails[key])
        return self._fails[key], self._positions[key]

    def _failing(self, e: Expectation, values: Any) -> np.ndarray:
        s = self.frame[e.column]
        blank = s.isna().to_numpy(bool)
        match e.expectation:
            case "not_null":
                return blank
            case "in_set" | "not_in_set":
                found = self.isin(e.column, list(values))
                return ~blank & (~found if e.expectation == "in_set" else found)
            case "between":
                low, high = resolve_param(e.min, self.params), resolve_param(e.max, self.params)
                inside = np.ones(len(s), dtype=bool)
                if low is not None:
                    inside &= (s >= low).fillna(True).to_numpy(bool)
                if high is not None:
                    inside &= (s <= high).fillna(True).to_numpy(bool)
                return ~blank & ~inside
            case "pair_equal" | "pair_greater":
                o = self.frame[e.other]
                other_blank = o.isna().to_numpy(bool)
                if e.expectation == "pair_equal":
                    equal = (s == o).fillna(False).to_numpy(bool)
                    return ~((blank & other_blank) | (~blank & ~other_blank & equal))
                greater = ((s >= o) if e.or_equal else (s > o)).fillna(False).to_numpy(bool)
                return ~blank & ~other_blank & ~greater
            case "match_regex" | "min_length":  # text: judged once per distinct value
                _, uniques = self.codes(e.column)
                verdict = [not meets(e, {e.column: u}, self.params) for u in uniques]
                return self.by_value(e.column, np.array(verdict, dtype=bool), not meets(e, {e.column: None}, self.params))
        raise AssertionError(e.expectation)

    def _row_by_row(self, e: Expectation, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.frame), dtype=bool)
        positions = np.flatnonzero(rows)
        if len(positions):
            cells = self.frame[[c for c in (e.column, e.other) if c]].iloc[positions].to_dict("records")
            out[positions] = [not meets(e, row, self.params) for row in cells]
        return out


ROW_BY_ROW = ("each_in_set",)  # expectations on lists: judged row by row, on the rows in scope only


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


def column_alerts(
    frames: dict[str, pd.DataFrame], d: Directory, workflows: dict[str, Workflow], params: dict,
    scopes: dict[str, set[str]] | None = None, columns: dict[str, Columns] | None = None,
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
            scopes[wid] = ScopeKeys(lambda cols=cols, expr=wf.scope: cols.scope_keys(expr))
        one = wf.expect[0] if len(wf.expect) == 1 and wf.expect[0].expectation not in ROW_BY_ROW else None
        if one is not None:  # its failing rows, then its scope and when on those rows alone
            failing = None
            positions = order = cols.failing_positions(one)
            if len(positions):
                keep = cols.holds_at(wf.scope, positions)
                if one.when:
                    keep &= cols.holds_at(one.when, positions)
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
        if not (wf.report_reasons and any(reasons_of)):
            reasons = [[] for _ in range(n)]
        elif len(wf.expect) == 1:  # every row failed the one expectation
            reasons = [[reasons_of[0]] for _ in range(n)]
        else:
            reasons = [list(dict.fromkeys(r for h, r in zip(hits, reasons_of, strict=True) if r and h[p])) for p in positions]
        unique = unique and pd.Index(record_ids).is_unique
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
    alerts = pd.DataFrame({c: list(chain.from_iterable(v)) if c == "reasons" else pd.Series(_joined(v), dtype=dtypes.get(c, object))
                           for c, v in out.items()})  # fmt: skip
    if not unique:  # a frame holding a record twice: as run_workflows drops the repeats
        alerts = alerts.drop_duplicates(["workflow", "record_id", "recipient"]).reset_index(drop=True)
    return alerts

