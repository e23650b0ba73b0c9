"""The demo's week at a small scale: the real DAGs for two days with one ledger, one alert state
and one outbox, the org evolving between days (`make demo` at full scale)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e
AS_OF = "2026-11-24"


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    root = tmp_path_factory.mktemp("week")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SA_HYGIENE_", "AIRFLOW"))}
    r = subprocess.run([sys.executable, "-m", "sa_hygiene", "demo", "--dir", str(root), "--as-of", AS_OF,
                        "--scale", "0.05", "--days", "2"], env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root, r.stdout


def test_every_day_ran_on_one_store_ledger_and_outbox(week):
    root, stdout = week
    assert "FAILED" not in stdout
    days = json.loads((root / "outbox" / "days.json").read_text())
    assert [d["day"] for d in days] == ["2026-11-24", "2026-11-25"]
    assert all(d["alerts"] > 0 and d["messages"] > 0 for d in days)
    assert len([p for p in (root / "store").iterdir() if p.name[:1].isdigit()]) == 3  # the day before, and two
    # Episodes end once people fix things; nothing can have ended on the first day.
    assert days[0]["ended"] == 0 and days[1]["ended"] > 0
    for d in days:
        assert f"{d['day']}: {d['alerts']:,} alerts" in stdout
    assert "fixed claims in digests" in stdout


def test_people_acted_between_days_through_the_real_code_paths(week):
    root, stdout = week
    acts = json.loads((root / "org" / "days" / "2026-11-25.json").read_text())
    assert acts["fixed"] and len(acts["reassigned"]) == 1 and len(acts["closed"]) == 1
    assert acts["new_meetings"] > 0
    from sa_hygiene.state.alerts import AlertState

    with AlertState(f"sqlite:///{root / 'ledger.sqlite'}") as state:
        snoozes = state.all_snoozes()
        assert state.first_recorded().isoformat() == AS_OF
    snoozed = acts["snoozed"]
    assert {(s["workflow"], s["record_id"][:15]) for s in snoozed} == {(s["workflow"], s["record_key"]) for s in snoozes}
    # From the second day items are a day old, which a demo of several days escalates.
    assert "sa_escalations" in stdout
    days = json.loads((root / "outbox" / "days.json").read_text())
    assert days[0]["escalated"] == 0 and days[1]["escalated"] > 0


def test_the_outbox_preview_has_a_day_selector_and_shows_item_menus(week):
    root, _ = week
    index = (root / "outbox" / "index.html").read_text()
    assert all(f'href="#d{d}"' in index for d in ("2026-11-24", "2026-11-25"))
    previews = [p.read_text() for p in (root / "outbox").glob("sa_dm_digests*/preview.html")]
    assert any('class="days"' in p and "Snooze 7 days" in p and "Not mine" in p for p in previews)


def test_each_new_activity_is_its_own_post_in_the_preview(week):
    # Spec v3: the day's activities as they happen, one message each with its button; the 08:00
    # regional digests no longer list them.
    root, stdout = week
    assert "sa_activity_posts" in stdout
    posts = [p.read_text() for p in (root / "outbox").glob("sa_activity_posts*/preview.html")]
    assert any("Update Activity" in p and "New activity logged" in p for p in posts)
    digests = [p.read_text() for p in (root / "outbox").glob("sa_regional_digest*/preview.html")]
    assert digests and not any("New activity logged" in p for p in digests)
