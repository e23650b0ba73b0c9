"""The digest DAGs' steps: who is due, which meetings to remind of, and delivering digests.
"""

from __future__ import annotations

import logging

from sa_hygiene.contract.config import Config
from sa_hygiene.pipeline.alert_state import DigestAnnotations, annotate_digest, mark_digests_delivered
from sa_hygiene.pipeline.evaluation import EvaluationRun, advance_feed, read_alerts
from sa_hygiene.pipeline.sending import deliver_messages, open_sink
from sa_hygiene.pipeline.snapshots import snapshot_store

log = logging.getLogger(__name__)


def deliver_digests(
    cfg: Config,
    run: EvaluationRun,
    run_id: str,
    *,
    slots: set[str] | None = None,
    recipients: set[str] | None = None,
    dry_run: bool = False,
    sink=None,
    ledger_url: str | None = None,
    with_quarantine: bool = False,
) -> dict:
    """Render the digests of an evaluation (``run``: its date, alerts file, snapshots, notices)
    for some slots and recipients, all by default, and deliver each once.

    One walk, each step once: read the alerts, annotate them from the alert state (ages, snoozes,
    fixes since the last digest; the state is closed again), render, deliver, then record (the
    digests delivered, the feed's window). The operations channel hears of stale data, unknown
    Slack users, failures and an alert state that is down; the call raises at the end, naming
    what was not delivered, so that a task's retry resumes it.
    """
    from sa_hygiene.contract.recipients import encode
    from sa_hygiene.delivery.notices import ops_summary
    from sa_hygiene.pipeline.user_alerts import notices_told, pause_notices, rendering_config

    as_of = run.as_of
    state_url = cfg.state.url or ledger_url
    cfg = rendering_config(cfg, state_url)  # the user alerts' items name their workflows
    alerts = _read_alerts(cfg, run, slots, recipients)
    annotated = annotate_digest(cfg, as_of, alerts, state_url=state_url)
    messages, current = _render(cfg, run, annotated, with_quarantine)
    notices = pause_notices(cfg, current or run.snapshot, as_of, state_url) if (slots is None or "sa_digest" in slots) and not dry_run else []

    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    report = deliver_messages(messages + notices, cfg, run_id, sink=sink, ledger_url=ledger_url)
    notices_told(cfg, notices, {*report.sent, *report.already_sent, *report.elsewhere}, state_url)
    notes = [n for n in (run.notice, run.changes_notice) if n and messages]
    if with_quarantine:  # the day's operations summary also says who changed what from Slack (yesterday, UTC)
        from datetime import timedelta

        from sa_hygiene.pipeline.escalations import slack_writes_notes

        notes += slack_writes_notes(cfg, as_of - timedelta(days=1), state_url)
    summary = ops_summary(
        cfg, as_of, run_id, quarantine=current.quarantine if with_quarantine else None,
        unrouted=sum(1 for a in annotated.alerts if a.get("unrouted")), unknown_users=report.unknown_users,
        failed=report.failed, unconfirmed=report.unconfirmed, notes=notes + annotated.notes,
    )  # fmt: skip
    if summary is not None:
        deliver_messages([summary], cfg, run_id, sink=sink, ledger_url=ledger_url)

    mark_digests_delivered(cfg, annotated, messages, report, as_of, state_url=state_url)
    out = {"messages": len(messages), "sent": len(report.sent), "already_sent": len(report.already_sent),
           "elsewhere": len(report.elsewhere), "failed": len(report.failed), "unknown_users": len(report.unknown_users),
           "recipients": sorted({encode(m.recipient) for m in messages}), "snoozed": annotated.snoozed,
           "fixed": sum(len(v) for v in annotated.fixed.values())}  # fmt: skip
    preview = getattr(sink, "preview_path", None)
    if preview is not None:
        out["preview"] = str(preview)
    log.info("delivered %s", out)
    report.raise_for_failures()
    if run.feed and not dry_run:
        out["feed_window_end"] = advance_feed(cfg, run, state_url=state_url)
    return out


def _read_alerts(cfg: Config, run: EvaluationRun, slots: set[str] | None, recipients: set[str] | None) -> list[dict]:
    """The evaluation's alerts of these slots and recipients (all when None)."""
    from sa_hygiene.contract.recipients import encode
    from sa_hygiene.delivery.digest import effective_slot

    return [
        a for a in read_alerts(run.alerts, cfg)
        if (slots is None or effective_slot(a) in slots) and (recipients is None or encode(a["recipient"]) in recipients)
    ]  # fmt: skip


def _render(cfg: Config, run: EvaluationRun, annotated: DigestAnnotations, with_quarantine: bool) -> tuple[list, object]:
    """(messages, the snapshot read): the current snapshot is read when there is something to
    render or its quarantine to report, the previous one only for messages."""
    from sa_hygiene.delivery.digest import build_messages
    from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot

    alerts = annotated.alerts
    current = read_snapshot(run.snapshot, cfg, changes=run.changes) if alerts or with_quarantine else None
    if not alerts:
        return [], current
    before = read_snapshot(run.previous, cfg, objects=PREVIOUS_OBJECTS) if run.previous else None
    messages = build_messages(alerts, current, cfg, run.as_of, previous=before, notice=run.notice,
                              fixed=annotated.fixed, snoozed=annotated.snoozed_for, fixing=annotated.fixing_for)  # fmt: skip
    return messages, current


def due_recipients(cfg: Config, start, end, *, only: str | None = None, as_of: str | None = None) -> dict[str, list[str]]:
    """{local date: [User Id]} of the active users whose local SA-digest time falls in ``[start, end)``.

    ``only`` names one user to serve now whatever the time (a run by hand), on ``as_of`` or
    their local date.
    """
    from datetime import UTC, datetime

    from sa_hygiene.contract.schedule import due_in, zone
    from sa_hygiene.source.snapshot import read_snapshot

    latest = snapshot_store(cfg).latest()
    if latest is None:
        return {}
    users = read_snapshot(latest.url, cfg, objects=("User",))["User"]
    users = users[users["is_active"]]
    if only:
        row = users[users["key"] == only[:15]]
        if row.empty:
            raise ValueError(f"{only}: no active user with this Id in the latest snapshot")
        tz = zone(row["timezone"].iloc[0])
        return {as_of or datetime.now(UTC).astimezone(tz).date().isoformat(): [row["id"].iloc[0]]}
    due = due_in(start, end, dict(zip(users["id"], users["timezone"], strict=True)), cfg.schedule.sa_digest_at)
    out: dict[str, list[str]] = {}
    for user_id, day in due.items():
        out.setdefault((as_of or day.isoformat()), []).append(user_id)
    return {day: sorted(ids) for day, ids in out.items()}


def reminder_window(start, end, previous_end, params: dict) -> tuple:
    """The meetings to remind of: since the previous successful run (no gap after an outage of
    less than a day), or the window given by hand."""
    from datetime import datetime, timedelta

    since = params.get("since") or None
    until = params.get("until") or None
    if since or until:
        parse = datetime.fromisoformat
        return (parse(since) if since else start), (parse(until) if until else end)
    if previous_end is not None and start - timedelta(days=1) <= previous_end < start:
        return previous_end, end
    return start, end
