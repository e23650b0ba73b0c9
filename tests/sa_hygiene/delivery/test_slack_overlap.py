"""Deliveries that overlap, as operators cause them: ``python -m sa_hygiene digest`` started several
times at once with the same alerts (a run by hand during the scheduled one, a zombie task and its
retry), and delivery processes killed or stalled while they hold a lease.

Real processes against the fake Slack, which counts how often each digest part reached Slack.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from fakes.slack import TOKEN, FakeSlack

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.digest import build_messages
from sa_hygiene.demo.org import write_demo_org
from sa_hygiene.engine.rules import evaluate_snapshots
from sa_hygiene.source.jsonl import read_jsonl
from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot
from sa_hygiene.state.ledger import SENT, Ledger

pytestmark = pytest.mark.integration

AS_OF = date(2026, 11, 24)
WS = "slack:slack_api_default"
OPS_KEY = "ops_summary"  # keyed by its content: every summary posted counts under this name


def per_part(slack) -> dict:
    """Posts per (key, part), the operations summaries summed under ``OPS_KEY``."""
    out: dict = {}
    for (key, n), count in slack.posts_per_part().items():
        name = OPS_KEY if key.startswith("ops_summary|") else key
        out[(name, n)] = out.get((name, n), 0) + count
    return out


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    """A small demo org, its alerts, and every (key, part) its digests should post exactly once."""
    root = tmp_path_factory.mktemp("overlap")
    write_demo_org(root / "org", AS_OF, scale=0.2)
    current, previous = root / "org" / "current", root / "org" / "previous"
    alerts = evaluate_snapshots(str(current), str(previous), load_config(), AS_OF).alert_records()
    # As if half the SAs and their managers were inactive: their DM alerts join the east channel's
    # digest, long enough to continue in its thread.
    for a in alerts[: len(alerts) // 2]:
        if a["slot"] == "sa_digest":
            a["recipient"] = {"type": "channel", "name": "#sa-activities-east-sa"}
    path = root / "alerts.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
    cfg = load_config()
    snap = read_snapshot(current, cfg)
    messages = build_messages(alerts, snap, cfg, AS_OF, previous=read_snapshot(previous, cfg, objects=PREVIOUS_OBJECTS))
    parts = {(m.key, n) for m in messages for n in range(len(m.parts()))} | {(OPS_KEY, 0)}
    users = snap["User"]
    return {"root": root, "current": current, "previous": previous, "alerts": path, "parts": parts,
            "emails": dict(zip(users["email"], users["id"], strict=True)), "messages": messages}  # fmt: skip


@pytest.fixture
def slack(org):
    fake = FakeSlack(page_size=100).start()
    for i, email in enumerate(e for e in org["emails"] if isinstance(e, str)):
        fake.add_user(email, f"U{i:07d}")
    cfg = load_config()
    names = [cfg.region_channel(k) for k in cfg.regions] + [cfg.channels.operations]
    names += [wf.recipient.channel for wf in cfg.workflows.values() if wf.recipient.channel]
    for i, name in enumerate(sorted(set(names))):
        fake.add_channel(name.removeprefix("#"), f"C{i:07d}")
    yield fake
    fake.stop()


def digest_process(org, fake, ledger_url, *, alerts=None, config=None, **popen) -> subprocess.Popen:
    """``python -m sa_hygiene digest`` to the fake Slack, as an operator would start it."""
    env = {**os.environ, "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(
        {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": fake.base_url}})}  # fmt: skip
    args = [sys.executable, "-m", "sa_hygiene", "digest", "--snapshot", str(org["current"]), "--previous",
            str(org["previous"]), "--alerts", str(alerts or org["alerts"]), "--as-of", AS_OF.isoformat(),
            "--slack-conn-id", "slack_api_default", "--ledger", ledger_url]  # fmt: skip
    if config:
        args += ["--config", str(config)]
    return subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_four_processes_delivering_the_same_digests_at_once_post_each_part_exactly_once(
    org, slack, backend, ledger_url, request
):
    url = ledger_url if backend == "sqlite" else request.getfixturevalue("postgres_url")
    slack.gate(4)  # the four start talking to Slack together
    slack.fail("chat.postMessage", serve=True, delay=0.01, times=10**6)  # Slack takes its time: runs overlap

    results = [finish(p) for p in [digest_process(org, slack, url) for _ in range(4)]]

    for code, _, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    posted = per_part(slack)
    assert set(posted) == org["parts"]
    assert {part: n for part, n in posted.items() if n != 1} == {}
    # A continuation never went out before its parent's ts was known: each is in its parent's thread.
    posts = [m for channel in slack.messages.values() for m in channel]
    first = {m["metadata"]["event_payload"]["key"]: m["ts"] for m in posts if m["metadata"]["event_payload"]["part"] == 0}
    replies = [m for m in posts if m["metadata"]["event_payload"]["part"] > 0]
    assert replies and all(m["thread_ts"] == first[m["metadata"]["event_payload"]["key"]] for m in replies)
    total = len(org["messages"])
    summaries = [re.search(r"^(\d+) digests: (\d+) sent, (\d+) already sent, (\d+) delivered by another run", out, re.M)
                 for _, out, _ in results]  # fmt: skip
    assert all(summaries), [out for _, out, _ in results]
    counts = [tuple(int(g) for g in m.groups()) for m in summaries]
    assert all(n == total and sent + already + elsewhere == total for n, sent, already, elsewhere in counts)
    assert sum(sent for _, sent, _, _ in counts) >= total  # every digest was posted by one of them
    ledger = Ledger(url)
    assert all(p.state == SENT and p.owner is None for m in org["messages"] for p in ledger.parts(WS, m.key).values())
    ledger.close()


def _single(org, tmp_path) -> Path:
    """The alerts of one SA digest only: one message (and the run's operations summary)."""
    message = next(m for m in org["messages"] if m.slot == "sa_digest" and not m.replies)
    user = message.recipient["id"]
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in read_jsonl(str(org["alerts"]))
                            if a["recipient"] == {"type": "user", "id": user} and a["slot"] == "sa_digest"))  # fmt: skip
    return path, message


