"""Delivery figures: digests per second into the outbox and into a local fake Slack, and a re-run.

    .venv/bin/python bench/deliver.py [--digests 500]

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

from fakes.slack import TOKEN, FakeSlack  # noqa: E402

from sa_hygiene.ledger import Ledger  # noqa: E402
from sa_hygiene.slack_delivery import Message, SlackSink, deliver  # noqa: E402
from sa_hygiene.slack_outbox import OutboxSink  # noqa: E402


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
    print(f"{label:<48} {done:>5} digests  {seconds:6.2f} s  {done / seconds:7.1f} digests/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digests", type=int, default=500)
    messages = digests(parser.parse_args().digests)
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
        fake.stop()


if __name__ == "__main__":
    main()
