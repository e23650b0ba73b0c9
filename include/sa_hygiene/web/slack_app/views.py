"""What the Slack app shows: the log-it modal (offering exactly the configured taxonomy), the
short notes a modal turns into, the values a submitted modal holds, and the note that
replaces an acted-on message's controls. Pure functions of their arguments: Block Kit in,
Block Kit out.
"""

from __future__ import annotations

import html
import json
from datetime import date

from sa_hygiene.contract.config import Config
from sa_hygiene.delivery.blockkit import cut, esc
from sa_hygiene.web.slack_app.items import LOG_VIEW, RELATED_TO
from sa_hygiene.web.slack_app.log_form import Meeting


def _option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": cut(esc(text), 75) or value}, "value": value}


def _input(block_id: str, label: str, element: dict, hint: str | None = None) -> dict:
    block = {"type": "input", "block_id": block_id, "optional": True, "label": {"type": "plain_text", "text": label},
             "element": {"action_id": block_id, **element}}  # fmt: skip
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def form_view(cfg: Config, meeting: Meeting, values: dict | None = None, error: str | None = None) -> dict:
    """The log-it modal; ``values`` (a previous submission) are filled in again, ``error`` shown on top."""
    v = values or {}
    tax = cfg.taxonomy
    groups = [{"label": {"type": "plain_text", "text": cut(group, 75)},
               "options": [_option(t, t) for t in types]} for group, types in tax.activity_types.items()]  # fmt: skip
    types = {"type": "multi_static_select", "option_groups": groups, "placeholder": {"type": "plain_text", "text": "Choose"}}
    if v.get("activity_types"):
        types["initial_options"] = [_option(t, t) for t in v["activity_types"] if t in tax.all_activity_types]
    sentiment = {"type": "static_select", "options": [_option(s, s) for s in tax.sentiments]}
    if v.get("sentiment") in tax.sentiments:
        sentiment["initial_option"] = _option(v["sentiment"], v["sentiment"])
    persona = {"type": "multi_static_select", "options": [_option(p, p) for p in tax.persona_levels]}
    if v.get("persona_levels"):
        persona["initial_options"] = [_option(p, p) for p in v["persona_levels"] if p in tax.persona_levels]
    related = meeting.related or [(meeting.item.record_id, meeting.subject)]
    # A search over open opportunities and accounts (listeners/suggestions.py), the suggestion pre-selected.
    what = {"type": "external_select", "action_id": RELATED_TO, "min_query_length": 0,
            "placeholder": {"type": "plain_text", "text": "Search opportunities and accounts"}}  # fmt: skip
    labels = dict(related)
    chosen = v.get("what_id", related[0][0] if meeting.related else None)
    if chosen:
        # A record found by searching comes back with the label Slack showed (escaped already).
        what["initial_option"] = _option(labels.get(chosen, html.unescape(v.get("what_label") or chosen)), chosen)
    groups = [(label, opts) for label, opts in (("Attendees", meeting.contacts), ("The account's contacts", meeting.account_contacts)) if opts]
    who = None
    if groups:
        who = {"type": "static_select", "placeholder": {"type": "plain_text", "text": "Choose a contact"},
               "option_groups": [{"label": {"type": "plain_text", "text": label},
                                  "options": [_option(text, cid) for cid, text in opts[:100]]} for label, opts in groups]}  # fmt: skip
        picked = next((o for g in who["option_groups"] for o in g["options"] if o["value"] == v.get("who_id")), None)
        if picked:
            who["initial_option"] = picked
    functions = {"type": "multi_static_select", "options": [_option(p, p) for p in tax.persona_functions]}
    if v.get("persona_functions"):
        functions["initial_options"] = [_option(p, p) for p in v["persona_functions"] if p in tax.persona_functions]
    products = {"type": "multi_static_select", "options": [_option(p, p) for p in tax.products]}
    if v.get("products"):
        products["initial_options"] = [_option(p, p) for p in v["products"] if p in tax.products]
    day = v.get("activity_date") or meeting.activity_date
    date_picker = {"type": "datepicker", **({"initial_date": day} if _is_date(day) else {})}
    new_name = {"type": "plain_text_input", "max_length": 120, **({"initial_value": v["new_name"]} if v.get("new_name") else {})}
    new_email = {"type": "email_text_input", **({"initial_value": v["new_email"]} if v.get("new_email") else {})}
    subject = {"type": "plain_text_input", "max_length": 255}
    if v.get("subject", meeting.subject):
        subject["initial_value"] = v.get("subject", meeting.subject)[:255]
    description = {"type": "plain_text_input", "multiline": True, "max_length": 3000}
    if v.get("description"):
        description["initial_value"] = v["description"][:3000]
    blocks: list[dict] = []
    if error:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f":warning: *Salesforce did not save it:* {esc(error)}", 3000)}})
    blocks += [
        _input("types", "Activity types", types),
        _input("sentiment", "Sentiment", sentiment),
        _input("persona", "Persona levels", persona, "Optional if unknown"),
        *([_input("functions", "Persona functions", functions, "Optional")] if tax.persona_functions else []),
        *([_input("products", "Products positioned", products, "Optional")] if tax.products else []),
        _input("what", "Related to", what, f"{tax.ride_along_type}: the account"),
        *([_input("who", "Contact", who, "The meeting's attendees and the account's contacts")] if who else []),
        _input("new_name", "Or create a contact: name", new_name,
               "When the person is not in Salesforce yet: created on the account of Related To"),
        _input("new_email", "New contact's e-mail", new_email),
        _input("date", "Date", date_picker),
        _input("subject", "Subject", subject),
        _input("description", "Description", description,
               f"{tax.other_type} needs {cfg.thresholds.other_min_chars} characters or more; "
               f"{tax.csp_type} needs a link to the plan"),
    ]  # fmt: skip
    meta = {"item": meeting.item.value(), "channel": meeting.channel, "ts": meeting.ts, "date": meeting.activity_date,
            "blocks": ["who"] if who else []}  # fmt: skip
    title = "Log the meeting" if meeting.item.kind == "log" else "Log an activity"
    return {"type": "modal", "callback_id": LOG_VIEW, "title": {"type": "plain_text", "text": title},
            "submit": {"type": "plain_text", "text": "Log it"}, "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": json.dumps(meta), "blocks": blocks}  # fmt: skip


