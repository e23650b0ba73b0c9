"""Slack's Block Kit rules in one place: its limits, mrkdwn escaping, sections and threads built
within them, and the message that obeys them.

Slack refuses a whole message (``invalid_blocks``) when one field is a character too
long, and a refused digest is refused again on every retry. So every message, whatever
renders it (digests, reminders, the operations summary, thread continuations), goes
through ``fit_message`` before delivery: text is cut with an ellipsis, lists are cut to
Slack's counts, and ``check_message`` then refuses only what fitting cannot mend (more
than 50 blocks in one message, which ``paginate`` spreads over a thread).

Text from Salesforce can hold ``<!channel>`` or ``<https://evil.example|click>``; Slack
treats ``&``, ``<`` and ``>`` as markup in every text field, plain text included, so all
of it goes through ``esc``, and record links are built only from real Salesforce Ids.
Lengths are counted in UTF-16 code units, which is never fewer than Slack's characters.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

# Slack's documented maxima (Block Kit reference), by where they apply.
MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
BUTTON_CHARS = 75
ALT_TEXT_CHARS = 2000
URL_CHARS = 3000
ACTION_ID_CHARS = 255
VALUE_CHARS = 2000
OPTION_TEXT_CHARS = 75
OPTION_VALUE_CHARS = 150
MAX_OVERFLOW_OPTIONS = 5
# Slack takes 40,000 characters of notification text; a phone shows a line of it.
NOTIFICATION_CHARS = 3000
# A record's name is cut so that its link always fits in a section with room to spare.
LINK_LABEL_CHARS = 1000
# Room a reply's notification adds to the title: " (12/34)".
_PART_SUFFIX = 16

ELLIPSIS = "…"
# The interactive elements the Slack app (``slack_app``) answers, and what their values carry.
ITEM_MENU = "sa_item_menu"  # the overflow menu of a digest item
LOG_IT = "sa_log_it"  # the "Log it" button of a meeting reminder
OPEN_LINK = "sa_open_link"  # a link button: Slack still tells the app it was clicked
UPDATE_TECH_EVAL = "sa_update_tech_eval"  # "Update tech evaluation": its value is the opportunity's Id
ADD_POV = "sa_add_pov"  # "Add a Proof of Value": its value is the opportunity's Id
UPDATE_POV = "sa_update_pov"  # "Update a Proof of Value": its value is the POV's Id
# The handbook's "Update Activity" button (an activity's post, a DM item of act-fields): its value is the Task's Id.
UPDATE_ACTIVITY = "sa_update_activity"
COMPLETE_TASK = "sa_complete_task"  # "Mark complete" on a task due or overdue: its value is the Task's Id
# A workflow's ``fix`` (config.FIXES) -> its button: (action id, label).
FIX_BUTTONS = {"tech_eval": (UPDATE_TECH_EVAL, "Update tech evaluation"), "pov": (UPDATE_POV, "Update a Proof of Value"),
               "pov_add": (ADD_POV, "Add a Proof of Value"), "activity": (UPDATE_ACTIVITY, "Update activity"),
               "task_done": (COMPLETE_TASK, "Mark complete")}  # fmt: skip

_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def esc(text: Any) -> str:
    """Salesforce text made inert for Slack: ``<!channel>`` shows as text and pings nobody."""
    if text is None or (isinstance(text, float) and text != text):  # None and NaN are blank
        return ""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def units(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units, so an emoji counts two."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def safe_end(text: str, limit: int) -> int:
    """The longest prefix of ``text`` within ``limit`` units that ends at a safe place.

    A cut never ends inside an escape (``&am`` would show as text, not ``&``), between
    the halves of a surrogate pair, or inside one of our ``<url|label>`` links (a link
    without its ``>`` is shown raw).
    """
    end = used = 0
    for c in text:
        used += 2 if ord(c) > 0xFFFF else 1
        if used > limit:
            break
        end += 1
    if end >= len(text):
        return end
    if end and "\ud800" <= text[end - 1] <= "\udbff":
        end -= 1
    amp = text.rfind("&", max(0, end - 4), end)
    if amp >= 0 and (m := _ENTITY.match(text, amp)) and m.end() > end:
        end = amp
    opened = text.rfind("<", 0, end)
    if opened >= 0 and text.find(">", opened, end) < 0:
        end = opened
    return end


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` units, ending in an ellipsis when something was left out."""
    if units(text) <= limit:
        return text
    return text[: safe_end(text, limit - 1)] + ELLIPSIS


def item_value(kind: str, workflow: str, record_id: str, recipient: str, what_id: str = "") -> str:
    """What a button or menu option acts on, compactly (an overflow option's value has 150
    characters): ``kind|workflow|record Id|recipient User Id[|suggested record Id]``."""
    return "|".join([kind, workflow, record_id, recipient, what_id]).rstrip("|")


def fix_button(fix: str, record_id: str) -> dict:
    """The button of a workflow's ``fix`` (``Workflow.fix``) for one record: the Slack app opens
    its form. Its value is the record's Id alone: who may write it is decided from the record."""
    action_id, label = FIX_BUTTONS[fix]  # config.FIXES lists what a workflow may name
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": record_id}


