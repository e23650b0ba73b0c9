"""What a workflow's scope and each kind of expectation mean on one row, in plain Python.

The engine runs expectations through Great Expectations (``engine/gx.py``), over many rows at
once. A form in Slack checks one row before it is saved, and must refuse exactly what a
digest would then complain about: it is checked here, by the same scope and ``when``
expressions (``holds``, which the engine uses too) and by the meaning of each expectation
kind as GX judges a row:

- ``not_null``: the value is set;
- ``in_set``, ``not_in_set``, ``between``: a blank value passes (``not_null`` is what refuses
  it); otherwise the value is in (not in) the set, or within the bounds, bounds included;
- ``each_in_set``: every value of a multi-select list is in the set (an empty list passes);
- ``pair_equal``: both values are blank, or both are set and equal;
- ``pair_greater``: either value is blank, or the first is greater (or equal, ``or_equal``);
- ``match_regex``, ``min_length``: blank text counts as empty text (it has no link and no
  length), so it fails unless the pattern matches or the minimum is 0.

``tests/sa_hygiene/engine/test_predicates.py`` holds the two to each other: on generated rows
of every frame, this module and the GX path flag the same rows for every expectation of
every workflow of the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from sa_hygiene.contract.config import Expectation, Workflow


def holds(frame: pd.DataFrame, expr: str, params: dict[str, Any]) -> np.ndarray:
    """Rows of ``frame`` where a scope (or ``when``) expression holds; unknown counts as false.

    Evaluated over the frame's columns alone, not with ``DataFrame.eval``: that one also offers
    the index to the expression, spelling a range index out (cached on it for good) and copying
    it, and consolidates the frame's blocks: 300 MB and 76 MB kept, for one scope of ten
    million tasks. Scopes name columns and ``@`` parameters only (the configuration checks it).
    """
    if expr.strip() == "True":
        return np.ones(len(frame), dtype=bool)
    if frame.empty:
        return np.zeros(0, dtype=bool)
    columns = {name: frame[name] for name in frame.columns}
    # level=1: a call from here, where ``@name`` reads ``local_dict`` (as DataFrame.eval's does)
    result = pd.eval(expr, local_dict=params, resolvers=(columns,), engine="python", level=1)
    if not isinstance(result, pd.Series):  # a constant expression ("False", "1 > 2") is one value
        return np.full(len(frame), bool(result), dtype=bool)
    return result.fillna(False).to_numpy(dtype=bool)


def resolve_param(value: Any, params: dict[str, Any]) -> Any:
    """A configured value with its ``@name`` parameters replaced by their values."""
    if isinstance(value, str) and value.startswith("@"):
        return params[value[1:]]
    if isinstance(value, list):
        return [resolve_param(v, params) for v in value]
    return value


def is_blank(value: Any) -> bool:
    """No value: None, NaN, NaT or pandas' NA (a list, even an empty one, is a value)."""
    if isinstance(value, list | tuple | np.ndarray):
        return False
    return bool(pd.isna(value))


def meets(e: Expectation, row: Mapping[str, Any], params: dict[str, Any]) -> bool:
    """Whether one row (column -> value, as in the frame) meets one expectation."""
    value = row[e.column]
    match e.expectation:
        case "not_null":
            return not is_blank(value)
        case "in_set":
            return is_blank(value) or value in resolve_param(e.values, params)
        case "not_in_set":
            return is_blank(value) or value not in resolve_param(e.values, params)
        case "each_in_set":
            allowed = resolve_param(e.values, params)
            return is_blank(value) or all(v in allowed for v in value if not is_blank(v))
        case "between":
            low, high = resolve_param(e.min, params), resolve_param(e.max, params)
            return is_blank(value) or ((low is None or value >= low) and (high is None or value <= high))
        case "pair_equal":
            other = row[e.other]
            if is_blank(value) and is_blank(other):
                return True
            return not is_blank(value) and not is_blank(other) and bool(value == other)
        case "pair_greater":
            other = row[e.other]
            if is_blank(value) or is_blank(other):
                return True
            return bool(value >= other) if e.or_equal else bool(value > other)
        case "match_regex":
            return re.search(e.regex, "" if is_blank(value) else str(value)) is not None
        case "min_length":
            return len("" if is_blank(value) else str(value)) >= resolve_param(e.min, params)
    raise AssertionError(e.expectation)


def unmet(frame: pd.DataFrame, workflow: Workflow, params: dict[str, Any]) -> dict[Hashable, list[Expectation]]:
    """The expectations each row in the workflow's scope does not meet, by index label, in the
    workflow's order (rows that meet them all are absent): the rows its alerts are about."""
    scope = holds(frame, workflow.scope, params)
    out: dict[Hashable, list[Expectation]] = {}
    for e in workflow.expect:
        mask = scope & holds(frame, e.when or "True", params)
        columns = [c for c in (e.column, e.other) if c]
        rows = frame.loc[mask, columns]
        for label, row in zip(rows.index, rows.to_dict("records"), strict=True):
            if not meets(e, row, params):
                out.setdefault(label, []).append(e)
    return {label: out[label] for label in frame.index if label in out}
