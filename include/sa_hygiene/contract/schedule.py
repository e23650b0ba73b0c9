"""When messages go out (WORKFLOWS.md § "When messages go out"), as plain time arithmetic.

Light on purpose (zoneinfo only): DAG files call it at parse time to build their
timetables, and the tests check it without a scheduler.

- Regional digests: 08:00 in each region's zone, a cron evaluated in that zone, so
  DST moves the UTC instant and never the local one.
- SA digests: a run every 15 minutes delivers to the users whose local 16:00 falls in
  its interval ``[start, end)``. Every zone's offset is a multiple of 15 minutes
  (India +05:30, Nepal +05:45), so each local 16:00 lands in exactly one interval:
  nobody gets two digests or none, DST changes included.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def cron_at(value: str) -> str:
    """``"08:00"`` -> ``"0 8 * * *"``."""
    t = hhmm(value)
    return f"{t.minute} {t.hour} * * *"


def zone(name: str | None) -> ZoneInfo:
    """The zone of a TimeZoneSidKey; UTC when blank or unknown (a user is not dropped for it)."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def due_in(start: datetime, end: datetime, zones: dict[str, str | None], at: str) -> dict[str, date]:
    """Which keys (users) have their local ``at`` in ``[start, end)``, and their local date then.

    ``zones`` maps a key to its IANA zone name. Computed once per distinct zone.
    """
    t = hhmm(at)
    by_zone: dict[str | None, list[str]] = {}
    for key, name in zones.items():
        by_zone.setdefault(name, []).append(key)
    due: dict[str, date] = {}
    for name, keys in by_zone.items():
        tz = zone(name)
        days = {start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz).date()}
        for day in sorted(days):
            instant = local_instant(day, t, tz)
            if start <= instant < end:
                for key in keys:
                    due[key] = day
    return due


def previous_occurrence(moment: datetime, at: str, tz: ZoneInfo) -> datetime:
    """The local ``at`` one calendar day before ``moment``'s own local ``at`` (23 or 25 hours on DST days)."""
    local = moment.astimezone(tz)
    return local_instant(local.date() - timedelta(days=1), hhmm(at), tz)


def digest_window(moment: datetime, tz_name: str, at: str, as_of: date | None = None) -> tuple[date, datetime, datetime]:
    """(as_of, since, until) of a digest run: since the previous day's local ``at``, until this run.

    ``as_of`` (a run by hand for another day) moves the window to that day's local ``at``.
    """
    tz = zone(tz_name)
    until = local_instant(as_of, hhmm(at), tz) if as_of else moment
    day = as_of or until.astimezone(tz).date()
    return day, previous_occurrence(until, at, tz), until


def regional_digest_dag_id(region_key: str) -> str:
    """The DAG that posts a region's 08:00 digest: ``east-sa`` -> ``sa_regional_digest_east_sa``
    (the DAG file generates one per region; the demo fires them by the same name)."""
    return "sa_regional_digest_" + re.sub(r"[^A-Za-z0-9_]", "_", region_key)
