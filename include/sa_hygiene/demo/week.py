"""The demo's week: how the demo org changes from one day to the next.

A one-day demo shows what the digests say; only a second day shows whether they tell the
truth ("3 fixed since your last digest", "open 4 days", escalations). So each later day is
yesterday's org plus what people did in between, drawn with a generator seeded by the demo's
seed and the day (the same week every time):

- some SAs fix records: they change the very fields the complaint reads (a Primary SA set,
  tech evaluation dates and close status filled in, a task due today completed);
- some log a meeting late (an activity for yesterday's unlogged meeting);
- some snooze an item, through the alert state's ``snooze`` (the code path of the Slack
  app's Snooze button);
- one opportunity's Primary SA is reassigned, one open opportunity is closed (lost);
- yesterday's changes feed (meetings booked, activities logged) lands in the org, and a new
  day of bookings and activities is drawn for the feed.

``fields_of`` says which Salesforce fields a workflow's complaint reads: the false-claims
check (``demo/claims.py``) uses it to tell a real fix from a record that merely left a window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Share of the SAs with open DM items who fix up to FIXES_EACH of them overnight, and who snooze one.
FIXERS, FIXES_EACH, SNOOZERS, LATE_LOGS = 0.35, 3, 0.12, 0.3
SNOOZE_DAYS = 7
TE_FIELDS = {"te_start", "te_end", "te_status", "te_details"}
# Complaint columns a frame derives rather than reads, and the fields an SA changes to meet them:
# a task is "due today" until it is completed (or re-dated).
DERIVED = {("Task", "activity_date"): ("ActivityDate", "Status", "IsClosed")}
STAMP = "%Y-%m-%dT%H:%M:%S.000+0000"


@dataclass
class DayActions:
    """What the people of the demo did before a day's snapshot (printed, and kept in org/days/)."""

    day: str
    fixed: list[dict] = field(default_factory=list)  # {workflow, object, record_id, fields}
    logged_late: list[str] = field(default_factory=list)  # Event Ids
    snoozed: list[dict] = field(default_factory=list)
    reassigned: list[dict] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    new_meetings: int = 0
    new_activities: int = 0

    def line(self) -> str:
        return (f"{len(self.fixed)} records fixed, {len(self.logged_late)} meetings logged late, "
                f"{len(self.snoozed)} items snoozed, {len(self.reassigned)} reassigned, {len(self.closed)} closed, "
                f"{self.new_meetings} meetings booked, {self.new_activities} activities logged")  # fmt: skip


def fields_of(cfg, workflow: str) -> list[str] | None:
    """The Salesforce fields a workflow's complaint reads (its expectations' columns), or None
    when a column is derived from other records (a meeting's "logged"): then any change counts."""
    from sa_hygiene.contract.schema import OBJECTS

    wf = cfg.workflows[workflow]
    fields = OBJECTS[wf.object]
    out: list[str] = []
    for e in wf.expect:
        for column in (e.column, e.other):
            if column is None:
                continue
            if (wf.object, column) in DERIVED:
                out += DERIVED[wf.object, column]
            elif column in fields:
                out.append(cfg.api_name(wf.object, column))
            else:
                return None
    return sorted(set(out))


