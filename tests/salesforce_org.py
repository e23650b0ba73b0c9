"""The small Salesforce org the extraction, changes-feed and client tests run against.

Three users, an account, contacts and leads, opportunities, 4,500 tasks (three REST pages)
and meetings whose attendees come from ``EventRelation``: rows in API names, for
``fakes.salesforce.FakeSalesforce``. ``run`` extracts a snapshot from it the way the tests do.
"""

from __future__ import annotations

from datetime import UTC, datetime

from builders import account, contact, contact_role, event, opportunity, sf_id, task, user

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.schema import default_field_map
from sa_hygiene.source.extract import extract_snapshot
from sa_hygiene.source.records import ExtractOptions

CONN = "salesforce_test"
T0 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
FAST = ExtractOptions(bulk_page_size=1000, bulk_poll_seconds=0.01, row_group_rows=3000, retries=2, backoff_seconds=0)
FMAP = default_field_map()
TASKS = 4500  # three REST pages of 2,000

SAM, ADA, GONE = sf_id("005", 1), sf_id("005", 2), sf_id("005", 3)
PAT, LEE, ANON = sf_id("003", 1), sf_id("003", 2), sf_id("003", 3)
KIM, LEE_LEAD, ACME = sf_id("00Q", 1), sf_id("00Q", 2), sf_id("001", 1)
E1, E2, E3 = sf_id("00U", 1), sf_id("00U", 2), sf_id("00U", 3)


def api(obj: str, records: list[dict]) -> list[dict]:
    return [{FMAP[obj][k]: v for k, v in r.items() if k != "attendee_emails"} for r in records]


def relation(n: int, event_id: str, relation_id: str, stamp: str = "2026-11-20T00:00:00Z") -> dict:
    return {"Id": sf_id("0RE", n), "EventId": event_id, "RelationId": relation_id, "SystemModstamp": stamp}


def a_task(n: int, **kw) -> dict:
    return task(**{"id": sf_id("00T", n), "owner_id": (SAM, ADA)[n % 2], "what_id": sf_id("006", n % 3 + 1),
                   "activity_types": "Demo;Discovery Session" if n % 5 == 0 else "Demo",
                   "is_closed": ("true", "false")[n % 2], "description": f'Call {n}\nwith, "quotes"',
                   "system_modstamp": f"2026-11-{1 + n % 20:02d}T10:00:00Z", "task_subtype": ("Call", "Email", "")[n % 3],
                   **kw})  # fmt: skip


def org() -> dict[str, list[dict]]:
    return {
        "User": api("User", [user(id=SAM, email="sam@gitlab.com"),
                             user(id=ADA, name="Ada Manager", email="ada@gitlab.com", role_type="Manager"),
                             user(id=GONE, is_active="false", email="", manager_id=ADA)]),
        "Account": api("Account", [account(id=ACME, website="acme.com", owner_id=SAM)]),
        "Contact": api("Contact", [contact(id=PAT, account_id=ACME, email="pat@acme.com"),
                                   contact(id=LEE, account_id=ACME, email="lee@acme.com"),
                                   contact(id=ANON, account_id=ACME)]),
        "Opportunity": api("Opportunity", [
            opportunity(id=sf_id("006", 1), owner_id=SAM, sa=SAM, iacv="12500.5", stage="3-Technical Evaluation",
                        te_start="2026-11-02", stage3_date="2026-11-01"),
            opportunity(id=sf_id("006", 2), owner_id=ADA, is_closed="true", is_won="true", stage="Closed Won"),
            opportunity(id=sf_id("006", 3), owner_id=SAM)]),
        "OpportunityContactRole": api("OpportunityContactRole", [
            contact_role(id=sf_id("00K", 1), opportunity_id=sf_id("006", 1), contact_id=PAT)]),
        # Subjects "NA" and "null" are text, whatever CSV readers think.
        "Task": api("Task", [a_task(n, **({3: {"subject": "NA"}, 4: {"subject": "null"}}.get(n, {})))
                             for n in range(TASKS)]),
        "Event": api("Event", [event(id=E1, owner_id=SAM, what_id=sf_id("006", 1)), event(id=E2, owner_id=ADA),
                               event(id=E3, owner_id=SAM)]),
        "Lead": [{"Id": KIM, "Email": "kim@lead.io", "SystemModstamp": "2026-11-01T00:00:00Z"},
                 {"Id": LEE_LEAD, "Email": "lee@acme.com", "SystemModstamp": "2026-11-01T00:00:00Z"}],
        # E1: a user, a contact, a lead and the account (no e-mail). E2: a contact without e-mail,
        # and Lee twice, as a contact and as a lead.
        "EventRelation": [relation(1, E1, SAM), relation(2, E1, PAT), relation(3, E1, KIM), relation(4, E1, ACME),
                          relation(5, E2, LEE), relation(6, E2, ANON), relation(9, E2, LEE_LEAD)],
    }  # fmt: skip


def run(store, now=T0, cfg=None, options=FAST, **kw):
    return extract_snapshot(cfg or load_config(), store, CONN, now=now, options=options, **kw)
