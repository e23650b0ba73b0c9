"""Managers in the Slack app: which payloads of theirs the app answers, who counts as a record's
manager, and the snooze modal.

Who may assign, reassign, nudge or snooze: the clicking Slack user, found in Salesforce by
e-mail (an active user: a deactivated one is nobody), who is the manager, directly or up the
``ManagerId`` chain, of the record's Primary SA or owner, or a member of the manager group the
configuration names for the record's region (``managers.groups``). Everyone else, a peer SA
and the SA themselves included, is refused and nothing changes.
"""

from __future__ import annotations

import json

from sa_hygiene.contract.config import Config
from sa_hygiene.delivery.blockkit import cut, esc
from sa_hygiene.delivery.manager_controls import (
    OPEN_RECORD,
    SNOOZE_RECORD,
    SNOOZE_VIEW,
    ManagerValue,
    chosen_value,
    decode_value,
)

MANAGER_REFUSAL = ("Only a manager of this record's SA or owner (in Salesforce, directly or up the chain), or a "
                   "member of the region's manager group, can do this. Nothing was changed.")  # fmt: skip


def action_problem(body: dict) -> str | None:
    """Why a manager's block action is not one this app answers, or None."""
    action = body["actions"][0]
    if action.get("action_id") == OPEN_RECORD:
        return None
    if decode_value(action["action_id"], chosen_value(action)) is None:
        return "malformed action value"
    if not body.get("container") or (action["action_id"] == SNOOZE_RECORD and not body.get("trigger_id")):
        return "malformed block action"
    return None


def snooze_meta(view: dict) -> dict | None:
    """The snooze modal's private metadata (``value``, ``channel``, ``ts``), or None when it is not ours."""
    try:
        meta = json.loads(view.get("private_metadata") or "")
    except ValueError:
        return None
    if not isinstance(meta, dict) or decode_value(SNOOZE_RECORD, meta.get("value")) is None:
        return None
    if not all(isinstance(meta.get(k), str) for k in ("channel", "ts")):
        return None
    return meta


def view_problem(body: dict) -> str | None:
    return None if snooze_meta(body["view"]) is not None else "malformed view"


def may_manage(cfg: Config, people, regions, actor, targets: list[str | None], region_of: str | None) -> bool:
    """``actor`` manages one of ``targets`` (the record's SA, its owner), directly or up the chain,
    or is in the manager group of region ``region_of`` (a region key)."""
    if any(actor.key in people.managers(t) for t in targets if isinstance(t, str)):
        return True
    group = {e.strip().lower() for e in cfg.managers.groups.get(region_of or "", [])}
    return bool(actor.email) and actor.email.lower() in group


def snooze_view(
    cfg: Config, value: ManagerValue, label: str, channel: str, ts: str, errors: dict | None = None
) -> dict:
    """The modal of an escalated record's Snooze: for how long (the configured lengths) and why."""
    days = [
        {"text": {"type": "plain_text", "text": f"{d} days"}, "value": str(d)}
        for d in cfg.managers.snooze_days
    ]
    meta = {"value": value.value(), "channel": channel, "ts": ts}
    return {"type": "modal", "callback_id": SNOOZE_VIEW, "title": {"type": "plain_text", "text": "Snooze"},
            "submit": {"type": "plain_text", "text": "Snooze"}, "close": {"type": "plain_text", "text": "Cancel"},
            "private_metadata": json.dumps(meta),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": cut(f"Leave *{esc(label)}* out of digests and "
                                                                          "escalations until…", 3000)}},
                {"type": "input", "block_id": "days", "label": {"type": "plain_text", "text": "For"},
                 "element": {"type": "static_select", "action_id": "days", "options": days, "initial_option": days[0]}},
                {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Why"},
                 "element": {"type": "plain_text_input", "action_id": "reason", "max_length": 200,
                             "placeholder": {"type": "plain_text", "text": "e.g. customer on holiday until the 15th"}}},
            ]}  # fmt: skip


def snooze_choice(cfg: Config, view: dict) -> tuple[int | None, str | None, dict[str, str]]:
    """(days, reason, errors by block) of a submitted snooze modal."""
    values = (view.get("state") or {}).get("values") or {}
    chosen = (((values.get("days") or {}).get("days") or {}).get("selected_option") or {}).get("value")
    text = ((values.get("reason") or {}).get("reason") or {}).get("value")
    reason = text.strip() if isinstance(text, str) and text.strip() else None
    errors = {}
    days = (
        int(chosen)
        if isinstance(chosen, str) and chosen.isdigit() and int(chosen) in cfg.managers.snooze_days
        else None
    )
    if days is None:
        errors["days"] = "Choose one of the lengths offered."
    if reason is None:
        errors["reason"] = "Say why, so the SA and the report know."
    return days, reason, errors


def row_of(snapshot, obj: str, record_id: str) -> dict | None:
    """The snapshot's row of a record (by its 15-character key), or None."""
    table = snapshot.tables.get(obj)
    if table is None:
        return None
    hit = table[table["key"] == record_id[:15]]
    return hit.iloc[0].to_dict() if len(hit) else None
