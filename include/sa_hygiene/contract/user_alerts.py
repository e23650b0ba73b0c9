"""Alerts people make themselves (issue 27), compiled to the workflow model of ``workflows.yaml``.

"All users are allowed to create Workflows" (the handbook, of Rattle): here a person picks an
object, a trigger, a scope and a delivery from lists (the Slack app's ``/sa-alert`` form), and
the choice becomes one workflow entry, checked by the same configuration checker as the YAML
(``config.with_workflows``). Nothing a person types is ever code: fields are logical fields of
the data contract that the object's frame carries, values come from their picklists (or are
numbers and day counts), and the people and accounts of a scope are Ids read from the snapshot
(``Audience``) and written into the scope as quoted constants.

Triggers, each the kind the engine already has:

- ``condition``: the field is blank, equals a value, is in a set, is more or less than a
  number, or its date is more or fewer than N days ago (fields with a day count in the frame);
- ``changed``: the field differs from the previous snapshot (optionally from / to a value);
- ``stage_move``: the rank moved (optionally from / to a rank), against the previous snapshot.

Scopes: ``mine`` (I am the Primary SA or the owner; a task's owner), ``my_accounts``
(opportunities of accounts I own), ``my_region`` (records of my region's people), ``my_reports``
(records of my direct reports), ``team`` (a manager's whole team, every level below them).

Deliveries: ``digest`` (my 16:00 DM digest), ``dm_now`` (a DM within 15 minutes), ``channel``
(a channel the maker may post to: checked by the Slack app, which knows the channel).
A DM always goes to the alert's maker (``recipient: {user: <Id>}``): nobody gets DMs from
someone else's alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator

from sa_hygiene.contract.config import FRAME_OBJECT, Config, ConfigError, with_workflows
from sa_hygiene.contract.schema import FRAMES, OBJECTS

ID_PREFIX = "ua-"
# The frames a condition reads, per object, the first that carries the field: every task, else
# (sentiment, activity types, personas: fields of a logged activity) the review period's SA
# activities. Other objects (Proof of Value where the org has it) read the frame of their object.
CONDITION_FRAME = {"Opportunity": ("opportunities",), "Task": ("tasks", "activities")}
CHANGE_FRAME = "changes"
# A date field compared to a day offset reads the frame's day count: (column, days ago = +1 per day).
DAY_COUNTS = {
    ("opportunities", "stage3_date"): "days_since_stage3",
    ("opportunities", "te_start"): "days_since_te_start",
    ("tasks", "activity_date"): "days_overdue",
}
# Values of a tech evaluation's close status (WORKFLOWS.md, te-consistency).
TE_STATUSES = ["Win", "Loss", "Stalled"]
SLOT = {"digest": "sa_digest", "dm_now": "meeting_reminder", "channel": "channel_post"}
MAX_VALUES = 50


class AlertDraftError(ValueError):
    """A user alert that cannot be compiled: the message says which choice, in the form's words."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    kind: Literal["condition", "changed", "stage_move"]
    field: StrictStr | None = None
    # condition: blank | equals | in | more_than | less_than | older_than_days | newer_than_days
    op: Literal["blank", "equals", "in", "more_than", "less_than", "older_than_days", "newer_than_days"] | None = None
    values: Annotated[list[Any], Field(max_length=MAX_VALUES)] = []
    number: float | None = None
    # changed: optional previous / new value; stage_move: ranks
    from_value: Any = None
    to_value: Any = None


