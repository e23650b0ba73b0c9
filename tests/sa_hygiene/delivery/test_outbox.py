"""Delivery into the outbox: the calls file, the preview, and the same exactly-once rules as Slack."""

import dataclasses
import json

import pytest
from slack_builders import ANN, EAST, digest, section

from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.delivery.slack import deliver
from sa_hygiene.state.ledger import Ledger

pytestmark = pytest.mark.unit

RUN = "scheduled__2026-11-24T21:00:00.000+00:00"


def calls(sink):
    return [json.loads(line) for line in sink.calls_path.read_text().splitlines()]


def test_every_call_is_written_in_order_with_its_recipient_and_exact_arguments(tmp_path, ledger):
    dm, channel = digest(replies=1), digest(EAST)
    sink = OutboxSink(tmp_path / "outbox", RUN)

    report = deliver([dm, channel], sink, ledger, RUN)

    assert report.sent == [dm.key, channel.key]
    assert sink.folder == tmp_path / "outbox" / "scheduled__2026-11-24T21_00_00_000_00_00"
    lines = calls(sink)
    user, dm_channel = "U4805671519", "D4805671519"  # made up by the outbox from the e-mail
    assert [(c["method"], c["recipient"]) for c in lines] == [
        ("users.lookupByEmail", ANN),
        ("conversations.open", ANN),
        ("chat.postMessage", ANN),
        ("chat.postMessage", ANN),
        ("conversations.list", EAST),
        ("chat.postMessage", EAST),
    ]
    assert lines[0]["args"] == {"email": "ann@gitlab.com"}
    assert lines[1]["args"] == {"users": user}
    assert lines[2] == {
        "method": "chat.postMessage",
        "recipient": ANN,
        "args": {
            "channel": dm_channel,
            "text": dm.text,
            "blocks": dm.blocks,
            "metadata": {"event_type": "sa_hygiene_digest", "event_payload": {"key": dm.key, "part": 0}},
            "unfurl_links": False,
            "unfurl_media": False,
        },
        "ts": lines[2]["ts"],
        "title": dm.title,
    }
    assert lines[3]["args"]["thread_ts"] == lines[2]["ts"] < lines[3]["ts"]
    assert lines[4]["args"] == {
        "types": "public_channel,private_channel",
        "exclude_archived": True,
        "limit": 200,
    }


def test_a_rerun_writes_no_call_and_renders_the_same_preview(tmp_path, ledger):
    messages = [digest(replies=1), digest(EAST)]
    deliver(messages, OutboxSink(tmp_path / "outbox", RUN), ledger, RUN)
    sink = OutboxSink(tmp_path / "outbox", RUN)
    before, preview = sink.calls_path.read_text(), sink.preview_path.read_text()

    report = deliver(messages, sink, ledger, RUN)

    assert report.already_sent == [m.key for m in messages]
    assert sink.calls_path.read_text() == before
    assert _without_time(sink.preview_path.read_text()) == _without_time(preview)


def _without_time(page):
    return "\n".join(line for line in page.splitlines() if "UTC" not in line)


class CrashAfterPost(Ledger):
    def mark_sent(self, workspace, key, part, *, ts):
        raise OSError("disk full")


def test_a_crashed_outbox_run_is_recovered_from_the_calls_it_wrote(tmp_path, ledger, ledger_url):
    message = digest(EAST)
    first = deliver([message], OutboxSink(tmp_path / "outbox", "run-1"), CrashAfterPost(ledger_url), "run-1")
    assert first.failed == {message.key: "OSError: disk full"}

    sink = OutboxSink(tmp_path / "outbox", "run-2")
    report = deliver([message], sink, ledger, "run-2")

    assert report.recovered == [message.key]
    assert [c["method"] for c in calls(sink)] == ["conversations.history"]
    assert not any("chat.postMessage" in line for line in sink.calls_path.read_text().splitlines())


def test_the_preview_lists_recipients_and_renders_blocks_and_threads(tmp_path, ledger):
    rich = digest(
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "Your hygiene digest <today>"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*<https://sf.example/0061|Acme & Co>* needs an end date"}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "<javascript:alert(1)|click> · `wf-06`"}]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://sf.example/0061"}]},
        ],
    )  # fmt: skip
    messages = [dataclasses.replace(rich, replies=[[section("second")], [section("third")]]), digest(EAST)]
    sink = OutboxSink(tmp_path / "outbox", RUN)
    deliver(messages, sink, ledger, RUN)
    page = sink.preview_path.read_text()

    assert '<a href="#r0">#sa-activities-east-sa</a>' in page  # channels first in the table of contents
    assert f'<a href="#r1">DM to user {ANN["id"]}</a>' in page
    assert f'<a href="#r1-0">{messages[0].title}</a>' in page
    assert '<h3 class="header">Your hygiene digest &lt;today&gt;</h3>' in page
    assert '<strong><a href="https://sf.example/0061">Acme &amp; Co</a></strong> needs an end date' in page
    assert '<a class="button" href="https://sf.example/0061">Open</a>' in page
    assert "<hr>" in page and "<code>wf-06</code>" in page
    assert "javascript:" not in page and "<span>click · " in page
    assert (
        page.index("Reply 1 of 2") < page.index("second") < page.index("Reply 2 of 2") < page.index("third")
    )


def test_a_message_slack_would_reject_is_refused_and_recorded(tmp_path, ledger):
    # Too many blocks is the one thing fitting cannot mend: only the renderer can use the thread.
    bad = dataclasses.replace(digest(blocks=[section("x")] * 50), replies=[[section("x")] * 51])
    sink = OutboxSink(tmp_path / "outbox", RUN)

    report = deliver([bad, digest(EAST)], sink, ledger, RUN)

    error = f"InvalidMessage: {bad.key} part 1: 51 blocks, Slack allows 50 per message"
    assert report.failed == {bad.key: error}
    assert report.sent == [digest(EAST).key]
    assert ledger.parts("outbox", bad.key)[0].error == error
    assert all(c["recipient"] == EAST for c in calls(sink))


def test_over_long_fields_are_cut_to_slacks_limits_and_delivered(tmp_path, ledger):
    long = digest(blocks=[
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}] * 11},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b" * 80},
                                          "url": "https://sf.example/" + "u" * 3000}]},
    ])  # fmt: skip
    sink = OutboxSink(tmp_path / "outbox", RUN)

    report = deliver([long], sink, ledger, RUN)

    assert report.sent == [long.key] and not report.failed
    [post] = [c for c in calls(sink) if c["method"] == "chat.postMessage"]
    header, fields, context, actions = post["args"]["blocks"]
    assert header["text"]["text"] == "h" * 149 + "…"
    assert fields["fields"] == [{"type": "mrkdwn", "text": "f" * 1999 + "…"}] * 10
    assert len(context["elements"]) == 10
    assert actions["elements"] == [{"type": "button", "text": {"type": "plain_text", "text": "b" * 74 + "…"}}]


def test_a_batch_with_a_repeated_key_is_refused_before_anything_is_sent(tmp_path, ledger):
    sink = OutboxSink(tmp_path / "outbox", RUN)
    with pytest.raises(ValueError, match=r"repeated: sa_digest\|user:0051a00000AnnAAAAA\|2026-11-24$"):
        deliver([digest(), digest(EAST), digest()], sink, ledger, RUN)
    assert not sink.calls_path.exists()
