"""Small snapshots for tests: a few records by logical field name, written as CSV or Parquet.

Every record starts from a valid default and names only what a test is about, so a
test reads as its scenario. Ids are generated per object with the right key prefix.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sa_hygiene.contract.schema import OBJECTS, OPTIONAL_OBJECTS, PREFIX, default_field_map

_counter = itertools.count(1)


def sf_id(prefix: str, n: int | None = None, length: int = 18) -> str:
    n = next(_counter) if n is None else n
    body = f"{prefix}5e0000{n:06d}"
    return body if length == 15 else body + "AAA"


def user(**kw) -> dict:
    return {"id": sf_id(PREFIX["User"]), "name": "Sam Architect", "email": "sam@gitlab.com", "is_active": "true",
            "manager_id": "", "timezone": "America/New_York", "segment": "Large", "geo": "AMER", "region": "East",
            "role_type": "SA", **kw}  # fmt: skip


def opportunity(**kw) -> dict:
    return {"id": sf_id(PREFIX["Opportunity"]), "name": "Acme - Ultimate", "account_id": "", "owner_id": "",
            "stage": "1-Discovery", "is_closed": "false", "is_won": "false", "close_date": "2026-12-31",
            "iacv": "5000", "sa": "", "stage3_date": "", "te_start": "", "te_end": "", "te_status": "",
            "te_details": "", "is_ps": "false", "last_modified": "2026-11-01T00:00:00Z",
            "system_modstamp": "2026-11-01T00:00:00Z", **kw}  # fmt: skip


def task(**kw) -> dict:
    return {"id": sf_id(PREFIX["Task"]), "owner_id": "", "what_id": "", "who_id": "", "account_id": "",
            "subject": "Demo", "description": "Demoed CI/CD to the platform team.", "activity_date": "2026-11-01",
            "status": "Completed", "is_closed": "true", "created": "2026-11-01T10:00:00Z", "activity_types": "",
            "products": "", "persona_levels": "", "persona_functions": "", "sentiment": "", "chorus_call_id": "",
            "last_modified": "2026-11-01T10:00:00Z", "system_modstamp": "2026-11-01T10:00:00Z", "task_subtype": "",
            **kw}  # fmt: skip


def account(**kw) -> dict:
    return {"id": sf_id(PREFIX["Account"]), "name": "Acme", "website": "", "owner_id": "", **kw}


def contact(**kw) -> dict:
    return {"id": sf_id(PREFIX["Contact"]), "account_id": "", "name": "Pat Customer", "email": "", **kw}


def contact_role(**kw) -> dict:
    return {"id": sf_id("00K"), "opportunity_id": "", "contact_id": "", **kw}


def event(**kw) -> dict:
    return {"id": sf_id(PREFIX["Event"]), "owner_id": "", "subject": "Intro", "start": "2026-11-23T15:00:00Z",
            "end": "2026-11-23T16:00:00Z", "what_id": "", "attendee_emails": "",
            "system_modstamp": "2026-11-20T00:00:00Z", **kw}  # fmt: skip


def pov(**kw) -> dict:
    """A Proof of Value (spec v3) in progress, started a week before the tests' AS_OF."""
    return {"id": sf_id(PREFIX["Proof_of_Value__c"]), "name": "Acme POV", "opportunity_id": "", "account_id": "",
            "owner_id": "", "status": "In Progress", "start_date": "2026-11-17", "end_date": "", "result": "",
            "success_criteria": "Pipelines under 10 minutes", "last_modified": "2026-11-17T00:00:00Z",
            "system_modstamp": "2026-11-17T00:00:00Z", **kw}  # fmt: skip


def write_snapshot(directory: Path, tables: dict[str, list[dict]], fmt: str = "csv", drop: dict | None = None) -> Path:
    """Write all seven tables (empty ones with headers) with the default API field names, and the
    optional ones (``Proof_of_Value__c``) only when ``tables`` names them: an org without them.

    ``drop`` maps an object to API column names to leave out, for missing-column tests.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fmap = default_field_map()
    drop = drop or {}
    for obj in OBJECTS:
        if obj in OPTIONAL_OBJECTS and obj not in tables:
            continue
        names = [n for n in OBJECTS[obj] if fmap[obj][n] not in drop.get(obj, ())]
        header = [fmap[obj][n] for n in names]
        rows = [[r.get(n, "") for n in names] for r in tables.get(obj, [])]
        if fmt == "csv":
            with open(directory / f"{obj}.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows(rows)
        else:
            cols = {h: pa.array([row[i] for row in rows], pa.string()) for i, h in enumerate(header)}
            pq.write_table(pa.table(cols), directory / f"{obj}.parquet")
    return directory


def write_changes(directory: Path, tables: dict[str, list[dict]], fmt: str = "csv") -> Path:
    """A changes folder (CONTRACT.md § 1b): only the objects given, with the snapshot's columns
    plus IsDeleted (logical ``is_deleted``)."""
    directory.mkdir(parents=True, exist_ok=True)
    fmap = default_field_map()
    for obj, rows in tables.items():
        names = list(OBJECTS[obj])
        header = [fmap[obj][n] for n in names] + ["IsDeleted"]
        values = [[r.get(n, "") for n in names] + [r.get("is_deleted", "")] for r in rows]
        if fmt == "csv":
            with open(directory / f"{obj}.csv", "w", newline="") as fh:
                csv.writer(fh).writerows([header, *values])
        else:
            cols = {h: pa.array([v[i] for v in values], pa.string()) for i, h in enumerate(header)}
            pq.write_table(pa.table(cols), directory / f"{obj}.parquet")
    return directory
