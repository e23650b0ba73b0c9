"""Slack mrkdwn and Block Kit text as the HTML of the outbox preview."""

import pytest

from sa_hygiene.delivery.preview import mrkdwn, text_object

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text, html",
    [
        ("*bold* _italic_ ~gone~ `code`", "<strong>bold</strong> <em>italic</em> <del>gone</del> <code>code</code>"),
        ("*<https://sf.example/006?a=1&amp;b=2|Acme &amp; Co>*", '<strong><a href="https://sf.example/006?a=1&amp;b=2">Acme &amp; Co</a></strong>'),
        ("<https://sf.example/006>", '<a href="https://sf.example/006">https://sf.example/006</a>'),
        ("<mailto:ann@gitlab.com|Ann>", '<a href="mailto:ann@gitlab.com">Ann</a>'),
        ("<@U0ANN> <#C02|sa-activities-east-sa> <!here>", '<span class="mention">@U0ANN</span> <span class="mention">#sa-activities-east-sa</span> <span class="mention">@here</span>'),
        ("<!subteam^S1|@sa-leads> <javascript:alert(1)|click> <|odd>", '<span class="mention">@sa-leads</span> click odd'),
        ("&lt;script&gt;alert(1)&lt;/script&gt; 3 &gt; 2", "&lt;script&gt;alert(1)&lt;/script&gt; 3 &gt; 2"),
        ("te_status and 2*3*4 stay as they are", "te_status and 2*3*4 stay as they are"),
        ("line one\nline two", "line one<br>\nline two"),
        ("```\nSELECT 1\n```", "<pre>SELECT 1\n</pre>"),
        ("**x* _a_b_ ~ x~", "**x* _a_b_ ~ x~"),
        ("_*both*_ *`code` and <https://sf.example|link>*", '<em><strong>both</strong></em> <strong><code>code</code> and <a href="https://sf.example">link</a></strong>'),
    ],
)  # fmt: skip
def test_mrkdwn_becomes_safe_html(text, html):
    assert str(mrkdwn(text)) == html


def test_plain_text_is_only_escaped():
    assert str(text_object({"type": "plain_text", "text": "*not bold* <b>"})) == "*not bold* &lt;b&gt;"
    assert str(text_object(None)) == ""


def test_a_dm_is_labelled_with_the_name_its_digest_title_gives(tmp_path):
    from sa_hygiene.delivery.preview import write_preview

    post = {"recipient": {"type": "user", "id": "0051a00000AnnAAAAA"}, "title": "Your SA hygiene digest · Ann Lee · Tue 24 Nov",
            "args": {"channel": "D1", "text": "t", "blocks": [], "metadata": {"event_payload": {"key": "k", "part": 0}}}}  # fmt: skip
    write_preview([post], tmp_path / "p.html", run_id="r")
    assert "DM to Ann Lee" in (tmp_path / "p.html").read_text()


@pytest.mark.parametrize(
    "text, html",
    [
        # What the old renderer used as its own placeholders is text like any other.
        ("id \x000\x00 and \x001\x00 `x`", "id \ufffd0\ufffd and \ufffd1\ufffd <code>x</code>"),
        ("\x000\x00", "\ufffd0\ufffd"),
        # Code inside a link label is part of the label: shown, not rendered, nothing left behind.
        ("<https://sf.example|see `a` and *b*>", '<a href="https://sf.example">see `a` and *b*</a>'),
        ("`<https://sf.example|x>`", "<code>&lt;https://sf.example|x&gt;</code>"),
        ("*_~nested~_* ~_*too*_~", "<strong><em><del>nested</del></em></strong> <del><em><strong>too</strong></em></del>"),
        ("&lt;b onmouseover=alert(1)&gt;*&lt;i&gt;*", "&lt;b onmouseover=alert(1)&gt;<strong>&lt;i&gt;</strong>"),
        ("<https://sf.example/\"onclick=\"x|a>", '<a href="https://sf.example/&#34;onclick=&#34;x">a</a>'),
    ],
)  # fmt: skip
def test_text_that_looks_like_markup_or_placeholders_renders_safely(text, html):
    assert str(mrkdwn(text)) == html


