"""Overlapping deliveries: N ``python -m sa_hygiene digest`` processes started at once with the same
alerts of the demo day, against a local fake Slack; how many message parts reached Slack twice.

    .venv/bin/python bench/overlap.py [--processes 4] [--scale 1] [--ledger sqlite|postgresql]

The processes run whatever ``sa_hygiene`` their interpreter imports: set PYTHONPATH to another
checkout's ``include`` to measure that version (the "before" figure of issue #10).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.slack import TOKEN, FakeSlack  # noqa: E402
from services import postgres_database  # noqa: E402

from sa_hygiene.contract.config import load_config
from sa_hygiene.demo.org import write_demo_org
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.snapshot import read_snapshot

AS_OF = date(2026, 11, 24)


def run(args, tmp: Path, ledger_url: str) -> None:
    write_demo_org(tmp / "org", AS_OF, scale=args.scale)
    current, previous = tmp / "org" / "current", tmp / "org" / "previous"
    alerts = evaluate_snapshots(str(current), str(previous), load_config(), AS_OF).alert_records()
    (tmp / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alerts))
    cfg = load_config()
    fake = FakeSlack(page_size=200).start()
    users = read_snapshot(current, cfg, objects=("User",))["User"]
    for i, email in enumerate(e for e in users["email"] if isinstance(e, str)):
        fake.add_user(email, f"U{i:07d}")
    names = {cfg.region_channel(k) for k in cfg.regions} | {cfg.channels.operations}
    names |= {wf.recipient.channel for wf in cfg.workflows.values() if wf.recipient.channel}
    for i, name in enumerate(sorted(names)):
        fake.add_channel(name.removeprefix("#"), f"C{i:07d}")
    fake.gate(args.processes)
    fake.fail("chat.postMessage", serve=True, delay=0.01, times=10**9)  # a little latency, as Slack has

    env = {**os.environ, "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(
        {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": fake.base_url}})}  # fmt: skip
    cmd = [sys.executable, "-m", "sa_hygiene", "digest", "--snapshot", str(current), "--previous", str(previous),
           "--alerts", str(tmp / "alerts.jsonl"), "--as-of", AS_OF.isoformat(), "--slack-conn-id",
           "slack_api_default", "--ledger", ledger_url]  # fmt: skip
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(args.processes)]  # fmt: skip
    results = [p.communicate() for p in procs]
    wall = time.perf_counter() - started
    fake.stop()

    posted = fake.posts_per_part()
    twice = sum(n - 1 for n in posted.values() if n > 1)
    codes = Counter(p.returncode for p in procs)
    tracebacks = sum("Traceback" in err for _, err in results)
    import sa_hygiene

    print(f"sa_hygiene from {Path(sa_hygiene.__file__).parent}")
    print(f"{args.processes} processes, ledger {args.ledger}, demo org scale {args.scale:g}, {len(alerts)} alerts")
    print(f"  message parts posted: {len(posted)} distinct, {sum(posted.values())} posts, {twice} duplicate posts")
    print(f"  exit codes: {dict(codes)}; processes that printed a traceback: {tracebacks}; wall {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--ledger", choices=["sqlite", "postgresql"], default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.ledger == "sqlite":
            run(args, Path(tmp), f"sqlite:///{tmp}/ledger.sqlite")
        else:
            with postgres_database("sa_hygiene_bench") as name:
                run(args, Path(tmp), f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")


if __name__ == "__main__":
    main()