class UserAlert(_Model):
    """One person's alert, as the form saves it."""

    name: Annotated[str, Field(strict=True, min_length=1, max_length=80)]
    owner: Annotated[str, Field(strict=True, pattern=r"^005[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]
    object: StrictStr
    trigger: Trigger
    scope: Literal["mine", "my_accounts", "my_region", "my_reports", "team"]
    delivery: Literal["digest", "dm_now", "channel"]
    channel: StrictStr | None = None

    @model_validator(mode="after")
    def _channel(self) -> UserAlert:
        if (self.delivery == "channel") != bool(self.channel):
            raise ValueError("a channel delivery names its channel, and only it does")
        return self


@dataclass(frozen=True)
class Audience:
    """Who and what a person's scopes cover, read from the snapshot (Ids as the snapshot spells them)."""

    me: str
    reports: list[str] = field(default_factory=list)  # direct reports
    team: list[str] = field(default_factory=list)  # everyone below me, every level
    region: list[str] = field(default_factory=list)  # the people of my region, me included
    accounts: list[str] = field(default_factory=list)  # accounts I own


def picklists(cfg: Config) -> dict[tuple[str, str], list]:
    """The values a person may pick for a field: (object, field) -> values."""
    out: dict[tuple[str, str], list] = {
        ("Opportunity", "te_status"): TE_STATUSES,
        ("Task", "sentiment"): list(cfg.taxonomy.sentiments),
        ("Task", "activity_types"): cfg.taxonomy.all_activity_types,
        ("Task", "persona_levels"): list(cfg.taxonomy.persona_levels),
    }
    return out


def frame_of(obj: str, kind: str, field_name: str | None = None) -> str:
    if obj not in OBJECTS:
        raise AlertDraftError(f"object: {obj!r} is not an object of the data contract")
    if kind in ("changed", "stage_move"):
        if obj != "Opportunity":
            raise AlertDraftError(f"trigger: only opportunities are compared with the previous snapshot, not {obj}")
        return CHANGE_FRAME
    frames = CONDITION_FRAME.get(obj) or tuple(f for f, o in FRAME_OBJECT.items() if o == obj and f in FRAMES)[:1]
    if not frames:
        raise AlertDraftError(f"object: {obj} has no alerts in this configuration")
    return next((f for f in frames if field_name in FRAMES[f]), frames[0])


def fields_of(obj: str, frame: str) -> dict[str, str]:
    """The contract's fields of ``obj`` that ``frame`` carries, with their kinds."""
    columns = FRAMES[frame]
    return {name: columns[name] for name in OBJECTS[obj] if name in columns and name not in ("id",)}


def offered_fields(obj: str, kind: str = "condition") -> dict[str, str]:
    """What the form offers for an object and trigger kind: {field: kind}."""
    frames = (CHANGE_FRAME,) if kind != "condition" else CONDITION_FRAME.get(obj, ())
    out: dict[str, str] = {}
    for frame in frames:
        for name, k in fields_of(obj, frame).items():
            out.setdefault(name, k)
    return out


def _ids(column: str, ids: list[str]) -> str:
    """``column in ['a', ...]``, each Id also by its 15-character key (one set look-up)."""
    return _ids_of(column, tuple(ids))


@lru_cache(maxsize=1024)
def _ids_of(column: str, ids: tuple[str, ...]) -> str:
    """``_ids``, written once per list: the owners of one region share its people's list."""
    # Nobody (no reports, no accounts): an empty list, false on every row (a bare False is no column).
    return f"({column} in [{_spelled(ids)}])"


@lru_cache(maxsize=1024)
def _spelled(ids: tuple[str, ...]) -> str:
    """The items of an Id list, each Id by both its spellings; once per list (a scope names
    its people's list for the SA and for the owner)."""
    # Inline, not a call per Id: a region lists thousands. An Id is alphanumeric, so quoting it
    # is what repr() does.
    spellings = dict.fromkeys(s for i in ids if isinstance(i, str) and len(i) in (15, 18) and i.isalnum() for s in (i, i[:15]))
    return "'" + "', '".join(spellings) + "'" if spellings else ""


def _scope(alert: UserAlert, frame: str, who: Audience) -> str:
    people_column = "owner_id"
    has_sa = "sa" in FRAMES[frame]
    if alert.scope == "mine":
        mine = _ids("owner_id", [who.me])
        return f"({_ids('sa', [who.me])} | {mine})" if has_sa else mine
    if alert.scope == "my_accounts":
        if "account_id" not in FRAMES[frame]:
            raise AlertDraftError(f"scope: {alert.object} records carry no account here: pick another scope")
        return _ids("account_id", who.accounts)
    people = {"my_region": who.region, "my_reports": who.reports, "team": who.team}[alert.scope]
    if has_sa:
        return f"({_ids('sa', people)} | {_ids(people_column, people)})"
    return _ids(people_column, people)


def _value(alert: UserAlert, name: str, kind: str, value: Any, lists: dict) -> Any:
    """A value the person picked, checked against the field's picklist or kind."""
    allowed = lists.get((alert.object, name))
    if allowed is not None:
        if value not in allowed:
            raise AlertDraftError(f"trigger: {value!r} is not a value of {name} (pick one of {', '.join(map(str, allowed))})")
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise AlertDraftError(f"trigger: {name} has no list of values to pick from: use blank, a number or a change")


def _condition(alert: UserAlert, frame: str, lists: dict) -> tuple[str, list[dict]]:
    t = alert.trigger
    kinds = fields_of(alert.object, frame)
    if t.field not in kinds:
        offered = ", ".join(offered_fields(alert.object))
        raise AlertDraftError(f"trigger: {t.field!r} is not a field of {alert.object} (pick one of {offered})")
    kind = kinds[t.field]
    if t.op == "blank":
        return "True", [{"expectation": "not_null", "column": t.field}]
    if t.op in ("equals", "in"):
        if not t.values or (t.op == "equals" and len(t.values) > 1):
            raise AlertDraftError("trigger: 'equals' takes one value, 'in' one or more")
        if kind == "multi":
            raise AlertDraftError(f"trigger: {t.field} holds several values per record: only 'blank' is offered for it")
        vals = [_value(alert, t.field, kind, v, lists) for v in t.values]
        return "True", [{"expectation": "not_in_set", "column": t.field, "values": vals}]
    if t.op in ("more_than", "less_than"):
        if kind != "number" or t.number is None:
            raise AlertDraftError(f"trigger: 'more than' and 'less than' compare a number field with a number ({t.field} is a {kind})")
        bound = "max" if t.op == "more_than" else "min"
        return "True", [{"expectation": "between", "column": t.field, bound: float(t.number)}]
    if t.op in ("older_than_days", "newer_than_days"):
        days = DAY_COUNTS.get((frame, t.field))
        if days is None or t.number is None or t.number < 0:
            offered = ", ".join(f for (fr, f) in DAY_COUNTS if fr == frame) or "none"
            raise AlertDraftError(f"trigger: a day offset needs a date field with a day count ({offered}) and a number of days")
        bound = "max" if t.op == "older_than_days" else "min"
        # A record without the date has no day count, and a blank passes ``between``: no alert.
        return "True", [{"expectation": "between", "column": days, bound: float(t.number)}]
    raise AlertDraftError("trigger: pick a condition (blank, equals, in, more than, less than, days ago)")


def _changed(alert: UserAlert, lists: dict) -> tuple[str, list[dict]]:
    t = alert.trigger
    columns = FRAMES[CHANGE_FRAME]
    changeable = [c for c in fields_of("Opportunity", CHANGE_FRAME) if f"prev_{c}" in columns]
    if t.field not in changeable:
        raise AlertDraftError(f"trigger: changes are compared for {', '.join(changeable)}, not {t.field!r}")
    scope = []
    for value, column in ((t.from_value, f"prev_{t.field}"), (t.to_value, t.field)):
        if value is not None:
            v = _value(alert, t.field, columns[t.field], value, lists)
            scope.append(f"{column} == {v!r}")
    return " and ".join(scope) or "True", [{"expectation": "pair_equal", "column": t.field, "other": f"prev_{t.field}"}]


def _stage_move(alert: UserAlert) -> tuple[str, list[dict]]:
    t = alert.trigger
    scope = []
    for value, column in ((t.from_value, "prev_rank"), (t.to_value, "rank")):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 8:
                raise AlertDraftError(f"trigger: {value!r} is not a stage rank (0 to 7, 8 for Closed Won)")
            scope.append(f"{column} == {value}")
    return " and ".join(scope) or "True", [{"expectation": "pair_equal", "column": "rank", "other": "prev_rank"}]


def workflow_entry(alert: UserAlert, cfg: Config, who: Audience) -> dict:
    """The workflow entry (``workflows.yaml``'s format) an alert compiles to; AlertDraftError when
    a choice is not one the form offers. The configuration checker still has the last word
    (``compile_alert``)."""
    frame = frame_of(alert.object, alert.trigger.kind, alert.trigger.field)
    lists = picklists(cfg)
    if alert.trigger.kind == "condition":
        complaint_scope, expect = _condition(alert, frame, lists)
    elif alert.trigger.kind == "changed":
        complaint_scope, expect = _changed(alert, lists)
    else:
        complaint_scope, expect = _stage_move(alert)
    scope = _scope(alert, frame, who)
    if complaint_scope != "True":
        scope = f"{scope} and {complaint_scope}"
    recipient = {"channel": alert.channel} if alert.delivery == "channel" else {"user": alert.owner}
    return {
        "title": alert.name,
        "message": {"text": f"Your alert “{alert.name}”."},
        "object": alert.object if alert.object in OBJECTS else FRAME_OBJECT[frame],
        "frame": frame,
        "scope": scope,
        "expect": expect,
        "recipient": recipient,
        "slot": SLOT[alert.delivery],
    }


def parse_alert(doc: dict) -> UserAlert:
    try:
        return UserAlert.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "alert"
        raise AlertDraftError(f"{where}: {err['msg']}") from None


def compile_alert(alert: UserAlert, cfg: Config, who: Audience, workflow_id: str) -> tuple[Config, dict]:
    """``cfg`` with the alert as workflow ``workflow_id``, checked as a YAML workflow is: the
    form refuses what the configuration checker refuses, with its words."""
    entry = workflow_entry(alert, cfg, who)
    try:
        merged, _ = with_workflows(cfg, {workflow_id: entry}, f"alert {alert.name!r}")
    except ConfigError as exc:
        raise AlertDraftError(" ".join(str(exc).split())) from None
    return merged, entry


def compile_alerts(
    cfg: Config, alerts: dict[str, UserAlert], audiences: dict[str, Audience]
) -> tuple[Config, dict[str, str]]:
    """``cfg`` with every alert that still compiles as a workflow ``ua-<alert id>``, checked once
    together; ``{alert id: why}`` for those that do not (a field gone after an upgrade): they are
    paused, never a failed evaluation. Only when the checker refuses the whole is each alert
    checked alone, to find which (a check of the configuration costs tens of milliseconds)."""
    entries, broken = {}, {}
    for alert_id, alert in alerts.items():
        try:
            entries[alert_id] = workflow_entry(alert, cfg, audiences.get(alert.owner) or Audience(alert.owner))
        except AlertDraftError as exc:
            broken[alert_id] = str(exc)
    if not entries:
        return cfg, broken
    try:
        merged, _ = with_workflows(cfg, {"workflows": {ID_PREFIX + a: e for a, e in entries.items()}}, "user alerts")
        return merged, broken
    except ConfigError:
        pass
    for alert_id in list(entries):
        try:
            with_workflows(cfg, {ID_PREFIX + alert_id: entries[alert_id]}, f"alert {alerts[alert_id].name!r}")
        except ConfigError as exc:
            broken[alert_id] = " ".join(str(exc).split())
            del entries[alert_id]
    if not entries:
        return cfg, broken
    merged, _ = with_workflows(cfg, {"workflows": {ID_PREFIX + a: e for a, e in entries.items()}}, "user alerts")
    return merged, broken
