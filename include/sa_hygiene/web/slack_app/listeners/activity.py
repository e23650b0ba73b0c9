"""The "Update Activity" button of an activity's post (spec v3; the handbook's Rattle button),
and of an act-fields item in the 16:00 DM (its ``fix: [activity]``).

The activity's owner, or their manager, opens a modal pre-filled from the Task as Salesforce has
it now (not the snapshot: it may have been edited since), checked on submission by the same code
as the rules (``log_form.validate``: the log form's workflow, act-fields), written to the Task
through the project's one Salesforce client, and the post is edited in place with "edited by …".
From a DM item, the item says "✓ Activity updated by …" instead and the fix is pending in the
alert state (as a tech-evaluation fix is): the digest is never redrawn as a post.
Everything typed is kept when Salesforce refuses; the user hears what did not happen.

"Mark complete" on a wf-11 item (a task due or overdue; ``fix: [task_done]``) needs no form: one
click sets the Task's status to Completed, once per item however often it is clicked.
"""

from __future__ import annotations

import json
import logging

from sa_hygiene.delivery.activity_posts import PostWriter, content_hash
from sa_hygiene.delivery.blockkit import COMPLETE_TASK, UPDATE_ACTIVITY, esc, is_salesforce_id
from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.items import UPDATE_VIEW, Item, accept, id_action, view_meta
from sa_hygiene.web.slack_app.listeners.actions import ack_at_once, tell_busy
from sa_hygiene.web.slack_app.listeners.tech_eval import mark_message
from sa_hygiene.web.slack_app.log_form import Meeting, validate
from sa_hygiene.web.slack_app.people import REFUSAL, Unidentified, actor, refuse
from sa_hygiene.web.slack_app.views import form_values, form_view, note_view

log = logging.getLogger(__name__)

# The Task fields the modal shows and writes (logical names of the field map).
FIELDS = ("owner_id", "what_id", "who_id", "subject", "description", "activity_date", "activity_types",
          "sentiment", "persona_levels")  # fmt: skip
UNREACHABLE = ":warning: Salesforce could not be reached, so the activity was not opened: nothing was changed. Please try again."
SAVING = ":hourglass_flowing_sand: Saving it in Salesforce…"
DB_DOWN = "The app's database is unavailable, so nothing was saved (a double click could have saved it twice). Please try again."


def _view_problem(body: dict) -> str | None:
    """The modal carries the Task and its owner, as read from Salesforce when it opened."""
    meta = view_meta(body["view"])
    ok = meta is not None and is_salesforce_id(meta.get("task")) and is_salesforce_id(meta.get("owner"))
    return None if ok else "malformed view"


# The buttons' value is the Task's Id; the modal opens on the trigger.
accept(actions={UPDATE_ACTIVITY: id_action(is_salesforce_id), COMPLETE_TASK: id_action(is_salesforce_id)},
       views={UPDATE_VIEW: _view_problem})  # fmt: skip


def read_task(backends: Backends, task_id: str, fields: tuple[str, ...] = FIELDS) -> dict | None:
    """The Task's ``fields`` by logical name, as Salesforce has it now; None when it is not there."""
    from sa_hygiene.web.slack_app.salesforce import soql_literal

    if not is_salesforce_id(task_id):
        return None
    cfg = backends.cfg
    names = {f: cfg.api_name("Task", f) for f in fields}
    soql = f"SELECT Id, {', '.join(names.values())} FROM Task WHERE Id = {soql_literal(task_id)} LIMIT 1"
    records = backends.salesforce.query(soql, what="read the activity").get("records") or []
    if not records:
        return None
    row = {f: records[0].get(api) for f, api in names.items()}
    for many in ("activity_types", "persona_levels"):
        if many in row:
            row[many] = [v for v in (row[many] or "").split(";") if v]
    return {"id": records[0].get("Id") or task_id, **row}


def fix_workflows(cfg, fix: str) -> list[str]:
    """The enabled workflows whose DM items offer ``fix`` (``activity``, ``task_done``)."""
    return [k for k, wf in cfg.enabled_workflows().items() if fix in wf.fix]


def update_view(backends: Backends, task: dict, meta: dict, values: dict | None = None, error: str | None = None) -> dict:
    """The log form's modal, pre-filled from the Task, titled and submitted as an update."""
    snapshot = backends.snapshot()
    writer = PostWriter(backends.cfg, snapshot, backends.today(None), [task["id"]])
    obj, label = writer.records.name_of(task.get("what_id"))
    related = [(task["what_id"], label)] if task.get("what_id") else []
    contacts = [(task["who_id"], writer.records.name_of(task["who_id"])[1])] if task.get("who_id") else []
    meeting = Meeting(Item("log", "wf", task["id"], task.get("owner_id") or task["id"]), task.get("subject") or "",
                      str(task.get("activity_date") or ""), related, contacts)  # fmt: skip
    filled = values if values is not None else {k: task.get(k) for k in FIELDS if task.get(k) not in (None, [], "")}
    view = form_view(backends.cfg, meeting, filled, error=error)
    return {**view, "callback_id": UPDATE_VIEW, "title": {"type": "plain_text", "text": "Update the activity"},
            "submit": {"type": "plain_text", "text": "Save"}, "private_metadata": json.dumps(meta)}  # fmt: skip


