"""
### Regional digests: 08:00 in each region's own time zone

One DAG per region of the configuration (`regions`), each on a cron evaluated in its region's
zone, so the digest goes out at 08:00 local all year and DST moves only the UTC instant.
A run evaluates the latest snapshot for the region's local date, with the activity created since
the end of the last window this DAG delivered up to the moment the snapshot was taken (kept in the
alert state: nothing created between the snapshot and 08:00 is skipped), and posts one message to
`#sa-activities-<region>` (continued in its thread when long). Spec v3: the workflows of
`schedule.as_it_happens` (wf-02, wf-09) are posted one by one by `sa_activity_posts` instead, so the
digest carries the hygiene workflows (wf-10, wf-12, wf-13). Plus `sa_channel_posts`: the daily
posts of the fixed channels (wf-03, wf-04, wf-08, wf-14) and the operations channel, at 08:00 in
`schedule.fixed_channel_timezone`.

Params: `as_of` (another day), `dry_run` (the outbox instead of Slack).
"""

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.schedule import cron_at, regional_digest_dag_id
from sa_hygiene.dag_support import (
    NETWORK_RETRIES,
    NO_RETRIES,
    START,
    TAGS,
    default_args,
    run_params,
)

CFG = load_config()
FIXED = sorted({wf.recipient.channel for wf in CFG.enabled_workflows().values() if wf.recipient.channel})


def digest_dag(dag_id: str, tz: str, slots: set[str], recipients: set[str], doc: str, tags: list[str], post: str):
    @dag(
        dag_id=dag_id,
        schedule=CronTriggerTimetable(cron_at(CFG.schedule.regional_digest_at), timezone=tz),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[*TAGS, *tags],
        doc_md=f"{doc}\n\n{__doc__}",
        default_args=default_args(CFG),
        params=run_params(),
    )
    def _digest():
        @task(**NO_RETRIES)
        def evaluate_rules() -> dict:
            from datetime import date

            from sa_hygiene.contract.schedule import digest_window
            from sa_hygiene.pipeline.evaluation import evaluate_latest, run_folder

            ctx = get_current_context()
            cfg = load_config()
            moment = ctx["logical_date"] or ctx["dag_run"].run_after
            as_of = date.fromisoformat(ctx["params"]["as_of"]) if ctx["params"]["as_of"] else None
            day, since, until = digest_window(moment, tz, cfg.schedule.regional_digest_at, as_of)
            out = run_folder(cfg, dag_id, ctx["run_id"])
            # New activity and Chorus calls: the DAG's feed window (from its last delivered one to
            # the snapshot), not the clock's; a run by hand for another day keeps that day's.
            feed = None if as_of else dag_id
            # DM alerts whose user and manager are inactive fall back to the region channel (and a
            # manager's escalation about a user without a manager: pov-load).
            run = evaluate_latest(cfg, day, since, until, out=out, slots=slots | {"sa_digest", "manager_escalation"},
                                  now=until, feed=feed)  # fmt: skip
            return run.to_xcom()

        @task(pool="slack_api", **NETWORK_RETRIES)
        def post_digest(run: dict) -> dict:
            from sa_hygiene.pipeline.digests import deliver_digests
            from sa_hygiene.pipeline.evaluation import EvaluationRun

            ctx = get_current_context()
            return deliver_digests(load_config(), EvaluationRun.from_xcom(run), f"{dag_id}/{ctx['run_id']}", slots=slots,
                                   recipients=recipients, dry_run=ctx["params"]["dry_run"],
                                   with_quarantine="ops" in tags)  # fmt: skip

        post_digest.override(task_id=post)(evaluate_rules())

    return _digest()


for key, region in CFG.regions.items():
    digest_dag(
        regional_digest_dag_id(key),
        region.timezone,
        {"regional_digest"},
        {"channel:" + CFG.region_channel(key)},
        f"#### {CFG.region_channel(key)} at {CFG.schedule.regional_digest_at} {region.timezone}",
        ["regional", key],
        "post_regional_digest",
    )

digest_dag(
    "sa_channel_posts",
    CFG.schedule.fixed_channel_timezone,
    {"channel_post", "regional_digest"},
    {"channel:" + c for c in [*FIXED, CFG.routing.unrouted_channel]},
    f"#### Fixed channels and {CFG.routing.unrouted_channel}, at {CFG.schedule.regional_digest_at} "
    f"{CFG.schedule.fixed_channel_timezone}",
    ["channels", "ops"],
    "post_channel_digests",
)
