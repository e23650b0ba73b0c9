"""What every DAG of the project shares: defaults, the snapshot and changes Assets, the failure notifier.

Imported by DAG files at parse time, so only ``airflow.sdk`` and the light configuration
module come in here; the Slack client is imported when a failure is actually reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, BaseNotifier, CronTriggerTimetable, Param

from sa_hygiene.contract.config import Config

START = datetime(2026, 1, 1)
TAGS = ["sa-hygiene"]
# An "x-" scheme is private: Airflow neither validates nor normalizes it, where any other scheme
# makes every parse load all providers' asset handlers first (about 50 ms a parse).
SNAPSHOT = Asset("sa_hygiene_snapshot", uri="x-sa-hygiene://snapshot/latest")
CHANGES = Asset("sa_hygiene_changes", uri="x-sa-hygiene://snapshot/latest/changes")

# Tasks that talk to Salesforce or Slack retry; validation and evaluation do not (a bad
# snapshot stays bad on retry, and their failure is a result the operators must see). When a
# retry comes is in default_args, from the configuration.
NETWORK_RETRIES = {"retries": 3}
NO_RETRIES = {"retries": 0}


class OpsFailureNotifier(BaseNotifier):
    """A failed task, told to the operations channel.

    With Slack delivery this is the Slack provider's ``SlackNotifier``; with the outbox
    (the embedded default, no Slack at all) the same notice goes to the outbox, so a
    demo or a dry run shows failures where it shows everything else.
    """

    template_fields = ("text",)

    def __init__(self, cfg: Config, text: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.text = text or (
            ":red_circle: sa-hygiene: task {{ ti.task_id }} of {{ dag.dag_id }} failed "
            "(run {{ run_id }}, try {{ ti.try_number }}). Logs: {{ ti.log_url }}"
        )

    def notify(self, context) -> None:
        from sa_hygiene.pipeline.sending import delivers_to_slack, open_sink

        if delivers_to_slack(self.cfg):
            from airflow.providers.slack.notifications.slack import SlackNotifier

            from sa_hygiene.delivery.slack import retry_handlers

            notifier = SlackNotifier(slack_conn_id=self.cfg.slack.conn_id, channel=self.cfg.channels.operations,
                                     text=self.text, retry_handlers=retry_handlers())  # fmt: skip
            notifier.notify(context)
            return
        channel = self.cfg.channels.operations
        sink = open_sink(self.cfg, "failures")
        args = {"channel": channel, "text": self.text,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": self.text}}],
                "metadata": {"event_type": "sa_hygiene_failure",
                             "event_payload": {"key": f"failure|{context['run_id']}|{context['ti'].task_id}", "part": 0}}}  # fmt: skip
        sink.call("chat.postMessage", {"type": "channel", "name": channel}, args, title="Task failed")
        sink.finish()


def default_args(cfg: Config) -> dict:
    """What every task of a DAG shares; tasks that retry (``NETWORK_RETRIES``) wait
    ``schedule.retry_delay_seconds``, then twice that, and so on (Airflow adds jitter), at most
    15 minutes. ``retry_exponential_backoff`` is a multiplier in Airflow 3.3: ``True`` would count
    as 1.0, a constant delay."""
    return {
        "owner": "sa-hygiene",
        "on_failure_callback": OpsFailureNotifier(cfg),
        "retry_delay": timedelta(seconds=cfg.schedule.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        **NO_RETRIES,
    }


def run_params(**extra: Param) -> dict[str, Param]:
    """The params every digest DAG takes when run by hand."""
    return {
        "as_of": Param("", type="string", description="Evaluation date YYYY-MM-DD (blank: the run's own local date)"),
        "dry_run": Param(False, type="boolean", description="Write to the outbox instead of Slack"),
        **extra,
    }



def every_minutes(n: int) -> CronTriggerTimetable:
    """A schedule every ``n`` minutes on the UTC clock (``*/n``), each run's data interval the
    ``n`` minutes before it: what the feed, the posts, the reminders and the 15-minute digests share."""
    return CronTriggerTimetable(f"*/{n} * * * *", timezone="UTC", interval=timedelta(minutes=n))
