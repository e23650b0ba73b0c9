"""Project configuration: the defaults of CONTRACT.md as YAML, overridable by the user.

The defaults live beside this module in two files found by name: ``defaults.yaml`` (settings,
field map, stages, routing, channels, schedule) and ``workflows.yaml`` (the workflows, their
filing order and the wording of their reasons), so that a workflow is read and written in one
place. A user's file is merged over both (mappings key by key, lists replaced), then
validated as a whole, so a mistake anywhere is reported with the dotted key and the file it
came from before anything runs. Only yaml and pydantic are imported: DAG files load the
configuration at parse time to build their timetables. What a scope or an expectation may say is
checked in ``expressions``; the models and the checks across them stay here together (about 600
lines), since each check reads the models it validates.

A workflow's ``message`` is how its items read in a digest, as data, so that no renderer
branches on a workflow's id (``WorkflowMessage``):

- ``text``: the sentence under the workflow's title, its call to action;
- ``show``: the facts an item shows beyond the record's own lines, from ``FACTS`` (the changed
  fields of a change workflow, "N days overdue", a task's description or its Chorus recording,
  the record a meeting should be logged on); each belongs to items of one object;
- ``when_closed``: a sentence an opportunity's item adds when the opportunity is closed (the
  Chatter way for fields an SA can no longer edit). A workflow with a ``fix`` speaks of its
  button there, so the sentence is left out of items shown without the button (a channel's).

``message: "a sentence"`` is short for ``message: {text: "a sentence"}``, expanded in each file
before merging, so a user who rewords a workflow keeps the facts it shows.
"""

from __future__ import annotations

import copy
import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from sa_hygiene.contract.expressions import PARAM, check_expectation, check_expression, value_kind
from sa_hygiene.contract.schema import FRAMES, OBJECTS

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")
WORKFLOWS_PATH = Path(__file__).with_name("workflows.yaml")
# Merged in this order, then the user's file; no top-level key is in both.
DEFAULT_FILES = (DEFAULTS_PATH, WORKFLOWS_PATH)
CONFIG_ENV = "SA_HYGIENE_CONFIG"
# Deployment settings a container sets through its environment (docker-compose.yaml),
# applied over the files: every Celery worker must share one ledger and one store.
ENV_OVERRIDES = {
    "SA_HYGIENE_DELIVERY": ("slack", "delivery"),
    "SA_HYGIENE_OUTBOX": ("slack", "outbox"),
    "SA_HYGIENE_LEDGER_URL": ("slack", "ledger_url"),
    "SA_HYGIENE_STATE_URL": ("state", "url"),
    "SA_HYGIENE_STORE": ("store", "url"),
    "SA_HYGIENE_REPORT_URL": ("slack", "report_url"),
    "SA_HYGIENE_SOURCE": ("source", "kind"),
    "SA_HYGIENE_SOURCE_FOLDER": ("source", "folder"),
    "SA_HYGIENE_RETRY_DELAY_SECONDS": ("schedule", "retry_delay_seconds"),
}

FRAME_OBJECT = {
    "opportunities": "Opportunity",
    "changes": "Opportunity",
    "activities": "Task",
    "tasks": "Task",
    "meetings": "Event",
    "povs": "Proof_of_Value__c",
    "pov_owners": "User",
}
# manager_escalation: the managers' 08:00 escalation DM, at once (pov-load: a team's load, not an item to fix)
SLOTS = ("sa_digest", "regional_digest", "channel_post", "meeting_reminder", "manager_escalation")
# A workflow's ``fix``: the Slack app's forms that put its items right, and the records they act
# on: the handbook's "Update Opportunity" button (the four SA Validated Tech Evaluation fields and
# the Primary SA), "Update a Proof of Value" and, on a meeting reminder's opportunity, "Add a
# Proof of Value".
FIXES = {"tech_eval": "Opportunity", "pov": "Proof_of_Value__c", "pov_add": "Opportunity", "activity": "Task",
         "task_done": "Task"}
