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

A month must come back inside Slack's view-update flow, so the backtest does only what the
draft needs: it reads the objects its frames are prepared from, reads each snapshot once (a
day's snapshot is the next day's previous one, needed only when a workflow compares against
it: the change frame), prepares only the frames the draft reads, and judges the draft's
workflows column-wise by the meaning of their expectations (``columnwise``: what GX decides,
without GX's fixed cost per validation, nor its import). What it yields per day is what
``evaluate`` gives for the draft alone; ``test_backtest`` holds the two together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

import pandas as pd

from sa_hygiene.contract.config import Config
from sa_hygiene.engine.columnwise import column_alerts
from sa_hygiene.engine.prepare import ACTIVITY_TASK_COLUMNS, POV, RunWindow, prepare_frames
from sa_hygiene.engine.rules import Evaluation, gc_paused
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, Snapshot, SnapshotError, read_snapshot
from sa_hygiene.source.store import SnapshotStore, url_to_fs

DEFAULT_DAYS = 30
BASE_OBJECTS = ("User", "Opportunity", "Task")  # what every frame but meetings and POVs reads
EXAMPLES = 3
# The Task columns ``prepare_frames`` reads, by frame ("": every frame reads the SA activities,
# their owner, date and record). Tasks are the biggest table by far: their descriptions, audit
# timestamps and the lists no frame reads are left unread (from a snapshot typed at commit).
TASK_COLUMNS = {
    "": ("id", "owner_id", "what_id", "activity_date", "activity_types", "chorus_call_id"),
    "tasks": ("subject", "is_closed", "created"),
    "activities": (*ACTIVITY_TASK_COLUMNS, "task_subtype"),
}
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
    # The day's alerts (``rules.ALERT_COLUMNS``), for a caller that wants more than the counts.
    frame: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @cached_property
    def lines(self) -> list[dict]:
        """The day's alert lines (CONTRACT.md § 2), made when asked for (the Slack app's examples)."""
        if self.frame.empty:
            return []
        return Evaluation(self.frame, pd.DataFrame(), None, {}, None).alert_records()  # type: ignore[arg-type]

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


def summarize(as_of: date, alerts: pd.DataFrame) -> DayResult:
    """A day's counts from its alerts: recipients as the engine encodes them (``user:``,
    ``channel:``), one message per recipient and slot, the first records as examples."""
    if alerts.empty:
        return DayResult(as_of, 0, 0, {}, [], alerts)
    to = alerts["recipient"].astype(str)
    recipients = {str(k): int(v) for k, v in to.value_counts().items()}
    messages = len(set(zip(to.tolist(), alerts["slot"].tolist(), strict=True)))
    examples = list(dict.fromkeys(alerts["record_id"].tolist()))[:EXAMPLES]
    return DayResult(as_of, len(alerts), messages, dict(sorted(recipients.items())), examples, alerts)


def objects_read(frames: set[str]) -> tuple[str, ...] | None:
    """The objects the frames are prepared from (None: all). Only meetings read Event, Contact,
    OpportunityContactRole and Account, only POVs their own object; references are checked
    against User and Opportunity, which are always read, so leaving the others unread changes
    no row of the rest."""
    if "meetings" in frames:
        return None
    return BASE_OBJECTS + ((POV,) if frames & {"povs", "pov_owners"} else ())


def columns_read(frames: set[str]) -> dict[str, list[str]] | None:
    """{object: the columns the frames are prepared from}, for the objects that are worth it."""
    if "meetings" in frames:
        return None
    return {"Task": list(dict.fromkeys(c for f in ("", *sorted(frames)) for c in TASK_COLUMNS.get(f, ())))}


def run_backtest(
    cfg: Config, plan_: Plan, progress: Callable[[int, int, date], None] | None = None
) -> Iterator[DayResult]:
    """Evaluate ``cfg``'s enabled workflows (a draft's, see ``draft_config``) on each planned day.

    ``progress(done, total, day)`` is called before each day (the Slack app's progress message).
    """
    workflows = cfg.enabled_workflows()
    frames = {wf.frame for wf in workflows.values()}
    objects, columns = objects_read(frames), columns_read(frames)
    total = len(plan_.days)
    last: tuple[str, Snapshot] | None = None  # the snapshot read last: the next day's previous one
    for n, (day, location, previous) in enumerate(plan_.days):
        if progress is not None:
            progress(n, total, day)
        try:
            snapshot = read_snapshot(location, cfg, objects=objects, columns=columns)
            before = None
            if previous and "changes" in frames:
                # Of the previous snapshot the change frame reads its opportunities, the same
                # rows whichever other objects were read with them.
                before = last[1] if last and last[0] == previous else read_snapshot(previous, cfg, objects=PREVIOUS_OBJECTS)
        except SnapshotError as exc:
            raise SnapshotError(f"{day.isoformat()}: {exc}") from None
        last = (location, snapshot)
        w = RunWindow.of(day)
        with gc_paused():
            prepared, d = prepare_frames(snapshot, before, cfg, w, only=frames)
            alerts = column_alerts(prepared, d, workflows, {**cfg.params(), "as_of": w.as_of})
        yield summarize(day, alerts)
