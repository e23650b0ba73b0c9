"""User alerts in the evaluation: compiled against the day's snapshot and configuration, then run
with the YAML workflows in the same ``evaluate`` (one preparation of the frames, one pass).

An alert's scope names people and accounts (``Audience``), read here from the snapshot being
evaluated, so "my region" follows the people who are in it today. An alert that no longer
compiles (a field gone from the configuration after an upgrade, a picklist value removed) is
left out and reported for pausing; it never fails the evaluation. The YAML workflows are
untouched: their entries, and so their alerts, are the same with or without user alerts.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.recipients import encode
from sa_hygiene.contract.user_alerts import (
    ID_PREFIX,
    AlertDraftError,
    Audience,
    UserAlert,
    compile_alerts,
    parse_alert,
)
from sa_hygiene.engine.columnwise import column_alerts
from sa_hygiene.engine.gx import Validator
from sa_hygiene.engine.prepare import RunWindow, prepare_frames
from sa_hygiene.engine.routing import Directory
from sa_hygiene.engine.rules import Evaluation, _location, gc_paused, run_workflows
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, Snapshot, read_snapshot
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.state.user_alerts import StoredAlert, UserAlerts

log = logging.getLogger(__name__)


def audiences(snapshot: Snapshot, cfg: Config, owners: set[str], d: Directory | None = None) -> dict[str, Audience]:
    """Each owner's reports, whole team, region and accounts, from the snapshot's User and Account
    rows (``d``: their directory, when built already).

    Read column-wise, once for all the owners: an org's tens of thousands of users were a
    dictionary of Ids and one of managers, and each region a comparison of every user's region,
    a third of the cost of compiling two hundred alerts."""
    users = snapshot.tables.get("User")
    if users is None or users.empty or not owners:
        return {o: Audience(o) for o in owners}
    d = d if d is not None else Directory(users, cfg)
    ids = d.users["id"].astype(str).to_numpy(dtype=object)  # the Directory's users, in the snapshot's order
    keys = d.users.index.to_numpy(dtype=object)
    owned_keys = [o[:15] for o in owners]
    if d.users.index.is_unique:
        found = d.users.index.get_indexer(owned_keys).tolist()
    else:  # a key on two rows (not in a snapshot): its last, as a dictionary of the users had it
        last = {k: p for p, k in enumerate(keys.tolist())}
        found = [last.get(k, -1) for k in owned_keys]
    at = dict(zip(owners, found, strict=True))  # the owner's row, -1 for none
    manager = d.users["manager_id"]
    has_manager = (manager.notna() & (manager.str.strip() != "")).to_numpy(bool)
    below: dict[str, list[int]] = defaultdict(list)  # a manager's key: the positions of their direct reports
    for m, p in zip(manager[has_manager].str.slice(0, 15).tolist(), np.flatnonzero(has_manager).tolist(), strict=True):
        below[m].append(p)
    regions, _ = pd.factorize(d.region.to_numpy(dtype=object), use_na_sentinel=True)  # -1: no region
    accounts = snapshot.tables.get("Account")
    owned: dict[str, list[str]] = defaultdict(list)
    if accounts is not None and not accounts.empty:
        # Only the alerts' owners' accounts are listed: a few hundred of forty thousand.
        theirs = accounts["owner_id"].str.slice(0, 15).isin({o[:15] for o in owners}).to_numpy(bool)
        accounts = accounts.loc[theirs, ["id", "owner_id"]]
        for acc, owner in zip(accounts["id"].tolist(), accounts["owner_id"].tolist(), strict=True):
            if isinstance(owner, str) and isinstance(acc, str):
                owned[owner[:15]].append(acc)
    out = {}
    people_of: dict[int, list[str]] = {}  # each region's people, found once for all its owners
    for owner in owners:
        k = owner[:15]
        team, seen, todo = [], {k}, list(below.get(k, []))
        while todo:  # every level below, each person once (a cycle in ManagerId stops here)
            p = todo.pop()
            if keys[p] not in seen:
                seen.add(keys[p])
                team.append(ids[p])
                todo.extend(below.get(keys[p], []))
        me = at[owner]
        mine = regions[me] if me >= 0 else -1
        if mine >= 0 and mine not in people_of:
            people_of[mine] = ids[regions == mine].tolist()
        same = people_of[mine] if mine >= 0 else [ids[me] if me >= 0 else owner]
        out[owner] = Audience(owner, reports=[ids[p] for p in below.get(k, [])], team=team, region=same,
                              accounts=owned.get(k, []))  # fmt: skip
    return out


def with_user_alerts(
    cfg: Config, stored: dict[str, dict], snapshot: Snapshot, d: Directory | None = None
) -> tuple[Config, dict[str, str]]:
    """``cfg`` plus the active alerts of ``stored`` ({alert id: the form's choices}) as workflows;
    ``{alert id: why}`` of those that do not compile any more (to pause, with a notice).
    ``d``: the snapshot's directory, when built already."""
    parsed: dict[str, UserAlert] = {}
    broken: dict[str, str] = {}
    for alert_id, spec in stored.items():
        try:
            parsed[alert_id] = parse_alert(spec)
        except AlertDraftError as exc:
            broken[alert_id] = str(exc)
    merged, more = compile_alerts(cfg, parsed, audiences(snapshot, cfg, {a.owner for a in parsed.values()}, d))
    return merged, {**broken, **more}


def evaluate_with_user_alerts(
    current, previous, cfg: Config, as_of: date, stored: dict[str, dict],
    since: datetime | None = None, until: datetime | None = None, *,
    changes: str | os.PathLike | None = None, slots: set[str] | None = None, allow_empty_window: bool = False,
    workflows: set[str] | None = None,
) -> tuple[Evaluation, dict[str, str]]:  # fmt: skip
    """``rules.evaluate_snapshots`` with the user alerts among the workflows; also returns the
    alerts to pause ({alert id: why}).

    One preparation of the frames serves both. The YAML workflows run through GX exactly as
    ``evaluate`` runs them; the user alerts, hundreds of one-expectation workflows, are judged
    column-wise by the meaning of their expectations (``predicates``: what GX decides, which
    ``test_predicates`` holds it to), since a GX validation per alert would cost more than all
    the workflows together.
    """
    snapshot = read_snapshot(_location(current), cfg, changes=changes)
    before = read_snapshot(_location(previous), cfg, objects=PREVIOUS_OBJECTS) if previous else None
    return evaluate_snapshot_with_user_alerts(snapshot, before, cfg, as_of, stored, since, until, slots=slots,
                                              allow_empty_window=allow_empty_window, workflows=workflows)  # fmt: skip


def evaluate_snapshot_with_user_alerts(
    snapshot: Snapshot, before: Snapshot | None, cfg: Config, as_of: date, stored: dict[str, dict],
    since: datetime | None = None, until: datetime | None = None, *,
    slots: set[str] | None = None, allow_empty_window: bool = False, workflows: set[str] | None = None,
) -> tuple[Evaluation, dict[str, str]]:  # fmt: skip
    """``evaluate_with_user_alerts`` on snapshots already read (``rules.evaluate``'s arguments;
    ``workflows``: only those, as a run posting activities as they happen asks)."""
    w = RunWindow.of(as_of, since, until, allow_empty=allow_empty_window)
    users = snapshot.tables.get("User")
    d = Directory(users, cfg) if users is not None and not users.empty else None  # for the scopes and the frames
    with gc_paused():  # compiling makes many small objects (entries, scope texts): no cycles to collect early
        merged, broken = with_user_alerts(cfg, stored, snapshot, d)
    wanted = {k: wf for k, wf in merged.enabled_workflows().items()
              if (slots is None or wf.slot in slots) and (workflows is None or k in workflows)}  # fmt: skip
    mine = {k: wf for k, wf in wanted.items() if k.startswith(ID_PREFIX) and k not in cfg.workflows}
    yaml = {k: wf for k, wf in wanted.items() if k not in mine}
    with gc_paused():
        frames, d = prepare_frames(snapshot, before, cfg, w, only={wf.frame for wf in wanted.values()}, directory=d)
        params = {**cfg.params(), "as_of": w.as_of}
        validator = Validator()
        scopes: dict[str, AbstractSet[str]] = {}
        columns: dict = {}  # one Columns per frame for both: scopes, look-ups and key tables shared
        alerts = run_workflows(frames, d, yaml, params, validator, scopes, columns)
        theirs = column_alerts(frames, d, mine, params, scopes, columns)
    if len(theirs):
        alerts = pd.concat([alerts, theirs], ignore_index=True)
    result = Evaluation(alerts, snapshot.quarantine, w, frames, d, validator.results, snapshot, scopes)
    return result, broken


def messages_per_alert(alerts: pd.DataFrame | list[dict]) -> dict[str, int]:
    """{alert id: messages its workflow sends}, for the M-a-day rail: one per recipient and slot,
    as digests go, but one per record for "DM now" (the reminder slot sends each on its own)."""
    rows = alerts.to_dict("records") if isinstance(alerts, pd.DataFrame) else alerts
    seen = {(a["workflow"], encode(a["recipient"]) if isinstance(a["recipient"], dict) else a["recipient"], a["slot"],
             a["record_id"] if a["slot"] == "meeting_reminder" else "")
            for a in rows if str(a["workflow"]).startswith(ID_PREFIX)}  # fmt: skip
    return dict(Counter(w[len(ID_PREFIX) :] for w, *_ in seen))


def over_limit(alerts, cfg: Config) -> dict[str, str]:
    """{alert id: why} of the user alerts that sent more messages than the configuration allows."""
    cap = cfg.user_alerts.max_messages_per_day
    return {a: f"it would send {n} messages a day, more than {cap}: paused" for a, n in messages_per_alert(alerts).items()
            if n > cap}  # fmt: skip


def stored(cfg: Config, url: str | None = None) -> list[StoredAlert] | None:
    """Every stored user alert (state database ``url``, default the configuration's); None when
    it cannot be read (logged). A SQLite file that does not exist holds none, and is not made."""
    url = url or cfg.state_url
    if absent_sqlite(url):
        return []
    try:
        with UserAlerts(url) as store:
            return store.list()
    except DatabaseError as exc:
        log.warning("user alerts left out of this run: %s", exc)
        return None


def rendering_config(cfg: Config, url: str | None = None) -> Config:
    """``cfg`` with every stored user alert that compiles, for rendering and reading alerts files."""
    alerts = stored(cfg, url) or []
    parsed = {}
    for a in alerts:
        try:
            parsed[a.alert_id] = parse_alert(a.spec)
        except AlertDraftError:
            continue
    if not parsed:
        return cfg
    merged, _ = compile_alerts(cfg, parsed, {a.owner: Audience(a.owner) for a in parsed.values()})
    return merged


def absent_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False  # UserAlerts says what is wrong with it
    db = parsed.database
    return parsed.get_backend_name() == "sqlite" and db not in (None, "", ":memory:") and not Path(db).exists()
