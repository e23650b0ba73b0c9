"""
### sa_snapshot: the daily Salesforce snapshot

Extracts the objects of the data contract through the Salesforce provider (or copies a local
snapshot folder when `source.kind` is `folder`, as the demo does), reads the staged tables as
the rules will (unusable input fails here; bad rows are quarantined with a reason), and only
then commits the snapshot to the store, where it becomes the `sa_hygiene_snapshot` asset.

A failure anywhere leaves the previous snapshot as the latest.
"""

import logging

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.dag_support import NETWORK_RETRIES, NO_RETRIES, SNAPSHOT, START, TAGS, default_args

CFG = load_config()
log = logging.getLogger(__name__)


@dag(
    schedule=CronTriggerTimetable(CFG.schedule.snapshot_cron, timezone="UTC"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "salesforce"],
    doc_md=__doc__,
    default_args=default_args(CFG),
)
def sa_snapshot():
    @task(pool="salesforce_api", **NETWORK_RETRIES)
    def extract_snapshot() -> dict:
        from sa_hygiene.pipeline.snapshots import stage_snapshot

        ctx = get_current_context()
        return stage_snapshot(load_config(), ctx["logical_date"] or ctx["dag_run"].run_after).to_xcom()

    @task(**NO_RETRIES)
    def validate_snapshot(staged: dict) -> dict:
        from sa_hygiene.pipeline.snapshots import StagedSnapshot
        from sa_hygiene.pipeline.snapshots import validate_snapshot as validate

        return validate(load_config(), StagedSnapshot.from_xcom(staged).staged).to_xcom()

    @task(outlets=[SNAPSHOT], **NO_RETRIES)
    def commit_snapshot(staged: dict, validation: dict) -> str:
        from sa_hygiene.pipeline.snapshots import SnapshotValidation, StagedSnapshot
        from sa_hygiene.pipeline.snapshots import commit_snapshot as commit

        snapshot, checked = StagedSnapshot.from_xcom(staged), SnapshotValidation.from_xcom(validation)
        url = commit(load_config(), snapshot.staged, snapshot.taken_at, snapshot.source)
        log.info("committed %s: %s, %d rows quarantined", url, checked.rows, checked.quarantined)
        return url

    staged = extract_snapshot()
    commit_snapshot(staged, validate_snapshot(staged))


sa_snapshot()
