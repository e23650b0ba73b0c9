"""
### sa_changes: what changed in Salesforce since the latest snapshot, every 15 minutes

Pulls Task, Event, EventRelation, Contact and Lead rows modified since the feed's high-water mark
(`SystemModstamp`, less `changes.overlap_minutes`) through `queryAll`, so deletions arrive too, and
commits them beside the latest snapshot as its changes folder (`<snapshot>/_changes/`), the
`sa_hygiene_changes` asset. The meeting reminders and the DM digests read the snapshot with these
changes: a meeting logged at 10:00 is not reminded at 10:15, a meeting booked after the snapshot is.

The feed is cumulative and written atomically: a failed pull leaves the last good changes and their
high-water mark, and the next run fetches from there. A new snapshot starts a new feed. Each run
logs the API calls it made (`Sforce-Limit-Info`). With a folder source there is nothing to pull.
"""

from airflow.sdk import dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.dag_support import CHANGES, NETWORK_RETRIES, START, TAGS, default_args, every_minutes

CFG = load_config()


@dag(
    schedule=every_minutes(15),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "salesforce"],
    doc_md=__doc__,
    default_args=default_args(CFG),
)
def sa_changes():
    @task(pool="salesforce_api", outlets=[CHANGES], **NETWORK_RETRIES)
    def pull_changes() -> dict:
        from sa_hygiene.pipeline.snapshots import pull_changes as pull

        ctx = get_current_context()
        return pull(load_config(), now=ctx["data_interval_end"])

    pull_changes()


sa_changes()
