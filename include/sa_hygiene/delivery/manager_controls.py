"""The controls managers act with from Slack, and what their values carry.

- **Assign Primary SA**: a select of the region's active SAs on each item of a workflow that
  declares ``actions: [assign_sa]`` (wf-10, wf-12, wf-13 by default), and on each record of a
  leaver's book (per-record reassignment). Slack filters a select's options as you type; a
  region of more SAs than a select holds (100) gets a search instead (``external_select``:
  the app answers with the region's SAs whose names match, ``sa_options``).
- **Reassign all to…**: one select with Slack's own confirmation dialog on a leaver's book.
- **Nudge**, **Snooze** (a modal: how long, and why) and **Open** on each record of an
  escalation DM.

Pure Block Kit: the Slack app (``web/slack_app/listeners/managers.py``) decodes the values and
checks, again, everything they name: a value is only what a click claims.
A value is ``kind|record or user Id|user Id`` (at most 40 characters; Slack allows 150).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sa_hygiene.contract.config import Config
from sa_hygiene.delivery.blockkit import cut, esc, is_salesforce_id, record_url

ASSIGN_SA = "sa_assign_sa"  # a select of SAs: assign (or reassign) one opportunity's Primary SA
REASSIGN_ALL = "sa_reassign_all"  # a select of SAs: reassign a leaver's whole book
NUDGE = "sa_nudge"  # a button: DM the SA "<manager> asked you to look at …"
SNOOZE_RECORD = "sa_snooze_record"  # a button: opens the snooze modal
SNOOZE_VIEW = "sa_snooze_record_view"  # callback_id of that modal
OPEN_RECORD = "sa_open_record"  # a link button (Slack still tells the app it was clicked)
MANAGER_ACTIONS = {ASSIGN_SA, REASSIGN_ALL, NUDGE, SNOOZE_RECORD, OPEN_RECORD}
KINDS = {ASSIGN_SA: "assign", REASSIGN_ALL: "all", NUDGE: "nudge", SNOOZE_RECORD: "snooze"}
MAX_OPTIONS = 100  # Slack's limit for a select's options


@dataclass(frozen=True)
class ManagerValue:
    """What a manager's control acts on: ``target`` (an opportunity or record Id; for "all",
    the leaver's User Id) and ``user`` (the SA to assign, or the SA the record is with)."""

    kind: str
    target: str
    user: str

    def value(self) -> str:
        return f"{self.kind}|{self.target}|{self.user}"


def decode_value(action_id: str, value: Any) -> ManagerValue | None:
    """The value of a manager's control, or None when it is not one this app makes."""
    if not isinstance(value, str) or len(value) > 60:
        return None
    parts = value.split("|")
    if len(parts) != 3 or parts[0] != KINDS.get(action_id) or not all(is_salesforce_id(p) for p in parts[1:]):
        return None
    return ManagerValue(*parts)


def chosen_value(action: dict) -> Any:
    """A select's chosen option's value, a button's own."""
    return (
        (action.get("selected_option") or {}).get("value")
        if "selected_option" in action
        else action.get("value")
    )


def region_sas(d, channel: str) -> list[tuple[str, str]]:
    """(User Id, name) of the active SAs of a regional channel, by name (``d``: the directory)."""
    keys = d.is_sa[d.is_sa.to_numpy(bool)].index
    found = [
        (d.users.at[k, "id"], str(d.users.at[k, "name"] or d.users.at[k, "id"]))
        for k in keys
        if d.channel.get(k) == channel and is_salesforce_id(d.users.at[k, "id"])
    ]
    return sorted(found, key=lambda p: (p[1].lower(), p[0]))


def _option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": cut(text, 75) or value}, "value": value}


def sa_options(kind: str, target: str, sas: list[tuple[str, str]], query: str = "") -> list[dict]:
    """The options of ``sas`` whose names hold every word of ``query`` (any case), at most
    ``MAX_OPTIONS``: each carries ``kind|target|SA``."""
    words = query.lower().split()
    return [_option(name, ManagerValue(kind, target, sa).value()) for sa, name in sas
            if all(w in name.lower() for w in words)][:MAX_OPTIONS]  # fmt: skip


def sa_select(action_id: str, kind: str, target: str, sas: list[tuple[str, str]], placeholder: str,
              confirm: dict | None = None) -> dict | None:  # fmt: skip
    """A select of ``sas`` whose options carry ``kind|target|SA``; None when there is nobody to offer.
    More SAs than a select holds: a search the app answers (the block's id names ``target``)."""
    if not sas or not is_salesforce_id(target):
        return None
    if len(sas) <= MAX_OPTIONS:
        select = {"type": "static_select", "action_id": action_id, "options": sa_options(kind, target, sas),
                  "placeholder": {"type": "plain_text", "text": placeholder}}  # fmt: skip
    else:  # the first hundred when it opens, then those whose names match what is typed
        select = {"type": "external_select", "action_id": action_id, "min_query_length": 0,
                  "placeholder": {"type": "plain_text", "text": f"{placeholder} (type a name)"}}  # fmt: skip
    if confirm:
        select["confirm"] = confirm
    return select


