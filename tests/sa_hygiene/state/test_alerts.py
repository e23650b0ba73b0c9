"""Alert memory: episodes over sequences of evaluations, re-runs, snoozes and digest marks,
on SQLite and on the local PostgreSQL."""

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sa_hygiene.state.alerts import AlertState
from sa_hygiene.state.db import DatabaseError

pytestmark = pytest.mark.integration

D0 = date(2026, 11, 2)
OPP = "0061a00000AbC%sAAV"
SA, SA2 = {"type": "user", "id": "0051a00000XyZaBAAB"}, {"type": "user", "id": "0051a00000XyZaCAAB"}
NEWS = {"wf-02"}


def alert(n: int, workflow="wf-06", recipient=SA, long_id=True):
    rid = OPP % f"{n:02d}"
    return {"workflow": workflow, "object": "Opportunity", "record_id": rid if long_id else rid[:15],
            "recipient": recipient, "reasons": []}  # fmt: skip


@pytest.fixture
def state(any_ledger_url):
    with AlertState(any_ledger_url, news=NEWS) as s:
        yield s


def by_record(alerts):
    return {(a["workflow"], a["record_id"][:15]): a for a in alerts}


def test_first_seen_age_and_resolution(state):
    m1 = state.record(D0, [alert(1), alert(2), alert(3, "wf-02")])
    assert {a["record_id"][13:15]: (a["first_seen"], a["age_days"]) for a in m1.alerts} == {
        "01": ("2026-11-02", 0), "02": ("2026-11-02", 0), "03": ("2026-11-02", 0)}  # fmt: skip
    m2 = state.record(D0 + timedelta(days=3), [alert(1), alert(3, "wf-02")])
    ages = by_record(m2.alerts)
    assert ages[("wf-06", (OPP % "01")[:15])]["age_days"] == 3
    # News is announced, never open: no age, no resolution.
    assert ages[("wf-02", (OPP % "03")[:15])] == {**alert(3, "wf-02"), "first_seen": "2026-11-05", "age_days": 0}
    # Without the day's scope nobody can tell a fix: the ending is "gone".
    assert m2.resolved == [{"workflow": "wf-06", "object": "Opportunity", "record_id": OPP % "02", "recipient": SA,
                            "first_seen": "2026-11-02", "resolved_on": "2026-11-05", "how": "gone"}]  # fmt: skip


def test_an_episode_ends_fixed_in_scope_gone_out_of_it_and_stays_open_when_quarantined(state):
    state.record(D0, [alert(1), alert(2), alert(3)])
    scope = {"wf-06": {(OPP % "01")[:15]}}  # 01 still in scope and passes; 02 left it; 03 unreadable
    m = state.record(D0 + timedelta(days=1), [], scope=scope, quarantined={OPP % "03"})
    assert {r["record_id"][13:15]: r["how"] for r in m.resolved} == {"01": "fixed", "02": "gone"}
    assert [e["record_id"][13:15] for e in state.open_episodes()] == ["03"]
    again = state.record(D0 + timedelta(days=1), [], scope=scope, quarantined={OPP % "03"})  # a re-run: the same
    assert again.resolved == m.resolved
    assert {e["record_id"][13:15]: e["how"] for e in state.resolved_between(None, D0 + timedelta(days=1))} == {
        "01": "fixed", "02": "gone"}  # fmt: skip


def test_a_reassigned_item_says_since_when_it_is_the_recipients(state):
    state.record(D0, [alert(1)])
    m = state.record(D0 + timedelta(days=3), [alert(1, recipient=SA2)])
    assert (m.alerts[0]["first_seen"], m.alerts[0]["recipient_since"]) == ("2026-11-02", "2026-11-05")
    later = state.record(D0 + timedelta(days=4), [alert(1, recipient=SA2)])
    assert later.alerts[0]["recipient_since"] == "2026-11-05"
    assert state.open_episodes()[0]["recipients_since"] == {"user:" + SA2["id"]: "2026-11-05"}
    assert "recipient_since" not in state.record(D0 + timedelta(days=5), [alert(2)]).alerts[0]


def test_a_rerun_of_the_same_day_changes_nothing(state):
    state.record(D0, [alert(1), alert(2)])
    first = state.record(D0 + timedelta(days=1), [alert(1), alert(4, recipient=SA2)])
    # Re-runs, one of them with another result in between: the last one counts, as if alone.
    state.record(D0 + timedelta(days=1), [alert(2), alert(4)])
    again = state.record(D0 + timedelta(days=1), [alert(1), alert(4, recipient=SA2)])
    assert again.alerts == first.alerts and again.resolved == first.resolved
    assert {e["record_id"][13:15]: e["recipients"] for e in state.open_episodes()} == {
        "01": ["user:" + SA["id"]], "04": ["user:" + SA2["id"]]}  # fmt: skip


