"""The alert state in the DAG steps: what it adds to a digest (ages, snoozes, fixes since the last
digest), what a delivered digest records in it, and the full evaluations it records.

A digest run opens the state twice and briefly: to annotate the alerts before rendering, and to
mark the digests delivered. No connection stays open while Slack is called: a delivery can take
minutes, and a connection held that long is one a pool or a firewall may drop.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date

from sa_hygiene.contract.config import Config
from sa_hygiene.source.jsonl import read_jsonl, write_jsonl
from sa_hygiene.state.alerts import open_state

log = logging.getLogger(__name__)


# Full evaluations kept for the alert state: <store>/_alert_memory/<snapshot>/. The folder keeps the
# alert state's former name ("alert memory"): existing stores hold their evaluations there.
STORED_EVALUATIONS = "_alert_memory"
# Beside a stored evaluation's alerts: the keys in each workflow's scope and the quarantined keys.
SCOPE = "scope.json"


@dataclass
class DigestAnnotations:
    """What the alert state adds to a digest run: the alerts with their ages (snoozed ones left
    out), what each DM recipient fixed since their last digest, or why it could not (``notes``)."""

    alerts: list[dict]
    fixed: dict[str, list[dict]] = field(default_factory=dict)
    snoozed: int = 0
    # {recipient: {record Id: snoozed until (ISO date)}}: a digest ends with what it left out.
    snoozed_for: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    state_read: bool = False
    # {recipient: {record Id: who fixed it}}: fixed from Slack, left out until an evaluation confirms it.
    fixing_for: dict[str, dict[str, str]] = field(default_factory=dict)  # the state answered: the digests delivered are marked in it


def _state_down(exc: Exception) -> str:
    return (f"The alert state is unavailable ({exc}): digests went out without ages, fixes and snoozes. "
            "Nothing is lost: the next healthy run records the stored evaluations.")  # fmt: skip


def annotate_digest(cfg: Config, as_of: date, alerts: list[dict], *, state_url: str | None = None) -> DigestAnnotations:
    """Ages from the episodes (read, never written: the snapshot's own evaluation records them),
    snoozed items left out, and what each DM recipient fixed since their last digest; the state
    is closed again before the digests are rendered.

    A state that is down or broken costs the ages, never the digest: the operations channel is
    told and the alerts go out as they are.
    """
    from sa_hygiene.contract.recipients import encode
    from sa_hygiene.state.alerts import key_of
    from sa_hygiene.state.db import DatabaseError

    try:
        state = open_state(cfg, state_url)
        try:
            began = state.first_recorded()
            annotated = [{**a, "memory_began": began.isoformat()} if began else a
                         for a in state.annotate(as_of, alerts).alerts]  # fmt: skip
            snoozed = state.snoozed(as_of)
            kept = [a for a in annotated if (a["workflow"], key_of(a["record_id"])) not in snoozed]
            snoozed_for: dict[str, dict[str, str]] = {}
            for a in annotated:
                if (until := snoozed.get((a["workflow"], key_of(a["record_id"])))) is not None:
                    mine = snoozed_for.setdefault(encode(a["recipient"]), {})
                    mine[a["record_id"]] = max(mine.get(a["record_id"], ""), until["until"].isoformat())
            kept, fixing_for = _with_fixes(state, kept)
            dm = {encode(a["recipient"]) for a in kept if a["recipient"]["type"] == "user" and a["slot"] == "sa_digest"}
            fixed = _fixed_since_last_digest(cfg, state, dm, as_of)
        finally:
            state.close()
    except DatabaseError as exc:
        log.warning("alert state unavailable: %s", exc)
        return DigestAnnotations(alerts, notes=[_state_down(exc)])
    return DigestAnnotations(kept, fixed, len(annotated) - len(kept), snoozed_for, state_read=True, fixing_for=fixing_for)


def _with_fixes(state, alerts: list[dict]) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """Fixes from the Slack app: an item fixed but not yet seen by an evaluation is left out (no
    nagging about what was fixed an hour ago); one the next evaluation still raised carries
    ``fix_reopened`` (who fixed it, when), and its item says so. Also {recipient: {record Id: who
    fixed it}} of the items left out: the digest counts them, nothing vanishes unsaid."""
    from sa_hygiene.contract.recipients import encode
    from sa_hygiene.state.alerts import PENDING, REOPENED, key_of

    made = state.fixes()
    out = []
    fixing: dict[str, dict[str, str]] = {}
    for a in alerts:
        fix = made.get((a["workflow"], key_of(a["record_id"])))
        if fix is not None and fix["status"] == PENDING:
            fixing.setdefault(encode(a["recipient"]), {})[a["record_id"]] = fix["fixed_by"]
            continue
        if fix is not None and fix["status"] == REOPENED and fix["fixed_at"].date().isoformat() >= a.get("first_seen", ""):
            a = {**a, "fix_reopened": {"by": fix["fixed_by"], "on": fix["fixed_at"].date().isoformat()}}
        out.append(a)
    return out, fixing


def _fixed_since_last_digest(cfg: Config, state, recipients: set[str], as_of: date) -> dict[str, list[dict]]:
    """{recipient: DM-workflow episodes fixed after their previous digest}: one query from the
    earliest previous digest, then each recipient's own cut."""
    since = {r: d for r in recipients if (d := state.last_digest(r, "sa_digest", as_of)) is not None}
    if not since:
        return {}
    dm_workflows = {w for w, wf in cfg.workflows.items() if wf.slot == "sa_digest"}
    fixed: dict[str, list[dict]] = {}
    for e in state.resolved_between(min(since.values()), as_of):
        # Only a fix is news: an episode that ended because the record left the scope is not.
        if e["workflow"] not in dm_workflows or e.get("how") != "fixed":
            continue
        for r in e["recipients"]:
            if r in since and e["resolved_on"] > since[r]:
                fixed.setdefault(r, []).append({**e, "resolved_on": e["resolved_on"].isoformat()})
    return fixed


def mark_digests_delivered(cfg: Config, annotations: DigestAnnotations, messages: list, report, as_of: date, *,
                           state_url: str | None = None) -> None:  # fmt: skip
    """Record who got their DM digest today, on a connection of its own: tomorrow's "fixed since"
    counts from here. Nothing is marked when the state did not answer before delivery; a state
    that fails now costs tomorrow's fixes (a warning), never the run."""
    from sa_hygiene.contract.recipients import encode
    from sa_hygiene.state.db import DatabaseError

    if not annotations.state_read:
        return
    done = set(report.sent) | set(report.already_sent) | set(report.elsewhere)
    got = [encode(m.recipient) for m in messages if m.slot == "sa_digest" and m.key in done]
    if not got:
        return
    try:
        with open_state(cfg, state_url) as state:
            state.mark_digests(got, "sa_digest", as_of)
    except DatabaseError as exc:
        log.warning("alert state: digests not marked: %s", exc)


def store_evaluation(cfg: Config, snapshot_name: str, as_of: date, alerts: list[dict],
                     scope: dict[str, set[str]] | None = None, quarantined: set[str] | None = None) -> str:  # fmt: skip
    """Keep a full evaluation's alerts in the store, so that the alert state can record them now
    or, when it is down, on its next healthy run; with the keys in each workflow's scope and the
    quarantined keys, which tell an episode that ends fixed from one that is gone."""
    from datetime import UTC, datetime

    import fsspec

    folder = f"{cfg.store.url.rstrip('/')}/{STORED_EVALUATIONS}/{snapshot_name}"
    write_jsonl(f"{folder}/alerts.jsonl", alerts)
    if scope is not None:
        with fsspec.open(f"{folder}/{SCOPE}", "w", encoding="utf-8", auto_mkdir=True) as fh:
            json.dump({"scope": {w: sorted(keys) for w, keys in scope.items()}, "quarantined": sorted(quarantined or ())}, fh)
    with fsspec.open(f"{folder}/meta.json", "w", encoding="utf-8", auto_mkdir=True) as fh:
        json.dump({"snapshot": snapshot_name, "as_of": as_of.isoformat(), "saved_at": datetime.now(UTC).isoformat()}, fh)
    return folder


def _stored_scope(fs, folder: str) -> tuple[dict[str, set[str]] | None, set[str]]:
    """(scope, quarantined keys) of a stored evaluation; (None, none) for one stored before
    spec v3 kept them: its endings are told as gone."""
    try:
        with fs.open(f"{folder}/{SCOPE}", "r") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None, set()
    return {w: set(keys) for w, keys in data["scope"].items()}, set(data["quarantined"])


def record_stored_evaluations(cfg: Config, state_url: str | None = None) -> dict:
    """Record the stored full evaluations the alert state has not seen yet, oldest first (one per
    snapshot; the latest again when it was re-evaluated). What the sa_report DAG runs before it
    writes the report (so the report counts today's fixes); a state that was down catches up here."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(f"{cfg.store.url.rstrip('/')}/{STORED_EVALUATIONS}")
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
            alerts = read_jsonl(f"{cfg.store.url.rstrip('/')}/{STORED_EVALUATIONS}/{name}/alerts.jsonl")
            scope, quarantined = _stored_scope(fs, f"{root}/{name}")
            episodes = state.record(as_of, alerts, scope=scope, quarantined=quarantined)
            recorded.append({"snapshot": name, "as_of": as_of.isoformat(), "alerts": len(alerts),
                             "resolved": len(episodes.resolved)})  # fmt: skip
    log.info("alert state: recorded %s", recorded)
    return {"recorded": recorded}
