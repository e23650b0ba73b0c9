"""Great Expectations wiring: a workflow's expectations as GX expectations, validated over the
rows and columns they need, with unexpected rows read back by index label.

GX is imported lazily and quietly (``import_gx``): it costs about two seconds to import and
logs loudly once Airflow has configured logging.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sa_hygiene.contract.config import Expectation
from sa_hygiene.contract.schema import FRAMES
from sa_hygiene.engine.predicates import resolve_param
from sa_hygiene.engine.prepare import exploded
from sa_hygiene.source.frames import select_rows

log = logging.getLogger(__name__)


class RuleError(RuntimeError):
    """An expectation Great Expectations could not compute (a regex its engine refuses, say).

    Zero alerts would read as "all clean" when nothing was checked, so the run stops and
    names the workflow and the expectation instead.
    """


def import_gx():
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


def build_expectation(e: Expectation, params: dict[str, Any], meta: dict, **extra: Any):
    """The GX expectation of one configured expectation (``extra``: more GX arguments, e.g. a row_condition)."""
    E = import_gx().expectations
    kw: dict[str, Any] = {"meta": meta, **extra}
    match e.expectation:
        case "not_null":
            return E.ExpectColumnValuesToNotBeNull(column=e.column, **kw)
        case "in_set" | "each_in_set":
            return E.ExpectColumnValuesToBeInSet(column=e.column, value_set=resolve_param(e.values, params), **kw)
        case "not_in_set":
            return E.ExpectColumnValuesToNotBeInSet(column=e.column, value_set=resolve_param(e.values, params), **kw)
        case "between":
            return E.ExpectColumnValuesToBeBetween(
                column=e.column, min_value=resolve_param(e.min, params), max_value=resolve_param(e.max, params), **kw
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
            return E.ExpectColumnValueLengthsToBeBetween(column=e.column, min_value=resolve_param(e.min, params), **kw)
    raise AssertionError(e.expectation)


@dataclass
class Check:
    """One configured expectation, on the rows of its frame it judges (its workflow's scope and
    its own ``when``; of every workflow that has the same expectation); ``meta`` goes to GX with
    it (those workflows, the reason)."""

    e: Expectation
    domain: np.ndarray  # bool, one per row of the frame
    meta: dict


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name} #{n}"
    taken.add(out)
    return out


def _masked(values: pd.Series, domain: np.ndarray) -> pd.Series:
    """``values`` on the check's rows, blank elsewhere: GX skips blanks (but for not_null)."""
    if values.dtype == bool:  # a numpy bool column holds no blank: pandas' nullable booleans do
        return values.astype("boolean").where(domain)
    return values.where(domain)


def _is_set(values: pd.Series, domain: np.ndarray) -> pd.Series:
    """What a not_null check reads of its column: 1.0 where a value is set, blank where the
    check's own row has none, and 1.0 on other checks' rows (not this check's blanks).

    Nullness is all it judges, and its counts and unexpected rows are those of the column
    itself; a number is cheaper than text for GX to fingerprint (it hashes every batch) and
    to scan, and than a copy of the text with another check's rows filled in."""
    out = np.ones(len(values))
    out[domain & values.isna().to_numpy(bool)] = np.nan
    return pd.Series(out, index=values.index)


# GX's cost of a validation is about that of one check reading this many more rows (scale 50:
# ~15 ms a validation, ~150 ns a row a check). A check joins a batch of its frame when the rows
# it adds, and those the batch's checks then read on top of their own, cost less than that.
ROWS_PER_VALIDATION = 100_000


def _grouped(flat: list[tuple[int, Check]]) -> list[list[tuple[int, Check]]]:
    """The checks in batches, largest domains first: a small frame is one batch, while a check
    of a few rows does not read a million rows of another's domain."""
    groups: list[tuple[np.ndarray, list[tuple[int, Check]]]] = []
    for j, c in sorted(flat, key=lambda jc: -int(np.count_nonzero(jc[1].domain))):
        own = int(np.count_nonzero(c.domain))
        best = None
        for g, (rows, members) in enumerate(groups):
            had = int(np.count_nonzero(rows))
            union = int(np.count_nonzero(rows | c.domain))
            extra = (union - own) + len(members) * (union - had)
            if extra < ROWS_PER_VALIDATION and (best is None or extra < best[0]):
                best = (extra, g)
        if best is None:
            groups.append((c.domain.copy(), [(j, c)]))
        else:
            rows, members = groups[best[1]]
            groups[best[1]] = (rows | c.domain, [*members, (j, c)])
    return [sorted(members, key=lambda jc: jc[0]) for _, members in groups]


