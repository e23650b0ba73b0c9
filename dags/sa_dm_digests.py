"""
### sa_dm_digests: each SA's 16:00 direct message, in their own time zone

Runs every 15 minutes. A run delivers to the people whose local `schedule.sa_digest_at` (16:00)
falls in its interval, evaluated with *their* local date as `as_of`: offsets are multiples of
15 minutes (India +05:30, Nepal +05:45), so everyone is served exactly once a day, DST changes
included. Most runs find nobody due and stop there. Reads the latest snapshot with its changes
feed (`sa_changes`): a task closed this morning is not "due today" at 16:00. One evaluation per
local date and changes version is kept in the store and reused by the runs that follow.

Params: `sa` (a User Id: send that person's digest now), `as_of`, `dry_run`.
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
    schedule=every_minutes(15),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "dm"],
    doc_md=__doc__,
    default_args=default_args(CFG),
    params=run_params(sa=Param("", type="string", description="User Id: deliver this person's digest now")),
)
def sa_dm_digests():
    @task(**NO_RETRIES)
    def find_due_recipients() -> dict[str, list[str]]:
        from sa_hygiene.pipeline.digests import due_recipients

        ctx = get_current_context()
        p = ctx["params"]
        return due_recipients(load_config(), ctx["data_interval_start"], ctx["data_interval_end"],
                              only=p["sa"] or None, as_of=p["as_of"] or None)  # fmt: skip

    @task(**NO_RETRIES)
    def evaluate_rules(due: dict[str, list[str]]) -> list[dict]:
        from datetime import date

        from sa_hygiene.pipeline.evaluation import evaluate_latest, run_folder

        ctx = get_current_context()
        cfg = load_config()
        runs = []
        for day, users in sorted(due.items()):
            out = f"{run_folder(cfg, 'sa_dm_digests', ctx['run_id'])}/{day}"
            run = evaluate_latest(cfg, date.fromisoformat(day), out=out, slots={"sa_digest"}, now=ctx["data_interval_end"],
                                  with_changes=True, cache=True, recipients=[f"user:{u}" for u in users])  # fmt: skip
            runs.append(run.to_xcom())
        return runs

    @task(pool="slack_api", **NETWORK_RETRIES)
    def post_sa_digests(runs: list[dict]) -> list[dict]:
        from sa_hygiene.pipeline.digests import deliver_digests
        from sa_hygiene.pipeline.evaluation import EvaluationRun

        ctx = get_current_context()
        run_id = f"sa_dm_digests/{ctx['run_id']}"
        evaluations = [EvaluationRun.from_xcom(run) for run in runs]
        return [deliver_digests(load_config(), e, run_id, slots={"sa_digest"}, recipients=set(e.recipients),
                                dry_run=ctx["params"]["dry_run"]) for e in evaluations]  # fmt: skip

    post_sa_digests(evaluate_rules(find_due_recipients()))


sa_dm_digests()
