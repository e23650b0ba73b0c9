"""A prepared frame's columns, read by many workflows: what they share is computed once.

Both engines read scopes through here: ``rules.run_workflows`` (GX judges the expectations)
evaluates each distinct scope and ``when`` once per frame and cuts the frame's Ids to keys
once, and ``columnwise`` judges expectations too (``Columns.fails``), for user alerts and
the backtest. An expression is evaluated from column look-ups when it has one of the shapes
below (``_plan``), by ``predicates.holds`` otherwise, with the same result.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sa_hygiene.contract.config import Expectation
from sa_hygiene.contract.expressions import parse_scope
from sa_hygiene.engine.predicates import holds, meets, resolve_param
from sa_hygiene.source.frames import select_rows


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


@lru_cache(maxsize=256)
def _value_set(values: tuple, kind: pa.DataType) -> pa.Array:
    """A list's values as Arrow text, once per list: a region's people are looked up among the
    distinct owners of every trigger's rows, for the SA and for the owner."""
    return pa.array(values, kind)


def _found(uniques: pa.Array | pa.ChunkedArray, value_set: pa.Array) -> np.ndarray:
    """Whether each of ``uniques`` (distinct, no blank) is among ``value_set``. Arrow hashes the
    set it looks up in, so the smaller side is hashed: a region's list of thousands of people is
    looked up among a trigger's few hundred owners at less than half the cost."""
    if len(value_set) <= len(uniques):
        return pc.fill_null(pc.is_in(uniques, value_set=value_set), False).to_numpy(zero_copy_only=False)
    uniques = uniques.combine_chunks() if isinstance(uniques, pa.ChunkedArray) else uniques
    found = np.zeros(len(uniques), dtype=bool)
    found[pc.index_in(value_set, value_set=uniques).drop_null().to_numpy()] = True
    return found


def _is_text(arrow: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)


_CMP = {ast.Eq: "==", ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}


