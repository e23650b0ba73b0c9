"""The Slack app under faults (issue 20), against the fake Slack and Salesforce of tests/fakes/.

    .venv/bin/python bench/slack_app.py [--clicks 200] [--meetings 5]

Prints three figures, not a test:

- ack: with Salesforce hanging (every Task creation held, the salesforce lane full and more
  forms refused), the answer time of ``--clicks`` requests (menu clicks and form submissions,
  alternating): p50 and worst (target: worst < 1 s; Slack gives up at 3 s);
- tasks per meeting: ``--meetings`` meetings whose creation answer is lost after Salesforce
  saved it (then sent again, and a second form sent), and as many sent from three forms at
  once: Tasks in the org per meeting (target: exactly 1 each);
- 5xx: answers of 500 or more among every request sent here (target 0).

The machine's load (``os.getloadavg``) is printed with them: the figures mean little on a
busy machine, and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--meetings", type=int, default=5)
    args = parser.parse_args()

    import httpx
    import trustme
    import uvicorn
    from builders import event, write_snapshot
    from fakes.salesforce import FakeSalesforce
    from fakes.slack import TOKEN, FakeSlack
    from slack_app_requests import (
        ITEM,
        LOG,
        MEETING,
        ORG,
        SAM,
        SECRET,
        SF_CONN,
        SNAPSHOT,
        STATE,
        TODAY,
        click_log_it,
        menu_click,
        post_digest,
        record_sent,
        signed,
        submission,
    )
    from slack_sdk import WebClient

    from sa_hygiene.contract.config import load_config
    from sa_hygiene.delivery.digest import reminder_key
    from sa_hygiene.source.snapshot import read_snapshot
    from sa_hygiene.web.slack_app.app import Credentials, build_app, create_asgi_app
    from sa_hygiene.web.slack_app.items import Item
    from sa_hygiene.web.slack_app.salesforce import salesforce_client
    from sa_hygiene.web.slack_app.work import LANES

    tmp = Path(tempfile.mkdtemp(prefix="bench-slack-app-"))
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp / "ca.pem"))
    os.environ["REQUESTS_CA_BUNDLE"] = str(tmp / "ca.pem")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)
    workers, queued = LANES["salesforce"]
    meetings = [MEETING] + [
        event(owner_id=SAM["id"], subject=f"Acme call {n}", attendee_emails="pat@acme.com;sam@gitlab.com",
              start="2026-11-23T15:00:00Z", end="2026-11-23T16:00:00Z")
        for n in range(args.clicks // 2 + 2 * args.meetings + 4)
    ]  # fmt: skip
    cfg = load_config()
    STATE[:] = [f"sqlite:///{tmp}/state.sqlite"]  # where post_digest and record_sent record what was sent
    SNAPSHOT[:] = [read_snapshot(write_snapshot(tmp / "snap", {**ORG, "Event": meetings}), cfg)]
    statuses: list[int] = []

    sf = FakeSalesforce(authority).start()
    sf.add("Task", [])
    os.environ[f"AIRFLOW_CONN_{SF_CONN.upper()}"] = sf.connection()
    slack = FakeSlack().start()
    slack.add_user(SAM["email"], "USAM")
    slack.add_channel("sa-hygiene-ops", "COPS")
    app = build_app(cfg, creds=Credentials(TOKEN, SECRET), client=WebClient(token=TOKEN, base_url=slack.base_url),
                    snapshot=lambda: SNAPSHOT[0], salesforce=salesforce_client(SF_CONN),
                    state_url=STATE[0])  # fmt: skip
    app.backends.today = lambda zone: TODAY
    server = uvicorn.Server(uvicorn.Config(create_asgi_app(app), host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not (server.started and server.servers):
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                        event_hooks={"response": [lambda r: statuses.append(r.status_code)]})  # fmt: skip

    def send(payload: dict) -> float:
        body = "payload=" + __import__("urllib.parse").parse.quote(json.dumps(payload))
        started = time.monotonic()
        http.post("/events", content=body, headers=signed(body))
        return time.monotonic() - started

    def wait(check, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not check() and time.monotonic() < deadline:
            time.sleep(0.05)

    def forms(n: int) -> list[dict]:
        before = len(slack.views)
        for _ in range(n):
            click_log_it(http, slack)
        wait(lambda: len(slack.views) == before + n)
        return list(slack.views.values())[before:]

    def for_meeting(view: dict, meeting: dict) -> dict:
        meta = json.loads(view["private_metadata"])
        meta["item"] = Item("log", LOG.workflow, meeting["id"], LOG.recipient, LOG.what_id).value()
        if meeting is not MEETING:  # the reminder of that meeting, as delivery records it (the app checks)
            meta["ts"] = f"77.{meeting['id'][-6:]}"
            record_sent({"ts": meta["ts"]}, meta["channel"], reminder_key(f"user:{SAM['id']}", meeting["id"]))
        return {**view, "private_metadata": json.dumps(meta)}

    creating = lambda r: r.method == "POST" and "/sobjects/Task" in r.path  # noqa: E731
    free = iter(meetings)

    # 1. acknowledgements with Salesforce hanging
    sf.fail("hang", when=creating, times=10**6)
    message = json.loads(json.dumps(post_digest(slack, "DSAM", ITEM)))  # as sent: the fake updates its own copy
    extra = forms(args.clicks // 2)
    took = []
    for n in range(args.clicks):
        if n % 2:
            took.append(send(menu_click("USAM", "DSAM", message, ITEM)))
        else:
            took.append(send(submission(for_meeting(extra[n // 2], next(free)))))
    took.sort()
    p50, worst = statistics.median(took), took[-1]
    sf.unhang()
    app.work.shutdown(wait=True)
    app.work = type(app.work)(app.bolt.logger)
    app.bolt.listener_runner.lazy_listener_runner = app.work

    # 2. tasks per meeting: lost answers, then three forms at once
    lost = [next(free) for _ in range(args.meetings)]
    for meeting in lost:
        first, second = (for_meeting(v, meeting) for v in forms(2))
        sf.fail("drop", when=creating)
        subject = meeting["subject"]
        send(submission(first, subject=subject))
        wait(lambda v=first: any(c.args.get("view_id") == v["id"] for c in slack.calls("views.update")))
        send(submission(first, subject=subject))
        send(submission(second, subject=subject))
    together = [next(free) for _ in range(args.meetings)]
    sf.create_delay = 0.5
    for meeting in together:
        views = [for_meeting(v, meeting) for v in forms(3)]
        threads = [threading.Thread(target=send, args=(submission(v, subject=meeting["subject"]),)) for v in views]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    time.sleep(3)
    app.work.shutdown(wait=True)
    what = cfg.api_name("Task", "subject")
    subjects = [t.get(what) for t in sf.live("Task").to_pylist()]
    per_meeting = [subjects.count(m["subject"]) for m in lost + together]
    server.should_exit = True
    sf.stop()
    slack.stop()

    load = os.getloadavg()
    print(f"machine load (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"ack with Salesforce hanging, {len(took)} requests: p50 {p50 * 1000:.0f} ms, worst {worst * 1000:.0f} ms")
    print(f"tasks per meeting, {len(lost)} with a lost answer (then resent, and a second form): "
          f"{per_meeting[:len(lost)]}; {len(together)} with three forms at once: {per_meeting[len(lost):]}")  # fmt: skip
    print(f"5xx answers: {sum(1 for s in statuses if s >= 500)} of {len(statuses)} requests")


if __name__ == "__main__":
    main()