def is_salesforce_id(value: Any) -> bool:
    return isinstance(value, str) and _SALESFORCE_ID.fullmatch(value) is not None


def record_link(instance_url: str, obj: str, record_id: Any, label: Any) -> str:
    """A mrkdwn link to a record, or the escaped label alone when ``record_id`` is no Salesforce Id:
    a folder or CSV source could otherwise put markup or a foreign host into the URL."""
    text = cut(esc(label) or esc(record_id), LINK_LABEL_CHARS)
    if not is_salesforce_id(record_id):
        return text
    return f"<{record_url(instance_url, obj, record_id)}|{text}>"


def record_url(instance_url: str, obj: str, record_id: str) -> str:
    return f"{instance_url.rstrip('/')}/lightning/r/{obj}/{record_id}/view"


@dataclass(frozen=True)
class Message:
    """One rendered digest, ready to deliver."""

    key: str  # delivery key, unique per digest: f"{slot}|{recipient}|{date}"
    slot: str  # sa_digest | regional_digest | channel_post | meeting_reminder | ops_summary | escalation
    recipient: dict  # {"type": "user", "id": "005..."} or {"type": "channel", "name": "#..."}
    email: str | None  # Salesforce e-mail of a user recipient, for users.lookupByEmail
    fallbacks: tuple[dict, ...]  # tried in order when Slack does not know the user
    text: str  # notification text, escaped mrkdwn
    blocks: list[dict]  # Block Kit blocks of the first message
    replies: list[list[dict]]  # continuation messages, posted in the first message's thread
    title: str  # names the digest in the outbox preview and in its replies' notifications; escaped

    def parts(self) -> list[list[dict]]:
        return [self.blocks, *self.replies]

    def notification(self, part: int) -> str:
        """The notification text of a part: a reply says which part of the digest it is."""
        return self.text if part == 0 else f"{self.title} ({part + 1}/{len(self.replies) + 1})"


class InvalidMessage(ValueError):
    """A rendered message Slack would reject."""


# --------------------------------------------------------------------------- building
# A long message continues in its thread; replies open with one context block.
REPLY_HEAD = 1


def sections(text: str) -> list[dict]:
    """Section blocks for ``text``, split at line breaks so that none exceeds Slack's limit."""
    blocks, chunk = [], ""
    for line in text.split("\n"):
        while units(line) > SECTION_CHARS:  # one enormous line: split it where no escape or link breaks
            end = max(1, safe_end(line, SECTION_CHARS))
            blocks.append(line[:end])
            line = line[end:]
        if chunk and units(chunk) + units(line) + 1 > SECTION_CHARS:
            blocks.append(chunk)
            chunk = line
        else:
            chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(chunk)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in blocks]


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def paginate(preamble: list[dict], content: list[dict], title: str) -> tuple[list[dict], list[list[dict]]]:
    """The first message and its thread replies: every block kept, at most 50 per message.
    ``title`` is escaped already."""
    first_room = MAX_BLOCKS - len(preamble)
    first, rest = preamble + content[:first_room], content[first_room:]
    chunks = [rest[i : i + MAX_BLOCKS - REPLY_HEAD] for i in range(0, len(rest), MAX_BLOCKS - REPLY_HEAD)]
    total = len(chunks) + 1
    replies = [[context(f"{title}, continued ({n + 2}/{total})"), *chunk] for n, chunk in enumerate(chunks)]
    return first, replies


# --------------------------------------------------------------------------- fitting


def _text(obj: Any, limit: int) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return {**obj, "text": cut(obj["text"], limit)}
    return obj


def _element(element: Any, limit: int = SECTION_CHARS) -> Any:
    """A block element or text object within its limits; an over-long URL is dropped, never cut."""
    if not isinstance(element, dict):
        return element
    out = dict(element)
    kind = out.get("type")
    if kind in ("mrkdwn", "plain_text"):
        return _text(out, limit)
    if kind == "button":
        out["text"] = _text(out.get("text"), BUTTON_CHARS)
    if isinstance(out.get("options"), list):
        most = MAX_OVERFLOW_OPTIONS if kind == "overflow" else 100
        out["options"] = [_option(o) for o in out["options"][:most]]
    for name, most in (("alt_text", ALT_TEXT_CHARS), ("value", VALUE_CHARS)):
        if isinstance(out.get(name), str):
            out[name] = cut(out[name], most)
    if isinstance(out.get("action_id"), str):
        out["action_id"] = out["action_id"][:ACTION_ID_CHARS]
    for name in ("url", "image_url"):
        if isinstance(out.get(name), str) and units(out[name]) > URL_CHARS:
            del out[name]
    return out


def _option(option: Any) -> Any:
    """An option of a menu within its limits; a value that does not fit is not cut (it would
    name another record) but refused by ``check_message``."""
    if not isinstance(option, dict):
        return option
    out = {**option, "text": _text(option.get("text"), OPTION_TEXT_CHARS)}
    if isinstance(out.get("url"), str) and units(out["url"]) > URL_CHARS:
        del out["url"]
    return out