def with_assign(
    cfg: Config, records, block: dict, record_id: str, workflows: list[str], channel: str
) -> dict:
    """A regional digest item with "Assign Primary SA" when one of its workflows declares
    ``assign_sa`` and the opportunity has none (the select replaces nothing: regional items
    carry no other accessory)."""
    if not any("assign_sa" in cfg.workflows[w].actions for w in workflows if w in cfg.workflows):
        return block
    row = records.row("Opportunity", record_id) or {}
    if not row or isinstance(row.get("sa"), str) and row.get("sa"):
        return block
    select = sa_select(ASSIGN_SA, "assign", record_id, region_sas(records.directory, channel), "Assign Primary SA")
    if select is None or block.get("type") != "section":
        return block
    return {**block, "block_id": f"item:{record_id}", "accessory": select}


def escalation_controls(cfg: Config, obj: str, record_id: str, owner: str) -> dict | None:
    """The actions block of an escalated record: Nudge, Snooze (the modal asks how long and why), Open."""
    if not (is_salesforce_id(record_id) and is_salesforce_id(owner)):
        return None
    url = record_url(cfg.salesforce.instance_url, obj, record_id)
    return {"type": "actions", "block_id": f"esc:{record_id}", "elements": [
        {"type": "button", "action_id": NUDGE, "text": {"type": "plain_text", "text": "Nudge"},
         "value": ManagerValue("nudge", record_id, owner).value()},
        {"type": "button", "action_id": SNOOZE_RECORD, "text": {"type": "plain_text", "text": "Snooze"},
         "value": ManagerValue("snooze", record_id, owner).value()},
        {"type": "button", "action_id": OPEN_RECORD, "text": {"type": "plain_text", "text": "Open"}, "url": url},
    ]}  # fmt: skip


def leaver_blocks(
    cfg: Config, records, leaver: str, opportunities: list[str], manager_name: str | None
) -> list[dict]:
    """A leaver's book: "<SA> is inactive — N opportunities need a new Primary SA", Reassign all
    to… (one select, Slack's confirmation) and a select per opportunity."""
    name = records.user_name(leaver)
    channel = records.directory.channel.get(leaver[:15], cfg.routing.unrouted_channel)
    sas = region_sas(records.directory, channel)
    n = len(opportunities)
    head = f"*{esc(name)} is inactive — {n} {'opportunity needs' if n == 1 else 'opportunities need'} a new Primary SA*"
    if manager_name is None:
        head += "\n_They have no active manager in Salesforce, so this came to the operations channel._"
    confirm = {"title": {"type": "plain_text", "text": "Reassign all?"},
               "text": {"type": "mrkdwn", "text": cut(f"Make the chosen SA the Primary SA of all {n} open opportunities "
                                                      f"of {esc(name)} in Salesforce?", 300)},
               "confirm": {"type": "plain_text", "text": "Reassign all"},
               "deny": {"type": "plain_text", "text": "Cancel"}}  # fmt: skip
    blocks: list[dict] = [{"type": "divider"}, {"type": "section", "block_id": f"leaver:{leaver}",
                                                "text": {"type": "mrkdwn", "text": cut(head, 3000)}}]  # fmt: skip
    select = sa_select(REASSIGN_ALL, "all", leaver, sas, "Reassign all to…", confirm)
    if select is not None:
        blocks[-1]["accessory"] = select
    else:
        blocks[-1]["text"]["text"] += (
            "\n_No active SA in their region to offer: reassign them in Salesforce._"
        )
    for opp in opportunities:
        row = records.row("Opportunity", opp) or {}
        line = f"• {records.link('Opportunity', opp, row.get('name') or opp)} · {esc(row.get('stage'))}"
        block = {
            "type": "section",
            "block_id": f"item:{opp}",
            "text": {"type": "mrkdwn", "text": cut(line, 3000)},
        }
        one = sa_select(ASSIGN_SA, "assign", opp, sas, "Reassign to…")
        if one is not None:
            block["accessory"] = one
        blocks.append(block)
    return blocks


def leavers_notice(records, alerts: list[dict], recipient_id: str) -> str | None:
    """The line on top of a manager's DM digest holding the items of people who are inactive
    (the DM fell back to their manager): it says so, instead of "need you" alone, and where their
    book is reassigned."""
    d = records.directory
    people = set()
    for a in alerts:
        row = records.row(a["object"], a["record_id"]) or {}
        person = row.get("sa") if a["object"] == "Opportunity" and isinstance(row.get("sa"), str) else row.get("owner_id")
        if isinstance(person, str) and person[:15] != recipient_id[:15] and not bool(d.active.get(person[:15], True)):
            people.add(person[:15])
    if not people:
        return None
    names = sorted(records.user_name(p) for p in people)
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is" if len(names) == 1 else "are"
    return (f":door: *{esc(who)} {verb} inactive*: their items came to you. Reassign their opportunities "
            "from your 08:00 escalation message (Reassign all…).")
