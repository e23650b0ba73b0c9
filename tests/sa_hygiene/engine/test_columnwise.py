"""Workflows judged column-wise (``engine/columnwise.py``) make exactly the alerts GX makes.

The backtest judges a draft this way, and the evaluation its user alerts: on a generated demo
org, every workflow of the configuration, and user alerts of every trigger and scope, give the
same alert lines in the same order, with the same reasons, recipients and scopes, as
``rules.run_workflows``; and the scopes evaluated from the columns' look-ups are what
``predicates.holds`` evaluates, blanks included.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from sa_hygiene.contract.config import Expectation, load_config
from sa_hygiene.engine.columns import Columns, _plan
from sa_hygiene.engine.columnwise import column_alerts
from sa_hygiene.engine.gx import Validator
from sa_hygiene.engine.predicates import holds
from sa_hygiene.engine.prepare import RunWindow, prepare_frames
from sa_hygiene.engine.rules import run_workflows
from sa_hygiene.engine.user_alerts import with_user_alerts
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)
TRIGGERS = [
    ("Opportunity", {"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}),
    ("Opportunity", {"kind": "condition", "field": "iacv", "op": "less_than", "number": 20000}),
    ("Opportunity", {"kind": "condition", "field": "sa", "op": "blank"}),
    ("Opportunity", {"kind": "condition", "field": "te_status", "op": "in", "values": ["Win", "Stalled"]}),
    ("Opportunity", {"kind": "condition", "field": "te_start", "op": "older_than_days", "number": 30}),
    ("Opportunity", {"kind": "condition", "field": "stage3_date", "op": "newer_than_days", "number": 10}),
    ("Opportunity", {"kind": "changed", "field": "sa"}),
    ("Opportunity", {"kind": "changed", "field": "te_status", "to_value": "Stalled"}),
    ("Opportunity", {"kind": "stage_move", "to_value": 3}),
    ("Opportunity", {"kind": "stage_move", "from_value": 2}),
    ("Task", {"kind": "condition", "field": "is_closed", "op": "equals", "values": [False]}),
    ("Task", {"kind": "condition", "field": "sentiment", "op": "in", "values": ["Negative"]}),
    ("Task", {"kind": "condition", "field": "activity_date", "op": "older_than_days", "number": 3}),
]
SCOPES = ["mine", "my_region", "my_reports", "team", "my_accounts"]


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    from sa_hygiene.demo.org import write_demo_org

    root = tmp_path_factory.mktemp("columnwise")
    write_demo_org(root, AS_OF, scale=0.3)
    cfg = load_config()
    current = read_snapshot(root / "current", cfg)
    previous = read_snapshot(root / "previous", cfg, objects=PREVIOUS_OBJECTS)
    return cfg, current, previous


def user_alerts(current) -> dict[str, dict]:
    users = current.tables["User"]
    people = users.loc[users["is_active"].astype(bool), "id"].tolist()
    managers = sorted(set(users["manager_id"].dropna()) & set(people))
    out = {}
    for n, (obj, trigger) in enumerate(TRIGGERS):
        for k, scope in enumerate(SCOPES):
            if obj == "Task" and scope == "my_accounts":
                continue
            owner = (managers if scope in ("team", "my_reports") else people)[(n + k) % 7]
            delivery = ["digest", "dm_now", "channel"][(n + k) % 3]
            out[f"a{n}-{scope}"] = {"name": f"alert {n}", "owner": owner, "object": obj, "trigger": trigger, "scope": scope,
                                    "delivery": delivery, **({"channel": "#mine"} if delivery == "channel" else {})}  # fmt: skip
    return out


def both_ways(cfg, current, previous, workflows):
    w = RunWindow.of(AS_OF)
    frames, d = prepare_frames(current, previous, cfg, w, only={wf.frame for wf in workflows.values()})
    params = {**cfg.params(), "as_of": w.as_of}
    by_gx, by_columns = {}, {}
    gx = run_workflows(frames, d, workflows, params, Validator(), by_gx)
    ours = column_alerts(frames, d, workflows, params, by_columns)
    return gx, ours, by_gx, by_columns, frames, params


def test_every_workflow_of_the_configuration_judged_column_wise_makes_the_alerts_gx_makes(org):
    cfg, current, previous = org
    gx, ours, by_gx, by_columns, *_ = both_ways(cfg, current, previous, cfg.enabled_workflows())
    pd.testing.assert_frame_equal(ours, gx)
    assert by_columns == by_gx
    # Every frame and most workflows fire here, reasons and unrouted alerts among them.
    assert gx["workflow"].nunique() >= 0.7 * len(cfg.enabled_workflows())
    assert gx["reasons"].map(len).gt(1).any() and gx["unrouted"].any()


def test_user_alerts_of_every_trigger_and_scope_judged_column_wise_make_the_alerts_gx_makes(org):
    cfg, current, previous = org
    merged, broken = with_user_alerts(cfg, user_alerts(current), current)
    assert broken == {}
    mine = {k: wf for k, wf in merged.enabled_workflows().items() if k not in cfg.workflows}
    gx, ours, by_gx, by_columns, frames, params = both_ways(merged, current, previous, mine)
    pd.testing.assert_frame_equal(ours, gx)
    assert by_columns == by_gx
    assert gx["workflow"].nunique() > 20
    # Their scopes are evaluated from the columns' look-ups, not by pandas' eval.
    assert all(_plan(wf.scope) is not None for wf in mine.values())


def test_scopes_from_look_ups_are_what_holds_evaluates_blanks_included():
    frame = pd.DataFrame({
        "id": pd.Series(["0065e0000000001AAA", "0065e0000000002AAA", None, "0065e0000000004AAA"], dtype="str"),
        "sa": pd.Series(["0055e0000000001", None, "0055e0000000003AAA", "x"], dtype="str"),
        "owner_id": pd.Series([None, "0055e0000000002AAA", None, "0055e0000000001"], dtype="str"),
        "rank": pd.Series([3, 2, -1, 3], dtype="int64"),
        "iacv": pd.Series([1.0, np.nan, 5.0, 10.0]),
        "te_status": pd.Series(["Win", None, "Loss", "Win"], dtype="str"),
        "flag": pd.Series([True, False, True, False]),
        "tags": pd.Series(pd.arrays.ArrowExtensionArray(__import__("pyarrow").array([["a"], None, [], ["b"]]))),
    })  # fmt: skip
    params = {"as_of": pd.Timestamp(AS_OF), "big": 5.0}
    cols = Columns(frame, params)
    exprs = [
        "True", "(sa in ['0055e0000000001', '0055e0000000003AAA']) | (owner_id in ['0055e0000000001'])",
        "(sa in []) | (owner_id in [])", "rank == 3 and (te_status in ['Win'])", "rank >= 2 or iacv > 4",
        "flag & (iacv <= 5)", "te_status == 'Win'", "iacv < -1", "sa in ['x', None]",
        # Shapes left to holds: negation, inequality, parameters, arithmetic, chains.
        "not flag", "te_status != 'Win'", "iacv > @big", "iacv * 2 > 3", "1 < rank < 4", "~(rank == 3)",
    ]  # fmt: skip
    at = np.array([0, 2, 3])
    for expr in exprs:
        # On some rows first (a user alert's scope on its trigger's rows), then on all.
        assert Columns(frame, params).holds_at(expr, at).tolist() == holds(frame, expr, params)[at].tolist(), expr
        assert cols.holds(expr).tolist() == holds(frame, expr, params).tolist(), expr
    assert _plan("not flag") is None and _plan("te_status != 'Win'") is None and _plan("iacv > @big") is None
    assert cols.scope_keys("True") == {"0065e0000000001", "0065e0000000002", "0065e0000000004"}
    for values in ([False], [True], [True, False], [0], [1.0], []):  # a flag column: compared, not factorized
        assert cols.isin("flag", values).tolist() == frame["flag"].isin(values).tolist(), values
        assert cols.isin("flag", values, at).tolist() == frame["flag"].isin(values).to_numpy()[at].tolist(), values
    empty = Columns(frame.iloc[:0], params)
    assert empty.holds("rank == 3").tolist() == [] and empty.isin("sa", ["x"]).tolist() == []


def test_scope_keys_are_evaluated_when_first_read_and_read_as_a_set():
    """A run delivering one slot never reads its workflows' scopes: a scope costs nothing until
    the alert state asks (a user alert's scope is otherwise read on its trigger's rows only)."""
    frame = pd.DataFrame({
        "id": pd.Series(["0065e0000000001AAA", "0065e0000000002AAA", None, "0065e0000000004AAA"], dtype="str"),
        "rank": pd.Series([3, 2, 3, 1], dtype="int64"),
    })  # fmt: skip
    cols = Columns(frame, {})
    keys = cols.scope_keys("rank >= 2")
    assert cols._holds == {}  # nothing evaluated yet
    assert "0065e0000000001" in keys and "0065e0000000004" not in keys and "x" not in keys and len(keys) == 2
    assert keys == {"0065e0000000001", "0065e0000000002"} and {"0065e0000000001", "0065e0000000002"} == keys
    assert sorted(keys) == ["0065e0000000001", "0065e0000000002"] and keys - {"0065e0000000002"} == {"0065e0000000001"}
    assert list(cols._holds) == ["rank >= 2"]  # evaluated once


def test_a_trigger_s_few_rows_are_looked_up_alone_with_the_verdicts_of_the_whole_column():
    """A user alert on a few of many rows (open tasks of a million) reads its owners among those
    rows' own distinct values: the same verdicts as the whole column's, blanks and Ids the
    rows lack included, and the whole column is not factorized for it."""
    owners = ["0055e0000000001AAA", None, "0055e0000000002AAA", "0055e0000000003AAA"]
    frame = pd.DataFrame({
        "id": pd.Series([f"00T5e{k:010d}AAA" for k in range(40)], dtype="str"),
        "owner_id": pd.Series([owners[k % 4] for k in range(40)], dtype="str"),
        "is_closed": pd.Series([k % 8 != 3 and k % 8 != 6 for k in range(40)]),  # 10 open of 40
    })  # fmt: skip
    cols = Columns(frame, {})
    at = cols.failing_positions(Expectation(expectation="in_set", column="is_closed", values=[True]))
    assert at.tolist() == [k for k in range(40) if k % 8 in (3, 6)]
    lists = [("0055e0000000003AAA",), ("0055e0000000001AAA", "0055e0000000009AAA"), (), ("0055e0000000002AAA", "x"),
             ("0055e0000000009AAA",)]  # fmt: skip
    for values in lists:
        assert cols.isin("owner_id", values, at, True).tolist() == frame["owner_id"].isin(values).to_numpy()[at].tolist()
    assert "owner_id" not in cols._codes  # looked up on the 10 rows alone
    scope = "(owner_id in ['0055e0000000003AAA', '0055e0000000001AAA'])"
    assert cols.holds_at(scope, at).tolist() == holds(frame, scope, {})[at].tolist() == [True, False] * 5
    whole = Columns(frame, {})
    whole.codes("owner_id")  # factorized already: its codes are read at the rows
    for values in lists:
        assert whole.isin("owner_id", values, at, True).tolist() == cols.isin("owner_id", values, at, True).tolist()


def test_a_chunked_text_column_is_taken_and_looked_up_chunk_by_chunk_as_pandas_reads_it():
    """A million tasks come in chunks: an alert's rows are taken from the chunks that hold them
    (not the whole column), in any order, blanks as pandas spells them; and a list is looked
    up by hashing the smaller side, longer or shorter than the rows' distinct values."""
    import pyarrow as pa

    ids = [f"00T5e{k:010d}AAA" if k % 7 else None for k in range(50)]
    owners = [f"0055e{k % 6:010d}AAA" if k % 5 else None for k in range(50)]
    chunked = lambda values: pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(  # noqa: E731
        [pa.array(values[a:b], pa.large_string()) for a, b in ((0, 12), (12, 13), (13, 40), (40, 50))])))  # fmt: skip
    frame = pd.DataFrame({"id": chunked(ids), "owner_id": chunked(owners), "n": np.arange(50)})
    cols = Columns(frame, {})
    plain = frame["id"].to_numpy(dtype=object)
    for positions in ([], [0], [3, 7, 12, 13, 14, 39, 40, 49], [49, 0, 13, 12, 7], list(range(50))):
        at = np.array(positions, dtype=np.int64)
        taken = cols.take("id", at)
        assert len(taken) == len(at) and all(x is y or x == y for x, y in zip(taken, plain[at], strict=True)), positions
        assert [pd.isna(x) for x in taken] == [ids[p] is None for p in positions]
    assert cols.take("n", np.array([4, 2])).tolist() == [4, 2]  # not text: read by pandas
    rows = Expectation(expectation="between", column="n", max=30)  # rows 31-49: a trigger's positions
    at = cols.failing_positions(rows)
    many = tuple(f"0055e{k:010d}AAA" for k in range(1, 40))  # more values than the rows' distinct owners
    for values in (many, ("0055e0000000002AAA",), ("0055e0000000002AAA", "0055e0000000009AAA"), ()):
        want = frame["owner_id"].isin(values).to_numpy()
        assert cols.isin("owner_id", values, at, True).tolist() == want[at].tolist(), values
        assert Columns(frame, {}).isin("owner_id", values, None, True).tolist() == want.tolist(), values


def test_a_list_s_values_are_hashed_once_and_found_as_the_tuple_they_are():
    """A region's list is looked up by each alert of its people: its values are hashed once, and
    equal (same hash, same items) to the plain tuple, so a kept verdict is found either way."""
    from sa_hygiene.engine.columns import Values

    ids = [f"0055e{k:010d}AAA" for k in range(3)]
    plan = _plan(f"owner_id in {ids!r}")
    values = plan[2]
    assert type(values) is Values and values == tuple(ids) and hash(values) == hash(tuple(ids))
    assert {tuple(ids): "kept"}[values] == "kept" and values.__dict__["_hash"] == hash(tuple(ids))
    assert _plan(f"(sa in {ids!r}) | (owner_id in {ids!r})")[1][0][2] == values
