"""
### sa_report: the hygiene dashboard of the latest snapshot

Runs whenever `sa_snapshot` commits a snapshot (the `sa_hygiene_snapshot` asset), or by hand.
Evaluates the latest snapshot against the one before it with the same rules as the digests,
records that evaluation in the alert state (so the report's fixes are the day's), and
writes a static HTML report beside the store: headline numbers, regions, open alerts per
workflow and region with the records behind each number, the SAs with the most open items,
SA activity, the current fiscal quarter's technical evaluations, data quality, a trend over
the stored snapshots, and Great Expectations Data Docs of the run's validations.

The newest report is served inside Airflow (the "Hygiene" entry of the navigation) to
anyone who may read this DAG. Nothing here calls Salesforce or Slack, so nothing retries.

Params: `as_of` (the evaluation date; blank: the snapshot's own date).
"""

from airflow.sdk import Param, dag, get_current_context, task

from sa_hygiene.contract.config import load_config
from sa_hygiene.dag_support import NETWORK_RETRIES, NO_RETRIES, SNAPSHOT, START, TAGS, default_args

CFG = load_config()


@dag(
    schedule=[SNAPSHOT],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "report"],
    doc_md=__doc__,
    default_args=default_args(CFG),
    params={"as_of": Param("", type="string", description="Evaluation date YYYY-MM-DD (blank: the snapshot's date)")},
)
def sa_report():
    @task(**NO_RETRIES)
    def write_report() -> dict:
        from datetime import date

        from sa_hygiene.pipeline.report import write_report as write

        as_of = get_current_context()["params"]["as_of"]
        return write(load_config(), as_of=date.fromisoformat(as_of) if as_of else None)

    @task(**NETWORK_RETRIES)
    def record_alert_state(_report: dict) -> dict:
        """The report recorded its evaluation before writing itself (its fixes are today's); this
        catches up when the state was away then: retried, because the state is a database that
        may be away for a moment. Nothing to do when the report's own recording went through."""
        from sa_hygiene.pipeline.alert_state import record_stored_evaluations

        return record_stored_evaluations(load_config())

    record_alert_state(write_report())


sa_report()
