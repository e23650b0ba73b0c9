"""Listeners of the managers' controls (``delivery/manager_controls.py``): Assign Primary SA on a
regional digest item or a leaver's opportunity, Reassign all to… on a leaver's book, and Nudge
and Snooze on an escalated record.

Each acknowledges at once; the work runs after the answer (writes to Salesforce in the
``salesforce`` lane). Before anything changes, the clicking user must be one of the record's
managers (``managing.may_manage``) and every Id the value names is checked against the latest
snapshot: a value is only what a click claims. Every write to Salesforce is kept in the state
database (``state/manager_actions.py``), for the operations channel's daily summary.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sa_hygiene.delivery.blockkit import cut, esc, is_salesforce_id, record_url
from sa_hygiene.delivery.manager_controls import (
    ASSIGN_SA,
    KINDS,
    MANAGER_ACTIONS,
    NUDGE,
    OPEN_RECORD,
    REASSIGN_ALL,
    SNOOZE_RECORD,
    SNOOZE_VIEW,
    ManagerValue,
    chosen_value,
    decode_value,
    region_sas,
    sa_options,
)
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import NOT_SENT, accept
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once, tell_busy
from sa_hygiene.web.slack_app.managing import (
    MANAGER_REFUSAL,
    action_problem,
    may_manage,
    row_of,
    snooze_choice,
    snooze_meta,
    snooze_view,
    view_problem,
)
from sa_hygiene.web.slack_app.people import People, Person, Unidentified, actor, refuse
from sa_hygiene.web.slack_app.views import marked
from sa_hygiene.web.slack_app.work import lane

log = logging.getLogger(__name__)

DB_DOWN = ":warning: The app's database is unavailable, so nothing was changed. Please try again later."
UNTOLD = "Saved in Salesforce, but Slack does not know {name} by their Salesforce e-mail: please tell them yourself."
COLLECTION = 200  # records per sObject Collections request

SEARCHED_IN = {ASSIGN_SA: "item", REASSIGN_ALL: "leaver"}  # a region's SA search: the block that names its target


def region_user_of(opp: dict) -> str | None:
    """Whose region an opportunity's Primary SA is chosen in: its SA's, or its owner's without one."""
    return (opp.get("sa") if isinstance(opp.get("sa"), str) else None) or opp.get("owner_id")


def search_target(body: dict) -> str | None:
    """The record (or leaver) a search of SAs in a message is for: the Id its block names."""
    prefix, _, target = str(body.get("block_id") or "").partition(":")
    return target if prefix == SEARCHED_IN.get(body.get("action_id")) and is_salesforce_id(target) else None


def search_problem(body: dict) -> str | None:
    if body.get("view") is not None or search_target(body) is None:
        return "unknown suggestion"
    return None if len(body.get("value") or "") <= 200 else "malformed suggestion"


accept(actions=dict.fromkeys(MANAGER_ACTIONS, action_problem), views={SNOOZE_VIEW: view_problem},
       suggestions=dict.fromkeys(SEARCHED_IN, search_problem))  # fmt: skip


class Refused(RuntimeError):
    """The click changes nothing; the message says why (told to the clicking user only)."""


def without_controls(
    blocks: list[dict], record_id: str, note: str, keep: set[str] | None = None
) -> list[dict]:
    """The message with ``note`` under the record's entry, and its select or buttons gone (but
    the ``keep`` action ids, e.g. Open)."""
    out = []
    for b in marked(blocks, f"item:{record_id}", note):
        if b.get("block_id") == f"esc:{record_id}":
            kept = [e for e in b.get("elements") or [] if e.get("action_id") in (keep or set())]
            if not kept:
                continue
            b = {**b, "elements": kept}
        out.append(b)
    return out


