"""
### sa_escalations: a manager's 08:00 DM of their team's items open too long

Runs every 15 minutes. A run serves the managers whose local `schedule.escalation_at` (08:00)
falls in its interval: every open item of an SA (or owner) who reports to them that has been
open for at least its workflow's `escalate_after_days` (7 for the DM workflows by default),
grouped by person, oldest first. Ages come from the alert state that `sa_report` records after
each snapshot; snoozed items are left out. The delivery ledger keeps it to one DM a day per
manager; fallbacks as for other DMs (their own manager, then their region's channel).

Params: `sa` (a manager's User Id: send their escalation now), `as_of`, `dry_run`.
"""

from airflow.sdk import Param, dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.dag_support import NETWORK_RETRIES, START, TAGS, default_args, every_minutes, run_params

CFG = load_config()


@dag(
    schedule=every_minutes(15),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "dm"],
    doc_md=__doc__,
    default_args=default_args(CFG),
    params=run_params(sa=Param("", type="string", description="Manager's User Id: deliver their escalation now")),
)
def sa_escalations():
    @task(**NETWORK_RETRIES)
    def find_overdue_items() -> dict:
        from sa_hygiene.pipeline.escalations import escalations

        ctx = get_current_context()
        p = ctx["params"]
        return escalations(load_config(), ctx["data_interval_start"], ctx["data_interval_end"],
                           only=p["sa"] or None, as_of=p["as_of"] or None).to_xcom()  # fmt: skip

    @task(pool="slack_api", **NETWORK_RETRIES)
    def post_escalations(found: dict) -> dict:
        from sa_hygiene.pipeline.escalations import OverdueItems, deliver_escalations

        ctx = get_current_context()
        return deliver_escalations(load_config(), OverdueItems.from_xcom(found), f"sa_escalations/{ctx['run_id']}",
                                   dry_run=ctx["params"]["dry_run"])  # fmt: skip

    post_escalations(find_overdue_items())


sa_escalations()
