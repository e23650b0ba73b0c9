"""The steps the DAGs and the command line run, each a plain function of the configuration.

DAG tasks are thin wrappers around these, so every step runs and is tested without a
scheduler, and the command line and Airflow share one code path.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date

from sa_hygiene.config import Config

log = logging.getLogger(__name__)
# Full evaluations kept for the alert state: <store>/_alert_memory/<snapshot>/.
MEMORY_FOLDER = "_alert_memory"


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
    ledger = Ledger(ledger_url or cfg.slack.ledger_url, cache_hours=cfg.slack.user_cache_hours,
                    lease_seconds=cfg.slack.lease_seconds)  # fmt: skip
    try:
        return deliver(messages, sink, ledger, run_id)
    finally:
        ledger.close()


# --------------------------------------------------------------------------- snapshots


def _store(cfg: Config):
    from sa_hygiene.snapshot import SnapshotStore

    return SnapshotStore(cfg.store.url, keep=cfg.store.keep)


def stage_snapshot(cfg: Config, taken_at, conn_id: str | None = None) -> dict:
    """Extract (or copy, for a folder source) one snapshot into a staged folder of the store."""
    from sa_hygiene.snapshot import copy_tables

    store = _store(cfg)
    if cfg.source.kind == "folder":
        staged = store.stage(taken_at)
        try:
            copy_tables(cfg.source.folder, staged)
        except BaseException:
            store.discard(staged)
            raise
        return {"staged": staged, "source": f"folder:{cfg.source.folder}"}
    from sa_hygiene.salesforce_extract import extract_snapshot

    report = extract_snapshot(cfg, store, conn_id, now=taken_at, commit=False)
    log.info("%s", report.summary())
    return {"staged": report.staged, "source": f"salesforce:{conn_id or cfg.salesforce.conn_id}",
            "api_calls": report.api_calls, "api_usage": report.api_usage}  # fmt: skip


def validate_snapshot(cfg: Config, staged: str) -> dict:
    """Read the staged snapshot as the rules will: unusable input fails here, bad rows are counted."""
    from sa_hygiene.snapshot import read_snapshot

    snap = read_snapshot(staged, cfg)
    quarantine = snap.quarantine
    # Beside the extractor's own _quarantine.jsonl (records it could not store at all).
    path = f"{staged}/_read_quarantine.jsonl"
    _write_jsonl(path, quarantine.to_dict(orient="records"))
    counts = quarantine.groupby(["object", "reason"]).size()
    return {
        "rows": {obj: len(df) for obj, df in snap.tables.items()},
        "quarantined": len(quarantine),
        "quarantine": {f"{o}:{r}": int(n) for (o, r), n in counts.items()},
    }


def commit_snapshot(cfg: Config, staged: str, taken_at, source: str) -> str:
    return _store(cfg).commit(staged, taken_at, source=source).url


def pull_changes(cfg: Config, now=None, conn_id: str | None = None) -> dict:
    """One pull of the changes feed into the latest snapshot's ``_changes`` (the sa_changes DAG).

    A folder source has no Salesforce to ask: nothing is pulled, and runs read the snapshot alone.
    """
    if cfg.source.kind == "folder":
        log.info("source.kind is folder: no changes feed to pull")
        return {"skipped": "folder source"}
    from sa_hygiene.salesforce_extract import pull_changes as pull

    report = pull(cfg, _store(cfg), conn_id, now=now)
    return {**report.manifest(), "folder": report.folder, "written": report.written}


# --------------------------------------------------------------------------- evaluation and delivery


def run_folder(cfg: Config, dag_id: str, run_id: str) -> str:
    """Where a run keeps its alerts (a folder of the store, outside the listed snapshots)."""
    import re

    return f"{cfg.store.url.rstrip('/')}/_runs/{dag_id}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', run_id)}"


def _write_jsonl(url: str, records) -> None:
    import fsspec

    with fsspec.open(url, "w", encoding="utf-8", auto_mkdir=True) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")


def read_jsonl(url: str) -> list[dict]:
    """The records of a JSON Lines file at a local path or any fsspec URL."""
    import fsspec

    with fsspec.open(url, "r", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class AlertsError(ValueError):
    """An alerts file digests cannot be built from; the message names the file and the line."""


def read_alerts(url: str, cfg: Config) -> list[dict]:
    """The alerts of an ``evaluate`` file (CONTRACT.md § 2), each checked where it is read.

    A hand-edited or truncated file must fail here with its line number, not as a KeyError
    deep inside digest rendering after some messages went out. ``object`` and ``slot`` may be
    left out (the contract does not require them): the workflow's own are used.
    """
    import fsspec

    try:
        with fsspec.open(url, "r", encoding="utf-8") as fh:
            lines = fh.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertsError(f"{url}: cannot read the alerts file: {getattr(exc, 'strerror', None) or exc}") from None
    alerts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            alert = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlertsError(f"{url}:{n}: not JSON: {exc.msg}") from None
        problem = _alert_problem(alert, cfg)
        if problem:
            raise AlertsError(f"{url}:{n}: {problem}")
        wf = cfg.workflows[alert["workflow"]]
        alerts.append({"object": wf.object, "slot": wf.slot, "reasons": [], **alert})
    return alerts


def _alert_problem(alert, cfg: Config) -> str | None:
    from sa_hygiene.config import SLOTS

    if not isinstance(alert, dict):
        return f"not a JSON object but {type(alert).__name__}"
    wid = alert.get("workflow")
    if wid not in cfg.workflows:
        return f"unknown workflow {wid!r} (the configuration has {', '.join(cfg.workflows)})"
    if not isinstance(alert.get("record_id"), str) or not alert["record_id"]:
        return "no record_id"
    r = alert.get("recipient")
    user = isinstance(r, dict) and r.get("type") == "user" and isinstance(r.get("id"), str) and r["id"]
    channel = isinstance(r, dict) and r.get("type") == "channel" and isinstance(r.get("name"), str) and r["name"][:1] == "#"
    if not (user or channel):
        return f"no recipient ({{'type': 'user', 'id': ...}} or {{'type': 'channel', 'name': '#...'}}), got {r!r}"
    if "slot" in alert and alert["slot"] not in SLOTS:
        return f"unknown slot {alert['slot']!r}"
    reasons = alert.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(x, str) for x in reasons):
        return "reasons must be a list of reason codes"
    return None


# Evaluations this process ran and reused (``cache=True``): observable by tests and the bench.
EVALUATIONS = {"run": 0, "reused": 0}


def evaluate_latest(cfg: Config, as_of: date, since=None, until=None, *, out: str, slots=None, now=None,
                    with_changes: bool = False, cache: bool = False, feed: str | None = None) -> dict:  # fmt: skip
    """Evaluate the latest snapshot (against the one before it) and keep the alerts in ``out``.

    Returns what delivery needs (paths, counts) and a freshness notice when the latest
    snapshot is older than ``store.max_age_hours``. ``with_changes`` (the reminders and the DM
    digests) reads the snapshot with its latest changes, so that what was logged or booked
    since the snapshot counts; changes older than ``changes.max_age_minutes`` are reported to
    the operations channel (``changes_notice``).

    ``cache``: the DM digests run every 15 minutes and would evaluate the whole org each time for
    a handful of recipients. One evaluation per (snapshot, previous, changes version, local
    date, window, slots) is kept in ``<store>/_evaluations/`` and reused by every run with the
    same key; a new changes version is a new key.

    ``feed`` (a DAG that posts what was created in a window: wf-02, wf-09): the window is the
    feed's own, ``since``/``until`` are ignored (``feed_window``); delivery advances it.
    """
    from datetime import UTC, datetime

    from sa_hygiene.snapshot import SnapshotError, latest_changes

    store = _store(cfg)
    latest = store.latest()
    if latest is None:
        raise SnapshotError(f"{cfg.store.url}: the snapshot store holds no snapshot yet (run sa_snapshot first)")
    changes = latest_changes(store, latest) if with_changes else None
    if feed is not None:
        since, until = feed_window(cfg, store, feed, latest, changes)
    # Changes since the window began: against the snapshot that was the latest then (the one
    # before the latest with daily snapshots; still right when sa_snapshot runs more often).
    then = store.at(as_utc(since)) if since is not None else None
    previous = then if then is not None and then != latest else store.previous(latest)
    folder = _evaluation_folder(cfg, latest, previous, changes, as_of, since, until, slots) if cache else None
    evaluated = _read_json(f"{folder}/info.json") if folder else None
    if evaluated is not None:
        EVALUATIONS["reused"] += 1
        log.info("evaluation reused: %s", folder)
    else:
        evaluated = _evaluate(cfg, latest, previous, changes, as_of, since, until, slots, folder or out,
                              allow_empty=feed is not None)  # fmt: skip
    if feed is not None:
        evaluated = {**evaluated, "feed": feed}
    now = now or datetime.now(UTC)
    age = (now - latest.taken_at).total_seconds() / 3600
    notice = None
    if age > cfg.store.max_age_hours:
        notice = (f"The latest Salesforce snapshot is from {latest.taken_at:%Y-%m-%d %H:%M} UTC, {age:.0f} hours ago: "
                  "recent changes are missing from this digest.")  # fmt: skip
    return {**evaluated, "notice": notice, **_changes_info(cfg, changes, now)}


def feed_window(cfg: Config, store, feed: str, latest, changes: dict | None) -> tuple:
    """(since, until) of a feed's next window: from where its last delivered window ended to
    the moment its data was taken (the changes' high-water mark when the run reads changes,
    else the snapshot's ``taken_at``), not the clock. A digest at 08:00 local reads a snapshot
    taken hours before: a clock window would skip what was created in between, for good.

    Before a feed's first window (or with the alert state down, which the delivery then
    reports) it starts at the snapshot before the latest.
    """
    from datetime import timedelta

    from sa_hygiene.db import DatabaseError

    mark = (changes or {}).get("high_water_mark")
    until = as_utc(mark) if mark else latest.taken_at
    since = None
    try:
        state = open_state(cfg)
        try:
            since = state.feed_window_end(feed)
        finally:
            state.close()
    except DatabaseError as exc:
        log.warning("alert state unavailable, feed %s starts at the previous snapshot: %s", feed, exc)
    if since is None:
        before = store.previous(latest)
        since = before.taken_at if before is not None else until - timedelta(days=1)
    return min(since, until), until


def advance_feed(cfg: Config, info: dict, state_url: str | None = None) -> str | None:
    """After a digest was delivered: its feed's next window starts where this one ended. A state
    that cannot record it fails the task (``DatabaseError``), whose retry re-delivers nothing
    (the ledger) and records it then: a window recorded late is never posted twice."""
    if not info.get("feed"):
        return None
    state = open_state(cfg, state_url)
    try:
        return state.advance_feed(info["feed"], as_utc(info["until"])).isoformat()
    finally:
        state.close()


def _evaluate(cfg: Config, latest, previous, changes, as_of, since, until, slots, out: str,
              allow_empty: bool = False) -> dict:  # fmt: skip
    """Evaluate and write the alerts to ``out``; ``info.json`` last, which marks the folder complete."""
    from sa_hygiene.rules import evaluate
    from sa_hygiene.snapshot import PREVIOUS_OBJECTS, read_snapshot

    current = read_snapshot(latest.url, cfg, changes=changes["folder"] if changes else None)
    before = read_snapshot(previous.url, cfg, objects=PREVIOUS_OBJECTS) if previous else None
    result = evaluate(current, before, cfg, as_of, since, until, slots=set(slots) if slots else None,
                      allow_empty_window=allow_empty)  # fmt: skip
    EVALUATIONS["run"] += 1
    alerts = result.alert_records()
    _write_jsonl(f"{out}/alerts.jsonl", alerts)
    evaluated = {
        "as_of": as_of.isoformat(),
        "since": result.window.since.isoformat(),
        "until": result.window.until.isoformat(),
        "snapshot": latest.url,
        "previous": previous.url if previous else None,
        "taken_at": latest.taken_at.isoformat(),
        "alerts": f"{out}/alerts.jsonl",
        "counts": result.counts(),
        "quarantined": len(result.quarantine),
        "unrouted": sum(1 for a in alerts if a.get("unrouted")),
    }
    _write_jsonl(f"{out}/info.json", [evaluated])
    return evaluated


def _evaluation_folder(cfg: Config, latest, previous, changes, as_of, since, until, slots) -> str:
    """The cache folder of one evaluation key; older snapshots' evaluations are removed."""
    import hashlib

    import fsspec

    version = changes["version"] if changes else 0
    key = json.dumps([latest.name, previous.name if previous else None, version, as_of.isoformat(),
                      str(since), str(until), sorted(slots or [])])  # fmt: skip
    root = f"{cfg.store.url.rstrip('/')}/_evaluations"
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        for entry in fs.ls(path, detail=False):
            if not entry.rstrip("/").rsplit("/", 1)[-1].startswith(latest.name):
                fs.rm(entry, recursive=True)
    return f"{root}/{latest.name}-v{version}-{as_of.isoformat()}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _read_json(url: str) -> dict | None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return read_jsonl(url)[0] if fs.exists(path) else None


