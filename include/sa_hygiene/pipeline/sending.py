"""Where messages go: the one place that chooses between Slack and the outbox (the DAG steps,
the failure notifier and the digest command all ask ``delivers_to_slack``), and delivery
through the ledger (exactly once per message and day).
"""

from __future__ import annotations

import logging

from sa_hygiene.contract.config import Config

log = logging.getLogger(__name__)


def delivers_to_slack(cfg: Config, delivery: str | None = None) -> bool:
    """Slack (True) or the outbox: ``delivery`` ("slack" or "outbox") when a run forces one (a
    DAG's dry_run, the digest command's ``--slack-conn-id`` or ``--outbox``), else the
    configuration's ``slack.delivery``."""
    return (delivery or cfg.slack.delivery) == "slack"


def open_sink(cfg: Config, run_id: str, delivery: str | None = None, outbox: str | None = None, conn_id: str | None = None):
    """The outbox or Slack (``delivers_to_slack``); ``outbox`` and ``conn_id`` override the configuration's."""
    from sa_hygiene.delivery.outbox import OutboxSink
    from sa_hygiene.delivery.slack import SlackSink

    if delivers_to_slack(cfg, delivery):
        return SlackSink(conn_id or cfg.slack.conn_id)
    return OutboxSink(outbox or cfg.slack.outbox, run_id)


def deliver_messages(messages: list, cfg: Config, run_id: str, *, sink=None, ledger_url: str | None = None):
    """Deliver with the configured ledger; returns the DeliveryReport (raise_for_failures is the caller's)."""
    from sa_hygiene.delivery.slack import deliver
    from sa_hygiene.state.ledger import Ledger

    sink = sink if sink is not None else open_sink(cfg, run_id)
    ledger = Ledger(ledger_url or cfg.slack.ledger_url, cache_hours=cfg.slack.user_cache_hours,
                    lease_seconds=cfg.slack.lease_seconds)  # fmt: skip
    try:
        return deliver(messages, sink, ledger, run_id)
    finally:
        ledger.close()