def _constant(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value
    raise _Unsupported


class Values(tuple):
    """A list's values, hashed once: the verdicts and Arrow sets kept for a list are found by it,
    and a tuple hashes all its items at every look-up (a region's 6,000 spellings, tens of
    microseconds, several times for each of an alert's look-ups; 25 stage-move alerts went from
    7.1 to 6.2 ms)."""

    def __hash__(self) -> int:
        known = self.__dict__.get("_hash")
        if known is None:
            known = self.__dict__["_hash"] = tuple.__hash__(self)
        return known


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
            if members is None or type(members[0]) is not Values:
                values, all_text = members if members is not None else _members(right.elts)
                members = right._members = (Values(values), all_text)  # type: ignore[attr-defined]
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
        self._keys: np.ndarray | None = None  # each row's key, once cut (``_cut``)
        self._cut = np.zeros(0, dtype=bool)
        self._scope_keys: dict[str, ScopeKeys] = {}
        self._where: dict[str, int] | None = None  # key -> its row, of the rows of every scope
        self._repeated: dict[str, list[int]] = {}  # key -> its rows, for a key on several
        self._indexed = 0  # how many scopes ``_where`` holds the rows of
        self._positions: dict[tuple, np.ndarray] = {}
        self._verdicts: dict[tuple, np.ndarray] = {}
        self._codes_at: dict[tuple, np.ndarray] = {}
        self._series: dict[str, pd.Series] = {}
        self._text_columns: dict[str, tuple[list[pa.Array], np.ndarray | None] | None] = {}
        self._local: dict[tuple, tuple[np.ndarray, pa.Array]] = {}
        self._compared: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> pd.Series:
        """``frame[name]``, looked up once: pandas 3 makes a new Series at each look-up (tens of
        microseconds), and two hundred user alerts look up the same few columns 2,000 times."""
        col = self._series.get(name)
        if col is None:
            col = self._series[name] = self.frame[name]
        return col

    def take(self, column: str, positions: np.ndarray) -> np.ndarray:
        """The column's values at ``positions``, as objects (``values(column)[positions]``,
        without spelling out the rows no alert names)."""
        col = self.column(column)
        taken = self._taken(column, positions)
        if taken is not None:  # Arrow's take: no pandas per call
            out = taken.to_numpy(zero_copy_only=False)
            if taken.null_count:
                out[taken.is_null().to_numpy(zero_copy_only=False)] = col.dtype.na_value  # a blank as pandas spells it
            return out
        return col.iloc[positions].to_numpy(dtype=object)

    def _taken(self, column: str, positions: np.ndarray) -> pa.Array | None:
        """A text column's values at ``positions`` as one Arrow array (None for any other column).

        A chunked column is taken from chunk by chunk here: Arrow's own take of a chunked array
        costs about 2 ms whatever the positions on a million tasks (it resolves the chunks for
        the whole column), a tenth of a millisecond here for a user alert's few thousand rows,
        and combining the column first copies it whole."""
        if column not in self._text_columns:
            arrow = getattr(self.column(column).array, "_pa_array", None)
            if arrow is None or not _is_text(arrow):
                self._text_columns[column] = None
            elif isinstance(arrow, pa.ChunkedArray) and arrow.num_chunks != 1:
                self._text_columns[column] = (arrow.chunks, np.cumsum([0, *map(len, arrow.chunks)]))
            else:
                self._text_columns[column] = (arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow], None)
        known = self._text_columns[column]
        if known is None:
            return None
        chunks, starts = known
        if starts is None:
            return chunks[0].take(positions)
        order = None
        if len(positions) > 1 and (np.diff(positions) < 0).any():  # rows by first failed expectation
            order = np.argsort(positions, kind="stable")
            positions = positions[order]
        cut = np.searchsorted(positions, starts)
        parts = [chunks[i].take(positions[cut[i] : cut[i + 1]] - starts[i]) for i in range(len(chunks)) if cut[i + 1] > cut[i]]
        taken = pa.concat_arrays(parts) if parts else pa.array([], chunks[0].type)
        if order is not None:
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            taken = taken.take(back)
        return taken

    def codes(self, column: str) -> tuple[np.ndarray, Any]:
        """The column factorized: (a code per row, 0 for a blank and 1 + the distinct value's
        position otherwise; the distinct values)."""
        if column not in self._codes:
            codes, uniques = pd.factorize(self.column(column).array)
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
        shared = self._shared(at)
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
            found = self.column(column).isin(values).to_numpy(bool)  # a blank among the values matches blanks
            return found if at is None else found[at]
        col = self.column(column)
        if col.dtype == bool and all(type(v) in (bool, int, float) for v in values):  # no blanks: compared, not factorized
            flags = col.to_numpy(bool) if at is None else col.to_numpy(bool)[at]
            found = np.zeros(len(flags), dtype=bool)
            for v in set(values):
                found |= flags == v
            return found
        values = values if isinstance(values, tuple) else tuple(values)
        local = self._local_codes(column, at) if all_text else None
        if local is not None:  # the rows at ``at`` encoded alone: their distinct values are looked up
            codes, uniques, shared = local
        else:
            codes, (_, uniques), shared = None, self.codes(column), None
        key = (column, shared, values)
        if key not in self._verdicts:  # the owners of one region share its people's list
            arrow = uniques if isinstance(uniques, pa.Array) else getattr(uniques, "_pa_array", None)
            if arrow is not None and _is_text(arrow) and all_text:  # Arrow's hash look-up (pandas spells values out first)
                verdict = _found(arrow, _value_set(values, arrow.type))
            else:
                verdict = pd.Series(uniques).isin(values).to_numpy(bool)
            self._verdicts[key] = np.concatenate([[False], np.asarray(verdict, dtype=bool)])  # code 0: a blank
        return self._verdicts[key].take(codes if codes is not None else self.codes_at(column, at))  # take: twice []'s speed

    def _local_codes(self, column: str, at: np.ndarray | None) -> tuple[np.ndarray, pa.Array, tuple] | None:
        """``codes``, for a text column not factorized yet, of the rows at an expectation's failing
        positions alone (with their own distinct values), when those are a small part of the
        frame: a user alert on open tasks reads its owners on a sixth of a million tasks, and
        factorizing the whole column cost more than all of its alerts' look-ups. None otherwise."""
        if at is None or column in self._codes or len(at) * 4 > len(self.frame):
            return None
        shared = self._shared(at)
        if shared is None:
            return None
        if (column, shared) not in self._local:
            taken = self._taken(column, at)
            if taken is None:
                return None
            encoded = pc.dictionary_encode(taken)
            codes = pc.add(pc.fill_null(encoded.indices, -1), 1).to_numpy(zero_copy_only=False)
            self._local[(column, shared)] = (codes.astype(np.int32, copy=False), encoded.dictionary)
        codes, uniques = self._local[(column, shared)]
        return codes, uniques, shared

    def _shared(self, at: np.ndarray) -> tuple | None:
        """The key of an expectation's failing positions when ``at`` is that very array (what
        ``failing_positions`` gave every user alert of the trigger), else None."""
        return next((k for k, v in self._positions.items() if v is at), None)

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
                col = self.column(name)  # a KeyError (a parameter, say): holds evaluates it
                if col.dtype != bool:
                    raise _Unsupported
                return col.to_numpy(bool) if at is None else col.to_numpy(bool)[at]
            case ("in", name, values, all_text):
                return self.isin(name, values, at, all_text)
            case ("cmp", name, op, value):
                # A change alert's "rank == 3" is the same on its trigger's rows for every alert
                # of that trigger: compared once (read-only, as every kept verdict).
                shared = self._shared(at) if at is not None else None
                if shared is not None and (plan, shared) in self._compared:
                    return self._compared[(plan, shared)]
                col = self.column(name) if at is None else self.column(name).iloc[at]
                result = {"==": col.__eq__, ">": col.__gt__, ">=": col.__ge__, "<": col.__lt__, "<=": col.__le__}[op](value)
                if not isinstance(result, pd.Series):
                    raise _Unsupported
                verdict = result.fillna(False).to_numpy(dtype=bool)
                if shared is not None:
                    verdict.flags.writeable = False
                    self._compared[(plan, shared)] = verdict
                return verdict
        raise _Unsupported

    def scope_keys(self, expr: str) -> ScopeKeys:
        """The keys of the rows where ``expr`` holds: the 15-character keys, as a
        read-only set (workflows of the same scope share it)."""
        if expr not in self._scope_keys:
            self._scope_keys[expr] = ScopeKeys(self, expr)
        return self._scope_keys[expr]

    def _cut_keys(self, rows: np.ndarray) -> np.ndarray:
        """Each row's key (None for a blank Id), cut for ``rows`` if not yet: a scope of a
        million tasks may hold a few thousand, and the rest are never made."""
        if self._keys is None:
            self._keys = np.full(len(self.frame), None, dtype=object)
            self._cut = np.zeros(len(self.frame), dtype=bool)
        missing = rows & ~self._cut
        if missing.any():
            ids = select_rows(self.frame, missing, ["id"])["id"]
            keys = ids.str.slice(0, 15)
            self._keys[missing] = np.where(keys.notna().to_numpy(bool), keys.to_numpy(dtype=object), None)
            self._cut |= missing
        return self._keys

    def _rows_of(self, key: str) -> list[int]:
        """The rows of any scope whose key is ``key``: one table for the frame's scopes, made
        when a key is first looked up (or again, when a scope came after it)."""
        if self._scope_keys and len(self._scope_keys) != self._indexed:  # scopes only ever come
            scoped = np.logical_or.reduce([k.rows for k in self._scope_keys.values()])
            keys = self._cut_keys(scoped)
            positions = np.flatnonzero(scoped & (keys != None))  # noqa: E711 (elementwise)
            listed, at = keys[positions].tolist(), positions.tolist()
            self._where, self._repeated, self._indexed = dict(zip(listed, at, strict=True)), {}, len(self._scope_keys)
            if len(self._where) != len(listed):  # a key on several rows (not in a snapshot's frames)
                for k, p in zip(listed, at, strict=True):
                    self._repeated.setdefault(k, []).append(p)
        if key in self._repeated:
            return self._repeated[key]
        return [self._where[key]] if self._where is not None and key in self._where else []

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
        s = self.column(e.column)
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
                o = self.column(e.other)
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