@pytest.mark.parametrize("stored", [True, False], ids=["killed-after-the-post", "killed-before-the-post"])
def test_a_lease_holder_killed_around_its_post_is_resumed_without_a_repeat(org, slack, ledger_url, stored):
    child = {}
    # The third post: Slack stores it (or not), then the process holding its lease is SIGKILLed.
    slack.fail("chat.postMessage", after=2, after_storing=stored, drop=True,
               on_hit=lambda: os.kill(child["proc"].pid, signal.SIGKILL))  # fmt: skip
    child["proc"] = digest_process(org, slack, ledger_url)
    code, _, _ = finish(child["proc"])
    assert code == -signal.SIGKILL
    posted_before = sum(slack.posts_per_part().values())
    assert posted_before == (3 if stored else 2)

    code, out, err = finish(digest_process(org, slack, ledger_url))

    assert code == 0, err
    posted = per_part(slack)
    assert set(posted) == org["parts"] and set(posted.values()) == {1}
    # The killed run's pending part was looked for before anything was posted again.
    assert slack.calls("conversations.history") or slack.calls("conversations.replies")


def test_a_live_process_that_stalls_past_its_lease_is_taken_over_and_never_posts(org, slack, ledger_url, tmp_path):
    alerts, message = _single(org, tmp_path)
    config = tmp_path / "short-lease.yaml"
    config.write_text("slack: {lease_seconds: 1}\n")
    slow = {}
    resumed = threading.Event()

    def stall():  # the first process freezes while it holds the lease of part 0, before posting
        os.kill(slow["proc"].pid, signal.SIGSTOP)
        slow["other"] = digest_process(org, slack, ledger_url, alerts=alerts, config=config)

    slack.fail("users.lookupByEmail", serve=True, on_hit=stall)
    slack.fail("chat.postMessage", serve=True, on_hit=resumed.set)  # the other run's first post
    slow["proc"] = digest_process(org, slack, ledger_url, alerts=alerts, config=config)
    assert resumed.wait(120), "the second run never posted"
    os.kill(slow["proc"].pid, signal.SIGCONT)  # its lookup is answered now; its lease is long gone

    (code_slow, out_slow, err_slow), (code, out, err) = finish(slow["proc"]), finish(slow["other"])

    assert (code_slow, code) == (0, 0), err_slow + err
    assert per_part(slack) == {(message.key, 0): 1, (OPS_KEY, 0): 1}
    assert out_slow.startswith("1 digests: 0 sent, 0 already sent, 1 delivered by another run")
    assert out.startswith("1 digests: 1 sent")


def test_a_live_process_whose_post_outlasts_its_lease_is_found_in_slack_not_posted_again(
    org, slack, ledger_url, tmp_path
):
    alerts, message = _single(org, tmp_path)
    config = tmp_path / "short-lease.yaml"
    config.write_text("slack: {lease_seconds: 1}\n")
    procs = {}
    answered = threading.Event()

    def start_another():  # Slack holds the post but answers late: the lease runs out meanwhile
        procs["other"] = digest_process(org, slack, ledger_url, alerts=alerts, config=config)

    slack.fail("chat.postMessage", serve=True, on_hit=start_another, delay=120, until=answered)
    slack.fail("chat.postMessage", serve=True, on_hit=answered.set)  # the next post releases the answer
    procs["slow"] = digest_process(org, slack, ledger_url, alerts=alerts, config=config)

    (code_slow, out_slow, err_slow) = finish(procs["slow"])
    (code, out, err) = finish(procs["other"])

    assert (code_slow, code) == (0, 0), err_slow + err
    assert per_part(slack) == {(message.key, 0): 1, (OPS_KEY, 0): 1}
    [search] = slack.calls("conversations.history")
    assert search.args["channel"].startswith("D")  # the taker looked in the DM before posting
    assert out.startswith("1 digests: 1 sent")  # found it: recovered, not posted
    assert out_slow.startswith("1 digests: 1 sent")


def test_an_unusable_ledger_stops_the_command_with_one_line(org, slack, tmp_path):
    code, out, err = finish(digest_process(org, slack, "postgresql+psycopg://postgres:pw@127.0.0.1:1/none"))
    assert code == 2
    assert err.startswith("error: the delivery ledger postgresql+psycopg://postgres:***@127.0.0.1:1/none: ")
    assert len(err.strip().splitlines()) == 1 and "pw@" not in err
    assert slack.posts_per_part() == {}