def register(app, backends: Backends) -> None:
    """The managers' listeners of ``app``; ``backends``: what their work after the answer reaches."""
    from sa_hygiene.engine.routing import Directory

    cfg = backends.cfg
    sa_field = cfg.api_name("Opportunity", "sa")

    def manager(
        body: dict, client, snapshot, targets: list, region_of_user: str | None
    ) -> tuple[People, Person]:
        """The clicking user when they manage ``targets`` or the region of ``region_of_user``."""
        directory = Directory(snapshot["User"], cfg)
        region = directory.region.get(region_of_user[:15]) if isinstance(region_of_user, str) else None
        try:
            people, who = actor(backends, client, body)
        except Unidentified:
            raise Refused("") from None  # told already
        if who is None or not may_manage(
            cfg, people, directory, who, targets, region if isinstance(region, str) else None
        ):
            raise Refused(MANAGER_REFUSAL)
        return people, who

    def told(body: dict, client, exc: Refused) -> None:
        if str(exc):
            refuse(client, body, str(exc))

    def link(obj: str, record_id: str, label) -> str:
        return (
            f"<{record_url(cfg.salesforce.instance_url, obj, record_id)}|{cut(esc(label or record_id), 200)}>"
        )

    def dm(client, snapshot, user_id: str, text: str) -> bool:
        """A direct message to a Salesforce user, found in Slack by e-mail; False when Slack has no such user."""
        from slack_sdk.errors import SlackApiError

        row = row_of(snapshot, "User", user_id) or {}
        email = row.get("email")
        if not isinstance(email, str):
            return False
        try:
            slack_user = client.users_lookupByEmail(email=email)["user"]["id"]
            channel = client.conversations_open(users=slack_user)["channel"]["id"]
            client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            log.warning("manager DM to %s not delivered: %s", user_id, exc.response.get("error"))
            return False
        return True

    def log_writes(client, rows: list[dict]) -> None:
        from sa_hygiene.state.db import DatabaseError
        from sa_hygiene.state.manager_actions import ManagerActions, write_line

        try:
            with ManagerActions(backends.state_url) as actions:
                actions.wrote(rows)
        except DatabaseError as exc:  # the write happened: the operations channel hears it now instead
            backends.state_failed(client, exc)
            log.warning("manager writes not logged for the summary: %s", rows)
            lines = [write_line(r) for r in rows]
            channel = backends.slack.channel_id(client, cfg.channels.operations)
            if channel:
                text = "Changed in Salesforce from Slack (not in the daily summary: its database is down):\n" + "\n".join(lines)
                client.chat_postMessage(channel=channel, text=cut(esc(text), 3000))

    def update_message(body: dict, client, blocks: list[dict]) -> None:
        container = body.get("container") or {}
        message = body.get("message") or {}
        client.chat_update(channel=container.get("channel_id"), ts=container.get("message_ts"),
                           text=message.get("text") or "SA hygiene", blocks=blocks)  # fmt: skip

    def new_sa_of(snapshot, directory, sa: str, region_user: str | None) -> dict:
        """The SA to assign: an active SA of the record's region, else ``Refused``."""
        row = row_of(snapshot, "User", sa)
        if row is None or not bool(directory.is_sa.get(sa[:15], False)):
            raise Refused(f"{NOT_SENT} (that user is no active Solutions Architect)")
        if isinstance(region_user, str) and directory.channel.get(sa[:15]) != directory.channel.get(
            region_user[:15]
        ):
            raise Refused(f"{NOT_SENT} ({esc(row.get('name'))} is an SA of another region)")
        return row

    def live_sa(opportunity: str) -> str | None:
        """The opportunity's Primary SA in Salesforce now (the snapshot is hours old); ``Refused``
        when Salesforce cannot say."""
        from sa_hygiene.source.salesforce import SalesforceError
        from sa_hygiene.web.slack_app.salesforce import soql_literal

        try:
            found = backends.salesforce.query(f"SELECT Id, {sa_field} FROM Opportunity WHERE Id = {soql_literal(opportunity)}",
                                              what="read an opportunity's Primary SA")  # fmt: skip
        except SalesforceError as exc:
            raise Refused(f":warning: Salesforce could not be asked ({esc(exc.message)[:300]}): nothing was changed.") from None
        records = found.get("records") or []
        if not records:
            raise Refused(f"{NOT_SENT} (Salesforce has no such Opportunity)")
        return records[0].get(sa_field) or None

    def live_book(leaver: str) -> list[str]:
        """The Ids of the open opportunities whose Primary SA is ``leaver`` in Salesforce now."""
        from sa_hygiene.source.salesforce import SalesforceError
        from sa_hygiene.web.slack_app.salesforce import soql_literal

        closed = cfg.api_name("Opportunity", "is_closed")
        soql = f"SELECT Id, {closed} FROM Opportunity WHERE {sa_field} = {soql_literal(leaver)}"
        try:
            pages = list(backends.salesforce.pages(soql, what="read a leaver's open opportunities"))
        except SalesforceError as exc:
            raise Refused(f":warning: Salesforce could not be asked ({esc(exc.message)[:300]}): nothing was changed.") from None
        return sorted(r["Id"] for page in pages for r in page if r.get("Id") and r.get(closed) is not True)

    @lane("salesforce")
    def assign(body, client):
        """Make the chosen SA the opportunity's Primary SA; the item says so, the SA hears it."""
        from sa_hygiene.source.salesforce import SalesforceError

        action = body["actions"][0]
        value = decode_value(ASSIGN_SA, chosen_value(action))
        snapshot = backends.snapshot()
        directory = Directory(snapshot["User"], cfg)
        try:
            opp = row_of(snapshot, "Opportunity", value.target)
            if opp is None:
                raise Refused(f"{NOT_SENT} (no such Opportunity in the latest snapshot)")
            current = opp.get("sa") if isinstance(opp.get("sa"), str) else None
            region_user = region_user_of(opp)
            sa = new_sa_of(snapshot, directory, value.user, region_user)
            _, who = manager(body, client, snapshot, [current, opp.get("owner_id")], region_user)
            live = live_sa(opp["id"])
            if (live or "")[:15] != (current or "")[:15]:  # another manager, or Salesforce itself, was faster
                name = (row_of(snapshot, "User", live) or {}).get("name") or live if live else "nobody"
                raise Refused(f"Salesforce now shows {esc(name)} as the Primary SA (changed since this message): "
                              "nothing was changed.")  # fmt: skip
        except Refused as exc:
            told(body, client, exc)
            return
        entry = {"by": f"{who.name} <{who.email}>", "action": "reassign" if current else "assign", "object": "Opportunity",
                 "record_id": opp["id"], "field": sa_field, "old": current, "new": sa["id"]}  # fmt: skip
        try:
            backends.salesforce.update("Opportunity", opp["id"], {sa_field: sa["id"]})
        except SalesforceError as exc:
            log_writes(client, [{**entry, "outcome": f"refused: {exc.code or exc.message}"}])
            refuse(client, body, f":warning: Salesforce did not save it ({esc(exc.code or '')} {esc(exc.message)[:300]}). "
                                 "Nothing was changed.")  # fmt: skip
            return
        log_writes(client, [{**entry, "outcome": "saved"}])
        note = f":white_check_mark: {esc(sa.get('name'))} assigned by {esc(who.name)}"
        update_message(
            body, client, without_controls((body.get("message") or {}).get("blocks") or [], opp["id"], note)
        )
        if not dm(client, snapshot, sa["id"], f":briefcase: {who.name} made you the Primary SA of "
                                              f"{link('Opportunity', opp['id'], opp.get('name'))}."):  # fmt: skip
            refuse(client, body, UNTOLD.format(name=esc(sa.get("name"))))

    @lane("salesforce")
    def reassign_all(body, client):
        """Reassign every open opportunity of a leaver to the chosen SA: one collection request per
        200 records, each record once; what Salesforce refused is listed."""
        from sa_hygiene.source.salesforce import SalesforceError
        from sa_hygiene.state.db import DatabaseError
        from sa_hygiene.state.manager_actions import ManagerActions

        action = body["actions"][0]
        value = decode_value(REASSIGN_ALL, chosen_value(action))
        snapshot = backends.snapshot()
        directory = Directory(snapshot["User"], cfg)
        try:
            leaver = row_of(snapshot, "User", value.target)
            if leaver is None or bool(directory.active.get(value.target[:15], True)):
                raise Refused(f"{NOT_SENT} (no inactive user with this Id in the latest snapshot)")
            opps = snapshot["Opportunity"]
            book = opps[(opps["sa"].str.slice(0, 15) == value.target[:15]) & (opps["is_closed"] != True)]  # noqa: E712
            if book.empty:
                raise Refused(f"{esc(leaver.get('name'))} has no open opportunities left to reassign.")
            sa = new_sa_of(snapshot, directory, value.user, leaver["id"])
            _, who = manager(body, client, snapshot, [leaver["id"]], leaver["id"])
            live = live_book(leaver["id"])  # what is still theirs in Salesforce now, not hours ago
            if not live:
                raise Refused(f"Salesforce shows no open opportunity of {esc(leaver.get('name'))} any more: nothing to reassign.")
        except Refused as exc:
            told(body, client, exc)
            return
        container = body.get("container") or {}
        claim = f"reassign_all|{leaver['id']}|{container.get('message_ts')}"
        try:
            with ManagerActions(backends.state_url) as actions:
                if not actions.claim(claim):
                    refuse(
                        client,
                        body,
                        "This book is already being reassigned (or was): nothing was done twice.",
                    )
                    return
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            refuse(client, body, DB_DOWN)
            return
        ids = list(dict.fromkeys(live))  # each record once
        results = []
        try:
            for start in range(0, len(ids), COLLECTION):
                chunk = ids[start : start + COLLECTION]
                results += backends.salesforce.update_many(
                    "Opportunity", {i: {sa_field: sa["id"]} for i in chunk}
                )
        except SalesforceError as exc:
            if not results:
                with ManagerActions(backends.state_url) as actions:
                    actions.release(claim)
            refuse(client, body, f":warning: Salesforce did not answer ({esc(exc.message)[:300]}): "
                                 f"{len(results)} of {len(ids)} reassigned for sure. Look at the rest in Salesforce.")  # fmt: skip
        by = f"{who.name} <{who.email}>"
        log_writes(client, [{"by": by, "action": "reassign_all", "object": "Opportunity", "record_id": r.id,
                             "field": sa_field, "old": leaver["id"], "new": sa["id"],
                             "outcome": "saved" if r.success else f"refused: {r.code}: {r.message}"} for r in results])  # fmt: skip
        names = dict(zip(book["id"], book["name"], strict=True))
        saved = [r.id for r in results if r.success]
        refused = [r for r in results if not r.success]
        blocks = (body.get("message") or {}).get("blocks") or []
        for record in saved:
            blocks = without_controls(blocks, record, f":white_check_mark: {esc(sa.get('name'))}")
        note = f":white_check_mark: {len(saved)} of {len(ids)} reassigned to {esc(sa.get('name'))} by {esc(who.name)}"
        if refused:
            note += "\n:warning: Salesforce refused " + "; ".join(
                f"{link('Opportunity', r.id, names.get(r.id))}: {esc(r.message)[:200]}" for r in refused[:20]
            )
        blocks = marked(blocks, f"leaver:{leaver['id']}", cut(note, 2900))
        update_message(body, client, blocks)
        if saved:
            listed = ", ".join(link("Opportunity", i, names.get(i)) for i in saved[:30])
            more = f" and {len(saved) - 30} more" if len(saved) > 30 else ""
            if not dm(client, snapshot, sa["id"], f":briefcase: {who.name} made you the Primary SA of {len(saved)} "
                                                  f"opportunities of {leaver.get('name')}: {listed}{more}."):  # fmt: skip
                refuse(client, body, UNTOLD.format(name=esc(sa.get("name"))))

    def record_of(snapshot, value: ManagerValue) -> tuple[str, dict]:
        # The escalated workflows' objects (a custom object's Id prefix varies by org: no prefix table).
        objects = dict.fromkeys(wf.object for wf in cfg.workflows.values() if wf.object != "User")
        obj, row = next(((o, r) for o in objects if (r := row_of(snapshot, o, value.target)) is not None), (None, None))
        if row is None:
            raise Refused(f"{NOT_SENT} (no such record in the latest snapshot)")
        people = {p[:15] for p in (row.get("sa"), row.get("owner_id")) if isinstance(p, str)}
        if value.user[:15] not in people:
            raise Refused(f"{NOT_SENT} (that person is not on this record)")
        return obj, row

    def escalated(body: dict, client, snapshot, value: ManagerValue) -> tuple[str, dict, Person] | None:
        """(object, row, the clicking manager) of an escalated record, or None: they were told why not."""
        try:
            obj, row = record_of(snapshot, value)
            _, who = manager(body, client, snapshot, [value.user, row.get("sa"), row.get("owner_id")], value.user)
        except Refused as exc:
            told(body, client, exc)
            return None
        return obj, row, who

    def open_titles(record_id: str) -> list[str]:
        from sa_hygiene.state.alerts import open_state

        with open_state(cfg, backends.state_url) as state:
            open_wfs = [e["workflow"] for e in state.open_episodes() if e["record_key"] == record_id[:15]]
        return [cfg.workflows[w].title for w in dict.fromkeys(open_wfs) if w in cfg.workflows]

    def nudge(body, client):
        """DM the SA "<manager> asked you to look at …", at most once a day per record."""
        from sa_hygiene.state.db import DatabaseError
        from sa_hygiene.state.manager_actions import ManagerActions

        value = decode_value(NUDGE, chosen_value(body["actions"][0]))
        snapshot = backends.snapshot()
        found = escalated(body, client, snapshot, value)
        if found is None:
            return
        obj, row, who = found
        day = backends.today(who.timezone)
        try:
            with ManagerActions(backends.state_url) as actions:
                if not actions.nudge(value.target, day, who.name, value.user):
                    earlier = actions.nudged(value.target, day) or {}
                    refuse(client, body, f"Already nudged today (by {esc(earlier.get('nudged_by') or 'someone')}): "
                                         "one nudge a day per record.")  # fmt: skip
                    return
            titles = open_titles(value.target)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            refuse(client, body, DB_DOWN)
            return
        label = row.get("name") or row.get("subject") or value.target
        why = "".join(f"\n• {esc(t)}" for t in titles)
        if not dm(
            client,
            snapshot,
            value.user,
            f":wave: {who.name} asked you to look at {link(obj, value.target, label)}{why}",
        ):
            with ManagerActions(backends.state_url) as actions:
                actions.forget_nudge(value.target, day)  # not delivered: it may be tried again today
            refuse(client, body, "Slack does not know this SA by their Salesforce e-mail: not nudged.")
            return
        note = f":wave: Nudged by {esc(who.name)} on {day:%a %d %b}"
        update_message(body, client, without_controls((body.get("message") or {}).get("blocks") or [], value.target, note,
                                                      keep={SNOOZE_RECORD, OPEN_RECORD}))  # fmt: skip

    def open_snooze(body, client):
        """Open the snooze modal (how long, why) for an escalated record its manager clicked."""
        value = decode_value(SNOOZE_RECORD, chosen_value(body["actions"][0]))
        found = escalated(body, client, backends.snapshot(), value)
        if found is None:
            return
        _, row, _ = found
        container = body.get("container") or {}
        label = row.get("name") or row.get("subject") or value.target
        client.views_open(trigger_id=body["trigger_id"], view=snooze_view(cfg, value, str(label),
                          container.get("channel_id") or "", container.get("message_ts") or ""))  # fmt: skip

    def check_snooze(ack, body):
        """Before the answer: a length offered and a reason given (no I/O); the modal then closes."""
        _, _, errors = snooze_choice(cfg, body["view"])
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def save_snooze(body, client):
        """Snooze every open workflow of the record until the manager's today + the chosen days."""
        from sa_hygiene.state.alerts import open_state
        from sa_hygiene.state.db import DatabaseError

        view = body["view"]
        days, reason, errors = snooze_choice(cfg, view)
        if errors:
            return
        meta = snooze_meta(view)
        value = decode_value(SNOOZE_RECORD, meta["value"])
        where = {"type": "block_actions", "user": body["user"], "container": {"channel_id": meta["channel"]}}
        found = escalated(where, client, backends.snapshot(), value)
        if found is None:
            return
        _, _, who = found
        until = backends.today(who.timezone) + timedelta(days=days)
        try:
            with open_state(cfg, backends.state_url) as state:
                wfs = list(
                    dict.fromkeys(
                        e["workflow"] for e in state.open_episodes() if e["record_key"] == value.target[:15]
                    )
                )
                for wf in wfs:
                    state.snooze(wf, value.target, until=until, reason=reason, by=who.email or who.name)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
            refuse(client, where, ":warning: Not snoozed: " + DB_DOWN[len(":warning: ") :])
            return
        if not wfs:
            refuse(client, where, "Nothing of this record is open any more: nothing to snooze.")
            return
        found = client.conversations_history(
            channel=meta["channel"], latest=meta["ts"], inclusive=True, limit=1
        )
        message = next((m for m in found.get("messages") or [] if m.get("ts") == meta["ts"]), None)
        if message is not None:
            note = f":zzz: Snoozed by {esc(who.name)} until {until:%a %d %b %Y}: {esc(reason)}"
            client.chat_update(channel=meta["channel"], ts=meta["ts"], text=message.get("text") or "Snoozed",
                               blocks=without_controls(message.get("blocks") or [], value.target, note, keep={OPEN_RECORD}))  # fmt: skip

    def search_sas(ack, body):
        """The SAs a region of more than a select holds offers as one types (Slack's
        ``block_suggestion``, answered in the acknowledgement from the snapshot, never from
        Salesforce): the SAs of the region of the opportunity's SA or owner, or of the leaver,
        which are the ones ``assign`` and ``reassign_all`` accept."""
        target, kind = search_target(body), KINDS[body["action_id"]]
        query = body.get("value") if isinstance(body.get("value"), str) else ""
        try:
            snapshot = backends.snapshot()
            directory = Directory(snapshot["User"], cfg)
            whose = region_user_of(row_of(snapshot, "Opportunity", target) or {}) if kind == "assign" else target
            channel = directory.channel.get(whose[:15]) if isinstance(whose, str) and whose else None
            options = sa_options(kind, target, region_sas(directory, channel), query[:200]) if channel else []
        except Exception as exc:  # no snapshot, or one that cannot be read: an empty menu, logged
            log.warning("Slack app: the search of SAs failed: %s", exc)
            options = []
        ack(options=options)

    assign.busy = reassign_all.busy = nudge.busy = open_snooze.busy = tell_busy
    app.options(ASSIGN_SA)(search_sas)
    app.options(REASSIGN_ALL)(search_sas)
    app.action(ASSIGN_SA)(ack=ack_at_once, lazy=[assign])
    app.action(REASSIGN_ALL)(ack=ack_at_once, lazy=[reassign_all])
    app.action(NUDGE)(ack=ack_at_once, lazy=[nudge])
    app.action(SNOOZE_RECORD)(ack=ack_at_once, lazy=[open_snooze])
    app.action(OPEN_RECORD)(ack_at_once)
    app.view(SNOOZE_VIEW)(ack=check_snooze, lazy=[save_snooze])
    app.view_closed(SNOOZE_VIEW)(ack_at_once)
