"""One meaning of an expectation: on generated rows of every frame, the plain predicates
(``engine/predicates.py``, which check the Slack app's form) and the Great Expectations path
(``engine/rules.py``, which makes the digests) flag exactly the same rows for every
expectation of every workflow of the configuration.

Rows are drawn column by column with the dtypes the engine prepares (read off frames it
prepared from a small snapshot) from small pools of values: the configuration's own sets and
thresholds, Ids of each prefix, blank and white-space text, links, dates and numbers around
the run's date and bounds, so that equal pairs, boundaries and blanks come up often. The
activities frame is also drawn as the engine makes it: from task-shaped rows through
``activity_rows``, the derivation the form uses too.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from tempfile import TemporaryDirectory

import pandas as pd
import pyarrow as pa
import pytest
from builders import event, opportunity, task, user, write_snapshot
from expectation_paths import flagged_by_gx, flagged_by_predicates
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.schema import FRAMES
from sa_hygiene.engine.predicates import resolve_param
from sa_hygiene.engine.prepare import ACTIVITY_TASK_COLUMNS, RunWindow, activity_rows, prepare_frames
from sa_hygiene.source.snapshot import read_snapshot

pytestmark = pytest.mark.unit

CFG = load_config()
AS_OF = date(2026, 11, 24)
PARAMS = {**CFG.params(), "as_of": pd.Timestamp(AS_OF)}
ROWS = 50  # per example; twenty examples per frame: 1,000 rows
# No shrinking: a frame of fifty rows shrinks for minutes; a failure names its differing rows.
EXAMPLES = settings(max_examples=20, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])  # fmt: skip
LISTS = pd.ArrowDtype(pa.list_(pa.string()))


@cache
def prepared_dtypes() -> dict[str, dict[str, str]]:
    """The dtype of every column of every frame, as the engine prepares them."""
    u = user()
    tables = {"User": [u], "Opportunity": [opportunity(owner_id=u["id"], sa=u["id"])], "Event": [event(owner_id=u["id"])],
              "Task": [task(owner_id=u["id"], activity_types="Demo", created="2026-11-23T10:00:00Z")]}  # fmt: skip
    with TemporaryDirectory() as tmp:
        snap = read_snapshot(write_snapshot(Path(tmp) / "s", tables), CFG)
        frames, _ = prepare_frames(snap, snap, CFG, RunWindow.of(AS_OF))
    return {name: {c: str(t) for c, t in frame.dtypes.items()} for name, frame in frames.items()}


def configured(kind: type) -> list:
    """Every value of that type the configuration's expectations name, parameters resolved."""
    found = []
    for wf in CFG.workflows.values():
        for e in wf.expect:
            for value in (e.values, e.min, e.max):
                value = resolve_param(value, PARAMS)
                found += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, kind)]
    return found


IDS = ["0065e0000000001AAA", "0015e0000000001AAA", "0035e0000000001AAA", "00Q5e0000000001AAA", "00U5e0000000001AAA"]
TEXTS = sorted({*configured(str), *IDS, *(i[:3] for i in IDS), "", " ", "x", "see https://plan.example/1",
                "http://a", "Short.", "a" * (CFG.thresholds.other_min_chars - 1), "a" * CFG.thresholds.other_min_chars})
NUMBERS = sorted({0.0, 1.0, -1.0, *(n + d for n in configured(float) + configured(int) if not isinstance(n, bool) for d in (-1, 0, 1)),
                  *(v for v in CFG.thresholds.model_dump().values())})  # fmt: skip
DAYS = [pd.Timestamp(AS_OF + timedelta(days=d)) for d in (-40, -7, -1, 0, 1, 5)]
INSTANTS = [(d + pd.Timedelta(hours=h)).tz_localize("UTC") for d in DAYS[1:4] for h in (0, 15)]
LIST_VALUES = sorted({*CFG.taxonomy.all_activity_types, *CFG.taxonomy.persona_levels, "Unknown type"})


