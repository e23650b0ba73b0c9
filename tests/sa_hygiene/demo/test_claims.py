"""The false-claims check reads a record through the activities its complaint reads."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sa_hygiene.demo.claims import _changed, _snapshot

pytestmark = pytest.mark.unit

OPP, OTHER = "006000000000001AAA", "006000000000002AAA"
EVENT = "00U000000000001AAA"


def _store(tmp_path, day: str, tasks: list[dict]):
    folder = tmp_path / f"{day}T060000Z"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"Id": OPP, "StageName": "3-Technical Evaluation", "SystemModstamp": day},
                                         {"Id": OTHER, "StageName": "3-Technical Evaluation", "SystemModstamp": day}]),
                   folder / "Opportunity.parquet")  # fmt: skip
    pq.write_table(pa.Table.from_pylist([{"Id": EVENT, "WhatId": OPP, "OwnerId": "005000000000001AAA"}]),
                   folder / "Event.parquet")  # fmt: skip
    rows = [{"Id": "00T000000000000AAA", "WhatId": OTHER, "OwnerId": "005000000000009AAA"}, *tasks]
    pq.write_table(pa.Table.from_pylist(rows), folder / "Task.parquet")


def test_an_activity_logged_on_an_opportunity_makes_a_stalled_claim_true(tmp_path):
    _store(tmp_path, "20261123", [])
    _store(tmp_path, "20261124", [{"Id": "00T000000000001AAA", "WhatId": OPP, "OwnerId": "005000000000002AAA"}])
    before, after = _snapshot(tmp_path, date(2026, 11, 23)), _snapshot(tmp_path, date(2026, 11, 24))
    assert _changed(before, after, "Opportunity", OPP, None) is True
    assert _changed(before, after, "Opportunity", OTHER, None) is False  # nothing new on it, fields unchanged
    # A meeting counts only its owner's activity: another SA's task on the opportunity is no log of it.
    assert _changed(before, after, "Event", EVENT, None) is False


def test_a_meeting_is_logged_by_its_owner_activity_on_its_opportunity(tmp_path):
    _store(tmp_path, "20261123", [])
    _store(tmp_path, "20261124", [{"Id": "00T000000000001AAA", "WhatId": OPP[:15], "OwnerId": "005000000000001AAA"}])
    before, after = _snapshot(tmp_path, date(2026, 11, 23)), _snapshot(tmp_path, date(2026, 11, 24))
    assert _changed(before, after, "Event", EVENT, None) is True
    assert _changed(before, after, "Opportunity", OPP, {"StageName"}) is False  # named fields: only they count
