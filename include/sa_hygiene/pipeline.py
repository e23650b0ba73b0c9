"""The steps the DAGs and the command line run, each a plain function of the configuration.

DAG tasks are thin wrappers around these, so every step runs and is tested without a
scheduler, and the command line and Airflow share one code path.
"""

from __future__ import annotations

import json
import logging
from datetime import date

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


def evaluate_latest(cfg: Config, as_of: date, since=None, until=None, *, out: str, slots=None, now=None) -> dict:
    """Evaluate the latest snapshot (against the one before it) and keep the alerts in ``out``.

    Returns what delivery needs (paths, counts) and a freshness notice when the latest
    snapshot is older than ``store.max_age_hours``.
    """
    from datetime import UTC, datetime

    from sa_hygiene.rules import evaluate
    from sa_hygiene.snapshot import PREVIOUS_OBJECTS, SnapshotError, read_snapshot

    store = _store(cfg)
    latest = store.latest()
    if latest is None:
        raise SnapshotError(f"{cfg.store.url}: the snapshot store holds no snapshot yet (run sa_snapshot first)")
    # Changes since the window began: against the snapshot that was the latest then (the one
    # before the latest with daily snapshots; still right when sa_snapshot runs more often).
    then = store.at(as_utc(since)) if since is not None else None
    previous = then if then is not None and then != latest else store.previous(latest)
    current = read_snapshot(latest.url, cfg)
    before = read_snapshot(previous.url, cfg, objects=PREVIOUS_OBJECTS) if previous else None
    result = evaluate(current, before, cfg, as_of, since, until, slots=set(slots) if slots else None)
    alerts = result.alert_records()
    _write_jsonl(f"{out}/alerts.jsonl", alerts)
    age = ((now or datetime.now(UTC)) - latest.taken_at).total_seconds() / 3600
    notice = None
    if age > cfg.store.max_age_hours:
        notice = (f"The latest Salesforce snapshot is from {latest.taken_at:%Y-%m-%d %H:%M} UTC, {age:.0f} hours ago: "
                  "recent changes are missing from this digest.")  # fmt: skip
    return {
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
        "notice": notice,
    }


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
    sink = sink if sink is not None else open_sink(cfg, run_id, delivery="outbox" if dry_run else None)
    current = read_snapshot(info["snapshot"], cfg) if alerts or with_quarantine else None
    messages = []
    if alerts:
        before = read_snapshot(info["previous"], cfg, objects=PREVIOUS_OBJECTS) if info.get("previous") else None
        messages = build_messages(alerts, current, cfg, as_of, previous=before, notice=info.get("notice"))
    report = deliver_messages(messages, cfg, run_id, sink=sink, ledger_url=ledger_url)
    summary = ops_summary(
        cfg, as_of, run_id, quarantine=current.quarantine if with_quarantine else None,
        unrouted=sum(1 for a in alerts if a.get("unrouted")), unknown_users=report.unknown_users,
        failed=report.failed, unconfirmed=report.unconfirmed,
        notes=[info["notice"]] if info.get("notice") and messages else [],
    )  # fmt: skip
    if summary is not None:
        deliver_messages([summary], cfg, run_id, sink=sink, ledger_url=ledger_url)
    out = {"messages": len(messages), "sent": len(report.sent), "already_sent": len(report.already_sent),
           "elsewhere": len(report.elsewhere), "failed": len(report.failed), "unknown_users": len(report.unknown_users),
           "recipients": sorted({encode(m.recipient) for m in messages})}  # fmt: skip
    preview = getattr(sink, "preview_path", None)
    if preview is not None:
        out["preview"] = str(preview)
    log.info("delivered %s", out)
    report.raise_for_failures()
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