def register(app, backends: Backends) -> None:
    """The Update Activity button and its modal."""
    cfg = backends.cfg

    def acting_for(client, body, owner: str):
        """The clicking user, when they may act on ``owner``'s record (the owner or someone above
        them); None otherwise, and they have been told why."""
        try:
            people, who = actor(backends, client, body)
        except Unidentified:
            return None
        if who is None or not people.may_act(who, owner):
            refuse(client, body, REFUSAL)
            return None
        return who

    def open_update_form(body, client):
        """Open the modal for the clicking owner or manager, pre-filled from the Task."""
        from sa_hygiene.source.salesforce import SalesforceError

        task_id = (body.get("actions") or [{}])[0].get("value")
        try:
            task = read_task(backends, task_id) if isinstance(task_id, str) else None
        except SalesforceError as exc:
            log.warning("Update Activity: %s", exc)
            refuse(client, body, UNREACHABLE)
            return
        if task is None:
            refuse(client, body, ":warning: This activity is no longer in Salesforce: nothing to update.")
            return
        if acting_for(client, body, task.get("owner_id") or "") is None:
            return
        container = body.get("container") or {}
        # A DM item's fix buttons sit in a block of their own, ``fix:<Id>`` (digest.fix_actions).
        from_item = str((body.get("actions") or [{}])[0].get("block_id") or "").startswith("fix:")
        meta = {"task": task["id"], "owner": task.get("owner_id"), "date": str(task.get("activity_date") or ""),
                "channel": container.get("channel_id") or "", "ts": container.get("message_ts") or "",
                "item": from_item}  # fmt: skip
        client.views_open(trigger_id=body["trigger_id"], view=update_view(backends, task, meta))

    def check_update(ack, body):
        """Before the answer, without I/O: the rules' own checks; a valid form shows "saving"."""
        view = body["view"]
        meta = json.loads(view.get("private_metadata") or "{}")
        errors = validate(cfg, form_values(view), meta.get("owner"), meta.get("date") or None)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=note_view("Update the activity", SAVING))

    def save_update(body, client):
        """Write the Task, say so, and edit its post in place ("edited by …")."""
        from sa_hygiene.source.salesforce import SalesforceError
        from sa_hygiene.state.db import DatabaseError

        view = body["view"]
        meta = json.loads(view.get("private_metadata") or "{}")
        form = form_values(view)
        if validate(cfg, form, meta.get("owner"), meta.get("date") or None):
            return  # answered with the errors already
        try:
            people, who = actor(backends, client, body)
        except Unidentified:
            return
        if who is None or not people.may_act(who, meta.get("owner") or ""):
            client.views_update(view_id=view["id"], view=note_view("Not yours", REFUSAL))
            return
        task_id = meta["task"]
        if not is_salesforce_id(task_id):
            return
        task = {"id": task_id, "owner_id": meta.get("owner"), "activity_date": meta.get("date"), **form}
        try:  # one form writes once: a double click on Save sends it twice
            if not backends.submissions.claim(view["id"]):
                return
        except DatabaseError as exc:  # no claim, no write: an unclaimed write could happen twice
            backends.state_failed(client, exc)
            client.views_update(view_id=view["id"], view=update_view(backends, task, meta, form, error=DB_DOWN))
            return
        name = lambda f: cfg.api_name("Task", f)  # noqa: E731
        fields = {name("what_id"): form["what_id"], name("who_id"): form["who_id"], name("subject"): form["subject"],
                  name("description"): form.get("description"),
                  name("activity_types"): ";".join(form["activity_types"]), name("sentiment"): form["sentiment"],
                  name("persona_levels"): ";".join(form["persona_levels"]) or None}  # fmt: skip
        try:
            backends.salesforce.update("Task", task_id, fields)
        except SalesforceError as exc:
            error = f"{exc.code}: {exc.message}" if exc.code else f"Salesforce did not answer ({exc.message[:200]})"
            backends.release(client, view["id"])  # nothing written: the form may be saved again
            client.views_update(view_id=view["id"], view=update_view(backends, task, meta, form, error=error))
            return
        try:
            backends.submissions.done(view["id"], task_id)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
        note = ":white_check_mark: Saved in Salesforce."
        if meta.get("item"):
            if backends.record_fix(client, fix_workflows(cfg, "activity"), task_id, who.name, form) is None:
                note += " (The app's database is unavailable: your next digest may still list it until the next snapshot.)"
            mark_message(client, meta, task_id, f":white_check_mark: Activity updated by {esc(who.name)}", UPDATE_ACTIVITY)
        edit_post(backends, client, task_id, meta, form, who.name, own_message=not meta.get("item"))
        client.views_update(view_id=view["id"], view=note_view("Saved", note))  # last: all is done

    def complete_task(body, client):
        """Mark complete (a task due or overdue in the DM): the Task's status set to Completed,
        once however often it is clicked; the item says who completed it, and the fix is pending
        until an evaluation sees the Task closed. A task closed already is only said to be."""
        from sa_hygiene.source.salesforce import SalesforceError
        from sa_hygiene.state.db import DatabaseError

        task_id = (body.get("actions") or [{}])[0].get("value")
        container = body.get("container") or {}
        meta = {"channel": container.get("channel_id") or "", "ts": container.get("message_ts") or ""}
        try:
            task = read_task(backends, task_id, ("owner_id", "is_closed")) if isinstance(task_id, str) else None
        except SalesforceError as exc:
            log.warning("Mark complete: %s", exc)
            refuse(client, body, ":warning: Salesforce could not be reached, so the task was not completed. Please try again.")
            return
        if task is None:
            refuse(client, body, ":warning: This task is no longer in Salesforce: nothing to complete.")
            return
        who = acting_for(client, body, task.get("owner_id") or "")
        if who is None:
            return
        if task.get("is_closed"):
            mark_message(client, meta, task_id, ":white_check_mark: Already completed in Salesforce", COMPLETE_TASK)
            return
        key = f"complete:{task_id}:{meta['ts']}"
        try:
            if not backends.submissions.claim(key):
                return  # a second click on the same item: the first one writes
        except DatabaseError as exc:  # no claim, no write: an unclaimed write could happen twice
            backends.state_failed(client, exc)
            refuse(client, body, ":warning: The app's database is unavailable, so the task was not completed. Please try again.")
            return
        try:
            backends.salesforce.update("Task", task_id, {cfg.api_name("Task", "status"): "Completed"})
        except SalesforceError as exc:
            backends.release(client, key)
            why = f"{exc.code}: {exc.message}" if exc.code else "Salesforce did not answer"
            refuse(client, body, f":warning: Salesforce did not complete the task ({esc(why[:300])}): nothing was changed.")
            return
        try:
            backends.submissions.done(key, task_id)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
        backends.record_fix(client, fix_workflows(cfg, "task_done"), task_id, who.name, {"status": "Completed"})
        mark_message(client, meta, task_id, f":white_check_mark: Completed by {esc(who.name)}", COMPLETE_TASK)

    complete_task.busy = tell_busy
    app.action(COMPLETE_TASK)(ack=ack_at_once, lazy=[complete_task])
    open_update_form.busy = tell_busy
    save_update.busy = lambda body, client: client.views_update(
        view_id=body["view"]["id"], view=note_view("Not saved", ":hourglass: The app is busy: nothing was saved. Try again."))
    app.action(UPDATE_ACTIVITY)(ack=ack_at_once, lazy=[open_update_form])
    app.view(UPDATE_VIEW)(ack=check_update, lazy=[save_update])
    app.view_closed(UPDATE_VIEW)(ack_at_once)


