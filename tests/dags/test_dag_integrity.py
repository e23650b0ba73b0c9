"""DAG integrity: every DAG imports, carries its docs and tags, retries where it talks to
Salesforce or Slack (and only there), and fires at the right UTC instants across DST."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NETWORK_TASKS = {"extract_snapshot", "pull_changes", "post_regional_digest", "post_channel_digests", "post_sa_digests",
                 "post_meeting_reminders", "post_escalations", "post_activities"}  # fmt: skip
# Tasks that retry because they use the alert state, a database that may be away for a moment.
STATE_TASKS = {"record_alert_state", "find_overdue_items"}


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    with pytest.MonkeyPatch.context() as mp:  # put back afterwards: later modules of this process
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors_and_every_expected_dag(dagbag):
    assert dagbag.import_errors == {}
    regional = {f"sa_regional_digest_{k}" for k in ("east_sa", "west_sa", "emea_sa", "apj_cs", "commercial_sa",
                                                    "pubsec_sa", "channels_and_alliances_sa")}  # fmt: skip
    assert set(dagbag.dags) == {"sa_snapshot", "sa_changes", "sa_report", "sa_dm_digests", "sa_meeting_reminders",
                                "sa_channel_posts", "sa_escalations", "sa_activity_posts", *regional}


def test_docs_tags_catchup_owner_and_failure_callback(dagbag):
    from sa_hygiene.dag_support import OpsFailureNotifier

    for dag in dagbag.dags.values():
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        assert "sa-hygiene" in dag.tags
        assert dag.catchup is False
        for t in dag.tasks:
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
            assert any(isinstance(c, OpsFailureNotifier) for c in callbacks), (dag.dag_id, t.task_id)


def test_retries_and_pools_only_where_salesforce_or_slack_is_called(dagbag):
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            if t.task_id in NETWORK_TASKS:
                assert t.retries >= 3 and t.retry_exponential_backoff == 2.0, (dag.dag_id, t.task_id)
                assert t.retry_delay == timedelta(seconds=60) and t.max_retry_delay == timedelta(minutes=15)
                assert t.pool == ("salesforce_api" if t.task_id in ("extract_snapshot", "pull_changes") else "slack_api")
            elif t.task_id in STATE_TASKS:
                assert t.retries >= 3 and t.pool == "default_pool", (dag.dag_id, t.task_id)
            else:
                assert t.retries == 0, (dag.dag_id, t.task_id)
    assert dagbag.dags["sa_snapshot"].max_active_runs == dagbag.dags["sa_changes"].max_active_runs == 1
    # A run by hand during the scheduled one waits for it: the ledger would keep them from posting
    # twice anyway, but each would wait on the other's leases.
    delivering = [d for d in dagbag.dags.values() if any(t.pool == "slack_api" for t in d.tasks)]
    assert len(delivering) == len(dagbag.dags) - 3  # all but sa_snapshot, sa_changes and sa_report
    assert {d.dag_id: d.max_active_runs for d in delivering} == {d.dag_id: 1 for d in delivering}
    assert [o.name for o in dagbag.dags["sa_snapshot"].get_task("commit_snapshot").outlets] == ["sa_hygiene_snapshot"]
    assert [o.name for o in dagbag.dags["sa_changes"].get_task("pull_changes").outlets] == ["sa_hygiene_changes"]
    # The report follows each committed snapshot.
    assert [a.name for a in dagbag.dags["sa_report"].timetable.asset_condition.objects] == ["sa_hygiene_snapshot"]


def test_params_to_run_by_hand(dagbag):
    for dag_id in ("sa_regional_digest_east_sa", "sa_channel_posts", "sa_dm_digests", "sa_meeting_reminders",
                   "sa_escalations"):  # fmt: skip
        params = dagbag.dags[dag_id].params
        assert {"as_of", "dry_run"} <= set(params.keys()), dag_id
    assert "sa" in dagbag.dags["sa_dm_digests"].params and "sa" in dagbag.dags["sa_escalations"].params


def test_activity_posts_and_reminders_run_as_often_as_configured(dagbag):
    # Spec v3: posts within one 15-minute feed interval, reminders within 5 minutes of a meeting's end.
    import pendulum

    start = pendulum.datetime(2026, 11, 24, 9, 1, tz="UTC")  # a cron with an interval asks for pendulum's
    assert [d.strftime("%H:%M") for d in next_runs(dagbag.dags["sa_activity_posts"], start, 3)] == ["09:15", "09:30", "09:45"]
    assert [d.strftime("%H:%M") for d in next_runs(dagbag.dags["sa_meeting_reminders"], start, 3)] == ["09:05", "09:10", "09:15"]


def next_runs(dag, after: datetime, n: int) -> list[datetime]:
    """The next run instants the scheduler computes (on the core timetable the DAG serializes to)."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    out, last = [], None
    restriction = TimeRestriction(earliest=after, latest=None, catchup=True)
    for _ in range(n):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        out.append(info.run_after.astimezone(UTC))
        last = info.data_interval if info.data_interval.end != info.data_interval.start else DataInterval(info.run_after, info.run_after)
    return out