# A fix of the record an item's record names, not of the item's own: the field that names it (a
# POV without its opportunity's tech-evaluation date is put right on the opportunity).
FIX_THROUGH = {("Proof_of_Value__c", "Opportunity"): "opportunity_id"}
EXPECTATIONS = (
    "not_null",
    "in_set",
    "not_in_set",
    "each_in_set",
    "between",
    "pair_equal",
    "pair_greater",
    "match_regex",
    "min_length",
)



class Fact(NamedTuple):
    """A fact a workflow's items can show (``message.show``).

    ``object``: the items that can show it. ``scope``: "record" facts show on a record's item
    whenever one of its alerts in the message is of a workflow listing them (a record is listed
    once, under its first workflow, and keeps the marks of the others); "listed" facts only when
    the item is listed under such a workflow (a task due today is about its date, not its notes);
    "alert" facts on the report's row of each alert of such a workflow.
    """

    object: str
    scope: Literal["record", "listed", "alert"]


# In the order an item shows them.
FACTS = {
    "stage3_overdue": Fact("Opportunity", "record"),  # "N days overdue" past thresholds.stage3_days
    "te_start_change": Fact("Opportunity", "record"),  # start date before -> after
    "te_close_change": Fact("Opportunity", "record"),  # end date and close status before -> after
    "stage_change": Fact("Opportunity", "record"),  # who moved it from which stage to which
    "sa_change": Fact("Opportunity", "record"),  # Primary SA before -> after
    "description": Fact("Task", "listed"),  # the description, cut, with the links the cut left out
    "recording": Fact("Task", "listed"),  # a link to the Chorus recording
    "task_overdue": Fact("Task", "listed"),  # "overdue N days" past the due date (0: due today); oldest first
    "suggested_record": Fact("Event", "alert"),  # the report's "log it on <record>"
}

Number = Annotated[float, Field(strict=True, ge=0)]
Days = Annotated[int, Field(strict=True, ge=0)]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names each key and file."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SalesforceSettings(_Model):
    conn_id: StrictStr
    instance_url: StrictStr
    bulk_threshold: Annotated[int, Field(strict=True, ge=0)]


class SlackSettings(_Model):
    conn_id: StrictStr
    delivery: Literal["outbox", "slack"]
    outbox: StrictStr
    ledger_url: StrictStr
    user_cache_hours: Annotated[float, Field(strict=True, gt=0)]
    lease_seconds: Annotated[float, Field(strict=True, gt=0)]
    report_url: StrictStr | None = None
    # Where a Chorus recording plays; {id} is the Task's Chorus call Id.
    recording_url: StrictStr = "https://chorus.ai/meeting/{id}"
    # The workflow (of frame activities) whose expectations check the Slack app's log form.
    log_form_workflow: StrictStr


class SourceSettings(_Model):
    kind: Literal["salesforce", "folder"]
    folder: StrictStr | None = None

    @model_validator(mode="after")
    def _folder(self) -> SourceSettings:
        if self.kind == "folder" and not self.folder:
            raise ValueError("a 'folder' source needs 'folder': the path of a snapshot folder")
        return self


class StoreSettings(_Model):
    url: StrictStr
    keep: Annotated[int, Field(strict=True, ge=2)]
    max_age_hours: Annotated[float, Field(strict=True, gt=0)]


class StateSettings(_Model):
    # Blank: the delivery ledger's database (the alert state lives beside it).
    url: StrictStr | None = None


class ChangesSettings(_Model):
    overlap_minutes: Annotated[float, Field(strict=True, ge=0)]
    max_age_minutes: Annotated[float, Field(strict=True, gt=0)]


class ReportSettings(_Model):
    folder: StrictStr | None = None
    fiscal_year_start_month: Annotated[int, Field(strict=True, ge=1, le=12)]
    activity_weeks: Annotated[int, Field(strict=True, ge=1)]
    trend_snapshots: Annotated[int, Field(strict=True, ge=1)]
    top_sas: Annotated[int, Field(strict=True, ge=1)]
    longest_open: Annotated[int, Field(strict=True, ge=1)]
    news_workflows: list[StrictStr]


