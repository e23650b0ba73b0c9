"""
### sa_meeting_reminders: "you just had a meeting: log it"

Every `schedule.reminder_every_minutes` (5), wf-01 for the meetings that ended since the previous
successful run: a direct message per meeting to the SA who owns it, naming the opportunity it was
booked on (else the one its attendees suggest), unless the SA already logged an activity for it.
Reads the latest snapshot with its changes feed (`sa_changes`), so a meeting booked or logged
since the snapshot counts. The window starts no later than the changes' high-water mark of the last
delivered run: a meeting that ended while the feed was stale is reminded when the feed catches up,
and the operations channel is told of the staleness once. Each meeting is reminded once: the
delivery ledger keys reminders by meeting.

Params: `since`/`until` (ISO date-times, a window by hand), `dry_run`.
"""

from airflow.sdk import Param, dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.dag_support import (
    NETWORK_RETRIES,
    NO_RETRIES,
    START,
    TAGS,
    default_args,
    every_minutes,
    run_params,
)

CFG = load_config()


@dag(
    schedule=every_minutes(CFG.schedule.reminder_every_minutes),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "dm", "meetings"],
    doc_md=__doc__,
    default_args=default_args(CFG),
    params=run_params(
        since=Param("", type="string", description="Window start, ISO date-time (blank: the previous run's end)"),
        until=Param("", type="string", description="Window end, ISO date-time (blank: this run's interval end)"),
    ),
)
def sa_meeting_reminders():
    @task(**NO_RETRIES)
    def evaluate_rules() -> dict:
        from sa_hygiene.pipeline.digests import reminder_window
        from sa_hygiene.pipeline.evaluation import evaluate_latest, run_folder
        from sa_hygiene.pipeline.reminders import reminder_span

        ctx = get_current_context()
        cfg = load_config()
        params = ctx["params"]
        since, until = reminder_window(ctx["data_interval_start"], ctx["data_interval_end"],
                                       ctx.get("prev_data_interval_end_success"), params)  # fmt: skip
        since, until = reminder_span(cfg, since, until, by_hand=bool(params.get("since") or params.get("until")))
        out = run_folder(cfg, "sa_meeting_reminders", ctx["run_id"])
        return evaluate_latest(cfg, until.date(), since, until, out=out, slots={"meeting_reminder"}, now=until,
                               with_changes=True).to_xcom()  # fmt: skip

    @task(pool="slack_api", **NETWORK_RETRIES)
    def post_meeting_reminders(run: dict) -> dict:
        from sa_hygiene.pipeline.evaluation import EvaluationRun
        from sa_hygiene.pipeline.reminders import deliver_reminders

        ctx = get_current_context()
        return deliver_reminders(load_config(), EvaluationRun.from_xcom(run), f"sa_meeting_reminders/{ctx['run_id']}",
                                 dry_run=ctx["params"]["dry_run"])  # fmt: skip

    post_meeting_reminders(evaluate_rules())


sa_meeting_reminders()