def _changes_info(cfg: Config, changes: dict | None, now) -> dict:
    """What delivery needs to know of the changes an evaluation read, and whether they were stale."""
    from datetime import datetime

    if changes is None:
        return {}
    pulled = datetime.fromisoformat(changes["pulled_at"])
    minutes = (as_utc(now) - pulled).total_seconds() / 60
    notice = None
    if minutes > cfg.changes.max_age_minutes:
        notice = (f"The latest Salesforce changes were pulled at {pulled:%Y-%m-%d %H:%M} UTC, {minutes:.0f} minutes "
                  "ago: activities logged and meetings booked since then are missing from this run.")  # fmt: skip
    return {"changes": changes["folder"], "changes_version": changes["version"], "changes_pulled_at": changes["pulled_at"],
            "changes_notice": notice}  # fmt: skip


def as_utc(moment):
    """A tz-aware datetime from a datetime or ISO string (naive means UTC)."""
    from datetime import UTC, datetime

    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def deliver_digests(
    cfg: Config,
    info: dict,
    run_id: str,
    *,
    slots: set[str] | None = None,
    recipients: set[str] | None = None,
    dry_run: bool = False,
    sink=None,
    ledger_url: str | None = None,
    with_quarantine: bool = False,
) -> dict:
    """Render the digests of an evaluation (``info``: as_of, alerts file, snapshot paths, notice)
    for some slots and recipients, all by default, and deliver each once.

    The operations channel hears of stale data, unknown Slack users and failures; the call
    raises at the end, naming what was not delivered, so that a task's retry resumes it.
    """
    from datetime import date as date_type

    from sa_hygiene.digest import build_messages, effective_slot, ops_summary
    from sa_hygiene.routing import encode
    from sa_hygiene.snapshot import PREVIOUS_OBJECTS, read_snapshot

    as_of = date_type.fromisoformat(info["as_of"])
    alerts = [
        a for a in read_alerts(info["alerts"], cfg)
        if (slots is None or effective_slot(a) in slots) and (recipients is None or encode(a["recipient"]) in recipients)
    ]  # fmt: skip
    memory = with_memory(cfg, as_of, alerts, state_url=cfg.state.url or ledger_url)
    alerts = memory.alerts
    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    current = read_snapshot(info["snapshot"], cfg, changes=info.get("changes")) if alerts or with_quarantine else None
    messages = []
    if alerts:
        before = read_snapshot(info["previous"], cfg, objects=PREVIOUS_OBJECTS) if info.get("previous") else None
        messages = build_messages(alerts, current, cfg, as_of, previous=before, notice=info.get("notice"),
                                  fixed=memory.fixed)  # fmt: skip
    report = deliver_messages(messages, cfg, run_id, sink=sink, ledger_url=ledger_url)
    _mark_digests(memory, messages, report, as_of)
    notes = [n for n in (info.get("notice"), info.get("changes_notice")) if n and messages]
    summary = ops_summary(
        cfg, as_of, run_id, quarantine=current.quarantine if with_quarantine else None,
        unrouted=sum(1 for a in alerts if a.get("unrouted")), unknown_users=report.unknown_users,
        failed=report.failed, unconfirmed=report.unconfirmed, notes=notes + memory.notes,
    )  # fmt: skip
    if summary is not None:
        deliver_messages([summary], cfg, run_id, sink=sink, ledger_url=ledger_url)
    out = {"messages": len(messages), "sent": len(report.sent), "already_sent": len(report.already_sent),
           "elsewhere": len(report.elsewhere), "failed": len(report.failed), "unknown_users": len(report.unknown_users),
           "recipients": sorted({encode(m.recipient) for m in messages}), "snoozed": memory.snoozed,
           "fixed": sum(len(v) for v in memory.fixed.values())}  # fmt: skip
    preview = getattr(sink, "preview_path", None)
    if preview is not None:
        out["preview"] = str(preview)
    log.info("delivered %s", out)
    report.raise_for_failures()
    if info.get("feed") and not dry_run:
        out["feed_window_end"] = advance_feed(cfg, info, state_url=cfg.state.url or ledger_url)
    return out


