"""The outbox preview: the posts of a delivery run as one HTML page a manager can read.

Block Kit is rendered closely enough to judge a digest (headers, sections and their
fields, context lines, dividers, buttons, overflow menus shown open with their options,
images) and Slack's mrkdwn becomes HTML:
``*bold*``, ``_italic_``, ``~strike~``, code, ``<url|links>``, mentions. Everything
from a message is escaped, and only http(s) and mailto links become links, so a
digest cannot inject markup into the page.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

# Code and links are read first, left to right, and are atomic: styles wrap them, never enter them.
_ATOM = re.compile(r"(?s:```\n?(?P<pre>.+?)```)|`(?P<code>[^`\n]+)`|<(?P<link>[^<>\n]+)>")
_STYLES = {"*": "strong", "_": "em", "~": "del"}
# Characters HTML does not allow in text (browsers show U+FFFD for NUL anyway).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SAFE_URL = re.compile(r"(https?://|mailto:)", re.I)
# A run folder of the outbox: the Slack calls as JSON Lines, and their preview.
CALLS, PREVIEW = "calls.jsonl", "preview.html"


def _unslack(text: str) -> str:
    """Slack escapes only &, < and > in message text; undo that before escaping for HTML."""
    return _CONTROL.sub("\ufffd", text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def mrkdwn(text: str) -> Markup:
    """Slack mrkdwn as safe HTML.

    A tokenizer, not substitutions: code and links become finished HTML tokens, the text
    between them single characters, and styles are matched over that sequence. Nothing is
    set aside inside the text itself, so no input can collide with a placeholder.
    """
    tokens: list[str | Markup] = []
    at = 0
    for m in _ATOM.finditer(text):
        tokens += _unslack(text[at : m.start()])
        if m["pre"] is not None:
            tokens.append(Markup("<pre>{}</pre>").format(_unslack(m["pre"])))
        elif m["code"] is not None:
            tokens.append(Markup("<code>{}</code>").format(_unslack(m["code"])))
        else:
            tokens.append(_link(m["link"]))
        at = m.end()
    tokens += _unslack(text[at:])
    return _styled(tokens)


def _word(token: str | Markup | None) -> bool:
    return isinstance(token, str) and not isinstance(token, Markup) and (token.isalnum() or token == "_")


def _space(token: str | Markup) -> bool:
    return not isinstance(token, Markup) and token.isspace()


def _closing(tokens: list[str | Markup], start: int, mark: str) -> int | None:
    """Where the style ``mark`` opened before ``start`` closes, by Slack's rules: the same line,
    no space just inside either mark, no word character just outside; None when it does not."""
    if start >= len(tokens) or _space(tokens[start]) or tokens[start] == mark:
        return None
    for j in range(start + 1, len(tokens)):
        if tokens[j] == "\n":
            return None
        if tokens[j] == mark:
            after = tokens[j + 1] if j + 1 < len(tokens) else None
            return None if _space(tokens[j - 1]) or _word(after) or after == mark else j
    return None


def _styled(tokens: list[str | Markup]) -> Markup:
    out: list[Markup] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        before = tokens[i - 1] if i else None
        if not isinstance(token, Markup) and token in _STYLES and not (_word(before) or before == token):
            end = _closing(tokens, i + 1, token)
            if end is not None:
                tag = _STYLES[token]
                out.append(Markup("<{0}>{1}</{0}>").format(Markup(tag), _styled(tokens[i + 1 : end])))
                i = end + 1
                continue
        out.append(Markup("<br>\n") if token == "\n" else escape(token))
        i += 1
    return Markup("").join(out)


def _link(inner: str) -> Markup:
    target, _, label = inner.partition("|")
    if target.startswith(("@", "#", "!")):
        # <@U123>, <#C123|name>, <!here>, <!subteam^S1|@sas>: what Slack shows, without a lookup.
        sigil = "#" if target[0] == "#" else "@"
        return Markup('<span class="mention">{}</span>').format(_unslack(sigil + (label or target[1:]).lstrip("@#")))
    label = _unslack(label or target)
    if _SAFE_URL.match(target):
        return Markup('<a href="{}">{}</a>').format(_unslack(target), label)
    return escape(label)


def text_object(obj: dict | None) -> Markup:
    """A Block Kit text object (mrkdwn or plain_text) as HTML."""
    if not obj:
        return Markup("")
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj.get("text", ""))
    return escape(_unslack(obj.get("text", "")))


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
            digest["title"] = _unslack(post.get("title") or post["args"]["text"])
    for digest in digests.values():
        digest["parts"] = [digest["parts"][n] for n in sorted(digest["parts"])]
        digest["title"] = digest["title"] or digest["key"]
    return list(digests.values())


def write_preview(posts: list[dict], path: Path, *, run_id: str, days: list[dict] | None = None,
                  index_href: str | None = None) -> None:
    """Render the preview of a run's posts (outbox ``chat.postMessage`` lines) to ``path``;
    ``days`` ({label, href, current}) add a day selector when the outbox holds several days."""
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
    page = _env().get_template("slack_preview.html.j2").render(
        days=days,
        index_href=index_href,
        run_id=run_id,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        recipients=recipients,
        digest_count=sum(len(r["digests"]) for r in recipients),
    )
    path.write_text(page, encoding="utf-8")


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("sa_hygiene.delivery", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters.update(mrkdwn=mrkdwn, text_object=text_object, safe_url=safe_url)
    return env


# Run ids carry their logical date (manual__2026-11-24T05:15:00+00:00, folders with "_" for ":").
_RUN_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})T")
DAYS_FILE = "days.json"


def outbox_days(outbox: Path) -> dict[str, list[str]]:
    """{day: run folders} of an outbox: from ``days.json`` when the demo wrote one (it knows which
    simulated day each run belongs to), else from the logical date in each run folder's name."""
    days: dict[str, list[str]] = {}
    listed = outbox / DAYS_FILE
    if listed.exists():
        for entry in json.loads(listed.read_text(encoding="utf-8")):
            days[entry["day"]] = [r for r in entry["runs"] if (outbox / r / CALLS).exists()]
        return days
    for folder in sorted(p for p in outbox.iterdir() if (p / CALLS).exists()):
        m = _RUN_DAY.search(folder.name)
        days.setdefault(m[1] if m else "undated", []).append(folder.name)
    return dict(sorted(days.items()))


