"""What a request to the Slack app may carry: the item a button or menu option acts on, and
the check that refuses any payload this app did not make (forged, damaged or foreign).

An item travels in the value of the control Slack sends back, ``|``-separated; overflow
option values are limited to 150 characters, and "kind|workflow|record Id|recipient User Id"
takes about 50.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from sa_hygiene.contract.schema import is_id_of, object_of
from sa_hygiene.delivery.blockkit import ITEM_MENU, OPTION_VALUE_CHARS, is_salesforce_id, item_value

LOG_VIEW = "sa_log_form"  # callback_id of the log-it modal
CONTACT_VIEW = "sa_contact_form"  # callback_id of the create-contact modal (/sa-create)
LOG_ACTIVITY = "sa_log_activity"  # "Log activity" of a record card (/sa) or of /sa-create
CREATE_CONTACT = "sa_create_contact"  # "Create contact" of /sa-create
RELATED_TO = "sa_related_to"  # the log form's Related To search (block_suggestion)
# What an item's value says to do; "act": an activity logged from a record card or /sa-create (no
# meeting: the item's record is the card's, its recipient the person who asked), "contact": a
# contact created from /sa-create.
KINDS = {"snooze", "notmine", "open", "log", "act", "contact"}
MODAL_KINDS = {"log", "act", "contact"}  # items whose control opens a modal (it needs the trigger)
TECH_EVAL_VIEW = "sa_tech_eval_form"  # callback_id of the "Update tech evaluation" modal
UPDATE_VIEW = "sa_update_activity_form"  # callback_id of an activity post's Update Activity modal

# The registry of what the app answers: every listener module registers its own ids (``accept``)
# with its check of the payload, run by ``problem`` once the envelope is sound (a user, one
# action or a view with an Id). A check is given the whole body and says why it is refused, or None.
Check = Callable[[dict], str | None]
ACTIONS: dict[str, Check] = {}  # action_id of a block action
VIEWS: dict[str, Check] = {}  # callback_id of a modal (its submission and its closing)
COMMANDS: dict[str, Check] = {}  # slash command (a command's body has no "type")
SUGGESTIONS: dict[str, Check] = {}  # action_id of a menu's search in a modal (block_suggestion)
WORKFLOW_ID = re.compile(r"[A-Za-z0-9_.-]{1,60}")


@dataclass(frozen=True)
class Item:
    """What a button or menu option acts on; carried in its value, ``|``-separated."""

    kind: str
    workflow: str
    record_id: str
    recipient: str  # the Salesforce User Id the item was addressed to
    what_id: str = ""  # log: the suggested Related To record

    def value(self) -> str:
        return item_value(self.kind, self.workflow, self.record_id, self.recipient, self.what_id)


def decode_item(value: Any) -> Item | None:
    """The item of a value, or None when it is not one of ours (a forged or damaged request)."""
    if not isinstance(value, str) or len(value) > OPTION_VALUE_CHARS:  # Slack's limit for a menu option
        return None
    parts = value.split("|")
    if len(parts) not in (4, 5) or parts[0] not in KINDS or not WORKFLOW_ID.fullmatch(parts[1]):
        return None
    if not all(is_salesforce_id(p) for p in parts[2:4]) or (len(parts) == 5 and not is_salesforce_id(parts[4])):
        return None
    return Item(*parts)


def action_value(action: dict) -> Any:
    """The value a block action carries: the chosen option's of a menu, the button's own otherwise."""
    return (action.get("selected_option") or {}).get("value") if action.get("action_id") == ITEM_MENU else action.get("value")


def item_of(body: dict) -> Item:
    """The item of a block action that ``problem`` found no fault with."""
    return decode_item(action_value(body["actions"][0]))


class _Part(BaseModel):
    """A part of a Slack payload the app reads: the fields it uses must have the types it uses
    (anything else Slack sends is let through unread)."""

    model_config = ConfigDict(extra="allow")


class _Id(_Part):
    id: str


class _Option(_Part):
    value: str


class _Action(_Part):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    selected_option: _Option | None = None


class _Container(_Part):
    channel_id: str | None = None
    message_ts: str | None = None


class _Message(_Part):
    text: str | None = None
    blocks: list[dict] | None = None


class _Element(_Part):
    value: str | None = None
    selected_option: _Option | None = None
    selected_options: list[_Option] | None = None


class _State(_Part):
    values: dict[str, dict[str, _Element]] = {}


class _View(_Part):
    id: str
    callback_id: str | None = None
    private_metadata: str | None = None
    state: _State | None = None


class _BlockActions(_Part):
    type: Literal["block_actions"]
    user: _Id
    actions: list[_Action]
    trigger_id: str | None = None
    container: _Container | None = None
    channel: _Id | None = None
    message: _Message | None = None


class _ViewPayload(_Part):
    type: Literal["view_submission", "view_closed"]
    user: _Id
    view: _View


class _Suggestion(_Part):
    type: Literal["block_suggestion"]
    user: _Id
    action_id: str
    block_id: str | None = None
    value: str = ""
    view: _View | None = None  # a menu in a modal; one in a message has none (a manager's SA search)


def clicked_message(body: dict) -> tuple[str, str]:
    """(channel, ts) of the message whose button was clicked, blank when unknown: a form opened
    from it keeps them in its metadata to mark the message once its write is saved."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
    return channel, container.get("message_ts") or ""