class ScopeKeys(AbstractSet[str]):
    """The 15-character keys of one scope's rows, as a read-only set.

    The alert state asks it whether a record is still in scope, for the few episodes that end
    on a day, and a pending file lists it. Made as a set per workflow, it was a hash table of a
    million opportunity keys a dozen times over (a scope of "True" in many workflows), whether
    anything asked or not. It keeps the scope's rows instead, and a key is looked up among the
    rows of the frame's scopes (``Columns._rows_of``: one table for all of them). Its rows are
    evaluated when first read (``Columns.holds``, once per expression): a user alert's scope
    is otherwise read only on its trigger's rows, and a run delivering one slot reads none."""

    def __init__(self, columns: Columns, expr: str):
        self._columns = columns
        self._expr = expr

    @property
    def rows(self) -> np.ndarray:
        return self._columns.holds(self._expr)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(self.rows[p] for p in self._columns._rows_of(key))

    def _keys(self) -> list[str]:
        keys = self._columns._cut_keys(self.rows)[self.rows]
        return [k for k in dict.fromkeys(keys.tolist()) if k is not None]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _from_iterable(cls, it) -> set[str]:
        """What ``|``, ``&`` and ``-`` make of it: a plain set."""
        return set(it)

    def __repr__(self) -> str:
        return f"ScopeKeys({self._expr[:40]!r})"
