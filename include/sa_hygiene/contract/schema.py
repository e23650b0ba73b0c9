"""The data contract (CONTRACT.md § 1) as data: which fields each object has, their types.

Everything else refers to fields by a *logical* name (``te_start``), never by the
API name (``SA_Validated_Tech_Evaluation_Start_Date__c``), because every org names
custom fields differently and the configuration maps one to the other. This module
is deliberately free of pandas so that configuration can be validated at DAG parse
time without paying for heavy imports.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["id", "ref", "text", "date", "datetime", "bool", "number", "multi"]


@dataclass(frozen=True)
class Field:
    name: str  # logical name used by rules, digests and reports
    api: str  # default Salesforce API name (GitLab's org)
    kind: Kind
    # A required field missing from a snapshot is an error; an optional one is read as
    # all-blank, because rules never depend on it (only digests or reports show it).
    required: bool = True


def _fields(*items: Field) -> dict[str, Field]:
    return {f.name: f for f in items}


OBJECTS: dict[str, dict[str, Field]] = {
    "Opportunity": _fields(
        Field("id", "Id", "id"),
        Field("name", "Name", "text", required=False),
        Field("account_id", "AccountId", "ref", required=False),
        Field("owner_id", "OwnerId", "ref"),
        Field("stage", "StageName", "text"),
        Field("is_closed", "IsClosed", "bool"),
        Field("is_won", "IsWon", "bool"),
        Field("close_date", "CloseDate", "date", required=False),
        Field("iacv", "Incremental_ACV__c", "number"),
        Field("sa", "Solution_Architect__c", "ref"),
        Field("stage3_date", "x3_Technical_Evaluation_Date__c", "date"),
        Field("te_start", "SA_Validated_Tech_Evaluation_Start_Date__c", "date"),
        Field("te_end", "SA_Validated_Tech_Evaluation_End_Date__c", "date"),
        # Salesforce caps API names at 40 characters, hence "Statu__c".
        Field("te_status", "SA_Validated_Tech_Evaluation_Close_Statu__c", "text"),
        Field("te_details", "SA_Validated_Tech_Evaluation_Close_Details__c", "text"),
        Field("is_ps", "Is_PS_Opportunity__c", "bool"),
        Field("last_modified", "LastModifiedDate", "datetime", required=False),
        Field("system_modstamp", "SystemModstamp", "datetime", required=False),
    ),
    "Task": _fields(
        Field("id", "Id", "id"),
        Field("owner_id", "OwnerId", "ref"),
        Field("what_id", "WhatId", "ref"),
        Field("who_id", "WhoId", "ref"),
        Field("account_id", "AccountId", "ref", required=False),
        Field("subject", "Subject", "text"),
        Field("description", "Description", "text"),
        Field("activity_date", "ActivityDate", "date"),
        Field("status", "Status", "text", required=False),
        Field("is_closed", "IsClosed", "bool"),
        Field("created", "CreatedDate", "datetime"),
        Field("activity_types", "SA_Activity_Type__c", "multi"),
        Field("products", "Products_Positioned__c", "multi", required=False),
        Field("persona_levels", "Persona_Levels__c", "multi"),
        Field("persona_functions", "Persona_Functions__c", "multi", required=False),
        Field("sentiment", "Customer_Interaction_Sentiment__c", "text"),
        Field("chorus_call_id", "affectlayer__Chorus_Call_Id__c", "text"),
        Field("last_modified", "LastModifiedDate", "datetime", required=False),
        Field("system_modstamp", "SystemModstamp", "datetime", required=False),
        # Standard (Call, Email, Task, ...): an untyped *call* by an SA is an activity whose
        # type is missing (act-fields); exports made before it was read simply lack it.
        Field("task_subtype", "TaskSubtype", "text", required=False),
    ),
    "User": _fields(
        Field("id", "Id", "id"),
        Field("name", "Name", "text", required=False),
        Field("email", "Email", "text", required=False),
        Field("is_active", "IsActive", "bool"),
        Field("manager_id", "ManagerId", "ref"),
        Field("timezone", "TimeZoneSidKey", "text"),
        Field("segment", "User_Segment__c", "text"),
        Field("geo", "User_Geo__c", "text"),
        Field("region", "User_Region__c", "text"),
        Field("role_type", "User_Role_Type__c", "text"),
    ),
    "Account": _fields(
        Field("id", "Id", "id"),
        Field("name", "Name", "text", required=False),
        Field("website", "Website", "text"),
        Field("owner_id", "OwnerId", "ref", required=False),
    ),
    "Contact": _fields(
        Field("id", "Id", "id"),
        Field("account_id", "AccountId", "ref", required=False),
        Field("name", "Name", "text", required=False),
        Field("email", "Email", "text"),
    ),
    "OpportunityContactRole": _fields(
        Field("id", "Id", "id"),
        Field("opportunity_id", "OpportunityId", "ref"),
        Field("contact_id", "ContactId", "ref"),
    ),
    "Event": _fields(
        Field("id", "Id", "id"),
        Field("owner_id", "OwnerId", "ref"),
        Field("subject", "Subject", "text", required=False),
        Field("start", "StartDateTime", "datetime"),
        Field("end", "EndDateTime", "datetime"),
        Field("what_id", "WhatId", "ref", required=False),
        Field("attendee_emails", "AttendeeEmails", "multi"),
        Field("system_modstamp", "SystemModstamp", "datetime", required=False),
    ),
    # Spec v3, optional (OPTIONAL_OBJECTS): an org without the custom object has no POVs.
    "Proof_of_Value__c": _fields(
        Field("id", "Id", "id"),
        Field("name", "Name", "text", required=False),
        Field("opportunity_id", "Opportunity__c", "ref"),
        Field("account_id", "Account__c", "ref", required=False),
        Field("owner_id", "OwnerId", "ref"),  # the SA running it
        Field("status", "Status__c", "text"),
        Field("start_date", "Start_Date__c", "date"),
        Field("end_date", "End_Date__c", "date"),
        Field("result", "Result__c", "text"),
        Field("success_criteria", "Success_Criteria__c", "text"),
        Field("last_modified", "LastModifiedDate", "datetime", required=False),
        Field("system_modstamp", "SystemModstamp", "datetime", required=False),
    ),
}

# Objects an org may not have (custom objects of a managed process): a snapshot without their
# file reads them as empty, extraction skips them when the org's describe does not list them,
# and nothing that reads them fails (CONTRACT.md § 1: "absent file = no POVs").
OPTIONAL_OBJECTS = frozenset({"Proof_of_Value__c"})

# Salesforce Id key prefixes the rules rely on.
PREFIX = {
    "Opportunity": "006",
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "User": "005",
    "Task": "00T",
    "Event": "00U",
    # A custom object's prefix varies by org: the configuration's ``key_prefixes`` overrides it.
    "Proof_of_Value__c": "a0P",
}
# The objects whose prefix is the same in every org (Salesforce's own): an Id tells which it is.
STANDARD_OBJECTS = tuple(o for o in PREFIX if o not in OPTIONAL_OBJECTS)


def is_id_of(obj: str, record_id: Any) -> bool:
    """``record_id`` carries ``obj``'s key prefix (its form is not checked here)."""
    return isinstance(record_id, str) and record_id.startswith(PREFIX[obj])


