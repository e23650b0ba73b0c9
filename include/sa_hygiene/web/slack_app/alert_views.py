"""What ``/sa-alert`` shows: the form (only the contract's fields and the engine's kinds of
trigger), the backtest's progress and result, and the list of a person's alerts. Pure functions:
choices in, Block Kit out; ``alert_spec`` reads a submitted form back into the choices that
``contract.user_alerts`` compiles.
"""

from __future__ import annotations

import json
from datetime import date

from sa_hygiene.contract.user_alerts import AlertDraftError, offered_fields
from sa_hygiene.delivery.blockkit import cut, esc, record_url

ALERT_VIEW = "sa_alert_form"  # callback_id of the form, then of its progress and result views
LIST_VIEW = "sa_alert_list"
SAVE_ALERT = "sa_alert_save"  # the result view's Save button
TOGGLE_ALERT, DELETE_ALERT = "sa_alert_toggle", "sa_alert_delete"  # the list's buttons: pause or resume, delete
OBJECTS = ("Opportunity", "Task")
TRIGGERS = {
    "condition:blank": "is blank",
    "condition:equals": "equals (a value of its list)",
    "condition:in": "is one of (values separated by ;)",
    "condition:more_than": "is more than (a number)",
    "condition:less_than": "is less than (a number)",
    "condition:older_than_days": "is more than N days ago",
    "condition:newer_than_days": "is fewer than N days ago",
    "changed": "changed (optionally from -> to)",
    "stage_move": "stage moved (ranks, from -> to)",
}
SCOPES = {"mine": "My opportunities / tasks", "my_accounts": "My accounts", "my_region": "My region",
          "my_reports": "My reports'", "team": "My whole team (managers)"}  # fmt: skip
DELIVERIES = {"digest": "In my 16:00 digest", "dm_now": "DM me now (within 15 minutes)", "channel": "Post in a channel"}
PLACEHOLDER_OWNER = "005000000000000"  # until the person is known (after the answer)


def _text(text: str) -> dict:
    return {"type": "plain_text", "text": text}


def _option(text: str, value: str) -> dict:
    return {"text": _text(cut(text, 75)), "value": value}


def _select(block_id: str, label: str, options: list[dict], chosen: str | None, optional: bool = False) -> dict:
    element = {"type": "static_select", "action_id": block_id, "options": options}
    picked = next((o for o in options if o["value"] == chosen), None)
    if picked:
        element["initial_option"] = picked
    return {"type": "input", "block_id": block_id, "optional": optional, "label": _text(label), "element": element}


def _input(block_id: str, label: str, value: str | None, hint: str, optional: bool = True) -> dict:
    element = {"type": "plain_text_input", "action_id": block_id, "max_length": 200}
    if value:
        element["initial_value"] = value[:200]
    return {"type": "input", "block_id": block_id, "optional": optional, "label": _text(label), "element": element,
            "hint": _text(hint)}  # fmt: skip


def form_view(values: dict | None = None, error: str | None = None) -> dict:
    """The alert form; ``values`` (a previous submission) filled in again, ``error`` on top."""
    v = values or {}
    fields = [{"label": _text(obj), "options": [_option(f"{obj} · {name}", f"{obj}|{name}")
                                                 for name in {**offered_fields(obj), **offered_fields(obj, "changed")}]}
              for obj in OBJECTS if offered_fields(obj)]  # fmt: skip
    field = {"type": "static_select", "action_id": "field", "option_groups": fields}
    chosen = next((o for g in fields for o in g["options"] if o["value"] == v.get("field")), None)
    if chosen:
        field["initial_option"] = chosen
    blocks = []
    if error:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f":warning: {esc(error)}", 3000)}})
    blocks += [
        _input("name", "Name", v.get("name"), "What your messages will be titled", optional=False),
        {"type": "input", "block_id": "field", "optional": True, "label": _text("Field"), "element": field,
         "hint": _text("Not needed for a stage move")},
        _select("trigger", "Alert me when the field", [_option(t, k) for k, t in TRIGGERS.items()], v.get("trigger")),
        _input("value", "Value", v.get("value"), "A value of the field's list, a number, or from -> to"),
        _select("scope", "On", [_option(t, k) for k, t in SCOPES.items()], v.get("scope") or "mine"),
        _select("delivery", "Tell me", [_option(t, k) for k, t in DELIVERIES.items()], v.get("delivery") or "digest"),
        _input("channel", "Channel", v.get("channel"), "For 'Post in a channel': a public channel you are in, #name"),
    ]  # fmt: skip
    return {"type": "modal", "callback_id": ALERT_VIEW, "title": _text("New alert"), "submit": _text("Try it"),
            "close": _text("Cancel"), "private_metadata": json.dumps({"step": "form"}), "blocks": blocks}  # fmt: skip


def form_values(view: dict) -> dict:
    """The submitted form, by block: each a stripped string or None."""
    state = (view.get("state") or {}).get("values") or {}
    out = {}
    for block in ("name", "field", "trigger", "value", "scope", "delivery", "channel"):
        element = next(iter((state.get(block) or {}).values()), {}) if isinstance(state.get(block), dict) else {}
        value = element.get("value") if "value" in element else (element.get("selected_option") or {}).get("value")
        out[block] = value.strip() or None if isinstance(value, str) else None
    return out


def _number(text: str | None, block: str = "value") -> float:
    try:
        return float((text or "").replace(",", ""))
    except ValueError:
        raise AlertDraftError(f"{block}: {text!r} is not a number") from None


def _typed(text: str | None):
    """A value as typed: a rank, a boolean or a picklist value (checked when compiled)."""
    if text is None or text == "":
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if text.isdigit() else text