def _rows_batch(frame: pd.DataFrame, flat: list[tuple[int, Check]], params: dict[str, Any]) -> tuple[str, pd.DataFrame, list, list[int]]:
    """One batch of checks that read rows (not lists): a column or two each, on the rows of their domains."""
    rows = np.logical_or.reduce([c.domain for _, c in flat])
    positions = np.flatnonzero(rows)
    cols = list(dict.fromkeys(x for _, c in flat for x in (c.e.column, c.e.other) if x))
    sub = select_rows(frame, rows, cols).set_axis(pd.Index(positions), axis=0)
    columns: dict[str, pd.Series] = {}
    expectations = []
    for _, c in flat:
        domain = c.domain[rows]
        e = c.e
        if e.expectation == "not_null":
            values = {e.column: _is_set(sub[e.column], domain)}
        elif e.expectation in ("match_regex", "min_length"):
            values = {e.column: sub[e.column].fillna("").where(domain)}
        else:
            values = {x: _masked(sub[x], domain) for x in (e.column, e.other) if x}
        names = {x: _unique(f"{x} [{c.meta.get('workflow', '')}]", set(columns)) for x in values}
        columns.update({names[x]: v for x, v in values.items()})
        renamed = e.model_copy(update={"column": names[e.column], "other": names.get(e.other) if e.other else None})
        expectations.append(build_expectation(renamed, params, c.meta))
    # The columns just made, as they are (copy-on-write): not a second copy of every batch.
    return ("rows", pd.DataFrame(columns, index=sub.index, copy=False), expectations, [j for j, _ in flat])


def frame_batches(frame: pd.DataFrame, checks: list[Check], params: dict[str, Any]) -> list[tuple[str, pd.DataFrame, list, list[int]]]:
    """The checks of one frame as GX batches: ``("rows", ...)`` with one column (two for a
    pair) per check, and one ``("lists", ...)`` with the exploded values of each multi-select
    check. Each batch is ``(kind, frame, expectations, positions of their checks)``.

    GX costs a fixed amount per validation (it hashes the batch, builds a validator and a metric
    graph), so a frame's checks share one instead of one per workflow and ``when``, unless that
    would make small checks read many rows of a large one's (``_grouped``). A batch holds
    only the rows some check judges, indexed by their position in the frame (what GX hands
    back), and each check reads its own column, blank outside its domain so that GX skips those
    rows: its counts in the Data Docs are its own rows'. ``not_null`` alone cannot skip a
    blank, so its column says only whether each value is set, set outside the domain. Text checks
    (``match_regex``, ``min_length``) read blank text as empty on their domain: it has no link
    and no length, and must fail rather than be skipped.
    """
    flat = [(j, c) for j, c in enumerate(checks) if c.e.expectation != "each_in_set"]
    lists = [(j, c) for j, c in enumerate(checks) if c.e.expectation == "each_in_set"]
    out = [_rows_batch(frame, group, params) for group in _grouped(flat)]
    if lists:
        parts, expectations = [], []
        for _, c in lists:
            name = _unique(f"{c.e.column} [{c.meta.get('workflow', '')}]", {p.name for p in parts})
            sub = select_rows(frame, c.domain, [c.e.column])[c.e.column].set_axis(pd.Index(np.flatnonzero(c.domain)))
            parts.append(exploded(sub).rename(name))
            expectations.append(build_expectation(c.e.model_copy(update={"column": name}), params, c.meta))
        batch = pd.concat([p.to_frame() for p in parts], axis=0)
        out.append(("lists", batch, expectations, [j for j, _ in lists]))
    return out


class Validator:
    """One GX ephemeral context per run; batches are made from prepared frames."""

    def __init__(self):
        gx = import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        # One asset per frame, declared with the datasource: GX writes its whole configuration
        # out as YAML each time an asset or a batch definition is added (~3 ms each, fourteen
        # times a run), and once for all of them here.
        assets = [{"name": name, "type": "dataframe", "batch_definitions": [{"name": "run"}]} for name in FRAMES]
        self.source = self.context.data_sources.add_pandas("sa_hygiene", assets=assets)
        self.batch_definitions: dict[str, Any] = {name: self.source.get_asset(name).get_batch_definition("run") for name in FRAMES}
        self.results: list[Any] = []

    def _definition(self, asset: str):
        if asset not in self.batch_definitions:  # not a frame of the contract
            self.batch_definitions[asset] = self.source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe("run")
        return self.batch_definitions[asset]

    def unexpected(self, asset: str, frame: pd.DataFrame, suite_name: str, expectations: list) -> list[list]:
        """Unexpected index labels of each expectation, validated together as one suite.

        GX's own validator of a batch definition, not ``Batch.validate``: that one builds a
        second validator that loads (and hashes) the dataframe a second time."""
        from great_expectations.validator.v1_validator import Validator as V1Validator

        suite = self.gx.ExpectationSuite(name=suite_name, expectations=expectations)
        validator = V1Validator(self._definition(asset), result_format=RESULT_FORMAT, batch_parameters={"dataframe": frame})
        result = validator.validate_expectation_suite(suite)
        self.results.append(result)
        # GX runs (and returns) a suite's expectations grouped by column, pairs apart: each
        # result is matched back to its expectation by its type and columns, in order.
        by_key: dict[tuple, list] = {}
        for r in result.results:
            message = raised(r.exception_info)
            if message is not None:
                workflow = (r.expectation_config.meta or {}).get("workflow", suite_name)
                raise RuleError(f"{workflow}: {r.expectation_config.type}: {message}")
            by_key.setdefault(_key(r.expectation_config), []).append(r.result.get("unexpected_index_list") or [])
        return [by_key[_key(e.configuration)].pop(0) for e in expectations]


def _key(config) -> tuple:
    """What tells the expectations of one suite apart: their type and the columns they read."""
    return (config.type, *(config.kwargs.get(k) for k in ("column", "column_A", "column_B")))


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