def test_an_alert_raised_again_starts_a_new_episode(state):
    state.record(D0, [alert(1)])
    state.record(D0 + timedelta(days=1), [])
    m = state.record(D0 + timedelta(days=2), [alert(1, long_id=False)])
    assert (m.alerts[0]["first_seen"], m.alerts[0]["age_days"]) == ("2026-11-04", 0)
    assert len(state.resolved_between(None, D0 + timedelta(days=9))) == 1


def test_a_new_recipient_keeps_the_episode_and_is_the_one_told_of_the_fix(state):
    """An SA assigned to an opportunity that went to the region's fallback before."""
    channel = {"type": "channel", "name": "#sa-activities-east"}
    state.record(D0, [alert(1, recipient=channel)])
    m = state.record(D0 + timedelta(days=2), [alert(1, recipient=SA)])
    assert m.alerts[0]["age_days"] == 2
    done = state.record(D0 + timedelta(days=3), [])
    assert [r["recipient"] for r in done.resolved] == [SA]


def test_an_earlier_date_is_read_not_written(state):
    state.record(D0, [alert(1)])
    state.record(D0 + timedelta(days=4), [alert(1)])
    late = state.record(D0 + timedelta(days=2), [alert(1), alert(2)])
    assert not late.recorded
    assert [(a["first_seen"], a["age_days"]) for a in late.alerts] == [("2026-11-02", 2), ("2026-11-04", 0)]
    assert len(state.open_episodes()) == 1


def test_snoozes_run_until_their_date_and_the_latest_one_counts(state):
    state.snooze("wf-06", OPP % "01", D0 + timedelta(days=7), "customer on holiday", "ann")
    assert set(state.snoozed(D0)) == {("wf-06", (OPP % "01")[:15])}
    assert state.snoozed(D0 + timedelta(days=7)) == {}  # shown again on its date
    state.snooze("wf-06", (OPP % "01")[:15], D0 + timedelta(days=1), "back early", "bob")
    assert state.snoozed(D0 + timedelta(days=1)) == {}
    assert [s["snoozed_by"] for s in state.all_snoozes()] == ["bob"]


def test_digest_marks_count_from_the_previous_digest_even_on_a_rerun(state):
    who = "user:" + SA["id"]
    assert state.last_digest(who, "sa_digest", D0) is None
    state.mark_digests([who], "sa_digest", D0)
    state.mark_digests([who], "sa_digest", D0 + timedelta(days=3))
    assert state.last_digest(who, "sa_digest", D0 + timedelta(days=3)) == D0
    state.mark_digests([who], "sa_digest", D0 + timedelta(days=3))
    assert state.last_digest(who, "sa_digest", D0 + timedelta(days=3)) == D0
    assert state.last_digest(who, "sa_digest", D0 + timedelta(days=4)) == D0 + timedelta(days=3)


def test_feed_windows_move_forward_only(state):
    from datetime import UTC, datetime

    t0 = datetime(2026, 11, 23, 4, tzinfo=UTC)
    assert state.feed_window_end("east") is None
    assert state.advance_feed("east", t0) == t0
    assert state.advance_feed("east", t0 - timedelta(days=1)) == t0  # a late re-run of an older window
    assert state.feed_window_end("east") == t0 and state.feed_window_end("west") is None
    assert state.advance_feed("east", t0 + timedelta(days=1)) == t0 + timedelta(days=1)
    assert state.feed_window_end("east") == t0 + timedelta(days=1)


def test_a_version_1_state_is_upgraded_with_its_episodes_kept(tmp_path):
    from sqlalchemy import select

    from sa_hygiene.state.alerts import COMPONENT, UPGRADES, episodes, evaluations, feed_windows, metadata
    from sa_hygiene.state.db import schema_versions

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    with AlertState(url, news=NEWS) as s:
        s.record(D0, [alert(1)])
        with s.engine.begin() as conn:  # what version 1 had: no feed windows
            feed_windows.drop(conn)
            conn.execute(schema_versions.update().where(schema_versions.c.component == COMPONENT).values(version=1))
    assert {episodes.name, evaluations.name} < set(metadata.tables)
    with AlertState(url, news=NEWS) as s:
        with s.engine.connect() as conn:
            assert conn.execute(select(schema_versions.c.version).where(schema_versions.c.component == COMPONENT)).scalar() == max(UPGRADES)
        assert s.feed_window_end("east") is None
        assert s.record(D0 + timedelta(days=1), [alert(1)]).alerts[0]["first_seen"] == D0.isoformat()


