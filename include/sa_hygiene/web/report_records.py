"""The records behind the report's numbers, and where each belongs.

A drill-down (the records one number counts), a record's line in it (label, Salesforce link, a
few facts), whose and which region's an alert is, and the fiscal quarter the evaluation figures
cover. Apart from ``report_model`` so that the model reads as the page's sections; pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from sa_hygiene.contract import schema
from sa_hygiene.contract.config import Config
from sa_hygiene.engine.routing import Directory
from sa_hygiene.source.snapshot import Snapshot

# The region of an alert no routing rule places.
UNROUTED = "(unrouted)"


@dataclass(frozen=True)
class Quarter:
    start: date
    end: date  # the last day, included
    label: str

    def holds(self, days: pd.Series) -> pd.Series:
        """Which dates (naive midnight timestamps) fall in the quarter, both ends included."""
        return (days >= pd.Timestamp(self.start)) & (days <= pd.Timestamp(self.end))


def fiscal_quarter(day: date, start_month: int) -> Quarter:
    """The fiscal quarter holding ``day`` when the fiscal year starts in ``start_month``.

    A fiscal year is named by the calendar year it ends in (GitLab's FY27 runs from
    February 2026 to January 2027), except when it starts in January.
    """
    offset = (day.month - start_month) % 12
    number = offset // 3 + 1
    first_month = (start_month - 1 + (number - 1) * 3) % 12 + 1
    start = date(day.year if first_month <= day.month else day.year - 1, first_month, 1)
    after = date(start.year + (start.month + 2) // 12, (start.month + 2) % 12 + 1, 1)
    fy_start_year = day.year if day.month >= start_month else day.year - 1
    fiscal_year = fy_start_year + (0 if start_month == 1 else 1)
    return Quarter(start, after - timedelta(days=1), f"FY{fiscal_year % 100:02d}-Q{number}")


def slug(*parts: Any) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", str(p).lower()).strip("-") or "x" for p in parts)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def date_cell(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


@dataclass
class Drill:
    """The records behind one number: rendered once, as a <details> the number links to."""

    id: str
    title: str
    rows: list[dict] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rows)


class Records:
    """Record lines (label, Salesforce link, a few facts) for the drill-downs of one snapshot."""

    def __init__(self, snapshot: Snapshot, directory: Directory, cfg: Config):
        self.instance = cfg.salesforce.instance_url.rstrip("/")
        self.d = directory
        self.tables = {obj: t.set_index("key", drop=False) for obj, t in snapshot.tables.items()}

    def url(self, obj: str, record_id: Any) -> str | None:
        return f"{self.instance}/lightning/r/{obj}/{record_id}/view" if isinstance(record_id, str) else None

    def user_name(self, user_id: Any) -> str:
        key = user_id[:15] if isinstance(user_id, str) else None
        name = self.d.users["name"].get(key) if key else None
        return name if isinstance(name, str) else as_text(user_id)

    def row(self, obj: str, record_id: Any) -> dict:
        table = self.tables.get(obj)
        key = record_id[:15] if isinstance(record_id, str) else None
        if table is None or key is None or key not in table.index:
            return {}
        return table.loc[key].to_dict()

    def line(self, obj: str, record_id: Any, note: str = "") -> dict:
        """One drill-down row: what a manager needs to recognise the record, and its link."""
        r = self.row(obj, record_id)
        if obj == "Opportunity":
            sa = r.get("sa")
            facts = [as_text(r.get("stage")), f"IACV ${r.get('iacv') or 0:,.0f}",
                     f"SA {self.user_name(sa)}" if isinstance(sa, str) else "no Primary SA",
                     f"owner {self.user_name(r.get('owner_id'))}"]  # fmt: skip
            label = r.get("name")
        elif obj == "Task":
            facts = [", ".join(r.get("activity_types") or []), f"by {self.user_name(r.get('owner_id'))}",
                     date_cell(r.get("activity_date"))]  # fmt: skip
            label = r.get("subject") or "No subject"
        elif obj == "Event":
            facts = [f"by {self.user_name(r.get('owner_id'))}", date_cell(r.get("end"))]
            label = r.get("subject") or "Meeting"
        elif obj == "User":
            facts = [as_text(r.get("email"))]
            label = r.get("name")
        elif obj == "Proof_of_Value__c":
            facts = [as_text(r.get("status")), f"SA {self.user_name(r.get('owner_id'))}",
                     f"{date_cell(r.get('start_date')) or '—'} → {date_cell(r.get('end_date')) or '—'}",
                     as_text(r.get("result"))]  # fmt: skip
            label = r.get("name")
        else:
            facts, label = [], None
        return {"label": as_text(label) or as_text(record_id) or "(no Id)", "url": self.url(obj, record_id),
                "facts": " · ".join(f for f in facts if f), "note": note,
                "iacv": float(r.get("iacv") or 0) if obj == "Opportunity" else 0.0}  # fmt: skip


def reason_words(cfg: Config, reasons: Any) -> str:
    return "; ".join(cfg.reasons.get(r, r) for r in (list(reasons) if reasons is not None else []))


def responsible(alerts: pd.DataFrame, snapshot: Snapshot) -> tuple[pd.Series, pd.Series]:
    """(user the region is read from, the SA or owner who must act) of each alert.

    An opportunity's region is its SA's when set, else its owner's (WORKFLOWS.md); the
    person who must act on it is its SA. A task, meeting or Proof of Value belongs to its owner; an
    alert about a user (pov-load) to that user.
    """
    keys = alerts["record_id"].astype(str).str.slice(0, 15)
    by_region = pd.Series(None, index=alerts.index, dtype=object)
    person = pd.Series(None, index=alerts.index, dtype=object)
    users = alerts["object"] == "User"
    by_region[users] = alerts["record_id"][users]
    person[users] = alerts["record_id"][users]
    for obj in ("Opportunity", "Task", "Event", "Proof_of_Value__c"):
        mine = alerts["object"] == obj
        if not mine.any() or obj not in snapshot.tables:
            continue
        table = snapshot[obj].set_index("key")
        owner = keys[mine].map(table["owner_id"])
        if obj == "Opportunity":
            sa = keys[mine].map(table["sa"])
            by_region[mine] = sa.where(sa.notna(), owner)
            person[mine] = sa
        else:
            by_region[mine] = owner
            person[mine] = owner
    return by_region, person


def region_of(users: pd.Series, d: Directory) -> pd.Series:
    """Region key of each referenced user; ``(unrouted)`` when no routing rule matches."""
    region = users.astype(object).where(users.notna(), "").str.slice(0, 15).map(d.region)
    return region.fillna(UNROUTED).astype(object)


def object_of(record_id: str) -> str:
    """The object of a suggested record's or a snooze's Id (an opportunity or an account)."""
    return schema.object_of(record_id, ("Opportunity", "Account"))