def edit_post(backends: Backends, client, task_id: str, meta: dict, form: dict, editor: str, own_message: bool = True) -> None:
    """The activity's post as just saved, with "edited by …", in place; its record of what Slack
    shows follows, so that the next feed run does not edit it again for nothing. ``own_message``:
    the button's message is the post (not a DM digest), edited even when no record of it is kept."""
    from sa_hygiene.state.db import DatabaseError
    from sa_hygiene.state.posts import LIVE, ActivityPosts

    cfg = backends.cfg
    post = None
    posts = None
    try:
        posts = ActivityPosts(backends.state_url)
        found = posts.of_records(f"slack:{cfg.slack.conn_id}", [task_id])
        post = found[0] if found else None
    except DatabaseError as exc:
        backends.state_failed(client, exc)
    if post is None and not own_message:
        if posts is not None:
            posts.close()
        return
    channel, ts = (post.channel, post.ts) if post else (meta.get("channel"), meta.get("ts"))
    workflow = post.workflow if post else next(
        (w for w in cfg.schedule.as_it_happens if w in cfg.workflows and cfg.workflows[w].frame == "activities"), None)
    if not (channel and ts and workflow):
        return
    saved = {"owner_id": meta.get("owner"), "activity_date": meta.get("date") or None, **form}
    writer = PostWriter(cfg, backends.snapshot(), backends.today(None), [task_id]).with_saved(task_id, saved)
    text, blocks = writer.render(workflow, task_id, edited_by=editor)
    client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
    if post is not None and posts is not None:
        try:
            posts.replace(f"slack:{cfg.slack.conn_id}", post, content_hash(text, blocks), LIVE, editor)
        except DatabaseError as exc:
            backends.state_failed(client, exc)
    if posts is not None:
        posts.close()
