"""The sa_escalations steps: each manager's overdue items at their local escalation time.

The first step reads the alert state (and closes it); the second renders and delivers, with
no connection to the state open while Slack is called. What the first hands the second is an
``OverdueItems`` (its XCom form: ``pipeline/xcom.py``).
"""

from __future__ import annotations

import logging
from datetime import date

from sa_hygiene.contract.config import Config
from sa_hygiene.pipeline.sending import deliver_messages, open_sink
from sa_hygiene.pipeline.snapshots import snapshot_store
from sa_hygiene.pipeline.xcom import XComValue
from sa_hygiene.state.alerts import open_state

log = logging.getLogger(__name__)

OPS = "operations"  # the operations channel's key among the due recipients


class OverdueItems(XComValue):
    """The items open too long of the managers due now, with each manager's local date."""

    items: list[dict] = []  # manager, owner, workflow, object, record_id, first_seen (ISO date), age_days
    days: dict[str, date] = {}  # {manager's User Id: their local date}
    snapshot: str | None = None  # the snapshot the managers and owners were read from
    # Leavers' books: inactive users still Primary SA of open opportunities, for their active
    # manager due now, or (manager None) for the operations channel.
    leavers: list[dict] = []  # leaver, manager, opportunities


def escalations(cfg: Config, start, end, *, only: str | None = None, as_of: str | None = None,
                state_url: str | None = None) -> OverdueItems:
    """The managers whose local ``schedule.escalation_at`` falls in ``[start, end)`` and their team's
    items open longer than the workflow's ``escalate_after_days`` (snoozed ones left out)."""
    from datetime import UTC, datetime

    from sa_hygiene.contract.recipients import as_recipient
    from sa_hygiene.contract.schedule import due_in, zone
    from sa_hygiene.source.snapshot import read_snapshot
    from sa_hygiene.state.alerts import key_of

    latest = snapshot_store(cfg).latest()
    if latest is None:
        return OverdueItems()
    users = read_snapshot(latest.url, cfg, objects=("User",))["User"]
    active = users[users["is_active"]]
    managers = {str(m)[:15]: m for m in active["id"]}
    manager_of = {k: m for k, m in zip(users["key"], users["manager_id"], strict=True) if isinstance(m, str)}
    if only:
        row = active[active["key"] == only[:15]]
        if row.empty:
            raise ValueError(f"{only}: no active user with this Id in the latest snapshot")
        tz = zone(row["timezone"].iloc[0])
        days = {row["id"].iloc[0]: date.fromisoformat(as_of) if as_of else datetime.now(UTC).astimezone(tz).date()}
    else:
        days = due_in(start, end, dict(zip(active["id"], active["timezone"], strict=True)), cfg.schedule.escalation_at)
    # Leavers without an active manager: the operations channel, once a day at escalation_at in
    # the fixed channels' zone (the opportunities are read only when someone is due).
    ops_day = None if only else due_in(start, end, {OPS: cfg.schedule.fixed_channel_timezone}, cfg.schedule.escalation_at).get(OPS)
    if not days and ops_day is None:
        return OverdueItems(snapshot=latest.url)
    opps = read_snapshot(latest.url, cfg, objects=("Opportunity",))["Opportunity"]
    leavers = leavers_books({"User": users, "Opportunity": opps}, cfg, days, ops_day)
    if not days:
        return OverdueItems(snapshot=latest.url, leavers=leavers)
    limits = {w: wf.escalate_after_days for w, wf in cfg.enabled_workflows().items() if wf.escalate_after_days}
    # Workflows whose alerts are the escalation itself (pov-load: a team member's load goes to
    # their manager, its recipient): told from the first day, about the user the alert names.
    own = {w for w, wf in cfg.enabled_workflows().items() if wf.slot == "manager_escalation"}
    with open_state(cfg, state_url) as state:
        episodes = state.open_episodes()
        snoozed = state.snoozed(min(days.values()))
    items = []
    for e in episodes:
        if e["workflow"] in own and (e["workflow"], e["record_key"]) not in snoozed:
            items += _own_items(e, managers, days)
            continue
        if e["workflow"] not in limits or (e["workflow"], e["record_key"]) in snoozed:
            continue
        for r in e["recipients"]:
            who = as_recipient(r)
            if who["type"] != "user":
                continue
            manager = managers.get(str(manager_of.get(key_of(who["id"]), ""))[:15])
            if manager is None or manager not in days:
                continue
            # Fair to the person: the days since this recipient got it, not the record's age.
            since = date.fromisoformat(e["recipients_since"].get(r, e["first_seen"].isoformat()))
            age = (days[manager] - since).days
            if age >= limits[e["workflow"]]:
                items.append({"manager": manager, "owner": who["id"], "workflow": e["workflow"], "object": e["object"],
                              "record_id": e["record_id"], "first_seen": since.isoformat(), "age_days": age})  # fmt: skip
    return OverdueItems(items=items, days=days, snapshot=latest.url, leavers=leavers)