def note_view(title: str, text: str) -> dict:
    return {"type": "modal", "callback_id": LOG_VIEW, "title": {"type": "plain_text", "text": title[:24]},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}]}  # fmt: skip


def form_values(view: dict) -> dict:
    """The submitted form, by field: lists for the multi-selects, stripped text (None when blank)."""
    state = (view.get("state") or {}).get("values") or {}

    def element(block: str) -> dict:
        found = state.get(block) or {}
        return found.get(block) or next(iter(found.values()), {}) if isinstance(found, dict) else {}

    def text(block: str) -> str | None:
        e = element(block)
        value = e.get("value") if "value" in e else (e.get("selected_option") or {}).get("value")
        return value.strip() or None if isinstance(value, str) else None

    def many(block: str) -> list[str]:
        chosen = [o.get("value") for o in element(block).get("selected_options") or [] if isinstance(o, dict)]
        return [value for value in chosen if isinstance(value, str)]

    picked = element("date").get("selected_date")
    return {"activity_types": many("types"), "sentiment": text("sentiment"), "persona_levels": many("persona"),
            "what_id": text("what"), "who_id": text("who"), "subject": text("subject"),
            "description": text("description"), "persona_functions": many("functions"), "products": many("products"),
            "new_name": text("new_name"), "new_email": text("new_email"),
            "activity_date": picked if _is_date(picked) else None,
            "what_label": ((element("what").get("selected_option") or {}).get("text") or {}).get("text")}  # fmt: skip


def _is_date(value) -> bool:
    """An ISO date (``YYYY-MM-DD``), as a datepicker sends and takes it."""
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def marked(blocks: list[dict], block_id: str | None, note: str, drop_actions: bool = False) -> list[dict]:
    """The message's blocks with ``note`` under the acted-on block and its menu removed
    (``drop_actions``: every actions block replaced by the note, as on a logged reminder)."""
    out = []
    for b in blocks:
        if drop_actions and b.get("type") == "actions":
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
            continue
        if block_id and b.get("block_id") == block_id:
            b = {k: v for k, v in b.items() if k != "accessory"}
            if b.get("type") == "section" and isinstance((b.get("text") or {}).get("text"), str):
                b["text"] = {**b["text"], "text": cut(f"{b['text']['text']}\n{note}", 3000)}
        out.append(b)
    return out
