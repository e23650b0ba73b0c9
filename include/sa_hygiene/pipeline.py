"""The steps the DAGs and the command line run, each a plain function of the configuration.

DAG tasks are thin wrappers around these, so every step runs and is tested without a
scheduler, and the command line and Airflow share one code path.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

from sa_hygiene.config import Config

log = logging.getLogger(__name__)


def open_sink(cfg: Config, run_id: str, delivery: str | None = None, outbox: str | None = None, conn_id: str | None = None):
    """The outbox or Slack, as configured (or forced, e.g. by a DAG's dry_run)."""
    from sa_hygiene.slack_delivery import SlackSink
    from sa_hygiene.slack_outbox import OutboxSink

    if (delivery or cfg.slack.delivery) == "slack":
        return SlackSink(conn_id or cfg.slack.conn_id)
    return OutboxSink(outbox or cfg.slack.outbox, run_id)


def deliver_messages(messages: list, cfg: Config, run_id: str, *, sink=None, ledger_url: str | None = None):
    """Deliver with the configured ledger; returns the DeliveryReport (raise_for_failures is the caller's)."""
    from sa_hygiene.ledger import Ledger
    from sa_hygiene.slack_delivery import deliver

    sink = sink if sink is not None else open_sink(cfg, run_id)
    ledger = Ledger(ledger_url or cfg.slack.ledger_url, cache_hours=cfg.slack.user_cache_hours)
    try:
        return deliver(messages, sink, ledger, run_id)
    finally:
        ledger.close()


def read_alerts(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def digest_from_files(
    cfg: Config,
    snapshot: str,
    alerts_path: str,
    as_of: date,
    *,
    previous: str | None = None,
    sink=None,
    ledger_url: str | None = None,
    run_id: str | None = None,
):
    """Render the day's digests of an alerts file and deliver them, then the operations summary.

    Returns (messages, report of the digests, report of the summary or None).
    """
    from sa_hygiene.digest import build_messages, ops_summary
    from sa_hygiene.snapshot import PREVIOUS_OBJECTS, read_snapshot

    current = read_snapshot(snapshot, cfg)
    before = read_snapshot(previous, cfg, objects=PREVIOUS_OBJECTS) if previous else None
    alerts = read_alerts(alerts_path)
    run_id = run_id or f"digest-{as_of.isoformat()}"
    messages = build_messages(alerts, current, cfg, as_of, previous=before)
    report = deliver_messages(messages, cfg, run_id, sink=sink, ledger_url=ledger_url)
    summary = ops_summary(
        cfg, as_of, "digest", quarantine=current.quarantine, unrouted=sum(1 for a in alerts if a.get("unrouted")),
        unknown_users=report.unknown_users, failed=report.failed,
    )  # fmt: skip
    summary_report = deliver_messages([summary], cfg, run_id, sink=sink, ledger_url=ledger_url) if summary else None
    return messages, report, summary_report
