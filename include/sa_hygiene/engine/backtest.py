"""Backtest: what a draft workflow would have sent over the stored snapshots (CONTRACT.md § 2c).

Nobody should find out that an alert is noisy after it has spammed a channel. A draft (a
workflow file, or a user alert compiled to the same model) is evaluated on each day's
snapshot against the one before it, with ``evaluate``'s default window, exactly as
``python -m sa_hygiene evaluate`` would for those workflows alone; each day is summed up as
alerts, messages (one per recipient and slot, as the digests send them), alerts per
recipient and a few example records.

Snapshots come from a folder of date-named snapshot folders (``DIR/2026-11-23/``) or from the
snapshot store, where a snapshot's day is the UTC date it was taken (the report's ``as_of``;
the last one of a day when there are several). A day's previous snapshot is the latest one
before it (the day before, where it exists). Days without a snapshot are skipped and listed.

The engine reads only what the draft needs: the frames its workflows read, and the previous
snapshot only when one of them compares against it (the change frame). That is what keeps a
month inside Slack's view-update flow.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.recipients import encode
from sa_hygiene.engine.gx import Validator
from sa_hygiene.engine.rules import Evaluation, evaluate
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, SnapshotError, read_snapshot
from sa_hygiene.source.store import SnapshotStore, url_to_fs

DEFAULT_DAYS = 30
BASE_OBJECTS = ("User", "Opportunity", "Task")  # what every frame but meetings reads
EXAMPLES = 3
DATE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")


class BacktestError(ValueError):
    """Nothing to backtest on: no snapshots where they were looked for, or an unusable range."""


@dataclass(frozen=True)
class Plan:
    """The days to evaluate, each with its snapshot and previous snapshot, and the days skipped."""

    days: list[tuple[date, str, str | None]]
    skipped: list[date]
    first: date
    last: date


@dataclass
class DayResult:
    as_of: date
    alerts: int
    messages: int
    recipients: dict[str, int]
    examples: list[str]
    # The day's alert lines, for a caller that wants more than the counts (the Slack app's examples).
    lines: list[dict] = field(default_factory=list, repr=False)

    def record(self) -> dict:
        """The day as a line of CONTRACT.md § 2c."""
        return {"as_of": self.as_of.isoformat(), "alerts": self.alerts, "messages": self.messages,
                "recipients": self.recipients, "examples": self.examples}  # fmt: skip


def stored_snapshots(cfg: Config, snapshots: str | os.PathLike | None = None) -> dict[date, str]:
    """{day: snapshot location}: the date-named folders of ``snapshots``, else the configured store's."""
    if snapshots is not None:
        fs, root = url_to_fs(snapshots)
        if not fs.isdir(root):
            raise BacktestError(f"{snapshots}: no such folder of snapshots")
        found = {}
        for entry in fs.ls(root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if DATE_NAME.fullmatch(name) and fs.isdir(entry):
                try:
                    day = date.fromisoformat(name)
                except ValueError:
                    continue
                found[day] = f"{str(snapshots).rstrip('/')}/{name}"
        if not found:
            raise BacktestError(f"{snapshots}: no snapshot folders named by date (YYYY-MM-DD) here")
        return found
    store = SnapshotStore(cfg.store.url, keep=cfg.store.keep)
    found = {ref.taken_at.date(): ref.url for ref in store.list()}  # sorted: the day's last wins
    if not found:
        raise BacktestError(f"{cfg.store.url}: the snapshot store holds no snapshot")
    return found


def plan(available: dict[date, str], days: int = DEFAULT_DAYS, until: date | None = None) -> Plan:
    """The ``days`` days ending at ``until`` (default: the latest snapshot's date)."""
    if days < 1:
        raise BacktestError("--days must be 1 or more")
    last = until or max(available)
    first = last - timedelta(days=days - 1)
    ordered = sorted(available)
    todo, skipped = [], []
    for k in range(days):
        day = first + timedelta(days=k)
        if day not in available:
            skipped.append(day)
            continue
        earlier = [d for d in ordered if d < day]
        todo.append((day, available[day], available[earlier[-1]] if earlier else None))
    if not todo:
        raise BacktestError(f"no snapshot from {first.isoformat()} to {last.isoformat()}")
    return Plan(todo, skipped, first, last)


def draft_config(cfg: Config, workflow_ids: list[str]) -> Config:
    """``cfg`` with only ``workflow_ids`` as its workflows: ``evaluate`` for those workflows alone.

    ``cfg`` was checked whole (``with_workflows``); dropping the other workflows changes nothing
    the engine reads of these.
    """
    return cfg.model_copy(update={"workflows": {k: cfg.workflows[k] for k in workflow_ids}})


def summarize(as_of: date, evaluation: Evaluation) -> DayResult:
    lines = evaluation.alert_records()
    recipients = Counter(encode(a["recipient"]) for a in lines)
    messages = {(encode(a["recipient"]), a["slot"]) for a in lines}
    examples = list(dict.fromkeys(a["record_id"] for a in lines))[:EXAMPLES]
    return DayResult(as_of, len(lines), len(messages), dict(sorted(recipients.items())), examples, lines)


def run_backtest(
    cfg: Config, plan_: Plan, progress: Callable[[int, int, date], None] | None = None
) -> Iterator[DayResult]:
    """Evaluate ``cfg``'s enabled workflows (a draft's, see ``draft_config``) on each planned day.

    ``progress(done, total, day)`` is called before each day (the Slack app's progress message).
    """
    frames = {wf.frame for wf in cfg.enabled_workflows().values()}
    # Only meetings read Event, Contact, OpportunityContactRole and Account; references are
    # checked against User alone, so leaving the others unread changes no row of the rest.
    objects = None if "meetings" in frames else BASE_OBJECTS
    validator = Validator()  # one GX context for every day
    total = len(plan_.days)
    for n, (day, location, previous) in enumerate(plan_.days):
        if progress is not None:
            progress(n, total, day)
        try:
            snapshot = read_snapshot(location, cfg, objects=objects)
            before = read_snapshot(previous, cfg, objects=PREVIOUS_OBJECTS) if previous and "changes" in frames else None
        except SnapshotError as exc:
            raise SnapshotError(f"{day.isoformat()}: {exc}") from None
        evaluation = evaluate(snapshot, before, cfg, day, validator=validator)
        validator.results.clear()  # the report's Data Docs are not made here: keep no results
        yield summarize(day, evaluation)