class Week:
    """The demo org's tables across days; ``next_day`` writes the org of the following day."""

    def __init__(self, org: Path, as_of: date, scale: float, seed: int):
        from sa_hygiene.demo.org import DemoOrg

        self.org, self.as_of, self.seed = org, as_of, seed
        self.demo = DemoOrg(as_of, scale=scale, seed=seed)
        _, self.users = self.demo.users()
        acc_table, account_ids, domains = self.demo.accounts()
        self.contacts = self.demo.contacts(account_ids, domains)
        names = np.asarray(acc_table.column("Name").to_pylist(), dtype=object)
        o = self.demo.opportunities(self.users, account_ids, names)
        contact_ids = np.asarray(self.contacts[0].column("Id").to_pylist(), dtype=object)
        self.roles = self.demo.contact_roles(o, self.contacts[1], contact_ids)

    def _read(self, obj: str):
        return pq.read_table(self.org / "current" / f"{obj}.parquet")

    def _write(self, obj: str, frame, schema: pa.Schema) -> None:
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        pq.write_table(table, self.org / "current" / f"{obj}.parquet", compression="zstd")

    def next_day(self, day: date, alerts: list[dict], state, cfg) -> DayActions:
        """Write the org of ``day`` (yesterday's org, yesterday's feed and the night's actions) and
        the feed of ``day``; ``alerts`` are yesterday's, the items people act on."""
        import pandas as pd

        k = (day - self.as_of).days
        rng = np.random.default_rng([self.seed, 2100, k])
        acts = DayActions(day.isoformat())
        stamp = datetime.combine(day - timedelta(days=1), dtime(18), UTC).strftime(STAMP)
        tables = {o: self._read(o) for o in ("Opportunity", "Task", "Event", "User")}
        frames = {o: t.to_pandas() for o, t in tables.items()}
        # Yesterday's feed is in today's snapshot.
        for obj in ("Event", "Task"):
            stream = pq.read_table(self.org / "changes" / f"{obj}.parquet").cast(tables[obj].schema).to_pandas()
            frames[obj] = pd.concat([frames[obj], stream[~stream["Id"].isin(frames[obj]["Id"])]], ignore_index=True)
        opp, task, event, users = (frames[o] for o in ("Opportunity", "Task", "Event", "User"))
        opp_at = {i: n for n, i in enumerate(opp["Id"])}
        task_at = {i: n for n, i in enumerate(task["Id"])}
        email = dict(zip(users["Id"], users["Email"], strict=True))
        sas = users.loc[users["IsActive"] & (users["User_Role_Type__c"] == "SA"), "Id"].to_numpy()

        from sa_hygiene.contract.recipients import as_recipient

        dm = [{**a, "to": as_recipient(a["recipient"])} for a in alerts if a["workflow"] in cfg.workflows
              and cfg.workflows[a["workflow"]].slot == "sa_digest"]  # fmt: skip
        dm = [a for a in dm if a["to"]["type"] == "user"]
        people = sorted({a["to"]["id"] for a in dm})
        roll = rng.random(len(people))
        fixers = {p for p, r in zip(people, roll, strict=True) if r < FIXERS}
        snoozers = {p for p, r in zip(people, roll, strict=True) if FIXERS <= r < FIXERS + SNOOZERS}
        done: set[tuple[str, str]] = set()
        for person in people:
            mine = sorted((a for a in dm if a["to"]["id"] == person), key=lambda a: (a["workflow"], a["record_id"]))
            if person in fixers:
                picks = rng.permutation(len(mine))
                n = 0
                for i in picks:
                    a = mine[i]
                    if n >= FIXES_EACH or (a["workflow"], a["record_id"]) in done:
                        continue
                    changed = self._fix(a, cfg, opp, opp_at, task, task_at, sas, rng, day, stamp)
                    if changed:
                        done.add((a["workflow"], a["record_id"]))
                        acts.fixed.append({"workflow": a["workflow"], "object": a["object"], "record_id": a["record_id"],
                                           "fields": changed})  # fmt: skip
                        if a["object"] == "Task":
                            acts.completed.append(a["record_id"])
                        n += 1
            elif person in snoozers and mine:
                a = mine[int(rng.integers(len(mine)))]
                state.snooze(a["workflow"], a["record_id"], day + timedelta(days=SNOOZE_DAYS - 1),
                             "demo: waiting on the customer", email.get(person, person))  # fmt: skip
                acts.snoozed.append({"workflow": a["workflow"], "record_id": a["record_id"], "by": email.get(person)})

        # One reassignment and one closed deal, among opportunities that have an open DM item.
        opp_items = sorted({a["record_id"] for a in dm if a["object"] == "Opportunity" and a["record_id"] in opp_at
                            and not any(a["record_id"] == d[1] for d in done)})  # fmt: skip
        if len(opp_items) >= 2:
            first, second = rng.choice(len(opp_items), size=2, replace=False)
            i = opp_at[opp_items[first]]
            old = opp.at[i, "Solution_Architect__c"]
            new = str(rng.choice([s for s in sas if s != old]))
            opp.loc[i, ["Solution_Architect__c", "LastModifiedDate", "SystemModstamp"]] = [new, stamp, stamp]
            acts.reassigned.append({"record_id": opp_items[first], "from": old, "to": new})
            j = opp_at[opp_items[second]]
            opp.loc[j, ["StageName", "IsClosed", "IsWon", "LastModifiedDate", "SystemModstamp"]] = \
                ["8-Closed Lost", True, False, stamp, stamp]
            acts.closed.append(opp_items[second])

        # Meetings logged late: an activity for some of yesterday's unlogged meetings.
        # Reminders are the alerts on meetings (Events), whichever workflow the YAML names them.
        unlogged = sorted({a["record_id"] for a in alerts if a["object"] == "Event"})
        late = [e for e, r in zip(unlogged, rng.random(len(unlogged)), strict=True) if r < LATE_LOGS]
        if late:
            rows = event[event["Id"].isin(late)]
            task = pd.concat([task, self._late_logs(rows, k, day).cast(tables["Task"].schema).to_pandas()], ignore_index=True)
            acts.logged_late = rows["Id"].tolist()

        self._write("Opportunity", opp, tables["Opportunity"].schema)
        self._write("Task", task, tables["Task"].schema)
        self._write("Event", event, tables["Event"].schema)
        acts.new_meetings, acts.new_activities = self._feed(day, k)
        (self.org / "days").mkdir(exist_ok=True)
        (self.org / "days" / f"{day}.json").write_text(json.dumps(acts.__dict__, indent=1, default=str))
        return acts

    def _fix(self, a, cfg, opp, opp_at, task, task_at, sas, rng, day: date, stamp: str) -> list[str]:
        """Change what the complaint reads so the record passes; [] when this demo cannot."""
        wf = cfg.workflows[a["workflow"]]
        columns = {c for e in wf.expect for c in (e.column, e.other) if c}
        # A workflow about open tasks (wf-11, due today or overdue) is met by completing the task.
        if a["object"] == "Task" and "not is_closed" in (wf.scope or "") and a["record_id"] in task_at:
            i = task_at[a["record_id"]]
            task.loc[i, ["Status", "IsClosed", "LastModifiedDate", "SystemModstamp"]] = ["Completed", True, stamp, stamp]
            return ["Status", "IsClosed"]
        if a["object"] != "Opportunity" or a["record_id"] not in opp_at or not columns <= TE_FIELDS | {"sa"}:
            return []
        i = opp_at[a["record_id"]]
        changed = []
        if "sa" in columns and not isinstance(opp.at[i, "Solution_Architect__c"], str):
            opp.at[i, "Solution_Architect__c"] = str(rng.choice(sas))
            changed.append("Solution_Architect__c")
        if columns & TE_FIELDS:
            start = opp.at[i, "SA_Validated_Tech_Evaluation_Start_Date__c"]
            if not isinstance(start, str) or start >= day.isoformat():
                start = (day - timedelta(days=30)).isoformat()
            values = {"SA_Validated_Tech_Evaluation_Start_Date__c": start,
                      "SA_Validated_Tech_Evaluation_End_Date__c": max(start, (day - timedelta(days=1)).isoformat()),
                      "SA_Validated_Tech_Evaluation_Close_Statu__c": "Win",
                      "SA_Validated_Tech_Evaluation_Close_Details__c": "Validated with the customer's platform team."}  # fmt: skip
            for name, value in values.items():
                if opp.at[i, name] != value:
                    opp.at[i, name] = value
                    changed.append(name)
        if changed:
            opp.loc[i, ["LastModifiedDate", "SystemModstamp"]] = [stamp, stamp]
        return changed

    def _late_logs(self, events, k: int, day: date) -> pa.Table:
        from sa_hygiene.contract.schema import PREFIX
        from sa_hygiene.demo.org import _meeting_logs, sf_ids

        index = {u: n for n, u in enumerate(self.users.ids)}
        keep = events[events["OwnerId"].isin(index)]
        start = [datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp() for s in keep["StartDateTime"]]
        created = datetime.combine(day - timedelta(days=1), dtime(17), UTC).timestamp()
        return _meeting_logs(sf_ids(PREFIX["Task"], len(keep), offset=self.demo.n["Task"] + 20000 + 1000 * k), self.users,
                             np.array([index[o] for o in keep["OwnerId"]], dtype=int), pa.array([w if isinstance(w, str) else None for w in keep["WhatId"]], pa.string()),
                             pa.array(keep["Subject"].tolist(), pa.string()), np.array(start), np.full(len(keep), created))  # fmt: skip

    def _feed(self, day: date, k: int) -> tuple[int, int]:
        """The day's bookings and logged activities for the changes feed, with Ids of their own."""
        from sa_hygiene.contract.schema import PREFIX
        from sa_hygiene.demo.org import sf_ids

        seed, as_of = self.demo.seed, self.demo.as_of
        self.demo.seed, self.demo.as_of = self.seed * 1000 + k, day
        try:
            events, tasks = self.demo.day_changes(self.users, self.contacts, self.roles)
        finally:
            self.demo.seed, self.demo.as_of = seed, as_of
        events = events.set_column(0, "Id", pa.array(sf_ids(PREFIX["Event"], events.num_rows, offset=self.demo.n["Event"] + 100 + 100 * k)))
        tasks = tasks.set_column(0, "Id", pa.array(sf_ids(PREFIX["Task"], tasks.num_rows, offset=self.demo.n["Task"] + 6000 + 100 * k)))
        pq.write_table(events, self.org / "changes" / "Event.parquet")
        pq.write_table(tasks, self.org / "changes" / "Task.parquet")
        return events.num_rows, tasks.num_rows