def due_recipients(cfg: Config, start, end, *, only: str | None = None, as_of: str | None = None) -> dict[str, list[str]]:
    """{local date: [User Id]} of the active users whose local SA-digest time falls in ``[start, end)``.

    ``only`` names one user to serve now whatever the time (a run by hand), on ``as_of`` or
    their local date.
    """
    from datetime import UTC, datetime

    from sa_hygiene.schedule import due_in, zone
    from sa_hygiene.snapshot import read_snapshot

    latest = _store(cfg).latest()
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


# --------------------------------------------------------------------------- alert memory


@dataclass
class DigestMemory:
    """What the alert state adds to a digest run: ages, fixes, snoozes, or why it could not."""

    alerts: list[dict]
    fixed: dict[str, list[dict]] = field(default_factory=dict)
    snoozed: int = 0
    notes: list[str] = field(default_factory=list)
    state: object | None = None


def open_state(cfg: Config, url: str | None = None):
    from sa_hygiene.state import AlertState

    return AlertState(url or cfg.state_url, news=cfg.news_workflows)


def _state_down(exc: Exception) -> str:
    return (f"The alert state is unavailable ({exc}): digests went out without ages, fixes and snoozes. "
            "Nothing is lost: the next healthy run records the stored evaluations.")  # fmt: skip


