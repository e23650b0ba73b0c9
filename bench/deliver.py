"""Delivery figures: digests per second into the outbox and into a local fake Slack, and a re-run;
then the demo day's own digests (what the ledger's claims cost on a real mix of messages).

    .venv/bin/python bench/deliver.py [--digests 500] [--scale 1]

The fake Slack (tests/fakes/slack.py) answers on 127.0.0.1 without rate limits, so the
Slack figure measures this code, slack_sdk and the ledger, not Slack: real Slack allows
about one post per second per channel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from fakes.slack import TOKEN, FakeSlack  # noqa: E402

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.blockkit import Message
from sa_hygiene.delivery.digest import build_messages
from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.delivery.slack import SlackSink, deliver
from sa_hygiene.demo.org import write_demo_org
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot
from sa_hygiene.state.ledger import Ledger


def digests(n: int) -> list[Message]:
    rows = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*<https://sf.example/006{i}|Opp {i}>* needs an end date"}}
            for i in range(40)]  # fmt: skip
    return [
        Message(
            key=f"sa_digest|user:005{i:015d}|2026-11-24",
            slot="sa_digest",
            recipient={"type": "user", "id": f"005{i:015d}"},
            email=f"sa{i}@gitlab.com",
            fallbacks=(),
            text="Your hygiene digest",
            blocks=rows,
            replies=[rows[:10]],
            title=f"SA {i}",
        )
        for i in range(n)
    ]


def timed(label: str, run) -> None:
    started = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - started
    done = len(report.sent) or len(report.already_sent)
    print(f"{label:<56} {done:>5} digests  {seconds:6.2f} s  {done / seconds:7.1f} digests/s")


def demo_day(tmp: str, scale: float) -> list[Message]:
    """The digests of the demo org's day, as the DAGs render them."""
    from datetime import date

    as_of = date(2026, 11, 24)
    write_demo_org(f"{tmp}/org", as_of, scale=scale)
    cfg = load_config()
    alerts = evaluate_snapshots(f"{tmp}/org/current", f"{tmp}/org/previous", load_config(), as_of).alert_records()
    snap = read_snapshot(f"{tmp}/org/current", cfg)
    return build_messages(alerts, snap, cfg, as_of, previous=read_snapshot(f"{tmp}/org/previous", cfg, objects=PREVIOUS_OBJECTS))


def ledger_urls(tmp: str):
    """(name, URL) of a fresh SQLite and a fresh PostgreSQL ledger."""
    from services import postgres_database

    yield "SQLite", f"sqlite:///{tmp}/demo-{time.time_ns()}.sqlite"
    with postgres_database("sa_hygiene_bench") as name:
        yield "PostgreSQL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digests", type=int, default=500)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    messages = digests(args.digests)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{tmp}/outbox-ledger.sqlite")
        timed("outbox, first run (2 posts + 2 lookups each)", lambda: deliver(messages, OutboxSink(tmp, "r"), ledger, "r"))
        timed("outbox, re-run (nothing to post)", lambda: deliver(messages, OutboxSink(tmp, "r"), ledger, "r"))
        print(f"{'preview.html':<48} {Path(tmp, 'r', 'preview.html').stat().st_size / 1e6:.1f} MB")

        fake = FakeSlack().start()
        for i in range(len(messages)):
            fake.add_user(f"sa{i}@gitlab.com", f"U{i:08d}")
        os.environ["AIRFLOW_CONN_SLACK_API_DEFAULT"] = json.dumps(
            {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": fake.base_url}}
        )
        ledger = Ledger(f"sqlite:///{tmp}/slack-ledger.sqlite")
        timed("fake Slack over HTTP, first run", lambda: deliver(messages, SlackSink(), ledger, "r"))
        timed("fake Slack over HTTP, re-run", lambda: deliver(messages, SlackSink(), ledger, "r"))

        day = demo_day(tmp, args.scale)
        parts = sum(len(m.parts()) for m in day)
        print(f"\ndemo day (scale {args.scale:g}): {len(day)} digests, {parts} message parts")
        users = {m.email for m in day if m.email} | {fb["email"] for m in day for fb in m.fallbacks if fb.get("email")}
        for i, email in enumerate(sorted(users)):
            fake.add_user(email, f"UD{i:07d}")
        for name in {m.recipient["name"] for m in day if m.recipient["type"] == "channel"} | {
                fb["name"] for m in day for fb in m.fallbacks if fb["type"] == "channel"}:  # fmt: skip
            fake.add_channel(name.removeprefix("#"), "C" + name.removeprefix("#"))
        for name, url in ledger_urls(tmp):
            deliver_day(day, tmp, name, Ledger(url))
        fake.stop()


def deliver_day(day: list[Message], tmp: str, name: str, ledger: Ledger) -> None:
    outbox = OutboxSink(tmp, f"day-{name}")
    timed(f"demo day, outbox, {name} ledger", lambda: deliver(day, outbox, ledger, "d"))
    timed(f"demo day, fake Slack, {name} ledger", lambda: deliver(day, SlackSink(), ledger, "d"))
    timed(f"demo day, fake Slack, {name} ledger, re-run", lambda: deliver(day, SlackSink(), ledger, "d"))


if __name__ == "__main__":
    main()
