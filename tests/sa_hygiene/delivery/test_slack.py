"""Delivery against a local fake Slack, through the real SlackHook and slack_sdk."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fakes.slack import TOKEN, FakeSlack
from slack_builders import ANN, EAST, MANAGER, digest, section

from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.delivery.slack import CLOCK_SKEW, DeliveryFailed, SlackSink, UnknownUser, deliver
from sa_hygiene.state.ledger import FAILED, PENDING, Ledger

pytestmark = pytest.mark.integration

WS = "slack:slack_api_default"
CHANNELS = ["general", "random", "sa-activities-east-sa", "sa-hygiene-ops", "sa-tech-eval-start"]


def connect(monkeypatch, fake: FakeSlack, token: str = TOKEN) -> None:
    conn = {"conn_type": "slack", "password": token, "extra": {"base_url": fake.base_url}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(conn))


@pytest.fixture
def slack(monkeypatch):
    fake = FakeSlack().start()
    fake.add_user("ann@gitlab.com", "U0ANN")
    fake.add_user("mgr@gitlab.com", "U0MGR")
    for i, name in enumerate(CHANNELS):
        fake.add_channel(name, f"C0{i}")
    connect(monkeypatch, fake)
    yield fake
    fake.stop()


def parts_posted(fake, channel):
    return [(m["metadata"]["event_payload"]["part"], m.get("thread_ts")) for m in fake.posts(channel)]


def test_a_dm_digest_makes_exactly_these_calls_with_replies_in_its_thread(slack, ledger):
    message = digest(replies=2)
    report = deliver([message], SlackSink(), ledger, "run-1")

    assert report.sent == [message.key] and not report.failed
    ts0 = slack.posts("D0ANN")[0]["ts"]
    key = "sa_digest|user:0051a00000AnnAAAAA|2026-11-24"

    def post(part, text, section_text, thread_ts=None):
        args = {
            "channel": "D0ANN",
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": section_text}}],
            "metadata": {"event_type": "sa_hygiene_digest", "event_payload": {"key": key, "part": part}},
            "unfurl_links": False,
            "unfurl_media": False,
        }
        return ("chat.postMessage", args | ({"thread_ts": thread_ts} if thread_ts else {}))

    assert [(r.method, r.args) for r in slack.requests] == [
        ("users.lookupByEmail", {"email": "ann@gitlab.com"}),
        ("conversations.open", {"users": "U0ANN"}),
        post(0, "Hygiene digest for user:0051a00000AnnAAAAA", "*user:0051a00000AnnAAAAA* part 0"),
        post(1, "Digest user:0051a00000AnnAAAAA 2026-11-24 (2/3)", "user:0051a00000AnnAAAAA part 1", ts0),
        post(2, "Digest user:0051a00000AnnAAAAA 2026-11-24 (3/3)", "user:0051a00000AnnAAAAA part 2", ts0),
    ]
    assert all(r.authorized for r in slack.requests)
    assert parts_posted(slack, "D0ANN") == [(0, None), (1, ts0), (2, ts0)]
    assert [m["ts"] for m in slack.posts("D0ANN")] == sorted(m["ts"] for m in slack.posts("D0ANN"))


def test_rerunning_posts_nothing_and_ids_are_cached_until_they_expire(slack, ledger_url):
    first = digest(replies=1)
    deliver([first], SlackSink(), Ledger(ledger_url), "run-1")
    slack.requests.clear()

    again = deliver([first], SlackSink(), Ledger(ledger_url), "run-1")
    assert again.already_sent == [first.key] and not again.sent
    assert slack.requests == []

    next_day = digest(date="2026-11-25")
    deliver([first, next_day], SlackSink(), Ledger(ledger_url), "run-2")
    assert [r.method for r in slack.requests] == ["chat.postMessage"]

    slack.requests.clear()
    short = Ledger(ledger_url, cache_hours=0.05 / 3600)
    time.sleep(0.1)
    deliver([digest(date="2026-11-26")], SlackSink(), short, "run-3")
    assert [r.method for r in slack.requests] == [
        "users.lookupByEmail",
        "conversations.open",
        "chat.postMessage",
    ]
    assert len(slack.posts("D0ANN")) == 4


def test_channels_are_found_by_paging_and_every_page_seen_is_cached(slack, ledger):
    east = digest(EAST)
    fixed = digest({"type": "channel", "name": "#sa-tech-eval-start"}, slot="channel_post")
    ops = digest({"type": "channel", "name": "#sa-hygiene-ops"}, slot="ops_summary")

    report = deliver([east, fixed, ops], SlackSink(), ledger, "run-1")

    assert report.sent == [east.key, fixed.key, ops.key]
    listed = [r.args.get("cursor") for r in slack.calls("conversations.list")]
    assert listed == [None, "2", None, "2", "4"]  # east on page 2; tech-eval on page 3; ops cached on page 2
    assert slack.calls("conversations.list")[0].args == {
        "types": "public_channel,private_channel", "exclude_archived": "1", "limit": "200",
    }  # fmt: skip
    assert [len(slack.posts(c)) for c in ("C02", "C04", "C03")] == [1, 1, 1]


def test_users_slack_does_not_know_fall_back_in_order_and_are_reported(slack, ledger):
    slack.add_user("left@gitlab.com", "U0LEFT", deleted=True)
    to_manager = digest({"type": "user", "id": "005GONE"}, email="gone@gitlab.com", fallbacks=(MANAGER, EAST))
    ghost_manager = {"type": "user", "id": "005GHOST", "email": "ghost@gitlab.com"}
    to_channel = digest(
        {"type": "user", "id": "005LEFT"}, email="left@gitlab.com", fallbacks=(ghost_manager, EAST)
    )
    nowhere = digest({"type": "user", "id": "005NONE"}, email=None)

    report = deliver([to_manager, to_channel, nowhere], SlackSink(), ledger, "run-1")

    manager, channel = {"type": "user", "id": MANAGER["id"]}, EAST
    assert report.unknown_users == [
        UnknownUser(to_manager.key, {"type": "user", "id": "005GONE"}, "gone@gitlab.com", manager),
        UnknownUser(to_channel.key, {"type": "user", "id": "005LEFT"}, "left@gitlab.com", channel),
        UnknownUser(to_channel.key, {"type": "user", "id": "005GHOST"}, "ghost@gitlab.com", channel),
        UnknownUser(nowhere.key, {"type": "user", "id": "005NONE"}, None, None),
    ]
    assert report.sent == [to_manager.key, to_channel.key]
    assert report.failed == {
        nowhere.key: "RecipientNotFound: users_not_found: Slack knows neither the recipient nor a fallback"
    }
    assert [m["metadata"]["event_payload"]["key"] for m in slack.posts("D0MGR")] == [to_manager.key]
    assert [m["metadata"]["event_payload"]["key"] for m in slack.posts("C02")] == [to_channel.key]
    assert [r.args["email"] for r in slack.calls("users.lookupByEmail")] == [
        "gone@gitlab.com", "mgr@gitlab.com", "left@gitlab.com", "ghost@gitlab.com",
    ]  # fmt: skip


@pytest.mark.parametrize("error", ["user_not_found", "user_disabled", "cannot_dm_bot"])
def test_a_user_slack_will_not_open_a_dm_with_falls_back_like_an_unknown_email(slack, ledger, error):
    slack.add_user("gone@gitlab.com", "U0GONE", dm_error=error)  # found by e-mail, yet no DM
    to_manager = digest({"type": "user", "id": "005GONE"}, email="gone@gitlab.com", fallbacks=(MANAGER, EAST))

    report = deliver([to_manager], SlackSink(), ledger, "run-1")

    manager = {"type": "user", "id": MANAGER["id"]}
    assert report.sent == [to_manager.key] and not report.failed
    assert report.unknown_users == [
        UnknownUser(to_manager.key, {"type": "user", "id": "005GONE"}, "gone@gitlab.com", manager)
    ]
    assert [(r.method, r.args) for r in slack.requests[:4]] == [
        ("users.lookupByEmail", {"email": "gone@gitlab.com"}),
        ("conversations.open", {"users": "U0GONE"}),
        ("users.lookupByEmail", {"email": "mgr@gitlab.com"}),
        ("conversations.open", {"users": "U0MGR"}),
    ]
    assert [m["metadata"]["event_payload"]["key"] for m in slack.posts("D0MGR")] == [to_manager.key]
    assert ledger.cached_dm(WS, "gone@gitlab.com") is None  # asked again next time


def test_a_missing_channel_fails_only_its_message_and_is_delivered_on_retry(slack, ledger):
    lost = digest({"type": "channel", "name": "#sa-renamed"})
    fine = digest(EAST)

    report = deliver([lost, fine], SlackSink(), ledger, "run-1")

    assert report.sent == [fine.key]
    assert report.failed == {
        lost.key: "RecipientNotFound: channel_not_found: the app sees no channel #sa-renamed"
    }
    assert ledger.parts(WS, lost.key)[0].state == FAILED
    with pytest.raises(
        DeliveryFailed,
        match=r"1 digest\(s\) not delivered in run run-1:\n  regional_digest\|channel:#sa-renamed",
    ):
        report.raise_for_failures()

    slack.add_channel("sa-renamed", "C09")
    retry = deliver([lost, fine], SlackSink(), ledger, "run-1")
    assert retry.sent == [lost.key] and retry.already_sent == [fine.key]
    assert len(slack.posts("C09")) == 1 and len(slack.posts("C02")) == 1
    retry.raise_for_failures()


def test_a_post_slack_refuses_is_recorded_failed_and_posted_on_retry_without_searching(slack, ledger):
    slack.fail("chat.postMessage", error="channel_not_found")
    message = digest(EAST)

    report = deliver([message], SlackSink(), ledger, "run-1")
    assert report.failed == {message.key: "chat.postMessage: channel_not_found"}
    assert ledger.parts(WS, message.key)[0].state == FAILED

    retry = deliver([message], SlackSink(), ledger, "run-1")
    assert retry.sent == [message.key]
    assert slack.calls("conversations.history") == []
    assert len(slack.posts("C02")) == 1


def test_a_rate_limited_post_waits_for_retry_after_and_goes_out_once(slack, ledger):
    slack.fail("chat.postMessage", status=429, retry_after=1)
    message = digest(EAST)

    started = time.monotonic()
    report = deliver([message], SlackSink(), ledger, "run-1")

    assert time.monotonic() - started >= 1
    assert report.sent == [message.key]
    assert len(slack.calls("chat.postMessage")) == 2 and len(slack.posts("C02")) == 1


def test_server_errors_and_dropped_connections_on_lookups_are_retried_with_backoff(slack, ledger):
    slack.fail("users.lookupByEmail", status=502)
    slack.fail("conversations.open", drop=True)

    report = deliver([digest()], SlackSink(), ledger, "run-1")

    assert report.sent and not report.failed
    assert [r.method for r in slack.requests] == [
        "users.lookupByEmail", "users.lookupByEmail", "conversations.open", "conversations.open", "chat.postMessage",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "fault, error",
    [
        ({"status": 500}, "chat.postMessage: HTTP 500"),
        ({"drop": True}, "RemoteDisconnected: Remote end closed"),
    ],
)
def test_a_post_whose_answer_is_lost_is_found_by_its_metadata_not_posted_again(
    slack, any_ledger_url, fault, error
):
    slack.fail("chat.postMessage", after_storing=True, **fault)
    message = digest(EAST, replies=1)
    ledger = Ledger(any_ledger_url)

    report = deliver([message], SlackSink(), ledger, "run-1")
    assert report.failed[message.key].startswith(error)
    assert len(slack.calls("chat.postMessage")) == 1  # a post is never repeated blindly
    pending = ledger.parts(WS, message.key)[0]
    assert pending.state == PENDING and len(slack.posts("C02")) == 1

    later = [digest(EAST, date="2026-11-25"), digest(EAST, date="2026-11-26")]
    deliver(later, SlackSink(), ledger, "run-2")  # newer posts push it to the 2nd history page

    retry = deliver([message], SlackSink(), ledger, "run-3")
    assert retry.sent == [message.key] and retry.recovered == [message.key]
    search = slack.calls("conversations.history")
    assert search[0].args == {
        "channel": "C02", "oldest": f"{pending.marked_at - CLOCK_SKEW:.6f}", "include_all_metadata": "1", "limit": "200",
    }  # fmt: skip
    assert [r.args.get("cursor") for r in search] == [None, "2"]
    ts0 = slack.posts("C02")[0]["ts"]
    assert parts_posted(slack, "C02") == [(0, None), (0, None), (0, None), (1, ts0)]
    assert [m["metadata"]["event_payload"]["key"] for m in slack.posts("C02")] == [
        message.key, later[0].key, later[1].key, message.key,
    ]  # fmt: skip
    assert ledger.parts(WS, message.key)[0].ts == ts0
    ledger.close()


class LedgerCrashingAfterSlackAnswers(Ledger):
    """Stands for a process that dies after Slack answered a post and before the ledger recorded it."""

    def __init__(self, ledger_url, crash_on_part):
        super().__init__(ledger_url)
        self.crash_on_part = crash_on_part

    def mark_sent(self, workspace, key, part, *, ts):
        if part == self.crash_on_part:
            self.crash_on_part = None
            raise ConnectionError("ledger database went away")
        super().mark_sent(workspace, key, part, ts=ts)


def test_a_crash_before_a_thread_reply_is_recorded_resumes_the_thread_without_repeats(slack, ledger_url):
    message = digest(replies=3)

    first = deliver(
        [message], SlackSink(), LedgerCrashingAfterSlackAnswers(ledger_url, crash_on_part=1), "run-1"
    )
    assert first.failed == {message.key: "ConnectionError: ledger database went away"}
    assert [p for p, _ in parts_posted(slack, "D0ANN")] == [0, 1]

    retry = deliver([message], SlackSink(), Ledger(ledger_url), "run-1")
    assert retry.recovered == [message.key]
    ts0 = slack.posts("D0ANN")[0]["ts"]
    [search] = slack.calls("conversations.replies")
    assert search.args["ts"] == ts0 and search.args["channel"] == "D0ANN"
    assert parts_posted(slack, "D0ANN") == [(0, None), (1, ts0), (2, ts0), (3, ts0)]


CHILD = """
import json, sys
from sa_hygiene.state.ledger import Ledger
from sa_hygiene.delivery.blockkit import Message
from sa_hygiene.delivery.slack import SlackSink, deliver
messages = [Message(**{**m, "fallbacks": tuple(m["fallbacks"])}) for m in json.loads(sys.argv[2])]
deliver(messages, SlackSink(), Ledger(sys.argv[1]), "run-1")
"""


def delivering_process(ledger_url, messages, **kwargs) -> subprocess.Popen:
    """``deliver`` in a process of its own, as an Airflow task runs it."""
    payload = json.dumps([dataclasses.asdict(m) for m in messages])
    return subprocess.Popen([sys.executable, "-c", CHILD, ledger_url, payload], text=True, **kwargs)


def test_a_killed_delivery_process_is_resumed_and_nothing_is_posted_twice(slack, ledger_url):
    messages = [digest(EAST), digest({"type": "channel", "name": "#sa-hygiene-ops"}), digest(replies=1)]
    child = {}
    # Slack stores the second post, then the delivering process dies before hearing back.
    slack.fail(
        "chat.postMessage", after=1, after_storing=True, on_hit=lambda: os.kill(child["pid"], signal.SIGKILL)
    )
    proc = delivering_process(ledger_url, messages)
    child["pid"] = proc.pid
    assert proc.wait(timeout=60) == -signal.SIGKILL

    report = deliver(messages, SlackSink(), Ledger(ledger_url), "run-1")

    assert report.already_sent == [messages[0].key]
    assert report.sent == [messages[1].key, messages[2].key] and report.recovered == [messages[1].key]
    keys = [m["metadata"]["event_payload"]["key"] for c in ("C02", "C03", "D0ANN") for m in slack.posts(c)]
    assert keys == [messages[0].key, messages[1].key, messages[2].key, messages[2].key]


def test_the_token_is_never_logged_even_at_debug_level_nor_stored(slack, ledger_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
    slack.fail("chat.postMessage", status=500, after_storing=True)
    slack.fail("users.lookupByEmail", status=429, retry_after=0)
    proc = delivering_process(
        ledger_url, [digest(replies=1), digest(EAST)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = proc.communicate(timeout=60)[0]

    assert (
        "Sending a request" in output and "chat.postMessage: HTTP 500" in output
    )  # slack_sdk's debug log was on
    assert TOKEN not in output
    ledger = Ledger(ledger_url)
    with ledger.engine.connect() as conn:
        stored = [repr(row) for table in ("slack_deliveries", "slack_users", "slack_channels")
                  for row in conn.exec_driver_sql(f"select * from {table}")]  # fmt: skip
    assert stored and not any(TOKEN in row for row in stored)


def test_too_many_blocks_are_refused_before_anything_reaches_slack_and_long_text_is_cut(slack, ledger):
    too_many = digest(EAST, blocks=[section("x")] * 51)
    too_long = digest(replies=1)
    too_long.replies[0][0]["text"]["text"] = "x" * 3001

    report = deliver([too_many, too_long], SlackSink(), ledger, "run-1")

    assert report.failed == {
        too_many.key: f"InvalidMessage: {too_many.key} part 0: 51 blocks, Slack allows 50 per message",
    }
    assert report.sent == [too_long.key]
    assert [m["blocks"] for m in slack.posts("D0ANN")][1] == [section("x" * 2999 + "…")]
    assert slack.posts("C02") == []


def test_a_wrong_token_fails_every_message_with_slacks_error(slack, ledger, monkeypatch):
    connect(monkeypatch, slack, token="xoxb-wrong")
    report = deliver([digest(), digest(EAST)], SlackSink(), ledger, "run-1")

    assert report.failed == {
        digest().key: "users.lookupByEmail: invalid_auth",
        digest(EAST).key: "conversations.list: invalid_auth",
    }
    assert slack.requests and not any(r.authorized for r in slack.requests)


def test_outbox_and_slack_receive_the_same_posts(slack, ledger, tmp_path):
    messages = [digest(replies=2), digest(EAST, replies=1), digest(MANAGER, email="mgr@gitlab.com")]
    deliver(messages, SlackSink(), ledger, "run-1")
    outbox = OutboxSink(tmp_path / "outbox", "run-1")
    deliver(messages, outbox, ledger, "run-1")  # the same ledger: the outbox is a workspace of its own

    def comparable(args):
        return {k: v for k, v in args.items() if k not in ("channel", "thread_ts")} | {
            "reply": "thread_ts" in args
        }

    in_slack = [comparable(r.args) for r in slack.calls("chat.postMessage")]
    in_outbox = [comparable(post["args"]) for post in OutboxSink.posts(outbox.folder)]
    assert in_outbox == in_slack and len(in_slack) == 6
    assert ANN["id"] in outbox.preview_path.read_text()


def test_a_lost_post_in_a_channel_the_app_only_posts_to_is_found_after_joining_it(slack, ledger):
    slack.add_channel("sa-activities-west-sa", "C0W", member=False)  # posted to with chat:write.public
    west = {"type": "channel", "name": "#sa-activities-west-sa"}
    message = digest(west, replies=1)
    slack.fail("chat.postMessage", status=500, after_storing=True)
    assert deliver([message], SlackSink(), ledger, "run-1").failed

    retry = deliver([message], SlackSink(), ledger, "run-2")

    assert retry.recovered == [message.key] and not retry.unconfirmed
    assert [r.method for r in slack.requests][-4:] == [
        "conversations.history", "conversations.join", "conversations.history", "chat.postMessage",
    ]  # fmt: skip
    ts0 = slack.posts("C0W")[0]["ts"]
    assert parts_posted(slack, "C0W") == [(0, None), (1, ts0)]


def test_a_post_that_can_never_be_confirmed_is_given_up_after_three_checks_and_the_rest_goes_on(slack, ledger):
    slack.can_join = False
    slack.add_channel("sa-activities-west-sa", "C0W", member=False)
    west = {"type": "channel", "name": "#sa-activities-west-sa"}
    message, other = digest(west, replies=1), digest(EAST)
    slack.fail("chat.postMessage", status=500, after_storing=True)
    deliver([message], SlackSink(), ledger, "run-1")

    checks = [deliver([message, other], SlackSink(), ledger, f"run-{n}") for n in (2, 3, 4)]

    assert [c.failed for c in checks[:2]] == [{message.key: (
        f"RecipientNotFound: not_in_channel: cannot read the conversation to look for part 0 (check {n} of 3); "
        "invite the app or grant channels:join")} for n in (1, 2)]  # fmt: skip
    assert checks[0].sent == [other.key]  # the rest of the run is not held up
    last = checks[2]
    assert (last.sent, last.failed, last.unconfirmed) == ([message.key], {}, [f"{message.key} part 0"])
    assert parts_posted(slack, "C0W") == [(0, None), (1, None)]  # never posted twice; the rest without its thread
    assert [p.state for p in ledger.parts(WS, message.key).values()] == ["unconfirmed", "sent"]
    assert deliver([message], SlackSink(), ledger, "run-5").already_sent == [message.key]