class Stages(_Model):
    rank_pattern: StrictStr
    won: list[StrictStr]
    lost: list[StrictStr]


class Thresholds(_Model):
    iacv_sa_required: Number
    iacv_tech_eval: Number
    iacv_stage2_move: Number
    stage3_days: Days
    stall_days: Days
    overdue_days: Days
    review_days: Days
    other_min_chars: Days
    description_preview_chars: Days
    pov_max_days: Days = 56
    pov_max_running: Days = 3


class ProofsOfValue(_Model):
    """The statuses of ``Proof_of_Value__c`` (spec v3) and how the rules and the report group them."""

    key_prefix: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9]{3}$")] = "a0P"
    statuses: Annotated[list[StrictStr], Field(min_length=1)] = ["Planned", "In Progress", "Completed", "Cancelled"]
    active: list[StrictStr] = ["Planned", "In Progress"]
    running: list[StrictStr] = ["In Progress"]
    completed: list[StrictStr] = ["Completed"]
    results: list[StrictStr] = ["Successful", "Unsuccessful"]

    @model_validator(mode="after")
    def _known(self) -> ProofsOfValue:
        for group in ("active", "running", "completed"):
            unknown = [s for s in getattr(self, group) if s not in self.statuses]
            if unknown:
                raise ValueError(f"{group}: {', '.join(map(repr, unknown))} not among the statuses")
        return self


class EmailDomains(_Model):
    company: list[StrictStr]
    generic: list[StrictStr]


class Taxonomy(_Model):
    activity_types: dict[StrictStr, list[StrictStr]]
    sentiments: list[StrictStr]
    persona_levels: list[StrictStr]
    # What the log form offers for Products Positioned and Persona Functions (multi-select
    # picklists the report counts); blank lists: the form leaves them out.
    products: list[StrictStr] = []
    persona_functions: list[StrictStr] = []
    ride_along_type: StrictStr
    csp_type: StrictStr
    other_type: StrictStr

    @property
    def all_activity_types(self) -> list[str]:
        return [t for group in self.activity_types.values() for t in group]


class RoutingRule(_Model):
    key: StrictStr
    when: dict[StrictStr, list[StrictStr]]


class Routing(_Model):
    channel_prefix: StrictStr
    rules: list[RoutingRule]
    unrouted_channel: StrictStr


class Region(_Model):
    timezone: StrictStr


class Channels(_Model):
    operations: StrictStr


class Schedule(_Model):
    snapshot_cron: StrictStr
    regional_digest_at: StrictStr
    sa_digest_at: StrictStr
    escalation_at: StrictStr = "08:00"
    fixed_channel_timezone: StrictStr
    reminder_every_minutes: Annotated[int, Field(strict=True, gt=0, le=60)]
    # Spec v3, "as it happens": these workflows post one message per record within one feed
    # interval (sa_activity_posts), and are left out of the 08:00 digests.
    as_it_happens: list[StrictStr] = []
    activity_posts_every_minutes: Annotated[int, Field(strict=True, gt=0, le=60)] = 15
    # Not strict: a deployment sets it through its environment, as a string.
    retry_delay_seconds: Annotated[float, Field(gt=0)]


class ManagerSettings(_Model):
    """What managers do from Slack (the escalation DM, the regional digest, a leaver's book)."""

    # The lengths a manager may snooze an escalated record for, in days.
    snooze_days: Annotated[list[Annotated[int, Field(strict=True, ge=1, le=365)]], Field(min_length=1, max_length=25)] = [7, 14, 30]
    # Per region key (``regions``), the e-mails of people who may act as that region's managers
    # besides the Salesforce manager chain (a team lead, a regional director's deputy).
    groups: dict[StrictStr, list[StrictStr]] = {}