def with_memory(cfg: Config, as_of: date, alerts: list[dict], *, state_url: str | None = None) -> DigestMemory:
    """Ages from the episodes (read, never written: the snapshot's own evaluation records them),
    snoozed items left out, and what each DM recipient fixed since their last digest.

    A state that is down or broken costs the ages, never the digest: the operations channel is
    told and the alerts go out as they are.
    """
    from sa_hygiene.db import DatabaseError
    from sa_hygiene.routing import encode
    from sa_hygiene.state import key_of

    try:
        state = open_state(cfg, state_url)
        began = state.first_recorded()
        annotated = [{**a, "memory_began": began.isoformat()} if began else a for a in state.annotate(as_of, alerts).alerts]
        snoozed = state.snoozed(as_of)
        kept = [a for a in annotated if (a["workflow"], key_of(a["record_id"])) not in snoozed]
        dm = {encode(a["recipient"]) for a in kept if a["recipient"]["type"] == "user" and a["slot"] == "sa_digest"}
        return DigestMemory(kept, _fixed_since_last_digest(cfg, state, dm, as_of), len(annotated) - len(kept), state=state)
    except DatabaseError as exc:
        log.warning("alert state unavailable: %s", exc)
        return DigestMemory(alerts, notes=[_state_down(exc)])


