"""Great Expectations wiring: a workflow's expectations as GX expectations, validated over the
rows and columns they need, with unexpected rows read back by index label.

GX is imported lazily and quietly (``import_gx``): it costs about two seconds to import and
logs loudly once Airflow has configured logging.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from sa_hygiene.contract.config import Expectation
from sa_hygiene.engine.predicates import resolve_param
from sa_hygiene.engine.prepare import exploded

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


def batch_frame(rows: pd.DataFrame, e: Expectation) -> pd.DataFrame:
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
        gx = import_gx()
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