class Expectation(_Model):
    expectation: Literal[EXPECTATIONS]  # type: ignore[valid-type]
    column: StrictStr
    reason: StrictStr | None = None
    when: StrictStr | None = None
    other: StrictStr | None = None
    values: list[Any] | StrictStr | None = None
    min: float | StrictStr | None = None
    max: float | StrictStr | None = None
    regex: StrictStr | None = None
    or_equal: StrictBool = False

    @model_validator(mode="after")
    def _arguments(self) -> Expectation:
        needs = {
            "in_set": "values",
            "not_in_set": "values",
            "each_in_set": "values",
            "pair_equal": "other",
            "pair_greater": "other",
            "match_regex": "regex",
            "min_length": "min",
        }.get(self.expectation)
        if needs and getattr(self, needs) is None:
            raise ValueError(f"expectation {self.expectation!r} needs {needs!r}")
        if self.expectation == "between" and self.min is None and self.max is None:
            raise ValueError("expectation 'between' needs 'min' or 'max'")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if isinstance(value, float) and not math.isfinite(value):
                # .nan compares false with everything (every row an alert); .inf is no length
                raise ValueError(f"expectation {self.expectation!r}: {bound!r} must be a finite number, not {value}")
        return self


class Recipient(_Model):
    # manager: the row's ``manager_id`` (pov-load: the manager of the user the alert is about)
    dm: Literal["sa", "owner", "manager"] | None = None
    region: Literal["record"] | None = None
    channel: StrictStr | None = None
    # One named person (a User Id): whoever made a user alert gets its DMs, whatever the record.
    user: Annotated[str, Field(strict=True, pattern=r"^005[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> Recipient:
        given = [k for k in ("dm", "region", "channel", "user") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of dm, region, channel, user")
        if self.channel is not None and not self.channel.startswith("#"):
            raise ValueError("a channel name starts with '#'")
        return self


class WorkflowMessage(_Model):
    """How a workflow's items read in a digest (see the module's docstring)."""

    text: StrictStr = ""
    show: list[Literal[tuple(FACTS)]] = []  # type: ignore[valid-type]
    when_closed: StrictStr | None = None


class Workflow(_Model):
    title: StrictStr
    message: WorkflowMessage = WorkflowMessage()
    object: Literal[tuple(OBJECTS)]  # type: ignore[valid-type]
    frame: Literal[tuple(FRAMES)]  # type: ignore[valid-type]
    scope: StrictStr = "True"
    expect: Annotated[list[Expectation], Field(min_length=1)]
    recipient: Recipient
    slot: Literal[SLOTS]  # type: ignore[valid-type]
    report_reasons: StrictBool = False
    enabled: StrictBool = True
    # An item still open after this many days goes into its recipient's manager's escalation DM.
    escalate_after_days: Annotated[int, Field(strict=True, ge=1)] | None = None
    # What the Slack app offers on the workflow's items: ``assign_sa`` (a select of the region's
    # active SAs on an opportunity without a Primary SA, for its managers).
    actions: list[Literal["assign_sa"]] = []
    # What the Slack app offers to put an item right on the spot (``FIXES``): a button on each
    # of the workflow's DM items (on a meeting reminder: when its suggested record is an opportunity).
    fix: list[Literal[tuple(FIXES)]] = []  # type: ignore[valid-type]


class UserAlertSettings(_Model):
    """Guard rails of the alerts people make themselves (``contract/user_alerts.py``)."""

    # Alerts one person may have (paused ones count: they can be resumed).
    max_per_user: Annotated[int, Field(strict=True, ge=0)] = 10
    # Messages one alert may send a day (backtest or live); more: refused, or paused with a notice.
    max_messages_per_day: Annotated[int, Field(strict=True, ge=1)] = 20


class Config(_Model):
    salesforce: SalesforceSettings
    source: SourceSettings
    slack: SlackSettings
    store: StoreSettings
    changes: ChangesSettings
    state: StateSettings = StateSettings()
    report: ReportSettings
    proofs_of_value: ProofsOfValue = ProofsOfValue()
    fields: dict[StrictStr, dict[StrictStr, StrictStr]]
    stages: Stages
    thresholds: Thresholds
    sa_role_types: list[StrictStr]
    email_domains: EmailDomains
    taxonomy: Taxonomy
    routing: Routing
    regions: dict[StrictStr, Region]
    channels: Channels
    schedule: Schedule
    managers: ManagerSettings = ManagerSettings()
    reasons: dict[StrictStr, StrictStr]
    workflows: dict[StrictStr, Workflow]
    user_alerts: UserAlertSettings = UserAlertSettings()
    # Per digest slot, the workflows a record is filed under first (then configuration order).
    digest_order: dict[Literal[SLOTS], list[StrictStr]] = {}  # type: ignore[valid-type]

    def params(self) -> dict[str, Any]:
        """Names a scope or expectation may use as ``@name`` (``as_of`` is added per run)."""
        return {
            **self.thresholds.model_dump(),
            "activity_types": self.taxonomy.all_activity_types,
            "sentiments": list(self.taxonomy.sentiments),
            "persona_levels": list(self.taxonomy.persona_levels),
        }

    def enabled_workflows(self) -> dict[str, Workflow]:
        return {k: w for k, w in self.workflows.items() if w.enabled}

    def filing_order(self, slot: str) -> list[str]:
        """The workflows of a digest in the order it files a record with several issues:
        ``digest_order`` of the slot first, then every other workflow in configuration order."""
        first = [w for w in self.digest_order.get(slot, []) if w in self.workflows]
        return first + [w for w in self.workflows if w not in first]

    def posts_as_it_happens(self, workflow: str) -> bool:
        """Whether a workflow's records are posted one by one as they happen (spec v3), not in a digest."""
        return workflow in self.schedule.as_it_happens

    def region_channel(self, key: str) -> str:
        return f"{self.routing.channel_prefix}{key}"

    def api_name(self, obj: str, field: str) -> str:
        return self.fields[obj][field]

    @property
    def state_url(self) -> str:
        return self.state.url or self.slack.ledger_url

    @property
    def news_workflows(self) -> set[str]:
        return set(self.report.news_workflows)

    def report_folder(self) -> str:
        """Where the sa_report DAG writes reports: ``report.folder``, else beside the snapshots."""
        return (self.report.folder or f"{self.store.url.rstrip('/')}/_reports").rstrip("/")


# --------------------------------------------------------------------------- checks
# Each returns a list of (dotted key, message); all are reported together.


def _check_fields(cfg: Config) -> list[tuple[str, str]]:
    errors = []
    for obj, mapping in cfg.fields.items():
        if obj not in OBJECTS:
            errors.append((f"fields.{obj}", f"unknown object (known: {', '.join(OBJECTS)})"))
            continue
        for logical in mapping:
            if logical not in OBJECTS[obj]:
                errors.append((f"fields.{obj}.{logical}", "unknown field of the data contract"))
    for obj, catalog in OBJECTS.items():
        for logical in catalog:
            if logical not in cfg.fields.get(obj, {}):
                errors.append((f"fields.{obj}.{logical}", "missing from the field map"))
    return errors


def _check_timezones(cfg: Config) -> list[tuple[str, str]]:
    zones = {f"regions.{k}.timezone": r.timezone for k, r in cfg.regions.items()}
    zones["schedule.fixed_channel_timezone"] = cfg.schedule.fixed_channel_timezone
    errors = []
    for key, name in zones.items():
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append((key, f"unknown time zone {name!r}"))
    for i, wid in enumerate(cfg.schedule.as_it_happens):
        if wid not in cfg.workflows:
            errors.append((f"schedule.as_it_happens.{i}", f"unknown workflow {wid!r}"))
    for key in ("regional_digest_at", "sa_digest_at"):
        value = getattr(cfg.schedule, key)
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            errors.append((f"schedule.{key}", f"{value!r} is not a HH:MM time"))
    return errors


def _check_routing(cfg: Config) -> list[tuple[str, str]]:
    errors = []
    for i, rule in enumerate(cfg.routing.rules):
        if rule.key not in cfg.regions:
            errors.append((f"routing.rules.{i}.key", f"{rule.key!r} is not a region of 'regions'"))
        for field in rule.when:
            if field not in OBJECTS["User"]:
                errors.append((f"routing.rules.{i}.when.{field}", "unknown User field"))
    try:
        groups = re.compile(cfg.stages.rank_pattern).groups
    except re.error as exc:
        errors.append(("stages.rank_pattern", f"not a regular expression: {exc}"))
    else:
        if groups != 1:
            errors.append(("stages.rank_pattern", f"needs exactly one capture group (the rank's digits), has {groups}"))
    return errors


def param_kinds(cfg: Config) -> dict[str, str]:
    """The kind of each @parameter a scope or expectation may use (``as_of``: the run's date)."""
    return {**{k: value_kind(v) for k, v in cfg.params().items()}, "as_of": "date"}


def _check_workflows(cfg: Config) -> list[tuple[str, str]]:
    errors = []
    params = param_kinds(cfg)
    checked: dict[tuple[str, str], list[str]] = {}  # (expression, frame): its problems, found once
    for wid, wf in cfg.workflows.items():
        key = f"workflows.{wid}"
        columns = FRAMES[wf.frame]
        if FRAME_OBJECT[wf.frame] != wf.object:
            errors.append((f"{key}.object", f"frame {wf.frame!r} holds {FRAME_OBJECT[wf.frame]} records"))
        exprs = [(f"{key}.scope", wf.scope)]
        exprs += [(f"{key}.expect.{i}.when", e.when) for i, e in enumerate(wf.expect) if e.when]
        for where, expr in exprs:
            if (expr, wf.frame) not in checked:
                checked[expr, wf.frame] = check_expression(expr, wf.frame, columns, params)
            errors += [(where, msg) for msg in checked[expr, wf.frame]]
        for i, e in enumerate(wf.expect):
            unknown = False
            for attr in ("column", "other"):
                name = getattr(e, attr)
                if name is not None and name not in columns:
                    errors.append((f"{key}.expect.{i}.{attr}", f"unknown field {name!r} of frame {wf.frame!r}"))
                    unknown = True
            for attr in ("values", "min", "max"):
                value = getattr(e, attr)
                if isinstance(value, str) and value.startswith("@"):
                    m = PARAM.fullmatch(value)
                    if not m or m.group(1) not in params:
                        errors.append((f"{key}.expect.{i}.{attr}", f"{value!r} is not a known @parameter"))
                        unknown = True
            if not unknown:
                errors += [(f"{key}.expect.{i}.{attr}", msg) for attr, msg in check_expectation(e, columns, params)]
            if wf.report_reasons and not e.reason:
                errors.append((f"{key}.expect.{i}.reason", "workflows that report reasons need one per expectation"))
            if e.reason and e.reason not in cfg.reasons:
                errors.append((f"{key}.expect.{i}.reason", f"{e.reason!r} has no wording in 'reasons'"))
        errors += _check_message(key, wf)
        errors += _check_fix(key, wf)
        if wf.recipient.dm == "sa" and wf.frame not in ("opportunities", "changes"):
            errors.append((f"{key}.recipient.dm", "'sa' is a field of opportunities only"))
        if wf.recipient.dm == "owner" and wf.frame in ("opportunities", "changes"):
            errors.append((f"{key}.recipient.dm", "opportunity workflows DM the 'sa'"))
        if wf.recipient.dm == "manager" and "manager_id" not in columns:
            errors.append((f"{key}.recipient.dm", f"'manager' needs a frame with manager_id, {wf.frame!r} has none"))
    return errors


def _check_message(key: str, wf: Workflow) -> list[tuple[str, str]]:
    errors = []
    for i, fact in enumerate(wf.message.show):
        if FACTS[fact].object != wf.object:
            errors.append((f"{key}.message.show.{i}", f"{fact!r} is shown on {FACTS[fact].object} items, "
                                                      f"this workflow's are {wf.object}"))  # fmt: skip
        elif fact in wf.message.show[:i]:
            errors.append((f"{key}.message.show.{i}", f"{fact!r} is listed twice"))
    if wf.message.when_closed is not None and wf.object != "Opportunity":
        errors.append((f"{key}.message.when_closed", "only an opportunity's item says it is closed"))
    return errors


def _check_fix(key: str, wf: Workflow) -> list[tuple[str, str]]:
    """A fix acts on the item's own record, on the record it names (``FIX_THROUGH``), or on a
    meeting reminder's suggested record; only DM items carry one (a channel's reader is not the
    record's SA)."""
    errors = []
    for i, fix in enumerate(wf.fix):
        if wf.slot not in ("sa_digest", "meeting_reminder"):
            errors.append((f"{key}.fix.{i}", "only DM items (the 16:00 digest, a meeting reminder) carry a fix"))
        elif wf.slot != "meeting_reminder" and FIXES[fix] != wf.object and (wf.object, FIXES[fix]) not in FIX_THROUGH:
            errors.append((f"{key}.fix.{i}", f"{fix!r} fixes {FIXES[fix]} records, this workflow's are {wf.object}"))
    return errors


def _check_log_form(cfg: Config) -> list[tuple[str, str]]:
    """The log form is checked as one row of the activities frame: its workflow must read that frame."""
    wid = cfg.slack.log_form_workflow
    if wid not in cfg.workflows:
        return [("slack.log_form_workflow", f"{wid!r} is not a workflow of 'workflows'")]
    if cfg.workflows[wid].frame != "activities":
        return [("slack.log_form_workflow", f"{wid!r} reads frame {cfg.workflows[wid].frame!r}, not the activities a form adds to")]
    return []


def _check_managers(cfg: Config) -> list[tuple[str, str]]:
    """Manager groups name regions that exist (a typo would quietly give nobody the right) and
    e-mails; ``assign_sa`` is offered on opportunities only."""
    out = [(f"managers.groups.{key}", f"{key!r} is not a region of 'regions'") for key in cfg.managers.groups if key not in cfg.regions]
    out += [(f"managers.groups.{key}.{i}", f"{email!r} is not an e-mail address")
            for key, emails in cfg.managers.groups.items() for i, email in enumerate(emails) if "@" not in email.strip()[1:-1]]  # fmt: skip
    out += [(f"workflows.{wid}.actions", "'assign_sa' acts on opportunities only")
            for wid, wf in cfg.workflows.items() if "assign_sa" in wf.actions and wf.object != "Opportunity"]  # fmt: skip
    if len(set(cfg.managers.snooze_days)) != len(cfg.managers.snooze_days):
        out.append(("managers.snooze_days", "a length is listed twice"))
    return out


def _check_report(cfg: Config) -> list[tuple[str, str]]:
    out = [(f"report.news_workflows.{i}", f"{wid!r} is not a workflow of 'workflows'")
           for i, wid in enumerate(cfg.report.news_workflows) if wid not in cfg.workflows]  # fmt: skip
    out += [(f"digest_order.{slot}.{i}", f"{wid!r} is not a workflow of 'workflows'")
            for slot, order in cfg.digest_order.items() for i, wid in enumerate(order) if wid not in cfg.workflows]  # fmt: skip
    # News is announced once, never open: it cannot age into an escalation.
    out += [(f"workflows.{wid}.escalate_after_days", "a news workflow (report.news_workflows) is never escalated")
            for wid, wf in cfg.workflows.items()
            if wf.escalate_after_days is not None and wid in cfg.report.news_workflows]  # fmt: skip
    return out


# --------------------------------------------------------------------------- loading


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return copy.deepcopy(override)


def _expand_messages(doc: dict) -> dict:
    """``message: "a sentence"`` of each workflow as ``message: {text: "a sentence"}``, so that
    merging a reworded sentence keeps the facts the defaults show."""
    workflows = doc.get("workflows")
    if isinstance(workflows, dict):
        for wf in workflows.values():
            if isinstance(wf, dict) and isinstance(wf.get("message"), str):
                wf["message"] = {"text": wf["message"]}
    return doc


def _has_key(doc: Any, path: tuple) -> bool:
    for part in path:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
        else:
            return False
    return True


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping at the top level")
    return doc


def load_config(path: str | os.PathLike | None = None) -> Config:
    """The configuration: the defaults, merged with ``path`` (or $SA_HYGIENE_CONFIG) when given."""
    path = path if path is not None else os.environ.get(CONFIG_ENV) or None
    env = tuple((name, os.environ[name]) for name in ENV_OVERRIDES if os.environ.get(name))
    if path is None:
        return _load(None, 0.0, env)
    p = Path(path).resolve()
    try:
        mtime = p.stat().st_mtime
    except OSError:
        raise ConfigError(f"{path}: configuration file not found") from None
    return _load(str(p), mtime, env)


@lru_cache(maxsize=8)
def _load(path: str | None, _mtime: float, env: tuple[tuple[str, str], ...]) -> Config:
    layers = [(p, _expand_messages(_read_yaml(p))) for p in DEFAULT_FILES]
    user = _expand_messages(_read_yaml(Path(path))) if path else {}
    merged: dict = {}
    for _, doc in [*layers, (path, user)]:
        merged = _merge(merged, doc)
    for name, value in env:
        section, key = ENV_OVERRIDES[name]
        merged[section] = {**merged[section], key: value}

    def where(loc: tuple) -> str:
        # The user's file is to blame when it holds the key or the entry around it
        # (``workflows.wf-06`` for an error in ``workflows.wf-06.scope``).
        blamed = path and any(_has_key(user, loc[:n]) for n in range(min(2, len(loc)), len(loc) + 1))
        if blamed:
            return path
        return next((str(p) for p, doc in reversed(layers) if _has_key(doc, loc[:1])), str(DEFAULTS_PATH))

    return _validated(merged, where)


def _validated(merged: dict, where) -> Config:
    """``merged`` as a Config, checked whole; ``where(loc)`` names the file to blame for a key."""
    try:
        cfg = Config.model_validate(merged)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc)
            lines.append(f"{where(loc)}: {dotted}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None

    problems = _check_fields(cfg) + _check_timezones(cfg) + _check_routing(cfg) + _check_workflows(cfg) + _check_report(cfg)
    problems += _check_log_form(cfg) + _check_managers(cfg)
    if problems:
        lines = []
        for dotted, msg in problems:
            loc = tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
            lines.append(f"{where(loc)}: {dotted}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return cfg


# What a file of workflows may hold besides them: the wording of the reasons they name.
WORKFLOW_FILE_KEYS = ("workflows", "reasons")


def with_workflows(cfg: Config, doc: Any, source: str) -> tuple[Config, list[str]]:
    """``cfg`` with the workflow entries of ``doc`` merged over its own, checked exactly as
    ``load_config`` checks a user's file (so a draft is refused for what a file would be).

    ``doc`` is ``{workflows: {id: entry}, reasons: {...}}`` or, short, ``{id: entry}``; an entry
    of an existing id merges key by key over it, as a user's file does. Returns the configuration
    and the ids of ``doc``'s workflows, in its order. Drafts compiled from a form (user alerts)
    and the backtest's ``--workflow`` file both come through here.
    """
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{source}: no workflow entries (a mapping of workflow ids to entries, or 'workflows:')")
    if "workflows" in doc:
        extra = [k for k in doc if k not in WORKFLOW_FILE_KEYS]
        if extra:
            raise ConfigError(f"{source}: {extra[0]!r}: a workflow file holds only {' and '.join(WORKFLOW_FILE_KEYS)}")
        layer = _expand_messages(copy.deepcopy(doc))
    else:
        layer = _expand_messages({"workflows": copy.deepcopy(doc)})
    entries = layer.get("workflows")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{source}: workflows: no workflow entries")
    bad = next((k for k, v in entries.items() if not isinstance(k, str) or not isinstance(v, dict)), None)
    if bad is not None:
        raise ConfigError(f"{source}: workflows.{bad}: a workflow entry is a mapping (title, object, frame, ...)")
    merged = _merge(cfg.model_dump(), layer)
    return _validated(merged, lambda _loc: source), list(entries)