def values(dtype: str) -> st.SearchStrategy:
    """One value of a column of that dtype (None: blank, as the frames hold it)."""
    if dtype == "bool":
        return st.booleans()
    if dtype == "int64":
        return st.sampled_from([int(n) for n in NUMBERS if float(n).is_integer()] + [2, 3, 4, 5, 6, 7, 8])
    if dtype == "float64":
        return st.sampled_from([math.nan, *NUMBERS])
    if dtype == "datetime64[us]":
        return st.sampled_from([None, *DAYS])
    if dtype == "datetime64[us, UTC]":
        return st.sampled_from([None, *INSTANTS])
    if dtype.startswith("list"):
        return st.one_of(st.none(), st.lists(st.sampled_from(LIST_VALUES), max_size=3))
    return st.one_of(st.none(), st.sampled_from(TEXTS))  # str, object


def column(dtype: str, drawn: list) -> pd.Series:
    if dtype == "int64":
        return pd.Series(drawn, dtype="int64")
    if dtype.startswith("list"):
        return pd.Series([[] if v is None else v for v in drawn], dtype=LISTS)  # a snapshot reads blank as []
    return pd.Series(drawn, dtype=dtype if dtype != "object" else object)


def frames_of(name: str) -> st.SearchStrategy:
    dtypes = prepared_dtypes()[name]
    drawn = st.fixed_dictionaries({c: st.lists(values(t), min_size=ROWS, max_size=ROWS) for c, t in dtypes.items()})
    return drawn.map(lambda cols: pd.DataFrame({c: column(t, cols[c]) for c, t in dtypes.items()}))


@st.composite
def activities_from_tasks(draw) -> pd.DataFrame:
    """The activities frame as the engine derives it, from drawn task-shaped rows and run flags."""
    dtypes = prepared_dtypes()["activities"]
    tasks = pd.DataFrame({c: column(dtypes[c], draw(st.lists(values(dtypes[c]), min_size=ROWS, max_size=ROWS)))
                          for c in ACTIVITY_TASK_COLUMNS})  # fmt: skip
    flags = {f: pd.Series(draw(st.lists(st.booleans(), min_size=ROWS, max_size=ROWS)))
             for f in ("created_in_window", "created_in_review_period", "is_sa_activity", "untyped_call")}  # fmt: skip
    return activity_rows(tasks, CFG.taxonomy, **flags)


def assert_same_rows_flagged(frame: pd.DataFrame, name: str, scoped: bool = True) -> dict[tuple[str, int], int]:
    """Both paths flag the same rows for every expectation of every workflow of the frame; the
    number of rows flagged per (workflow, expectation). ``scoped=False``: every row is judged,
    not only those in the workflow's scope (a five-way scope rarely holds on random rows)."""
    assert list(frame.columns) == list(FRAMES[name])
    workflows = {wid: wf if scoped else wf.model_copy(update={"scope": "True"})
                 for wid, wf in CFG.workflows.items() if wf.frame == name}  # fmt: skip
    assert workflows, name
    flagged: Counter = Counter()
    for wid, wf in workflows.items():
        by_gx, by_predicates = flagged_by_gx(frame, wf, PARAMS), flagged_by_predicates(frame, wf, PARAMS)
        differ = {label: (by_gx.get(label), by_predicates.get(label)) for label in set(by_gx) | set(by_predicates)
                  if by_gx.get(label) != by_predicates.get(label)}  # fmt: skip
        assert not differ, (wid, {label: (*d, frame.loc[label].to_dict()) for label, d in list(differ.items())[:3]})
        flagged.update((wid, i) for positions in by_gx.values() for i in positions)
    return flagged


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_predicates_and_great_expectations_flag_the_same_rows(name):
    flagged: Counter = Counter()

    @EXAMPLES
    @given(frames_of(name))
    def check(frame):
        flagged.update(assert_same_rows_flagged(frame, name, scoped=False))

    check()
    # The rows drawn put every expectation to the test: each flags some of them and passes others.
    for wid, wf in CFG.workflows.items():
        if wf.frame == name:
            assert [(wid, i) for i in range(len(wf.expect)) if not 0 < flagged[wid, i] < ROWS * EXAMPLES.max_examples] == []


@EXAMPLES
@given(activities_from_tasks())
def test_on_activities_derived_as_the_engine_derives_them_too(frame):
    assert_same_rows_flagged(frame, "activities")