def malformed(body: Any) -> bool:
    """The payload's parts the app reads do not have the shape it reads them in (a 400, never a 500)."""
    if not isinstance(body, dict):
        return True
    model = {"block_actions": _BlockActions, "view_submission": _ViewPayload, "view_closed": _ViewPayload,
             "block_suggestion": _Suggestion}.get(body.get("type"))  # fmt: skip
    if model is None:
        return False  # refused as an unknown request type by ``problem``
    try:
        model.model_validate(body)
    except (ValidationError, RecursionError):
        return True
    return False


def accept(
    *,
    actions: dict[str, Check] | None = None,
    views: dict[str, Check] | None = None,
    commands: dict[str, Check] | None = None,
    suggestions: dict[str, Check] | None = None,
) -> None:
    """Register a listener module's ids with their checks (called once, when the module is
    imported). Two modules claiming one id is a programming error, not a choice between them."""
    for registry, entries in ((ACTIONS, actions), (VIEWS, views), (COMMANDS, commands), (SUGGESTIONS, suggestions)):
        for key, check in (entries or {}).items():
            if registry.get(key, check) is not check:
                raise ValueError(f"{key!r} is registered twice")
            registry[key] = check


def problem(body: dict) -> str | None:
    """Why a (verified) request is not one this app answers, or None when it is."""
    if malformed(body):
        return "malformed payload"
    kind = body.get("type")
    if kind is None:
        check = COMMANDS.get(body.get("command"))
        return check(body) if check else "unknown request type"
    user = (body.get("user") or {}).get("id")
    if kind == "block_actions":
        actions = body.get("actions")
        if not user or not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
            return "malformed block action"
        check = ACTIONS.get(actions[0].get("action_id"))
        return check(body) if check else "unknown action"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        check = VIEWS.get(view.get("callback_id")) if isinstance(view, dict) else None
        return check(body) if check and user and view.get("id") else "unknown view"
    if kind == "block_suggestion":
        check = SUGGESTIONS.get(body.get("action_id"))
        return check(body) if check else "unknown suggestion"
    return "unknown request type"


def no_check(body: dict) -> str | None:
    """A control that carries nothing to check (a link button: Slack still tells the app)."""
    return None


def item_action(*kinds: str) -> Check:
    """The check of a control whose value is an item of one of ``kinds``: a modal's needs the
    trigger to open it, the others the message they are on."""

    def check(body: dict) -> str | None:
        item = decode_item(action_value(body["actions"][0]))
        if item is None or item.kind not in kinds:
            return "malformed action value"
        if item.kind != "open" and not body.get("trigger_id" if item.kind in MODAL_KINDS else "container"):
            return "malformed block action"
        return None

    return check


def id_action(valid: Callable[[Any], bool]) -> Check:
    """The check of a button whose value is one record's Id (``valid`` says of which kind) and
    that opens a modal on its trigger."""

    def check(body: dict) -> str | None:
        ok = valid(body["actions"][0].get("value")) and body.get("trigger_id")
        return None if ok else "malformed action value"

    return check


def item_view(body: dict) -> str | None:
    """The check of a modal whose private metadata carries the item it was opened for."""
    meta = view_meta(body["view"])
    return None if meta is not None and decode_item(meta.get("item")) is not None else "malformed view"


def view_meta(view: dict) -> dict | None:
    """A modal's private metadata as the app wrote it (a JSON object), or None."""
    try:
        meta = json.loads(view.get("private_metadata") or "")
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def command_check(body: dict) -> str | None:
    """The check of a slash command whose text the app reads (and answers in its channel)."""
    text, user_id, channel = body.get("text", ""), body.get("user_id"), body.get("channel_id")
    ok = isinstance(text, str) and len(text) <= 500 and isinstance(user_id, str) and isinstance(channel, str)
    return None if ok and user_id and channel else "malformed command"


def is_opportunity_id(value: Any) -> bool:
    return is_salesforce_id(value) and is_id_of("Opportunity", value)


NOT_SENT = "That item is not one this app sent you: nothing was changed."


def not_sent(cfg, snapshot, item: Item) -> str | None:
    """Why a signed value cannot name an item this app sent (so nothing is done), or None.

    The signature proves Slack sent the request, not that this app made the value: a value
    naming an unknown workflow, a news item (announced once, never snoozed), "not mine" on
    anything but an opportunity, or a record the latest snapshot does not have is refused.
    """
    workflow = cfg.workflows.get(item.workflow)
    if workflow is None:
        return f"{NOT_SENT} (unknown workflow {item.workflow})"
    if item.kind in ("act", "contact"):  # a record card's: the record (if any) must exist
        return record_missing(snapshot, item.what_id)
    if item.kind == "snooze" and item.workflow in cfg.news_workflows:
        return f"{NOT_SENT} (news is not snoozed)"
    obj = "Event" if item.kind == "log" else workflow.object
    if item.kind == "notmine" and obj != "Opportunity":
        return f"{NOT_SENT} (only an opportunity has a Primary SA)"
    table = snapshot.tables.get(obj)
    if table is None or not (table["key"] == item.record_id[:15]).any():
        return f"{NOT_SENT} (no such {obj} in the latest snapshot)"
    return None


def record_missing(snapshot, record_id: str) -> str | None:
    """Why a card's record cannot be acted on (no such opportunity or account), or None."""
    if not record_id:
        return None
    obj = object_of(record_id, ("Opportunity", "Account"))
    table = snapshot.tables.get(obj) if obj else None
    if table is None or not (table["key"] == record_id[:15]).any():
        return f"{NOT_SENT} (no such opportunity or account in the latest snapshot)"
    return None
