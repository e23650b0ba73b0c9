from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sa_hygiene.contract.schedule import digest_window, due_in

pytestmark = pytest.mark.unit
ZONES = {"ny": "America/New_York", "london": "Europe/London", "sydney": "Australia/Sydney",
         "kolkata": "Asia/Kolkata", "kathmandu": "Asia/Kathmandu", "adelaide": "Australia/Adelaide",
         "unknown": "Mars/Olympus", "blank": None}  # fmt: skip


def serve_day(day: date) -> dict[str, list[datetime]]:
    """Every 15-minute run of a UTC day (and the next, for zones west of UTC): who was served when."""
    served: dict[str, list[datetime]] = {}
    start = datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=1)
    for i in range(4 * 24 * 3):
        a, b = start + timedelta(minutes=15 * i), start + timedelta(minutes=15 * (i + 1))
        for key, local in due_in(a, b, ZONES, "16:00").items():
            if local == day:
                served.setdefault(key, []).append(a)
    return served


@pytest.mark.parametrize("day", [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 10, 4),
                                 date(2026, 10, 25), date(2026, 11, 1), date(2026, 11, 24)])  # fmt: skip
def test_everyone_served_exactly_once_at_local_1600_across_the_dst_changes_of_2026(day):
    served = serve_day(day)
    assert set(served) == set(ZONES)
    for key, instants in served.items():
        assert len(instants) == 1, (key, instants)
        tz = ZoneInfo(ZONES[key]) if ZONES[key] in (z for z in ZONES.values() if z and "/" in z and z != "Mars/Olympus") else UTC
        local = instants[0].astimezone(tz)
        assert (local.hour, local.minute) == (16, 0), (key, local)


def test_the_utc_instant_moves_with_dst_the_local_one_does_not():
    def utc_of(key, day):
        (instant,) = serve_day(day)[key]
        return instant.strftime("%H:%M")

    assert utc_of("ny", date(2026, 3, 7)) == "21:00" and utc_of("ny", date(2026, 3, 9)) == "20:00"
    assert utc_of("london", date(2026, 3, 28)) == "16:00" and utc_of("london", date(2026, 3, 30)) == "15:00"
    assert utc_of("kathmandu", date(2026, 6, 1)) == "10:15" and utc_of("kolkata", date(2026, 6, 1)) == "10:30"
    assert utc_of("adelaide", date(2026, 4, 4)) == "05:30" and utc_of("adelaide", date(2026, 4, 6)) == "06:30"


def test_digest_window_runs_from_the_previous_local_0800_even_on_a_25_hour_day():
    tz = "America/New_York"
    run = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST: DST ended at 02:00 that morning
    day, since, until = digest_window(run, tz, "08:00")
    assert day == date(2026, 11, 1)
    assert since == datetime(2026, 10, 31, 12, 0, tzinfo=UTC) and until == run  # 08:00 EDT, 25 hours before
    assert until - since == timedelta(hours=25)
    day, since, until = digest_window(run, tz, "08:00", as_of=date(2026, 7, 1))
    assert (day, since.astimezone(UTC).hour, until.astimezone(UTC).hour) == (date(2026, 7, 1), 12, 12)