def fit_block(block: dict) -> dict:
    """One block within Slack's limits for its kind."""
    out = _element(block)
    kind = out.get("type")
    if kind in ("header", "section") and "text" in out:
        out["text"] = _text(out["text"], HEADER_CHARS if kind == "header" else SECTION_CHARS)
    if kind == "section":
        if isinstance(out.get("fields"), list):
            out["fields"] = [_text(f, FIELD_CHARS) for f in out["fields"][:MAX_FIELDS]]
        if "accessory" in out:
            out["accessory"] = _element(out["accessory"])
    elif kind == "context" and isinstance(out.get("elements"), list):
        out["elements"] = [_element(e) for e in out["elements"][:MAX_CONTEXT_ELEMENTS]]
    elif kind == "actions" and isinstance(out.get("elements"), list):
        out["elements"] = [_element(e) for e in out["elements"][:MAX_ACTIONS_ELEMENTS]]
    elif kind == "image" and "title" in out:
        out["title"] = _text(out["title"], FIELD_CHARS)
    return out


def fit_message(message: Message) -> Message:
    """The message with every field within Slack's limits; the same message when it fits already."""
    return dataclasses.replace(
        message,
        text=cut(message.text, NOTIFICATION_CHARS),
        title=cut(message.title, NOTIFICATION_CHARS - _PART_SUFFIX),
        blocks=[fit_block(b) for b in message.blocks],
        replies=[[fit_block(b) for b in part] for part in message.replies],
    )


# --------------------------------------------------------------------------- checking


def _limits(block: dict) -> list[tuple[str, Any, int]]:
    """(where, value, limit) of every limited field of a block; counts are checked as lists."""
    kind = block.get("type")
    found: list[tuple[str, Any, int]] = []

    def element(where: str, e: Any, text_limit: int = SECTION_CHARS) -> None:
        if not isinstance(e, dict):
            return
        if e.get("type") in ("mrkdwn", "plain_text"):
            found.append((where, e.get("text"), text_limit))
            return
        if e.get("type") == "button":
            found.append((f"{where}.text", (e.get("text") or {}).get("text"), BUTTON_CHARS))
        for name, most in (("alt_text", ALT_TEXT_CHARS), ("url", URL_CHARS), ("image_url", URL_CHARS),
                           ("value", VALUE_CHARS), ("action_id", ACTION_ID_CHARS)):  # fmt: skip
            found.append((f"{where}.{name}" if where else name, e.get(name), most))
        if isinstance(e.get("options"), list):
            at = f"{where}.options" if where else "options"
            found.append((at, e["options"], MAX_OVERFLOW_OPTIONS if e.get("type") == "overflow" else 100))
            for k, o in enumerate(e["options"]):
                o = o if isinstance(o, dict) else {}
                found.extend([(f"{at}[{k}].text", (o.get("text") or {}).get("text"), OPTION_TEXT_CHARS),
                              (f"{at}[{k}].value", o.get("value"), OPTION_VALUE_CHARS),
                              (f"{at}[{k}].url", o.get("url"), URL_CHARS)])  # fmt: skip

    limit = {"header": HEADER_CHARS, "section": SECTION_CHARS}.get(kind, 0)
    found.append(("text", (block.get("text") or {}).get("text"), limit))
    found += [(f"fields[{j}]", (f or {}).get("text"), FIELD_CHARS) for j, f in enumerate(block.get("fields") or [])]
    found.append(("fields", block.get("fields") or [], MAX_FIELDS))
    element("", {k: v for k, v in block.items() if k != "text"})
    element("accessory", block.get("accessory"))
    if kind in ("context", "actions"):
        most = MAX_CONTEXT_ELEMENTS if kind == "context" else MAX_ACTIONS_ELEMENTS
        found.append(("elements", block.get("elements") or [], most))
        for j, e in enumerate(block.get("elements") or []):
            element(f"elements[{j}]", e)
    if kind == "image":
        found.append(("title", (block.get("title") or {}).get("text"), FIELD_CHARS))
    return found


def check_message(message: Message) -> None:
    """Refuse a message Slack would reject, naming the part and the block."""
    for n, blocks in enumerate(message.parts()):
        where = f"{message.key} part {n}"
        if len(blocks) > MAX_BLOCKS:
            raise InvalidMessage(f"{where}: {len(blocks)} blocks, Slack allows {MAX_BLOCKS} per message")
        text = message.notification(n)
        if units(text) > NOTIFICATION_CHARS:
            raise InvalidMessage(f"{where}: notification text has {units(text)} characters, "
                                 f"we allow {NOTIFICATION_CHARS}")  # fmt: skip
        for i, block in enumerate(blocks):
            for name, value, limit in _limits(block):
                if isinstance(value, list):
                    if len(value) > limit:
                        raise InvalidMessage(f"{where}: block {i} ({block.get('type')}) has {len(value)} "
                                             f"{name}, Slack allows {limit}")  # fmt: skip
                elif limit and isinstance(value, str) and units(value) > limit:
                    raise InvalidMessage(
                        f"{where}: block {i} ({block.get('type')}) {name} has {units(value)} characters, "
                        f"Slack allows {limit}"
                    )
