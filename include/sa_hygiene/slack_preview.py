"""The outbox preview: the posts of a delivery run as one HTML page a manager can read.

Block Kit is rendered closely enough to judge a digest (headers, sections and their
fields, context lines, dividers, buttons, images) and Slack's mrkdwn becomes HTML:
``*bold*``, ``_italic_``, ``~strike~``, code, ``<url|links>``, mentions. Everything
from a message is escaped, and only http(s) and mailto links become links, so a
digest cannot inject markup into the page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

_PRE = re.compile(r"```\n?(.+?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"<([^<>\n]+)>")
_KEPT = re.compile("\x00(\\d+)\x00")
_STYLES = [
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), "strong"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), "em"),
    (re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])"), "del"),
]
_SAFE_URL = re.compile(r"(https?://|mailto:)", re.I)


def _unslack(text: str) -> str:
    """Slack escapes only &, < and > in message text; undo that before escaping for HTML."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _escaped(text: str) -> str:
    return str(escape(_unslack(text)))


def mrkdwn(text: str) -> Markup:
    """Slack mrkdwn as safe HTML."""
    kept: list[str] = []

    def keep(html_: str) -> str:
        # Code and links are rendered first and set aside, so that styles and line
        # breaks apply around them but never inside.
        kept.append(html_)
        return f"\x00{len(kept) - 1}\x00"

    text = _PRE.sub(lambda m: keep(f"<pre>{_escaped(m.group(1))}</pre>"), text)
    text = _CODE.sub(lambda m: keep(f"<code>{_escaped(m.group(1))}</code>"), text)
    text = _LINK.sub(lambda m: keep(_link(m.group(1))), text)
    out = _escaped(text)
    for pattern, tag in _STYLES:
        out = pattern.sub(lambda m, tag=tag: f"<{tag}>{m.group(1)}</{tag}>", out)
    out = out.replace("\n", "<br>\n")
    return Markup(_KEPT.sub(lambda m: kept[int(m.group(1))], out))


def _link(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith(("@", "#", "!")):
        # <@U123>, <#C123|name>, <!here>, <!subteam^S1|@sas>: what Slack shows, without a lookup.
        sigil = "#" if target[0] == "#" else "@"
        return f'<span class="mention">{escape(sigil + (label or target[1:]).lstrip("@#"))}</span>'
    label = _escaped(label or target)
    if _SAFE_URL.match(target):
        return f'<a href="{_escaped(target)}">{label}</a>'
    return label


def text_object(obj: dict | None) -> Markup:
    """A Block Kit text object (mrkdwn or plain_text) as HTML."""
    if not obj:
        return Markup("")
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj.get("text", ""))
    return escape(obj.get("text", ""))


def safe_url(url: str | None) -> str | None:
    return url if url and _SAFE_URL.match(url) else None


def _label(digest: dict) -> str:
    recipient = digest["recipient"]
    if recipient.get("type") == "channel":
        return recipient["name"]
    # Digest titles name their person second ("Your SA hygiene digest · Sam Architect · Tue 24 Nov").
    parts = (digest.get("title") or "").split(" · ")
    return f"DM to {parts[1]}" if len(parts) > 2 else f"DM to user {recipient.get('id', '?')}"


def _digests(posts: list[dict]) -> list[dict]:
    """Posts grouped into digests (first message and its thread replies), by their metadata."""
    digests: dict[str, dict] = {}
    for post in posts:
        payload = post["args"]["metadata"]["event_payload"]
        digest = digests.setdefault(
            payload["key"],
            {"key": payload["key"], "title": None, "recipient": post["recipient"], "parts": {}},
        )
        digest["parts"][payload["part"]] = post["args"]
        if payload["part"] == 0:
            digest["title"] = post.get("title") or post["args"]["text"]
    for digest in digests.values():
        digest["parts"] = [digest["parts"][n] for n in sorted(digest["parts"])]
        digest["title"] = digest["title"] or digest["key"]
    return list(digests.values())


def write_preview(posts: list[dict], path: Path, *, run_id: str) -> None:
    """Render the preview of a run's posts (outbox ``chat.postMessage`` lines) to ``path``."""
    groups: dict[str, list[dict]] = {}
    for digest in _digests(posts):
        groups.setdefault(_label(digest), []).append(digest)
    # Channels first (what managers read), then DMs; anchors follow the page order.
    labels = sorted(groups, key=lambda label: (groups[label][0]["recipient"]["type"] != "channel", label))
    recipients = [
        {"label": label, "anchor": f"r{i}", "digests": groups[label]} for i, label in enumerate(labels)
    ]
    for recipient in recipients:
        for j, digest in enumerate(recipient["digests"]):
            digest["anchor"] = f"{recipient['anchor']}-{j}"
    env = Environment(
        loader=PackageLoader("sa_hygiene", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters.update(mrkdwn=mrkdwn, text_object=text_object, safe_url=safe_url)
    page = env.get_template("slack_preview.html.j2").render(
        run_id=run_id,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        recipients=recipients,
        digest_count=sum(len(r["digests"]) for r in recipients),
    )
    path.write_text(page, encoding="utf-8")
