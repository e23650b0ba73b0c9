"""Extraction benchmark: API calls, wall time and peak memory of full and incremental extractions.

The demo org (scale 50: 100,000 opportunities and 1,000,000 tasks) is served by the fake
Salesforce of the tests (tests/fakes/salesforce.py) in a process of its own, and every
extraction runs in a fresh process, so that its peak RSS (``VmHWM``) is its own and
not the server's. Each org is extracted three ways: in full with the default Bulk API
threshold, incrementally after a day of changes (1 % of tasks and events edited, 0.1 %
deleted, 500 new), and in full through REST only (no Bulk API). A smaller org (scale 10)
is run first, for comparison: memory that does not grow with rows shows as about the same
"…to Task" figure at both sizes (the peak up to the end of Task, the largest object; after
it come the event tables, whose attendee map grows with the number of events).

    .venv/bin/python bench/extract.py [--scales 10 50] [--work DIR]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
CONN = "salesforce_bench"
RUNS = [  # name, bulk threshold (None: the default), when, store
    ("full", None, T0, "store"),
    ("incremental", None, T1, "store"),
    ("full, REST only", 10**12, T0, "store-rest"),
]


def _peak_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: Linux carries that across fork and exec, so a
    child would report the parent's peak (here: generating the demo org)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the fake's process


def _touch(fake, at: str, edit_every: int = 100, delete_every: int = 1000, new: int = 500) -> dict:
    """A day of changes: edits, deletions and new records in Task, edits in Event."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    changed = {}
    for obj in ("Task", "Event"):
        table = fake.live(obj)
        edits = table.take(pa.array(np.arange(0, table.num_rows, edit_every)))
        edits = edits.set_column(edits.column_names.index("Subject"), "Subject", pc.binary_join_element_wise(
            edits["Subject"], pa.scalar(" (edited)"), ""))  # fmt: skip
        edits = edits.set_column(edits.column_names.index("SystemModstamp"), "SystemModstamp", pa.array([at] * len(edits)))
        fake.upsert(obj, edits)
        changed[obj] = len(edits)
    tasks = fake.live("Task")
    gone = tasks["Id"].take(pa.array(np.arange(7, tasks.num_rows, delete_every))).to_pylist()
    fake.delete("Task", gone, at)
    fresh = tasks.slice(0, new)
    fresh = fresh.set_column(0, "Id", pa.array([f"00T9{n:011d}AAA" for n in range(new)]))
    fresh = fresh.set_column(fresh.column_names.index("SystemModstamp"), "SystemModstamp", pa.array([at] * new))
    fake.upsert("Task", fresh)
    return {"edited": changed, "deleted": len(gone), "new": new}


def _serve(pipe, folder: str, bundle: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import trustme
    from fakes.salesforce import FakeSalesforce, org_from_snapshot

    ca = trustme.CA()
    ca.cert_pem.write_to_path(bundle)
    fake = FakeSalesforce(ca)
    for obj, table in org_from_snapshot(folder).items():
        fake.add(obj, table)
    rows = {obj: o.table.num_rows for obj, o in fake.objects.items()}
    with fake:
        pipe.send({"connection": fake.connection(), "rows": rows})
        while True:
            command, arg = pipe.recv()
            if command == "stop":
                return
            pipe.send(_touch(fake, arg))


# --------------------------------------------------------------------------- an extraction's process


def _extract(pipe, env: dict, store: str, config: str, now: datetime) -> None:
    os.environ.update(env)
    import logging

    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook  # noqa: F401  (in the baseline)

    from sa_hygiene.contract.config import load_config
    from sa_hygiene.source.extract import extract_snapshot
    from sa_hygiene.source.records import ExtractOptions
    from sa_hygiene.source.store import SnapshotStore

    marks = {}

    class PeakAfterTask(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.args and record.args[0] == "Task":
                marks["Task"] = _peak_mb()

    logger = logging.getLogger("sa_hygiene.source.extract")
    logger.addHandler(PeakAfterTask())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    baseline = _peak_mb()
    try:
        report = extract_snapshot(load_config(config), SnapshotStore(store), CONN, now=now,
                                  options=ExtractOptions(bulk_poll_seconds=0.5))  # fmt: skip
    except Exception as exc:
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})
        raise
    objects = {o.object: (o.rows, o.path, o.mode, o.changed) for o in report.objects.values()}
    pipe.send({"objects": objects, "api_calls": report.api_calls, "requests": report.requests,
               "seconds": report.seconds, "baseline": baseline, "peak": _peak_mb(), "marks": marks})  # fmt: skip


