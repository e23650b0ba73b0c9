"""The user alerts' store: its own schema component, the per-person limit, pauses and notices."""

import pytest
from sqlalchemy import create_engine, text

from sa_hygiene.state.alerts import AlertState
from sa_hygiene.state.user_alerts import LimitReached, UserAlerts

pytestmark = pytest.mark.unit

ME, YOU = "0055e0000000001AAA", "0055e0000000002AAA"
SPEC = {"name": "n", "owner": ME, "object": "Opportunity", "trigger": {"kind": "condition", "field": "sa", "op": "blank"},
        "scope": "mine", "delivery": "digest"}  # fmt: skip


def test_alerts_live_beside_the_alert_state_under_their_own_schema_version(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    AlertState(url).close()
    with UserAlerts(url) as store:
        store.add(ME, "n", SPEC, max_per_user=3)
    with create_engine(url).connect() as c:
        versions = dict(c.execute(text("select component, version from sa_hygiene_schema")).all())
    assert versions["user_alerts"] == 1 and "alert_state" in versions
    with UserAlerts(url) as store:  # opened again: the same alert, nothing re-created
        assert [(a.owner, a.spec, a.status) for a in store.list()] == [(ME, SPEC, "active")]


def test_at_most_n_alerts_per_person_paused_ones_included(tmp_path):
    with UserAlerts(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        first = store.add(ME, "a", SPEC, max_per_user=2)
        store.add(ME, "b", SPEC, max_per_user=2)
        store.pause(first, "by hand", notify=False)
        with pytest.raises(LimitReached, match="you have 2 alerts, the most allowed \\(2\\)"):
            store.add(ME, "c", SPEC, max_per_user=2)
        store.add(YOU, "c", SPEC, max_per_user=2)  # another person's count is their own
        assert store.delete(first)
        store.add(ME, "c", SPEC, max_per_user=2)
        assert [a.name for a in store.list([ME])] == ["b", "c"]
        assert [a.name for a in store.list([ME, YOU])] == ["b", "c", "c"]


def test_a_pause_the_owner_did_not_ask_for_is_a_notice_until_told(tmp_path):
    with UserAlerts(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        a, b = store.add(ME, "a", SPEC, max_per_user=5), store.add(ME, "b", SPEC, max_per_user=5)
        assert store.pause(a, "field te_status is gone", notify=True)
        assert not store.pause(a, "again", notify=True)  # already paused: the first reason stays
        assert store.pause(b, "paused by its owner", notify=False)
        assert [(n.alert_id, n.paused_reason) for n in store.notices()] == [(a, "field te_status is gone")]
        store.mark_notified([a])
        assert store.notices() == []
        assert store.resume(a) and store.get(a).active and store.get(a).paused_reason is None