def write_outbox_index(outbox: Path) -> Path:
    """``index.html`` of an outbox: its runs grouped by day, with a day selector, each run's
    message count and a link to its preview; with several days every preview gets the selector."""
    days = outbox_days(outbox)
    posts = {run: _posts(outbox / run) for runs in days.values() for run in runs}
    listed = outbox / DAYS_FILE
    figures = {e["day"]: e for e in json.loads(listed.read_text(encoding="utf-8"))} if listed.exists() else {}
    sections = [{"day": day, "label": _day_label(day), "anchor": f"d{day}", "figures": figures.get(day, {}),
                 "runs": [{"name": r, "messages": len(posts[r])} for r in runs]} for day, runs in days.items()]  # fmt: skip
    page = _env().from_string(_INDEX).render(days=sections)
    path = outbox / "index.html"
    path.write_text(page, encoding="utf-8")
    if len(days) > 1:
        for day, runs in days.items():
            selector = [{"label": _day_label(d), "href": f"../{rs[0]}/{PREVIEW}" if rs else f"../index.html#d{d}",
                         "current": d == day} for d, rs in days.items()]  # fmt: skip
            for run in runs:
                write_preview(posts[run], outbox / run / PREVIEW, run_id=run, days=selector, index_href="../index.html")
    return path


def _posts(folder: Path) -> list[dict]:
    path = folder / CALLS
    lines = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [line for line in lines if line["method"] == "chat.postMessage"]


def _day_label(day: str) -> str:
    try:
        return datetime.strptime(day, "%Y-%m-%d").strftime("%a %d %b")
    except ValueError:
        return day


_INDEX = """<!doctype html><html lang="en"><meta charset="utf-8"><title>sa-hygiene outbox</title>
<style>body{font:15px system-ui;margin:2em auto;max-width:52em}li{margin:.3em 0}
nav a{display:inline-block;border:1px solid #ddd;border-radius:14px;padding:2px 12px;margin:2px;text-decoration:none}
section{border-top:1px solid #eee;margin-top:1em}.n{color:#666;font-size:13px}</style>
<h1>Slack outbox</h1><p>What each DAG run would have posted to Slack{% if days | length > 1 %}, day by day{% endif %}.</p>
{% if days | length > 1 %}<nav aria-label="Days">{% for d in days %}<a href="#{{ d.anchor }}">{{ d.label }}</a>{% endfor %}</nav>{% endif %}
{% for d in days %}<section id="{{ d.anchor }}"><h2>{{ d.label }} <span class="n">{{ d.day }}</span></h2>
{% set f = d.figures %}{% if f.alerts is defined %}<p class="n">{{ f.alerts }} alerts · {% if f.fixed is not none and f.fixed is defined %}{{ f.fixed }} fixed, {{ f.gone }} gone{% else %}{{ f.ended }} fixed or gone{% endif %} · {{ f.snoozed }} snoozed · {{ f.escalated }} escalated · {{ f.messages }} messages</p>{% endif %}<ul>
{% for r in d.runs %}<li><a href="{{ r.name }}/preview.html">{{ r.name }}</a> <span class="n">{{ r.messages }} message{{ "s" if r.messages != 1 }}</span></li>
{% else %}<li class="n">No run posted anything.</li>{% endfor %}</ul></section>
{% else %}<p>Nothing in the outbox yet.</p>{% endfor %}
"""
