"""
### sa_activity_posts: each new activity in its team channel, as it happens (spec v3)

Every `schedule.activity_posts_every_minutes` (15), the workflows of `schedule.as_it_happens`
(wf-02: an SA activity, to the region channel of the task's owner; wf-09: a Chorus call, to
`#sa-chorus-calls`) post one message per new record, so that the team can comment in its thread,
as the handbook describes Rattle's activity channels: who logged what on which opportunity, the
types, the sentiment, the description with its links, a link to the record (the recording), and
an "Update Activity" button.

Reads the latest snapshot with its changes feed (`sa_changes`) in the feed's own window: from
where the last delivered window ended (less the feed's overlap) to the changes' high-water mark,
so nothing created between two runs is lost, and the ledger posts each activity once, whatever
is retried, re-run or overlaps. A Task changed or deleted in Salesforce since is edited in place
(or marked deleted) in the same run. A run with nothing new reuses the last evaluation and calls
neither Salesforce nor Slack. Stale changes are told to the operations channel once.

A deployment posts from its first run on: that run records where its posts start and posts
nothing of the backlog before it (no channel flooded with the day so far); nothing created after
the start is lost.

Params: `dry_run` (the outbox instead of Slack; the feed window is not advanced).
"""

from airflow.sdk import dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.dag_support import NETWORK_RETRIES, START, TAGS, default_args, every_minutes, run_params

CFG = load_config()


@dag(
    schedule=every_minutes(CFG.schedule.activity_posts_every_minutes),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "channels", "activities"],
    doc_md=__doc__,
    default_args=default_args(CFG),
    params=run_params(),
)
def sa_activity_posts():
    @task(pool="slack_api", **NETWORK_RETRIES)
    def post_activities() -> dict:
        from sa_hygiene.pipeline.activity_posts import post_activities as post

        ctx = get_current_context()
        return post(load_config(), f"sa_activity_posts/{ctx['run_id']}", now=ctx["data_interval_end"],
                    dry_run=ctx["params"]["dry_run"])  # fmt: skip

    post_activities()


sa_activity_posts()
