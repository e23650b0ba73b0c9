"""``make demo``: the real DAGs, end to end, for one simulated day, on the embedded default.

Everything lives under one folder (``.demo`` by default): the demo org, a configuration that
points the snapshot DAG at it (``source.kind: folder``), the snapshot store, the Slack
outbox, the delivery ledger and an Airflow home with a SQLite metadata database. The DAGs
are the ones in ``dags/``, run with ``dag.test()`` at the instants their schedules would
fire on the simulated day: the 04:00 UTC snapshot, each region's 08:00, the fixed channels,
every SA's 16:00, the meeting reminders of the day, and the activity posts as they happen.
The hygiene report is written right after the snapshot, as the snapshot's asset triggers it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _configure(root: Path, days: int = 1) -> Path:
    """The demo's own configuration and Airflow environment (set before Airflow is imported).
    A demo of several days escalates after ESCALATE_AFTER days instead of a week, so that a
    short demo shows escalations too (nothing can escalate on the first day either way)."""
    cfg_path = root / "sa_hygiene.yaml"
    text = (
        "# Written by `make demo`: the embedded default, pointed at the demo org.\n"
        f"source: {{kind: folder, folder: {json.dumps(str(root / 'org' / 'current'))}}}\n"
        f"store: {{url: {json.dumps(str(root / 'store'))}}}\n"
        "slack:\n"
        "  delivery: outbox\n"
        f"  outbox: {json.dumps(str(root / 'outbox'))}\n"
        f"  ledger_url: {json.dumps('sqlite:///' + str(root / 'ledger.sqlite'))}\n"
    )
    if days > 1:
        from sa_hygiene.contract.config import load_config

        escalating = [w for w, wf in load_config(None).workflows.items() if wf.escalate_after_days]
        text += f"# Escalations after {ESCALATE_AFTER} days, so that a demo of {days} days shows some.\nworkflows:\n"
        text += "".join(f"  {w}: {{escalate_after_days: {ESCALATE_AFTER}}}\n" for w in escalating)
    cfg_path.write_text(text)
    home = root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "SA_HYGIENE_CONFIG": str(cfg_path),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "false",
    })  # fmt: skip
    for name in ("SA_HYGIENE_STORE", "SA_HYGIENE_OUTBOX", "SA_HYGIENE_LEDGER_URL", "SA_HYGIENE_DELIVERY"):
        os.environ.pop(name, None)
    return cfg_path


def _airflow(*args: str) -> None:
    exe = Path(sys.executable).with_name("airflow")
    subprocess.run([str(exe), *args], check=True, stdout=subprocess.DEVNULL)


def _runs(cfg, as_of: date) -> list[tuple[str, datetime, dict]]:
    """(dag_id, run instant, conf) of the simulated day, in the order they would fire."""
    from zoneinfo import ZoneInfo

    from sa_hygiene.contract.schedule import hhmm, local_instant, regional_digest_dag_id
    from sa_hygiene.source.snapshot import read_snapshot

    snapshot_at = datetime.combine(as_of, dtime(4), UTC)
    # The report runs on the snapshot's asset, right after it.
    runs = [("sa_snapshot", snapshot_at, {}), ("sa_report", snapshot_at, {})]
    at = hhmm(cfg.schedule.regional_digest_at)
    for key, region in cfg.regions.items():
        runs.append((regional_digest_dag_id(key), local_instant(as_of, at, ZoneInfo(region.timezone)), {}))
    runs.append(("sa_channel_posts", local_instant(as_of, at, ZoneInfo(cfg.schedule.fixed_channel_timezone)), {}))
    # Yesterday's meetings, as the 15-minute runs would have reminded of them.
    since = datetime.combine(as_of - timedelta(days=1), dtime(0), UTC)
    runs.append(("sa_meeting_reminders", since + timedelta(days=1),
                 {"since": since.isoformat(), "until": (since + timedelta(days=1)).isoformat()}))  # fmt: skip
    # The 15-minute runs in which someone's 16:00 falls.
    users = read_snapshot(cfg.source.folder, cfg, objects=("User",))["User"]
    sa_at = hhmm(cfg.schedule.sa_digest_at)
    ends = set()
    for name in users.loc[users["is_active"], "timezone"].dropna().unique():
        try:
            instant = local_instant(as_of, sa_at, ZoneInfo(name))
        except Exception:
            continue
        ends.add(instant.astimezone(UTC) + timedelta(minutes=15))
    runs += [("sa_dm_digests", end, {}) for end in sorted(ends)]
    # The day's own meetings, reminded on the changes the 15-minute feed pulled by then (every
    # few hours here, to keep the demo short; the windows follow each other without a gap).
    day = datetime.combine(as_of, dtime(0), UTC)
    for start, end in zip(REMINDER_HOURS, REMINDER_HOURS[1:], strict=False):
        since, until = day + timedelta(hours=start), day + timedelta(hours=end)
        runs.append(("sa_meeting_reminders", until, {"since": since.isoformat(), "until": until.isoformat()}))
    # Each new activity and Chorus call as its own post (spec v3), on the feed pulled by then: right
    # after the snapshot, then with each reminder run (every 15 minutes for real). Sorting is
    # stable: a posts run follows the reminders of its instant, and reads the changes they pulled.
    runs.append(("sa_activity_posts", snapshot_at, {}))
    runs += [("sa_activity_posts", day + timedelta(hours=h), {}) for h in REMINDER_HOURS[1:]]
    return sorted(runs, key=lambda r: r[1].astimezone(UTC))


# Reminder runs of the simulated day (UTC hours): each covers the meetings that ended since the last.
REMINDER_HOURS = (0, 10, 14, 18, 24)


def _pull_changes(cfg, org: Path, at: datetime) -> dict | None:
    """What ``sa_changes`` would have pulled by ``at`` (the demo org's stream up to then), as the
    latest snapshot's next changes version; a folder source has no Salesforce to pull from."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from sa_hygiene.source.store import ChangesFeed, SnapshotStore

    store = SnapshotStore(cfg.store.url, keep=cfg.store.keep)
    latest = store.latest()
    if latest is None or latest.taken_at > at:
        return None
    feed = ChangesFeed(store, latest)
    staged = feed.stage()
    rows = {}
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S")
    for obj in ("Event", "Task"):
        table = pq.read_table(org / "changes" / f"{obj}.parquet")
        # ISO strings of one format compare like the instants they name.
        table = table.filter(pc.less_equal(pc.utf8_slice_codeunits(table["SystemModstamp"], 0, 19), stamp))
        pq.write_table(table, f"{staged.removeprefix('file://')}/{obj}.parquet")
        rows[obj] = table.num_rows
    return feed.commit(staged, {"high_water_mark": at.isoformat(), "pulled_at": at.isoformat(), "rows": rows,
                                "api_calls": 0, "source": "demo stream"}, cfg=cfg)  # fmt: skip


def _already_logged(cfg, changes: dict, since: datetime, until: datetime) -> int:
    """Reminders a run did not send because the SA had logged the meeting by then: its wf-01
    alerts with the changes' meetings but without their logged activities, minus the real ones."""
    import tempfile

    import pyarrow.parquet as pq

    from sa_hygiene.engine.rules import evaluate_snapshots
    from sa_hygiene.source.store import SnapshotStore

    latest = SnapshotStore(cfg.store.url, keep=cfg.store.keep).latest()
    folder = Path(changes["folder"].removeprefix("file://"))
    counts = []
    with tempfile.TemporaryDirectory(prefix="sa-demo-") as tmp:
        pq.write_table(pq.read_table(folder / "Event.parquet"), Path(tmp) / "Event.parquet")
        for source in (tmp, str(folder)):
            result = evaluate_snapshots(latest, None, cfg, until.date(), since, until, changes=source,
                                        slots={"meeting_reminder"})  # fmt: skip
            counts.append(len(result.alerts))
    return counts[0] - counts[1]


def run_demo(root: Path, as_of: date, scale: float = 1.0, days: int = 1, seed: int = 7) -> int:
    """Run the demo for ``days`` days from ``as_of``: one ledger, one alert state and one outbox
    across them, the org evolved between days by ``demo/week.py``."""
    root = root.resolve()
    started = time.perf_counter()
    from sa_hygiene.demo.org import write_demo_org

    meta = write_demo_org(root / "org", as_of, scale=scale, seed=seed)
    print(f"Demo org for {as_of} (scale {scale:g}) in {root / 'org'}: "
          + ", ".join(f"{k} {v:,}" for k, v in meta["rows"].items()))  # fmt: skip

    for stale in ("store", "outbox", "ledger.sqlite", "org/days"):
        path = root / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    cfg_path = _configure(root, days)
    _airflow("db", "migrate")
    _airflow("pools", "set", "salesforce_api", "2", "Concurrent Salesforce API work")
    _airflow("pools", "set", "slack_api", "4", "Concurrent Slack delivery")

    from sa_hygiene.contract.config import load_config
    from sa_hygiene.source.store import SnapshotStore

    cfg = load_config(cfg_path)
    store = SnapshotStore(cfg.store.url, keep=cfg.store.keep)
    store.commit_folder(root / "org" / "previous", datetime.combine(as_of - timedelta(days=1), dtime(4), UTC),
                        "demo:previous", cfg=cfg)  # fmt: skip

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"DAG import error in {path}:\n{error}", file=sys.stderr)
        return 1
    # dag.test() runs the execution API in-process through starlette's test client, which warns
    # about its own dependencies: nothing the user can act on.
    warnings.filterwarnings("ignore", message=r".*starlette\.testclient.*")
    failed: list[str] = []
    figures: list[dict] = []
    week = alerts = None
    for k in range(days):
        day = as_of + timedelta(days=k)
        actions = None
        if k:
            from sa_hygiene.demo.week import Week
            from sa_hygiene.state.alerts import open_state

            week = week or Week(root / "org", as_of, scale, seed)
            with open_state(cfg) as state:
                actions = week.next_day(day, alerts, state, cfg)
            print(f"\nOvernight before {day}: {actions.line()}")
        print(f"\nRunning {len(bag.dags)} DAGs of {REPO / 'dags'} for {day} (Airflow home {os.environ['AIRFLOW_HOME']}):")
        before = set((root / "outbox").glob("*")) if (root / "outbox").exists() else set()
        not_reminded, escalated = _run_day(bag, cfg, root, day, first=not k, escalate=k >= ESCALATE_AFTER, failed=failed)
        folders = sorted(set((root / "outbox").glob("*")) - before) if (root / "outbox").exists() else []
        result = _evaluate(cfg, root, day)
        alerts = result.alerts.to_dict("records")
        figures.append(_figures(cfg, day, result, folders, escalated))
        print("  " + _figure_line(figures[-1]))
        if k == days - 1:
            _summary(cfg, root, day, result)
            stream = json.loads((root / "org" / "days" / f"{day}.json").read_text()) if k else meta
            booked = stream.get("changes", {}).get("Event", stream.get("new_meetings", 0))
            logged = stream.get("changes", {}).get("Task", stream.get("new_activities", 0))
            print(f"\nChanges feed on {day}: {booked} meetings booked and {logged} activities logged after "
                  f"the snapshot; {not_reminded} reminders not sent because the SA had already logged the meeting.")  # fmt: skip
    _write_days(root, figures)
    from sa_hygiene.delivery.preview import write_outbox_index

    index = write_outbox_index(root / "outbox")
    print(f"  preview of every message{', day by day' if days > 1 else ''}: {index}")
    if days > 1:
        from sa_hygiene.demo.claims import check_claims, claims_line

        print(f"\nThe demo's {days} days:")
        for f in figures:
            print("  " + _figure_line(f))
        print("\nFixed claims of the digests against the org (a claim is false when the record is unchanged in the\n"
              "fields its complaint reads; bench/fixed_claims.py runs this check on any demo folder):")
        for day, f in zip(check_claims(root, cfg), figures, strict=True):
            print("  " + claims_line(day, f))
    print(f"\nDone in {time.perf_counter() - started:.0f}s." + (f" FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


# A demo of several days escalates items open this many days (the default is a week), so that
# its second day already shows escalations next to the fixes and snoozes.
ESCALATE_AFTER = 1


def _run_day(bag, cfg, root: Path, day: date, *, first: bool, escalate: bool, failed: list[str]) -> tuple[int, int]:
    """The day's DAG runs, in the order they would fire; (reminders not sent thanks to early logs,
    items escalated)."""
    from sa_hygiene.pipeline.escalations import escalations

    not_reminded = escalated = 0
    runs = _runs(cfg, day)
    if not first:
        # Yesterday's last reminder run covered its meetings already (and has this very run id).
        runs = [r for r in runs if not (r[0] == "sa_meeting_reminders" and r[1] == datetime.combine(day, dtime(0), UTC))]
    if escalate:
        runs = sorted(runs + _escalation_runs(cfg, day), key=lambda r: r[1].astimezone(UTC))
    for dag_id, instant, conf in runs:
        t0 = time.perf_counter()
        changes = None
        if dag_id == "sa_meeting_reminders" and instant > datetime.combine(day, dtime(4), UTC):
            changes = _pull_changes(cfg, root / "org", instant)
        dag = bag.dags[dag_id]
        run = dag.test(run_after=instant, logical_date=instant, run_conf=conf or None)
        state = getattr(run, "state", "?")
        print(f"  {instant.astimezone(UTC):%H:%M} UTC  {dag_id:<46} {state}  ({time.perf_counter() - t0:.1f}s)")
        if str(state) != "success":
            failed.append(f"{dag_id}@{instant:%Y-%m-%dT%H:%M}")
        if changes is not None:
            not_reminded += _already_logged(cfg, changes, datetime.fromisoformat(conf["since"]), instant)
        if dag_id == "sa_escalations":
            escalated += len(escalations(cfg, instant - timedelta(minutes=15), instant).items)
    return not_reminded, escalated


def _escalation_runs(cfg, day: date) -> list[tuple[str, datetime, dict]]:
    """The 15-minute ``sa_escalations`` runs in which a manager's 08:00 falls."""
    from zoneinfo import ZoneInfo

    from sa_hygiene.contract.schedule import hhmm, local_instant
    from sa_hygiene.source.snapshot import read_snapshot

    users = read_snapshot(cfg.source.folder, cfg, objects=("User",))["User"]
    managers = set(users["manager_id"].dropna().astype(str).str[:15])
    bosses = users[users["is_active"] & users["id"].astype(str).str[:15].isin(managers)]
    at, ends = hhmm(cfg.schedule.escalation_at), set()
    for name in bosses["timezone"].dropna().unique():
        try:
            instant = local_instant(day, at, ZoneInfo(name))
        except Exception:
            continue
        ends.add(instant.astimezone(UTC) + timedelta(minutes=15))
    return [("sa_escalations", end, {}) for end in sorted(ends)]


def _evaluate(cfg, root: Path, day: date):
    from sa_hygiene.engine.rules import evaluate_snapshots

    latest = sorted(p for p in (root / "store").iterdir() if p.name[:1].isdigit())
    return evaluate_snapshots(str(latest[-1]), str(latest[-2]) if len(latest) > 1 else None, cfg, day)


def _figures(cfg, day: date, result, folders: list[Path], escalated: int) -> dict:
    """A day's figures: alerts, episodes ended (fixed or gone apart once the resolved records carry
    ``how``; "fixed+gone" before),
    items snoozed, escalated items, messages posted."""
    from sa_hygiene.state.alerts import open_state

    with open_state(cfg) as state:
        # The resolved records `evaluate --resolved` writes (one per recipient): an episode each.
        resolved = state.annotate(day, []).resolved
        snoozed = len(state.snoozed(day))
    ended = list({(r["workflow"], r["record_id"][:15]): r for r in resolved}.values())
    hows = [e.get("how") for e in ended]
    posts = {"all": 0, "escalations": 0, "escalated": 0}
    for folder in folders:
        for line in (folder / "calls.jsonl").open() if (folder / "calls.jsonl").exists() else ():
            call = json.loads(line)
            if call["method"] != "chat.postMessage":
                continue
            posts["all"] += 1
            if folder.name.startswith("sa_escalations"):
                posts["escalations"] += 1
    return {"day": day.isoformat(), "alerts": len(result.alerts), "ended": len(ended),
            "fixed": hows.count("fixed") if any(hows) else None, "gone": hows.count("gone") if any(hows) else None,
            "snoozed": snoozed, "escalation_dms": posts["escalations"], "escalated": escalated,
            "messages": posts["all"], "runs": [f.name for f in folders]}  # fmt: skip


def _figure_line(f: dict) -> str:
    ended = (f"{f['fixed']} fixed, {f['gone']} gone" if f["fixed"] is not None
             else f"{f['ended']} fixed+gone")  # fmt: skip
    return (f"{f['day']}: {f['alerts']:,} alerts, {ended}, {f['snoozed']} snoozed, "
            f"{f['escalated']} escalated in {f['escalation_dms']} DMs, {f['messages']:,} messages")


def _write_days(root: Path, figures: list[dict]) -> None:
    """outbox/days.json: which runs belong to which day (the preview's day selector) and the figures."""
    (root / "outbox").mkdir(exist_ok=True)
    (root / "outbox" / "days.json").write_text(json.dumps(figures, indent=1))


def _summary(cfg, root: Path, as_of: date, result) -> None:
    """What the last day produced: alerts per workflow, and Slack calls against alerts per run."""
    from collections import Counter

    counts = result.counts()
    print(f"\nAlerts per workflow on the demo org ({len(result.alerts):,} in all, {len(result.quarantine)} rows quarantined):")
    for wid in cfg.workflows:
        print(f"  {wid:<16} {counts.get(wid, 0):>6,}  {cfg.workflows[wid].title}")
    calls = Counter()
    for path in (root / "outbox").glob("*/calls.jsonl"):
        calls.update(json.loads(line)["method"] for line in path.open())
    print(f"\nSlack: {calls['chat.postMessage']:,} messages in the outbox ({len(result.alerts):,} alerts on {as_of}), one per recipient "
          f"and slot ({sum(calls.values()):,} API calls: {', '.join(f'{n} {m}' for m, n in sorted(calls.items()))})")  # fmt: skip
    print(f"  outbox: {root / 'outbox'}")
    latest = json.loads(Path(cfg.report_folder(), "latest.json").read_text())
    print(f"\nHygiene report: {Path(cfg.report_folder(), latest['index'])}")