def _fixed_since_last_digest(cfg: Config, state, recipients: set[str], as_of: date) -> dict[str, list[dict]]:
    """{recipient: DM-workflow episodes resolved after their previous digest}: one query from the
    earliest previous digest, then each recipient's own cut."""
    since = {r: d for r in recipients if (d := state.last_digest(r, "sa_digest", as_of)) is not None}
    if not since:
        return {}
    dm_workflows = {w for w, wf in cfg.workflows.items() if wf.slot == "sa_digest"}
    fixed: dict[str, list[dict]] = {}
    for e in state.resolved_between(min(since.values()), as_of):
        if e["workflow"] not in dm_workflows:
            continue
        for r in e["recipients"]:
            if r in since and e["resolved_on"] > since[r]:
                fixed.setdefault(r, []).append({**e, "resolved_on": e["resolved_on"].isoformat()})
    return fixed


def _mark_digests(memory: DigestMemory, messages: list, report, as_of: date) -> None:
    """Remember who got their DM digest today: tomorrow's "fixed since" counts from here."""
    from sa_hygiene.db import DatabaseError
    from sa_hygiene.routing import encode

    if memory.state is None:
        return
    done = set(report.sent) | set(report.already_sent) | set(report.elsewhere)
    got = [encode(m.recipient) for m in messages if m.slot == "sa_digest" and m.key in done]
    try:
        memory.state.mark_digests(got, "sa_digest", as_of)
    except DatabaseError as exc:
        log.warning("alert state: digests not marked: %s", exc)
    finally:
        memory.state.close()


def save_evaluation(cfg: Config, snapshot_name: str, as_of: date, alerts: list[dict]) -> str:
    """Keep a full evaluation's alerts in the store, so that the alert state can record them now
    or, when it is down, on its next healthy run."""
    from datetime import UTC, datetime

    import fsspec

    folder = f"{cfg.store.url.rstrip('/')}/{MEMORY_FOLDER}/{snapshot_name}"
    _write_jsonl(f"{folder}/alerts.jsonl", alerts)
    with fsspec.open(f"{folder}/meta.json", "w", encoding="utf-8", auto_mkdir=True) as fh:
        json.dump({"snapshot": snapshot_name, "as_of": as_of.isoformat(), "saved_at": datetime.now(UTC).isoformat()}, fh)
    return folder


