"""The sa_activity_posts DAG's step: each new activity posted as it happens, and kept true.

Spec v3 ("When messages go out"): every record of a workflow in ``schedule.as_it_happens``
(wf-02, wf-09) is posted to its channel, one message each, within one feed interval of its
creation. A run:

1. takes the feed's next window (``feed_window``: from where the last delivered window ended to
   the changes' high-water mark), opened ``changes.overlap_minutes`` earlier, because the changes
   feed itself re-reads that overlap: a Task committed late with an older ``CreatedDate`` arrives
   one pull later, and must still be posted;
2. evaluates only those workflows on the latest snapshot with its changes, through the
   evaluation cache: a run with nothing new reuses the last evaluation (no Salesforce call, and
   no Slack call);
3. edits in place the posts of Tasks that changed since (the changes feed names them), or marks
   them deleted, when what the post would now show differs from what Slack shows;
4. posts the new ones through the ledger, keyed by channel and record: a retry, a re-run or an
   overlapping run posts nothing twice, and a window re-read posts nothing again;
5. tells the operations channel once when the changes are stale; then advances the feed.

A deployment posts from its first run on (``state.posts``: where each workspace's posts start):
that run records its window's end as the start and posts nothing, and no later window reaches
back before it, so a new channel is not flooded with the day's backlog, and nothing created
after the start is lost or posted twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sa_hygiene.contract.config import Config
from sa_hygiene.pipeline.evaluation import (
    advance_feed,
    as_utc,
    evaluate_latest,
    feed_window,
    read_alerts,
    run_folder,
)
from sa_hygiene.pipeline.sending import deliver_messages, open_sink
from sa_hygiene.pipeline.snapshots import snapshot_store

log = logging.getLogger(__name__)

FEED = "sa_activity_posts"
# The objects a post names: the Task, its owner, its opportunity or account.
POST_OBJECTS = ("User", "Task", "Opportunity", "Account", "Contact")


def post_activities(
    cfg: Config,
    run_id: str,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    sink=None,
    ledger_url: str | None = None,
) -> dict:
    """One feed run: edit the changed posts, post the new activities, advance the feed.

    Raises at the end when a post or an edit did not reach Slack for a reason a retry can fix,
    after everything else was delivered: the task's retry does exactly what is missing.
    """
    from sa_hygiene.delivery.activity_posts import PostWriter, build_posts
    from sa_hygiene.delivery.slack import DeliveryFailed
    from sa_hygiene.source.changed import changed_records
    from sa_hygiene.source.snapshot import SnapshotError, read_snapshot
    from sa_hygiene.source.store import latest_changes
    from sa_hygiene.state.ledger import Ledger
    from sa_hygiene.state.posts import ActivityPosts

    workflows = set(cfg.schedule.as_it_happens) & set(cfg.enabled_workflows())
    out: dict = {"posted": 0, "already_posted": 0, "edited": 0, "deleted": 0, "failed": 0}
    if not workflows:
        return out
    store = snapshot_store(cfg)
    latest = store.latest()
    if latest is None:
        raise SnapshotError(f"{cfg.store.url}: the snapshot store holds no snapshot yet (run sa_snapshot first)")
    changes = latest_changes(store, latest)
    since, until = feed_window(cfg, store, FEED, latest, changes)
    if since >= until:
        # Nothing arrived since the last delivered window (the feed's mark has not moved): nothing
        # to post or edit, and no evaluation. A stale feed is still told, once.
        out["nothing_new"] = True
        pulled = changes_pulled_at(cfg, changes, now or until)
        if pulled is not None:
            sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
            out["stale"] = tell_stale_changes(cfg, pulled, run_id, sink=sink, ledger_url=ledger_url)
        return out
    url = ledger_url or cfg.slack.ledger_url
    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    workspace = sink.workspace
    posts = ActivityPosts(cfg.state.url or url)  # where the Slack app reads them too (its state database)
    try:
        start, first = posts.start(workspace, as_utc(until))
        since = max(as_utc(since) - timedelta(minutes=cfg.changes.overlap_minutes), start)
        if first:
            log.info("activity posts start at %s in %s: what came before is not posted", start.isoformat(), workspace)
            return out | {"started": start.isoformat()}
        if since >= as_utc(until):  # the feed has not moved since the start
            return out | {"nothing_new": True}
        run = evaluate_latest(cfg, until.date(), since, until, out=run_folder(cfg, FEED, run_id), now=now or until,
                              with_changes=True, cache=True, workflows=workflows)  # fmt: skip
        run = run.model_copy(update={"feed": FEED})
        alerts = [a for a in read_alerts(run.alerts, cfg) if a["workflow"] in workflows]
        changed = changed_records(run.changes, cfg, "Task")
        touched = posts.of_records(workspace, changed)
        messages = []
        if alerts or touched:
            snapshot = read_snapshot(run.snapshot, cfg, objects=POST_OBJECTS, changes=run.changes)
            ids = [a["record_id"] for a in alerts] + [p.record_key for p in touched]
            writer = PostWriter(cfg, snapshot, run.as_of, ids)
            retry = _edit(posts, writer, sink, workspace, touched, changed, out)
            messages = build_posts(alerts, snapshot, cfg, run.as_of)
        else:
            retry = []
        if messages:
            report = deliver_messages(messages, cfg, run_id, sink=sink, ledger_url=url)
            _remember(posts, Ledger(url), workspace, messages, alerts)
        else:
            report = None
        if run.changes_notice:
            out["stale"] = tell_stale_changes(cfg, run.changes_pulled_at, run_id, sink=sink, ledger_url=url)
    finally:
        posts.close()
    if report is not None:
        out |= {"posted": len(report.sent), "already_posted": len(report.already_sent) + len(report.elsewhere),
                "failed": len(report.failed)}  # fmt: skip
        report.raise_for_failures()
    if retry:
        raise DeliveryFailed(f"{len(retry)} post(s) not edited, retried on the next run: {', '.join(retry)}")
    if not dry_run:
        out["feed_window_end"] = advance_feed(cfg, run)
    out["window"] = [run.since.isoformat() if run.since else None, run.until.isoformat() if run.until else None]
    out["reused"] = run.reused
    log.info("activity posts: %s", out)
    return out


def _edit(posts, writer, sink, workspace: str, touched: list, changed: dict[str, bool], out: dict) -> list[str]:
    """Edit each touched post whose content would change; returns the keys to retry (Slack's
    answer was lost or it was down). A post Slack no longer has is left alone: it was deleted
    in Slack by a person, and is not put back."""
    from slack_sdk.errors import SlackApiError

    from sa_hygiene.delivery.activity_posts import content_hash
    from sa_hygiene.state.posts import DELETED, LIVE

    retry = []
    for post in touched:
        gone = changed.get(post.record_key, False) or writer.records.row("Task", post.record_key) is None
        workflow = post.workflow
        text, blocks = (writer.render_deleted(workflow, post.record_id) if gone
                        else writer.render(workflow, post.record_id, edited_by=post.edited_by))  # fmt: skip
        content = content_hash(text, blocks)
        if content == post.content:
            continue
        args = {"channel": post.channel, "ts": post.ts, "text": text, "blocks": blocks}
        try:
            sink.call("chat.update", {"type": "channel", "name": post.channel}, args, title=text)
        except SlackApiError as exc:
            if exc.response.status_code == 200:
                log.warning("post %s not edited: %s", post.key, exc.response.get("error"))
                out["failed"] += 1
                continue
            retry.append(post.key)
            continue
        except Exception as exc:  # a dropped connection: the edit may have landed; editing again is harmless
            log.warning("post %s not edited: %s", post.key, exc)
            retry.append(post.key)
            continue
        if posts.replace(workspace, post, content, DELETED if gone else LIVE, post.edited_by):
            out["deleted" if gone else "edited"] += 1
    return retry


def _remember(posts, ledger, workspace: str, messages: list, alerts: list[dict]) -> None:
    """Keep where each delivered post is and what it shows, for the edits of later runs."""
    from sa_hygiene.delivery.activity_posts import content_hash

    alert_of = {}
    for a in alerts:
        alert_of.setdefault(a["record_id"][:15], a)
    try:
        for m in messages:
            part = ledger.parts(workspace, m.key).get(0)
            alert = alert_of.get(m.key.rsplit("|", 1)[-1])
            if part is None or not part.ts or not part.channel or alert is None:
                continue
            posts.remember(workspace, m.key, alert["record_id"], alert["workflow"], part.channel, part.ts,
                           content_hash(m.text, m.blocks))  # fmt: skip
    finally:
        ledger.close()


def changes_pulled_at(cfg: Config, changes: dict | None, now: datetime) -> datetime | None:
    """When the changes were last pulled, if longer ago than ``changes.max_age_minutes`` (else None)."""
    from sa_hygiene.pipeline.evaluation import as_utc

    if not changes:
        return None
    pulled = as_utc(changes["pulled_at"])
    return pulled if (as_utc(now) - pulled).total_seconds() / 60 > cfg.changes.max_age_minutes else None


def tell_stale_changes(cfg: Config, pulled: datetime, run_id: str, *, sink, ledger_url: str | None = None) -> bool:
    """Tell the operations channel that the changes feed is stale, once per stale pull: the note
    names the pull, not the minutes since, so the summary's delivery key (its content) is the same
    every run until the feed moves again. Returns True (the run was stale)."""
    from sa_hygiene.delivery.notices import ops_summary

    note = (f"The Salesforce changes feed is stale: last pulled at {pulled:%Y-%m-%d %H:%M} UTC. New activities and "
            "meeting reminders wait until it catches up, then go out; none are lost.")  # fmt: skip
    summary = ops_summary(cfg, pulled.date(), "changes feed", notes=[note])
    report = deliver_messages([summary], cfg, run_id, sink=sink, ledger_url=ledger_url)
    report.raise_for_failures()
    return True
