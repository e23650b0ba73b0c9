"""The sa_meeting_reminders DAG's steps: which meetings a run reminds of, and delivering them.

Spec v3: reminders within 5 minutes of a meeting's end (``schedule.reminder_every_minutes``),
reading the snapshot with its changes. A meeting is known from the data, which is only as fresh
as the changes feed: one booked while ``sa_changes`` was failing is not in the data when the
clock passes its end. So a run's window does not start at the previous run's end alone, but at
the changes' high-water mark the last delivered run read (the moment up to which its data was
complete), whichever is earlier: when the feed catches up, the meetings that ended meanwhile are
evaluated again on data that has them, and the ledger, which keys a reminder by its meeting,
reminds each of them once. The operations channel hears once that the feed is stale.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sa_hygiene.contract.config import Config
from sa_hygiene.pipeline.evaluation import EvaluationRun, as_utc, recorded_feed_end
from sa_hygiene.state.alerts import open_state

log = logging.getLogger(__name__)

FEED = "sa_meeting_reminders"
# A window is pulled back to the last data mark at most this far: an outage of the feed longer
# than a day is a matter for the operations channel, not a day of late reminders.
MAX_CATCH_UP = timedelta(days=1)


def reminder_span(cfg: Config, since: datetime, until: datetime, *, by_hand: bool = False) -> tuple[datetime, datetime]:
    """(since, until) of a run: ``since`` pulled back to the data mark of the last delivered run
    when that is earlier (a window given by hand is kept as it is)."""
    if by_hand:
        return since, until
    mark = recorded_feed_end(cfg, FEED)
    if mark is not None and as_utc(until) - MAX_CATCH_UP <= mark < as_utc(since):
        return mark, until
    return since, until


def deliver_reminders(cfg: Config, run: EvaluationRun, run_id: str, *, dry_run: bool = False, sink=None,
                      ledger_url: str | None = None) -> dict:  # fmt: skip
    """Deliver a run's reminders (each meeting once), tell the operations channel once that the
    changes are stale, and record how far the data was complete (the next window's start)."""
    from sa_hygiene.pipeline.activity_posts import tell_stale_changes
    from sa_hygiene.pipeline.digests import deliver_digests
    from sa_hygiene.pipeline.sending import open_sink

    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    # The minutes-old notice differs every 5 minutes: told here once per stale pull instead.
    quiet = run.model_copy(update={"changes_notice": None})
    out = deliver_digests(cfg, quiet, run_id, slots={"meeting_reminder"}, dry_run=dry_run, sink=sink, ledger_url=ledger_url)
    if run.changes_notice and run.changes_pulled_at is not None:
        out["stale"] = tell_stale_changes(cfg, run.changes_pulled_at, run_id, sink=sink, ledger_url=ledger_url)
    if not dry_run and run.until is not None:
        # Complete up to the changes' mark (the snapshot's moment before the feed's first pull of
        # it), never beyond the window.
        data = run.changes_mark or run.taken_at
        end = min(as_utc(data), as_utc(run.until)) if data else as_utc(run.until)
        state = open_state(cfg, cfg.state.url or ledger_url)
        try:
            out["data_complete_until"] = state.advance_feed(FEED, end).isoformat()
        finally:
            state.close()
    return out
