"""Evaluate the latest snapshot for a run: the alerts file, the cached evaluations, feed windows.

Every DAG that sends messages starts here: it reads the latest snapshot (with its changes
when asked) and the one before it, evaluates, and keeps the alerts in a run folder or in the
shared evaluation cache. What it returns, an ``EvaluationRun``, is what the delivering task
reads (its XCom form: ``pipeline/xcom.py``).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime

from sa_hygiene.contract.config import Config
from sa_hygiene.pipeline.snapshots import snapshot_store
from sa_hygiene.pipeline.xcom import XComValue
from sa_hygiene.source.jsonl import read_jsonl, write_jsonl
from sa_hygiene.state.alerts import open_state

log = logging.getLogger(__name__)


def run_folder(cfg: Config, dag_id: str, run_id: str) -> str:
    """Where a run keeps its alerts (a folder of the store, outside the listed snapshots)."""
    import re

    return f"{cfg.store.url.rstrip('/')}/_runs/{dag_id}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', run_id)}"


class EvaluationRun(XComValue):
    """One evaluation a run delivers from: what the evaluating task hands the delivering one.

    The evaluation's own fields (``as_of`` to ``unrouted``) are also what the evaluation cache
    keeps in ``info.json``; the others are the run's: its freshness notices, the changes it read,
    its feed, the recipients it serves. The digest command builds one from its arguments.
    """

    as_of: date
    alerts: str  # the alerts file, JSON Lines (CONTRACT.md § 2)
    snapshot: str  # the evaluated snapshot's folder or URL
    previous: str | None = None  # the snapshot before it
    since: datetime | None = None  # the activity window
    until: datetime | None = None
    taken_at: datetime | None = None
    counts: dict[str, int] = {}  # alerts per workflow
    quarantined: int = 0
    unrouted: int = 0
    notice: str | None = None  # the snapshot is older than store.max_age_hours
    changes: str | None = None  # the changes folder read with the snapshot
    changes_version: int | None = None
    changes_pulled_at: datetime | None = None
    changes_mark: datetime | None = None  # the changes' high-water mark: the data is complete up to it
    changes_notice: str | None = None  # the changes are older than changes.max_age_minutes
    feed: str | None = None  # the feed whose window was evaluated: delivery advances it
    recipients: list[str] | None = None  # whom the run serves (the DM digests), else everyone
    reused: bool = False  # the evaluation came from the cache, not evaluated by this run


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
    from sa_hygiene.contract.config import SLOTS

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


def evaluate_latest(cfg: Config, as_of: date, since=None, until=None, *, out: str, slots=None, now=None,
                    with_changes: bool = False, cache: bool = False, feed: str | None = None,
                    recipients: list[str] | None = None, workflows: set[str] | None = None) -> EvaluationRun:  # fmt: skip
    """Evaluate the latest snapshot (against the one before it) and keep the alerts in ``out``.

    Returns what delivery needs (paths, counts) and a freshness notice when the latest
    snapshot is older than ``store.max_age_hours``. ``with_changes`` (the reminders and the DM
    digests) reads the snapshot with its latest changes, so that what was logged or booked
    since the snapshot counts; changes older than ``changes.max_age_minutes`` are reported to
    the operations channel (``changes_notice``).

    ``cache``: the DM digests run every 15 minutes and would evaluate the whole org each time for
    a handful of recipients. One evaluation per (snapshot, previous, changes version, local
    date, window, slots) is kept in ``<store>/_evaluations/`` and reused by every run with the
    same key (the run says ``reused``); a new changes version is a new key.

    ``feed`` (a DAG that posts what was created in a window: wf-02, wf-09): the window is the
    feed's own, ``since``/``until`` are ignored (``feed_window``); delivery advances it.

    ``recipients`` (the DM digests): whom the run serves, kept on it for its delivery.

    ``workflows``: only these (the activity posts evaluate wf-02 and wf-09, not the whole org).
    """
    from datetime import UTC

    from sa_hygiene.source.snapshot import SnapshotError
    from sa_hygiene.source.store import latest_changes

    store = snapshot_store(cfg)
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
    folder = _evaluation_folder(cfg, latest, previous, changes, as_of, since, until, slots, workflows) if cache else None
    stored = _read_json(f"{folder}/info.json") if folder else None
    if stored is not None:
        run = EvaluationRun.from_xcom(stored).model_copy(update={"reused": True})
        log.info("evaluation reused: %s", folder)
    else:
        run = _evaluate(cfg, latest, previous, changes, as_of, since, until, slots, folder or out,
                        allow_empty=feed is not None or workflows is not None, workflows=workflows)  # fmt: skip
    now = now or datetime.now(UTC)
    age = (now - latest.taken_at).total_seconds() / 3600
    notice = None
    if age > cfg.store.max_age_hours:
        notice = (f"The latest Salesforce snapshot is from {latest.taken_at:%Y-%m-%d %H:%M} UTC, {age:.0f} hours ago: "
                  "recent changes are missing from this digest.")  # fmt: skip
    return run.model_copy(update={"feed": feed, "notice": notice, "recipients": recipients,
                                  **_changes_info(cfg, changes, now)})  # fmt: skip


def feed_window(cfg: Config, store, feed: str, latest, changes: dict | None) -> tuple:
    """(since, until) of a feed's next window: from where its last delivered window ended to
    the moment its data was taken (the changes' high-water mark when the run reads changes,
    else the snapshot's ``taken_at``), not the clock. A digest at 08:00 local reads a snapshot
    taken hours before: a clock window would skip what was created in between, for good.

    Before a feed's first window (or with the alert state down, which the delivery then
    reports) it starts at the snapshot before the latest.
    """
    from datetime import timedelta


    mark = (changes or {}).get("high_water_mark")
    until = as_utc(mark) if mark else latest.taken_at
    since = recorded_feed_end(cfg, feed)
    if since is None:
        before = store.previous(latest)
        since = before.taken_at if before is not None else until - timedelta(days=1)
    return min(since, until), until


def recorded_feed_end(cfg: Config, feed: str) -> datetime | None:
    """Where a feed's last delivered window ended; None before its first one, or with the alert
    state down (logged: the caller starts from its default, and delivery reports the state)."""
    from sa_hygiene.state.db import DatabaseError

    try:
        state = open_state(cfg)
        try:
            return state.feed_window_end(feed)
        finally:
            state.close()
    except DatabaseError as exc:
        log.warning("alert state unavailable, feed %s starts from its default: %s", feed, exc)
        return None


def advance_feed(cfg: Config, run: EvaluationRun, state_url: str | None = None) -> str | None:
    """After a digest was delivered: its feed's next window starts where this one ended. A state
    that cannot record it fails the task (``DatabaseError``), whose retry re-delivers nothing
    (the ledger) and records it then: a window recorded late is never posted twice."""
    if not run.feed:
        return None
    state = open_state(cfg, state_url)
    try:
        return state.advance_feed(run.feed, as_utc(run.until)).isoformat()
    finally:
        state.close()


def _evaluate(cfg: Config, latest, previous, changes, as_of, since, until, slots, out: str,
              allow_empty: bool = False, workflows: set[str] | None = None) -> EvaluationRun:  # fmt: skip
    """Evaluate and write the alerts to ``out``; ``info.json`` last, which marks the folder complete."""
    from sa_hygiene.pipeline.user_alerts import evaluate_snapshots  # the workflows and the user alerts

    result = evaluate_snapshots(latest, previous, cfg, as_of, since, until, changes=changes["folder"] if changes else None,
                                slots=set(slots) if slots else None, allow_empty_window=allow_empty,
                                workflows=workflows)  # fmt: skip
    alerts = result.alert_records()
    write_jsonl(f"{out}/alerts.jsonl", alerts)
    since, until = (t.to_pydatetime() for t in (result.window.since, result.window.until))
    run = EvaluationRun(as_of=as_of, since=since, until=until, snapshot=latest.url,
                        previous=previous.url if previous else None, taken_at=latest.taken_at,
                        alerts=f"{out}/alerts.jsonl", counts=result.counts(), quarantined=len(result.quarantine),
                        unrouted=sum(1 for a in alerts if a.get("unrouted")))  # fmt: skip
    write_jsonl(f"{out}/info.json", [run.to_xcom()])
    return run


def _evaluation_folder(cfg: Config, latest, previous, changes, as_of, since, until, slots, workflows=None) -> str:
    """The cache folder of one evaluation key; older snapshots' evaluations are removed."""
    import hashlib

    import fsspec

    from sa_hygiene.pipeline.user_alerts import alerts_key

    version = changes["version"] if changes else 0
    # The user alerts as they stand: one saved, paused or deleted since is a new evaluation.
    key = json.dumps([latest.name, previous.name if previous else None, version, as_of.isoformat(),
                      str(since), str(until), sorted(slots or []), sorted(workflows or []), alerts_key(cfg)])  # fmt: skip
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
    if changes is None:
        return {}
    pulled = datetime.fromisoformat(changes["pulled_at"])
    minutes = (as_utc(now) - pulled).total_seconds() / 60
    notice = None
    if minutes > cfg.changes.max_age_minutes:
        notice = (f"The latest Salesforce changes were pulled at {pulled:%Y-%m-%d %H:%M} UTC, {minutes:.0f} minutes "
                  "ago: activities logged and meetings booked since then are missing from this run.")  # fmt: skip
    mark = changes.get("high_water_mark")
    return {"changes": changes["folder"], "changes_version": changes["version"], "changes_pulled_at": pulled,
            "changes_mark": as_utc(mark) if mark else None,
            "changes_notice": notice}  # fmt: skip


def as_utc(moment):
    """A tz-aware datetime from a datetime or ISO string (naive means UTC)."""
    from datetime import UTC

    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value if value.tzinfo else value.replace(tzinfo=UTC)