def remember(cfg: Config, state_url: str | None = None) -> dict:
    """Record the stored full evaluations the alert state has not seen yet, oldest first (one per
    snapshot; the latest again when it was re-evaluated). What the sa_report DAG runs after its
    evaluation: a state that was down catches up here."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(f"{cfg.store.url.rstrip('/')}/{MEMORY_FOLDER}")
    if not fs.exists(root):
        return {"recorded": []}
    stored = []
    for entry in fs.ls(root, detail=False):
        try:
            with fs.open(f"{entry}/meta.json", "r") as fh:
                meta = json.load(fh)
        except FileNotFoundError:
            continue  # a folder being written
        stored.append((date.fromisoformat(meta["as_of"]), meta["saved_at"], meta["snapshot"]))
    recorded = []
    with open_state(cfg, state_url) as state:
        latest = state.latest_recorded()
        for as_of, saved_at, name in sorted(stored):
            # Dates before the latest recorded one are history; the latest again only when re-evaluated.
            if latest is not None and (as_of < latest[0] or (as_of == latest[0] and saved_at <= latest[1].isoformat())):
                continue
            alerts = read_jsonl(f"{cfg.store.url.rstrip('/')}/{MEMORY_FOLDER}/{name}/alerts.jsonl")
            mem = state.record(as_of, alerts)
            recorded.append({"snapshot": name, "as_of": as_of.isoformat(), "alerts": len(alerts),
                             "resolved": len(mem.resolved)})  # fmt: skip
    log.info("alert memory: recorded %s", recorded)
    return {"recorded": recorded}


def escalations(cfg: Config, start, end, *, only: str | None = None, as_of: str | None = None,
                state_url: str | None = None) -> dict:
    """The managers whose local ``schedule.escalation_at`` falls in ``[start, end)`` and their team's
    items open longer than the workflow's ``escalate_after_days`` (snoozed ones left out)."""
    from datetime import UTC, datetime

    from sa_hygiene.routing import as_recipient
    from sa_hygiene.schedule import due_in, zone
    from sa_hygiene.snapshot import read_snapshot
    from sa_hygiene.state import key_of

    latest = _store(cfg).latest()
    if latest is None:
        return {"items": [], "days": {}, "snapshot": None}
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
    if not days:
        return {"items": [], "days": {}, "snapshot": latest.url}
    limits = {w: wf.escalate_after_days for w, wf in cfg.enabled_workflows().items() if wf.escalate_after_days}
    with open_state(cfg, state_url) as state:
        episodes = state.open_episodes()
        snoozed = state.snoozed(min(days.values()))
    items = []
    for e in episodes:
        if e["workflow"] not in limits or (e["workflow"], e["record_key"]) in snoozed:
            continue
        for r in e["recipients"]:
            who = as_recipient(r)
            if who["type"] != "user":
                continue
            manager = managers.get(str(manager_of.get(key_of(who["id"]), ""))[:15])
            if manager is None or manager not in days:
                continue
            age = (days[manager] - e["first_seen"]).days
            if age >= limits[e["workflow"]]:
                items.append({"manager": manager, "owner": who["id"], "workflow": e["workflow"], "object": e["object"],
                              "record_id": e["record_id"], "first_seen": e["first_seen"].isoformat(), "age_days": age})  # fmt: skip
    return {"items": items, "days": {m: d.isoformat() for m, d in days.items()}, "snapshot": latest.url}


def deliver_escalations(cfg: Config, found: dict, run_id: str, *, dry_run: bool = False, sink=None) -> dict:
    """One DM per manager with overdue items; the ledger keeps it to once a day."""
    from sa_hygiene.digest import escalation_messages
    from sa_hygiene.snapshot import read_snapshot

    if not found["items"]:
        return {"messages": 0, "sent": 0}
    snapshot = read_snapshot(found["snapshot"], cfg)
    days = {m: date.fromisoformat(d) for m, d in found["days"].items()}
    messages = escalation_messages(found["items"], snapshot, cfg, days)
    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    report = deliver_messages(messages, cfg, run_id, sink=sink)
    report.raise_for_failures()
    return {"messages": len(messages), "sent": len(report.sent), "already_sent": len(report.already_sent),
            "items": len(found["items"])}  # fmt: skip