def alert_spec(v: dict, owner: str = PLACEHOLDER_OWNER) -> dict:
    """The choices of a submitted form (``contract.user_alerts.UserAlert``'s fields);
    AlertDraftError names the block that cannot be read."""
    if not v.get("name"):
        raise AlertDraftError("name: give the alert a name")
    trigger = v.get("trigger") or ""
    if trigger not in TRIGGERS:
        raise AlertDraftError("trigger: pick what the field does")
    kind, _, op = trigger.partition(":")
    obj, _, name = (v.get("field") or ("Opportunity|rank" if kind == "stage_move" else "")).partition("|")
    if not name:
        raise AlertDraftError("field: pick a field")
    t: dict = {"kind": kind}
    if kind != "stage_move":
        t["field"] = name
    if kind == "condition":
        t["op"] = op
        if op in ("equals", "in"):
            t["values"] = [_typed(x.strip()) for x in (v.get("value") or "").split(";") if x.strip()]
        elif op != "blank":
            t["number"] = _number(v.get("value"))
    elif v.get("value"):
        before, arrow, after = v["value"].partition("->")
        if not arrow:
            before, after = "", before
        t["from_value"], t["to_value"] = _typed(before.strip()), _typed(after.strip())
    spec = {"name": v["name"][:80], "owner": owner, "object": obj, "trigger": t, "scope": v.get("scope") or "mine",
            "delivery": v.get("delivery") or "digest"}  # fmt: skip
    if spec["delivery"] == "channel":
        channel = (v.get("channel") or "").strip()
        if not channel:
            raise AlertDraftError("channel: name the channel to post in (#name)")
        spec["channel"] = channel if channel.startswith("#") else f"#{channel}"
    return spec


def note_view(title: str, text: str, callback_id: str = ALERT_VIEW) -> dict:
    return {"type": "modal", "callback_id": callback_id, "title": _text(title[:24]), "close": _text("Close"),
            "private_metadata": json.dumps({"step": "note"}),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}]}  # fmt: skip


def progress_view(done: int, total: int) -> dict:
    bar = "▰" * done + "▱" * (total - done) if total <= 31 else f"{done}/{total}"
    return note_view("New alert", f":hourglass_flowing_sand: Trying it on the last {total} days of snapshots… {bar}")


def result_view(spec: dict, days: list, skipped: list[date], instance_url: str, refused: str | None,
                names: dict[str, str]) -> dict:
    """The backtest's answer: messages per day, who would get them, three examples; Save one click away
    (no Save when a guard rail refuses it: ``refused`` says why)."""
    total = sum(d.messages for d in days)
    lines = [f"*{esc(spec['name'])}* would have sent *{total} messages* over {len(days)} days "
             f"({max((d.messages for d in days), default=0)} on its busiest day)."]  # fmt: skip
    lines.append(" ".join(f"`{d.as_of:%d %b}` {d.messages}" for d in days) or "No day had a snapshot.")
    who: dict[str, int] = {}
    for d in days:
        for r, n in d.recipients.items():
            who[r] = who.get(r, 0) + n
    if who:
        top = sorted(who, key=lambda r: (-who[r], r))[:5]
        label = [esc(names.get(r[5:][:15], r[5:]) if r.startswith("user:") else r.split(":", 1)[1]) for r in top]
        more = f" and {len(who) - len(top)} more" if len(who) > len(top) else ""
        lines.append("To: " + ", ".join(f"{n} ({who[r]} items)" for n, r in zip(label, top, strict=True)) + more)
    examples = list(dict.fromkeys(e for d in days for e in d.examples))[:3]
    obj = spec["object"]
    if examples:
        lines.append("For example: " + ", ".join(f"<{record_url(instance_url, obj, e)}|{e}>" for e in examples))
    if skipped:
        lines.append(f"_No snapshot on {len(skipped)} days: " + ", ".join(f"{d:%d %b}" for d in skipped[:10]) + "_")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": cut("\n".join(lines), 3000)}}]
    if refused:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(f":no_entry: {esc(refused)}", 3000)}})
    else:
        blocks.append({"type": "actions", "elements": [{"type": "button", "action_id": SAVE_ALERT, "style": "primary",
                                                        "text": _text("Save"), "value": "save"}]})  # fmt: skip
    return {"type": "modal", "callback_id": ALERT_VIEW, "title": _text("New alert"), "close": _text("Close"),
            "private_metadata": json.dumps({"step": "result", "spec": spec}), "blocks": blocks}  # fmt: skip


def list_view(alerts: list, names: dict[str, str], mine: str) -> dict:
    """A person's alerts (a manager's team's too), each with pause or resume, and delete."""
    blocks: list[dict] = []
    for a in alerts[:30]:
        whose = "" if a.owner[:15] == mine[:15] else f" ({esc(names.get(a.owner[:15], a.owner))})"
        state = "active" if a.active else f"paused: {esc(a.paused_reason or '')}"
        toggle = ("pause", "Pause") if a.active else ("resume", "Resume")
        blocks.append({"type": "section", "block_id": f"alert-{a.alert_id}",
                       "text": {"type": "mrkdwn", "text": cut(f"*{esc(a.name)}*{whose} · {state}", 3000)}})  # fmt: skip
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": TOGGLE_ALERT, "text": _text(toggle[1]),
             "value": f"{toggle[0]}|{a.alert_id}"},
            {"type": "button", "action_id": DELETE_ALERT, "text": _text("Delete"), "style": "danger",
             "value": f"delete|{a.alert_id}"}]})  # fmt: skip
    if not blocks:
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "No alerts yet: `/sa-alert` makes one."}}]
    return {"type": "modal", "callback_id": LIST_VIEW, "title": _text("Your alerts"), "close": _text("Close"),
            "private_metadata": json.dumps({"step": "list"}), "blocks": blocks}  # fmt: skip