@pytest.mark.parametrize(
    "dag_id, after, expected",
    [
        # New York: EST 13:00 UTC, EDT 12:00 UTC from Sunday 8 March 2026, back on 1 November.
        ("sa_regional_digest_east_sa", datetime(2026, 3, 7, tzinfo=UTC), ["03-07 13:00", "03-08 12:00", "03-09 12:00"]),
        ("sa_regional_digest_east_sa", datetime(2026, 10, 31, tzinfo=UTC), ["10-31 12:00", "11-01 13:00", "11-02 13:00"]),
        # London: GMT 08:00, BST 07:00 UTC from 29 March; back on 25 October.
        ("sa_regional_digest_emea_sa", datetime(2026, 3, 28, tzinfo=UTC), ["03-28 08:00", "03-29 07:00", "03-30 07:00"]),
        ("sa_regional_digest_emea_sa", datetime(2026, 10, 24, tzinfo=UTC), ["10-24 07:00", "10-25 08:00", "10-26 08:00"]),
        # Sydney (the day before in UTC): AEDT 21:00 UTC until DST ends on 5 April, then AEST 22:00 UTC;
        # AEDT again from 4 October.
        ("sa_regional_digest_apj_cs", datetime(2026, 4, 3, tzinfo=UTC), ["04-03 21:00", "04-04 22:00", "04-05 22:00"]),
        ("sa_regional_digest_apj_cs", datetime(2026, 10, 2, tzinfo=UTC), ["10-02 22:00", "10-03 21:00", "10-04 21:00"]),
    ],
)
def test_regional_digests_fire_at_0800_local_across_both_dst_changes(dagbag, dag_id, after, expected):
    assert [d.strftime("%m-%d %H:%M") for d in next_runs(dagbag.dags[dag_id], after, 3)] == expected


def test_a_half_hour_region_added_in_configuration(tmp_path):
    # A region is a YAML change: Adelaide (+09:30, +10:30 in summer) gets its DAG and its 08:00.
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("regions:\n  adelaide-sa: {timezone: Australia/Adelaide}\n"
                   "routing:\n  rules:\n    - {key: adelaide-sa, when: {region: [SA]}}\n")  # fmt: skip
    code = (
        "import os\n"
        "from datetime import datetime, UTC\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "from airflow.serialization.encoders import coerce_to_core_timetable\n"
        "from airflow.timetables.base import TimeRestriction\n"
        "bag = DagBag(dag_folder=os.environ['DAGS'])\n"
        "tt = coerce_to_core_timetable(bag.dags['sa_regional_digest_adelaide_sa'].timetable)\n"
        "r = TimeRestriction(earliest=datetime(2026, 4, 3, tzinfo=UTC), latest=None, catchup=True)\n"
        "a = tt.next_dagrun_info(last_automated_data_interval=None, restriction=r).run_after\n"
        "r = TimeRestriction(earliest=datetime(2026, 4, 6, tzinfo=UTC), latest=None, catchup=True)\n"
        "b = tt.next_dagrun_info(last_automated_data_interval=None, restriction=r).run_after\n"
        "print(a.astimezone(UTC).strftime('%m-%d %H:%M'), b.astimezone(UTC).strftime('%m-%d %H:%M'))\n"
    )
    env = {**os.environ, "SA_HYGIENE_CONFIG": str(cfg), "AIRFLOW_HOME": str(tmp_path / "home"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "DAGS": str(ROOT / "dags")}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    # 08:00 ACDT (+10:30) is 21:30 UTC the day before; after 5 April, 08:00 ACST (+09:30) is 22:30 UTC.
    assert out.stdout.strip().splitlines()[-1] == "04-03 21:30 04-06 22:30"