def object_of(record_id: Any, among: Collection[str] = STANDARD_OBJECTS) -> str:
    """The object of ``among`` whose key prefix ``record_id`` carries, or "" when none."""
    return next((obj for obj in among if is_id_of(obj, record_id)), "")


def default_field_map() -> dict[str, dict[str, str]]:
    """The field map of GitLab's org: object -> logical name -> API name."""
    return {obj: {f.name: f.api for f in fields.values()} for obj, fields in OBJECTS.items()}


# The frames the rule engine prepares once per run (rules.py builds them, and checks each
# against this table), with the kind of each column. Workflow scopes and expectations may
# only name these columns, compared with values of the same kind; configuration validation
# checks both, so a mistake in a user's YAML fails at load time, not at 08:00.
FrameKind = Literal["text", "date", "datetime", "number", "bool", "multi"]


def _frame(spec: str) -> dict[str, FrameKind]:
    """``"kind: col col ..."`` lines, in the order the engine builds the columns."""
    out: dict[str, FrameKind] = {}
    for line in spec.strip().splitlines():
        kind, names = line.split(":")
        out.update(dict.fromkeys(names.split(), kind.strip()))
    return out


FRAMES: dict[str, dict[str, FrameKind]] = {
    "opportunities": _frame("""
        text: id key name account_id owner_id stage
        number: rank
        bool: is_open is_won lost
        number: iacv
        text: sa
        bool: has_sa
        date: stage3_date te_start te_end
        text: te_status te_details
        bool: is_ps
        date: close_date
        bool: has_te_start has_te_end has_te_status has_te_details
        number: days_since_stage3 days_since_te_start days_te_end_ahead
        bool: recent_sa_activity
    """),
    "changes": _frame("""
        text: id key name account_id owner_id stage
        number: rank
        bool: is_open lost
        number: iacv
        text: sa
        bool: has_sa
        date: te_start te_end
        text: te_status prev_stage
        number: prev_rank
        text: prev_sa
        date: prev_te_start prev_te_end
        text: prev_te_status
        bool: is_new prev_has_sa
    """),
    "activities": _frame("""
        text: id owner_id what_id what_prefix who_id who_prefix account_id subject description
        number: description_length
        date: activity_date
        datetime: created
        multi: activity_types persona_levels
        text: sentiment
        bool: has_ride_along has_csp has_other description_has_link created_in_window
        bool: created_in_review_period has_subject has_description has_who
        bool: is_sa_activity untyped_call
    """),
    "tasks": _frame("""
        text: id owner_id what_id subject
        date: activity_date
        number: days_overdue
        bool: is_closed
        datetime: created
        bool: is_chorus
        text: chorus_call_id
        bool: owner_is_sa created_in_window is_sa_activity
    """),
    "meetings": _frame("""
        text: id owner_id subject
        datetime: start end
        date: local_start_date
        bool: owner_is_sa
        number: external_attendees
        bool: has_external_attendee
        text: suggested_what_id suggested_object
        bool: logged
    """),
    # Proofs of Value (spec v3), with what the POV rules read of each one's opportunity.
    "povs": _frame("""
        text: id key name opportunity_id account_id owner_id status result success_criteria
        date: start_date end_date
        bool: is_active is_running is_completed
        number: days_since_start
        bool: has_opportunity opportunity_quarantined opportunity_open opportunity_has_te_start
    """),
    # One row per user owning a POV: how many they run at once (pov-load, an alert on the User).
    "pov_owners": _frame("""
        text: id key owner_id manager_id
        number: running_povs
    """),
}