def test_a_preview_of_hostile_text_is_written_without_raw_markup(tmp_path):
    from sa_hygiene.delivery.preview import write_preview

    hostile = "\x001\x00 <https://x.example|`\x000\x00`> &lt;script&gt;alert(1)&lt;/script&gt; *_`<b>`_*"
    post = {"recipient": {"type": "channel", "name": "#ops"}, "title": "t &lt;!channel&gt;",
            "args": {"channel": "C1", "text": hostile, "metadata": {"event_payload": {"key": "k", "part": 0}},
                     "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": hostile}},
                                {"type": "header", "text": {"type": "plain_text", "text": "a &amp; &lt;b&gt;"}}]}}  # fmt: skip
    write_preview([post], tmp_path / "p.html", run_id="r")
    page = (tmp_path / "p.html").read_text()
    assert "\x00" not in page and "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "t &lt;!channel&gt;" in page and "a &amp; &lt;b&gt;" in page  # shown as Slack shows them


def _post(blocks, key="k"):
    return {"recipient": {"type": "channel", "name": "#ops"}, "title": "t",
            "args": {"channel": "C1", "text": "t", "blocks": blocks, "metadata": {"event_payload": {"key": key, "part": 0}}}}  # fmt: skip


def test_item_menus_and_buttons_show_their_actions_escaped(tmp_path):
    from sa_hygiene.delivery.preview import write_preview

    menu = {"type": "overflow", "action_id": "sa_item_menu", "options": [
        {"text": {"type": "plain_text", "text": "Snooze 7 days"}, "value": "snooze|wf-06|006|005"},
        {"text": {"type": "plain_text", "text": "Not mine <b>&amp;</b>"}, "value": "notmine|wf-06|006|005"},
        {"text": {"type": "plain_text", "text": "Open in Salesforce"}, "value": "open", "url": "https://sf.example/006"},
        {"text": {"type": "plain_text", "text": "Evil"}, "value": "x", "url": "javascript:alert(1)"}]}  # fmt: skip
    actions = {"type": "actions", "elements": [
        {"type": "button", "action_id": "log", "style": "primary", "text": {"type": "plain_text", "text": "Log it"}, "value": "v"},
        {"type": "static_select", "action_id": "pick", "placeholder": {"type": "plain_text", "text": "Why?"},
         "options": [{"text": {"type": "plain_text", "text": "Customer <x>"}, "value": "c"}]}]}  # fmt: skip
    write_preview([_post([{"type": "section", "text": {"type": "mrkdwn", "text": "item"}, "accessory": menu}, actions])],
                  tmp_path / "p.html", run_id="r")  # fmt: skip
    page = (tmp_path / "p.html").read_text()
    assert "Snooze 7 days" in page and "Not mine &lt;b&gt;&amp;&lt;/b&gt;" in page
    assert '<a href="https://sf.example/006">Open in Salesforce</a>' in page
    assert "javascript:" not in page and "<li>Evil</li>" in page
    assert '<span class="button primary"' in page and "Log it" in page
    assert "Why?" in page and "Customer &lt;x&gt;" in page
    assert "not shown in the preview" not in page


def test_an_outbox_of_several_days_gets_a_day_selector(tmp_path):
    import json

    from sa_hygiene.delivery.preview import write_outbox_index

    for run in ("sa_dm_digests_manual__2026-11-24T16_15_00_00_00", "sa_dm_digests_manual__2026-11-25T16_15_00_00_00"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "calls.jsonl").write_text(json.dumps({"method": "chat.postMessage", **_post([], run)}) + "\n")
    index = write_outbox_index(tmp_path).read_text()
    assert 'href="#d2026-11-24"' in index and 'href="#d2026-11-25"' in index
    page = (tmp_path / "sa_dm_digests_manual__2026-11-25T16_15_00_00_00" / "preview.html").read_text()
    assert '<span class="current" aria-current="page">Wed 25 Nov</span>' in page
    assert 'href="../sa_dm_digests_manual__2026-11-24T16_15_00_00_00/preview.html">Tue 24 Nov</a>' in page
    # One day: no selector, and the previews the runs wrote are left as they are.
    one = tmp_path / "one"
    (one / "r_2026-11-24T01").mkdir(parents=True)
    (one / "r_2026-11-24T01" / "calls.jsonl").write_text(json.dumps({"method": "chat.postMessage", **_post([])}) + "\n")
    assert 'aria-label="Days"' not in write_outbox_index(one).read_text()
    assert not (one / "r_2026-11-24T01" / "preview.html").exists()
