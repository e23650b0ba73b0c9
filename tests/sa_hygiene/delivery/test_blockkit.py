"""Slack's limits as data: cutting, fitting and checking a message, and links only to real records."""

import pytest
from slack_builders import digest, section

from sa_hygiene.delivery.blockkit import (
    InvalidMessage,
    check_message,
    cut,
    esc,
    fit_message,
    record_link,
    units,
)

pytestmark = pytest.mark.unit

SF = "https://gitlab.my.salesforce.com"


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("short", 5, "short"),
        ("abcdef", 5, "abcd…"),
        ("ab&amp;cd", 5, "ab…"),  # "ab&a…" would show a stray "&a"
        ("ab&lt;!channel&gt;", 7, "ab&lt;…"),
        ("a😀😀", 4, "a😀…"),  # an emoji is two UTF-16 units
        ("a\ud83d\ude00b", 3, "a…"),  # a surrogate pair is never split
        ("see <https://sf.example/006|Acme> now", 20, "see …"),  # nor one of our links
    ],
)
def test_cut_keeps_escapes_surrogates_and_links_whole(text, limit, expected):
    assert cut(text, limit) == expected
    assert units(cut(text, limit)) <= limit


def test_esc_makes_slack_control_sequences_text():
    assert esc("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert esc(None) == "" and esc(float("nan")) == ""


@pytest.mark.parametrize(
    "record_id, expected",
    [
        ("0065e0000000OP1AAA", f"<{SF}/lightning/r/Opportunity/0065e0000000OP1AAA/view|Acme &amp; Co>"),
        ("0065e0000000OP1", f"<{SF}/lightning/r/Opportunity/0065e0000000OP1/view|Acme &amp; Co>"),
        ("006|<!channel>", "Acme &amp; Co"),
        ("0065e0000000OP1AAA/../../x", "Acme &amp; Co"),
        (None, "Acme &amp; Co"),
    ],
)
def test_a_record_link_is_built_only_from_a_salesforce_id(record_id, expected):
    assert record_link(SF, "Opportunity", record_id, "Acme & Co") == expected


def test_a_non_id_without_a_label_is_shown_escaped():
    assert record_link(SF, "Task", "<!channel>", None) == "&lt;!channel&gt;"


def test_fitting_mends_every_field_and_leaves_a_message_that_fits_alone():
    fine = digest(replies=1)
    assert fit_message(fine) == fine
    long = digest(blocks=[
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001},
         "accessory": {"type": "image", "image_url": "https://x.example/i.png", "alt_text": "a" * 2001}},
        {"type": "image", "image_url": "https://x.example/" + "i" * 3000, "alt_text": "a", "title": {"type": "plain_text", "text": "t" * 2001}},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b" * 76},
                                          "action_id": "x" * 300, "value": "v" * 2001}] * 26},
    ])  # fmt: skip
    long = type(long)(**{**long.__dict__, "text": "n" * 40001, "title": "t" * 5000})
    with pytest.raises(InvalidMessage):
        check_message(long)

    fitted = fit_message(long)

    check_message(fitted)
    assert fit_message(fitted) == fitted
    header, sec, image, actions = fitted.blocks
    assert header["text"]["text"] == "h" * 149 + "…"
    assert sec["text"]["text"] == "s" * 2999 + "…" and sec["accessory"]["alt_text"] == "a" * 1999 + "…"
    assert "image_url" not in image and image["title"]["text"] == "t" * 1999 + "…"
    assert len(actions["elements"]) == 25
    button = actions["elements"][0]
    assert (len(button["action_id"]), len(button["value"]), button["text"]["text"]) == (255, 2000, "b" * 74 + "…")
    assert len(fitted.text) == 3000 and len(fitted.notification(1)) <= 3000


@pytest.mark.parametrize(
    "block, error",
    [
        ({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
         "block 0 (header) text has 151 characters, Slack allows 150"),
        ({"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
         "block 0 (section) has 11 fields, Slack allows 10"),
        ({"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3001}]},
         "block 0 (context) elements[0] has 3001 characters, Slack allows 3000"),
        ({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}]},
         "block 0 (actions) elements[0].text has 76 characters, Slack allows 75"),
        (section("😀" * 1501), "block 0 (section) text has 3002 characters, Slack allows 3000"),
    ],
)  # fmt: skip
def test_check_message_names_the_field_slack_would_refuse(block, error):
    message = digest(blocks=[block])
    with pytest.raises(InvalidMessage) as refused:
        check_message(message)
    assert str(refused.value) == f"{message.key} part 0: {error}"