def leavers_books(snap, cfg: Config, days: dict[str, date], ops_day: date | None = None) -> list[dict]:
    """The open opportunities whose Primary SA is an inactive user, per leaver: for their active
    manager when due now (``days``), for the operations channel (manager None) when they have
    none and the operations channel is due (``ops_day``)."""
    from sa_hygiene.engine.routing import Directory

    opps = snap["Opportunity"]
    d = Directory(snap["User"], cfg)
    inactive = set(d.active.index[~d.active.to_numpy(bool)])
    open_opps = opps[(opps["is_closed"] != True) & opps["sa"].notna()]  # noqa: E712 - a nullable column
    books: dict[str, list[str]] = {}
    for opp, sa in zip(open_opps["id"], open_opps["sa"], strict=True):
        if isinstance(sa, str) and sa[:15] in inactive:
            books.setdefault(d.users.at[sa[:15], "id"], []).append(opp)
    due = {str(m)[:15]: m for m in days}
    out = []
    for leaver in sorted(books):
        manager = d.manager_id.get(leaver[:15])
        manager = due.get(str(manager)[:15]) if isinstance(manager, str) else None
        if manager is None and (ops_day is None or isinstance(d.manager_id.get(leaver[:15]), str)):
            continue  # their manager is not due now, or the operations channel is not
        day = days[manager] if manager is not None else ops_day
        out.append({"leaver": leaver, "manager": manager, "opportunities": sorted(books[leaver]), "day": day.isoformat()})
    return out


def _own_items(episode: dict, managers: dict[str, str], days: dict[str, date]) -> list[dict]:
    """The items of an escalation workflow's episode: one per manager it goes to who is due now,
    about the record (the user) it names."""
    from sa_hygiene.contract.recipients import as_recipient

    out = []
    for r in episode["recipients"]:
        who = as_recipient(r)
        manager = managers.get(str(who.get("id") or "")[:15]) if who["type"] == "user" else None
        if manager is None or manager not in days:
            continue
        since = date.fromisoformat(episode["recipients_since"].get(r, episode["first_seen"].isoformat()))
        out.append({"manager": manager, "owner": episode["record_id"], "workflow": episode["workflow"],
                    "object": episode["object"], "record_id": episode["record_id"], "first_seen": since.isoformat(),
                    "age_days": (days[manager] - since).days})  # fmt: skip
    return out


def deliver_escalations(cfg: Config, found: OverdueItems, run_id: str, *, dry_run: bool = False, sink=None) -> dict:
    """One DM per manager with overdue items; the ledger keeps it to once a day."""
    from sa_hygiene.delivery.notices import escalation_messages
    from sa_hygiene.source.snapshot import read_snapshot

    if not found.items and not found.leavers:
        return {"messages": 0, "sent": 0}
    snapshot = read_snapshot(found.snapshot, cfg)
    messages = escalation_messages(found.items, snapshot, cfg, dict(found.days), found.leavers)
    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    report = deliver_messages(messages, cfg, run_id, sink=sink)
    report.raise_for_failures()
    return {"messages": len(messages), "sent": len(report.sent), "already_sent": len(report.already_sent),
            "items": len(found.items)}  # fmt: skip


# Writes from Slack named one by one in the operations summary; the rest are counted.
WRITES_SHOWN = 50


def slack_writes_notes(cfg: Config, day: date, state_url: str | None = None) -> list[str]:
    """The operations channel's daily lines on what managers changed in Salesforce from Slack on
    ``day`` (UTC): who changed which field of which record, from what to what, and whether
    Salesforce saved it."""
    from sa_hygiene.state.db import DatabaseError
    from sa_hygiene.state.manager_actions import ManagerActions, write_line

    try:
        with ManagerActions(state_url or cfg.state_url) as actions:
            rows = actions.writes_on(day)
    except DatabaseError as exc:
        return [f"Changes made from Slack on {day.isoformat()} could not be read: {exc}"]
    if not rows:
        return []
    lines = [f"{len(rows)} change(s) made in Salesforce from Slack on {day.isoformat()}:"]
    lines += [write_line(r) for r in rows[:WRITES_SHOWN]]
    if len(rows) > WRITES_SHOWN:
        lines.append(f"• and {len(rows) - WRITES_SHOWN} more")
    return ["\n".join(lines)]