def _in_process(ctx, target, *args):
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args))
    proc.start()
    child.close()  # so that a child that dies is an EOFError here, not a wait forever
    try:
        return parent.recv()
    finally:
        proc.join()


# --------------------------------------------------------------------------- the bench


def bench_scale(ctx, scale: float, work: Path) -> None:
    from sa_hygiene.demo.org import write_demo_org

    folder = work / f"org-{scale:g}"
    started = time.perf_counter()
    if not (folder / "current").exists():
        write_demo_org(folder, AS_OF, scale=scale)
    made = time.perf_counter() - started
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, str(folder / "current"), str(work / "ca.pem")), daemon=True)
    server.start()
    child.close()
    hello = parent.recv()
    rows = hello["rows"]
    print(f"\norg scale {scale:g}: {rows['Opportunity']:,} opportunities, {rows['Task']:,} tasks, {rows['Event']:,} "
          f"events, {rows['EventRelation']:,} event relations, {rows['Lead']:,} leads "
          f"(demo org {made:.0f}s, fake server ready {time.perf_counter() - started - made:.0f}s)")  # fmt: skip
    for _, _, _, store in RUNS:
        shutil.rmtree(work / f"{store}-{scale:g}", ignore_errors=True)
    env = {f"AIRFLOW_CONN_{CONN.upper()}": hello["connection"], "REQUESTS_CA_BUNDLE": str(work / "ca.pem")}
    print(f"{'run':<16} {'API calls':>9} {'wall':>7} {'peak RSS':>9} {'…to Task':>9} {'baseline':>9}  paths")
    for name, threshold, now, store in RUNS:
        config = work / f"config-{threshold}.yaml"
        config.write_text(f"salesforce: {{bulk_threshold: {threshold}}}\n" if threshold else "{}\n")
        if name == "incremental":
            parent.send(("touch", "2026-11-24T12:00:00Z"))
            day = parent.recv()
        r = _in_process(ctx, _extract, env, str(work / f"{store}-{scale:g}"), str(config), now)
        if "error" in r:
            print(f"{name:<16} failed: {r['error']}")
            continue
        bulk = [o for o, (_, p, _, _) in r["objects"].items() if p == "bulk"]
        print(f"{name:<16} {r['api_calls']:>9,} {r['seconds']:>6.1f}s {r['peak']:>7.0f}MB {r['marks']['Task']:>7.0f}MB "
              f"{r['baseline']:>7.0f}MB  "
              + (f"Bulk API: {', '.join(bulk)}" if bulk else "REST for all"))  # fmt: skip
        if name == "incremental":
            changed = {o: c for o, (_, _, _, c) in r["objects"].items() if c is not None}
            print(f"{'':<16} day of changes {day}; changed rows seen per object {changed}")
        if threshold:
            pages = sum(math.ceil(n / 2000) or 1 for n, *_ in r["objects"].values())
            print(f"{'':<16} goal: objects + rows/2,000 = {pages:,} query calls; made {r['api_calls']:,} "
                  f"= {pages:,} + {r['api_calls'] - pages} (describes and COUNT()s)")  # fmt: skip
    parent.send(("stop", None))
    server.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=float, nargs="+", default=[10, 50])
    p.add_argument("--work", help="folder for the demo orgs and stores (default: a temporary one)")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"extraction bench: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, work folder {work}")
        for scale in args.scales:
            bench_scale(ctx, scale, work)


if __name__ == "__main__":
    main()
