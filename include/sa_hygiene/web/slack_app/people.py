"""Who may act from Slack: the clicking Slack user as a Salesforce user, found through the
e-mail Slack has for them and the latest snapshot's User table, may act on an item addressed
to them or to someone who reports to them (``ManagerId``); anyone else is refused.

Every "who may act" question walks the ``ManagerId`` chain the same way, ``People.managers``:
an item's recipient's direct manager (``may_act``), a record's holders' managers up the chain
(``may_write``), the managers' controls (``managing.may_manage``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sa_hygiene.web.slack_app.backends import Backends, LookupFailed
from sa_hygiene.web.slack_app.views import note_view

MAX_CHAIN = 30  # ManagerId hops followed at most (a loop in the org's data must not hang a click)
REFUSAL = "That item is not yours: only the person it was sent to, or their manager, can act on it. Nothing was changed."


@dataclass(frozen=True)
class Person:
    id: str
    key: str
    name: str
    email: str
    manager_key: str | None
    timezone: str | None


class People:
    """The Salesforce users of a snapshot, by e-mail and Id: who a Slack user is, and whom they lead."""

    def __init__(self, users: pd.DataFrame):
        self._by_key: dict[str, Person] = {}
        self._by_email: dict[str, Person] = {}
        for row in users.to_dict("records"):
            if not isinstance(row.get("id"), str):
                continue
            manager = row.get("manager_id")
            person = Person(row["id"], row["id"][:15], str(row.get("name") or row["id"]), str(row.get("email") or ""),
                            manager[:15] if isinstance(manager, str) and manager else None,
                            row.get("timezone") if isinstance(row.get("timezone"), str) else None)  # fmt: skip
            self._by_key[person.key] = person
            active = row.get("is_active")
            if person.email and active is not False and str(active).lower() != "false":
                # Two users with one e-mail (a sandbox copy, a re-hire): the first active one wins.
                self._by_email.setdefault(person.email.lower(), person)

    def by_email(self, email: str | None) -> Person | None:
        return self._by_email.get(email.lower()) if email else None

    def by_id(self, user_id: str | None) -> Person | None:
        return self._by_key.get(user_id[:15]) if isinstance(user_id, str) else None

    def managers(self, user_id: str | None, hops: int = MAX_CHAIN) -> list[str]:
        """The Id keys of a user's managers up the ``ManagerId`` chain, nearest first, at most
        ``hops`` of them (a loop in the data ends the walk)."""
        out: list[str] = []
        person = self.by_id(user_id)
        while person is not None and person.manager_key and person.manager_key not in out and len(out) < hops:
            out.append(person.manager_key)
            person = self.by_id(person.manager_key)
        return out

    def leads(self, actor: Person, user_id: str | None, hops: int = MAX_CHAIN) -> bool:
        """``user_id`` is the actor, or reports to them within ``hops`` up the ``ManagerId`` chain."""
        if not isinstance(user_id, str):
            return False
        return user_id[:15] == actor.key or actor.key in self.managers(user_id, hops)

    def may_act(self, actor: Person, recipient_id: str) -> bool:
        """The item was addressed to the actor, or to someone who reports to them directly."""
        return self.leads(actor, recipient_id, hops=1)

    def may_write(self, actor: Person, *holders: str | None) -> bool:
        """A record may be written by its owner or Primary SA (``holders``), or by anyone they
        report to, up the chain."""
        return any(self.leads(actor, h) for h in holders if h)


def actor(backends: Backends, client, body: dict) -> tuple[People, Person | None]:
    """(the snapshot's people, the clicking Slack user as one of them, or None). When Slack cannot
    say who they are, the user is told what failed (not "not yours") and ``Unidentified`` raised."""
    people = People(backends.snapshot()["User"])
    try:
        email = backends.slack.email_of(client, body["user"]["id"])
    except LookupFailed as exc:
        text = f":warning: Could not tell who you are: {exc}. Nothing was changed; please tell the SA hygiene operators."
        if body.get("type") == "view_submission":
            client.views_update(view_id=body["view"]["id"], view=note_view("Not saved", text))
        else:
            refuse(client, body, text)
        raise Unidentified(str(exc)) from None
    return people, people.by_email(email)


class Unidentified(RuntimeError):
    """The clicking user could not be identified; they have been told what failed."""


def refuse(client, body: dict, text: str) -> None:
    """Tell the clicking user, and only them, why nothing happened."""
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
    if channel:
        client.chat_postEphemeral(channel=channel, user=body["user"]["id"], text=text)
