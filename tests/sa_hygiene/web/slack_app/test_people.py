"""Who may act: one walk up the ``ManagerId`` chain answers the three questions the app asks
(an item's recipient or their direct manager, a record's holders or anyone up their chain, a
manager of the record's people but not the people themselves)."""

from __future__ import annotations

import pandas as pd
import pytest

from sa_hygiene.contract.config import load_config
from sa_hygiene.web.slack_app.managing import may_manage
from sa_hygiene.web.slack_app.people import People

pytestmark = pytest.mark.unit

# An SA, her manager, his manager (the VP), a peer SA; and two users whose managers loop.
IDS = {name: f"005{i:012d}AAA" for i, name in enumerate(["sa", "mgr", "vp", "peer", "a", "b"], start=1)}
MANAGER = {"sa": "mgr", "mgr": "vp", "peer": "mgr", "a": "b", "b": "a"}


@pytest.fixture
def people() -> People:
    rows = [{"id": i, "name": n, "email": f"{n}@example.com", "is_active": True,
             "manager_id": IDS[MANAGER[n]] if n in MANAGER else None, "timezone": None} for n, i in IDS.items()]  # fmt: skip
    return People(pd.DataFrame(rows))


def who(people: People, name: str):
    return people.by_email(f"{name}@example.com")


def test_managers_are_walked_nearest_first_bounded_and_a_loop_ends_the_walk(people):
    key = {n: i[:15] for n, i in IDS.items()}
    assert people.managers(IDS["sa"]) == [key["mgr"], key["vp"]]
    assert people.managers(IDS["sa"], hops=1) == [key["mgr"]]
    assert people.managers(IDS["vp"]) == []
    assert people.managers(IDS["a"]) == [key["b"], key["a"]]
    assert people.managers("005999999999999AAA") == [] and people.managers(None) == []


def test_the_three_questions_use_the_one_walk(people):
    sa, mgr, vp, peer = (who(people, n) for n in ("sa", "mgr", "vp", "peer"))
    # An item: its recipient or their direct manager.
    assert people.may_act(sa, IDS["sa"]) and people.may_act(mgr, IDS["sa"])
    assert not people.may_act(vp, IDS["sa"]) and not people.may_act(peer, IDS["sa"])
    # A record: its holders or anyone up their chain; a blank holder counts for nobody.
    assert people.may_write(vp, None, IDS["sa"]) and people.may_write(sa, IDS["sa"])
    assert not people.may_write(peer, IDS["sa"], None) and not people.may_write(sa, None, "")
    assert people.leads(who(people, "a"), IDS["b"])  # a loop ends, it does not hang
    # A manager's control: managers up the chain only, never the SA themselves.
    cfg = load_config()
    assert may_manage(cfg, people, None, vp, [IDS["sa"]], None) and may_manage(cfg, people, None, mgr, [None, IDS["sa"]], None)
    assert not may_manage(cfg, people, None, sa, [IDS["sa"]], None)
    assert not may_manage(cfg, people, None, peer, [IDS["sa"]], None)