def test_a_version_2_state_is_upgraded_and_its_past_endings_are_told_as_gone(tmp_path):
    from sa_hygiene.state.alerts import COMPONENT
    from sa_hygiene.state.db import schema_versions

    url = f"sqlite:///{tmp_path / 'v2.sqlite'}"
    with AlertState(url, news=NEWS) as s:
        s.record(D0, [alert(1), alert(2)])
        s.record(D0 + timedelta(days=1), [alert(1)], scope={"wf-06": {(OPP % "02")[:15]}})
        with s.engine.begin() as conn:  # what version 2 had: no how, no recipients' dates
            for column in ("how", "recipients_since", "prev_recipients_since"):
                conn.exec_driver_sql(f"ALTER TABLE alert_episodes DROP COLUMN {column}")
            conn.execute(schema_versions.update().where(schema_versions.c.component == COMPONENT).values(version=2))
    with AlertState(url, news=NEWS) as s:
        assert [e["how"] for e in s.resolved_between(None, D0 + timedelta(days=1))] == ["gone"]  # unknown: never a fix
        assert s.open_episodes()[0]["recipients_since"] == {"user:" + SA["id"]: D0.isoformat()}
        m = s.record(D0 + timedelta(days=2), [alert(1, recipient=SA2)])
        assert (m.alerts[0]["first_seen"], m.alerts[0]["recipient_since"]) == (D0.isoformat(), "2026-11-04")


def test_a_state_that_cannot_be_reached_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatabaseError, match="the alert state .*cannot create") as err:
        AlertState(f"sqlite:///{tmp_path}/file/state.sqlite")
    assert "\n" not in str(err.value)
    with pytest.raises(DatabaseError, match="the alert state postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:1/x"):
        AlertState("postgresql+psycopg://u:secret@127.0.0.1:1/x?connect_timeout=2")


# --------------------------------------------------------------------------- property

KEYS = [(wf, n) for wf in ("wf-06", "act-fields") for n in range(3)] + [("wf-02", 0)]
step = st.tuples(st.sampled_from([0, 1, 1, 2]), st.sets(st.sampled_from(KEYS)), st.booleans())


def expected(evaluations):
    """The episodes CONTRACT.md § 2b describes, from the effective (last per date) evaluations."""
    days, sets = [], []
    for day, keys in evaluations:
        if days and days[-1] == day:
            sets[-1] = keys
        else:
            days.append(day)
            sets.append(keys)
    first = {}
    for i, (day, keys) in enumerate(zip(days, sets, strict=True)):
        first = {k: (first.get(k, day) if i and k in sets[i - 1] else day) for k in keys}
    resolved = sorted(k for k in sets[-2] if k not in sets[-1]) if len(sets) > 1 else []
    return first, resolved, days[-1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=1, max_size=8))
def test_episodes_follow_any_sequence_of_evaluations(tmp_path_factory, steps):
    url = f"sqlite:///{tmp_path_factory.mktemp('state')}/state.sqlite"
    day, seen = D0, []
    with AlertState(url, news=NEWS) as state:
        for gap, keys, short in steps:
            day += timedelta(days=gap)
            seen.append((day, keys))
            mem = state.record(day, [alert(n, wf, long_id=not short) for wf, n in sorted(keys)])
            first, resolved, last_day = expected(seen)
            hygiene = {k: v for k, v in first.items() if k[0] not in NEWS}
            got = {(a["workflow"], int(a["record_id"][13:15])): date.fromisoformat(a["first_seen"]) for a in mem.alerts}
            assert got == {k: (v if k[0] not in NEWS else last_day) for k, v in first.items()}
            assert all(a["age_days"] == (last_day - date.fromisoformat(a["first_seen"])).days for a in mem.alerts)
            assert sorted((r["workflow"], int(r["record_id"][13:15])) for r in mem.resolved) == [
                k for k in resolved if k[0] not in NEWS]  # fmt: skip
            assert {(e["workflow"], int(e["record_key"][13:15])) for e in state.open_episodes()} == set(hygiene)
