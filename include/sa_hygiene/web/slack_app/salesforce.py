"""Writing to Salesforce from Slack, through the project's one Salesforce client
(``sa_hygiene.source.salesforce.SalesforceClient``): it has a timeout on every request (a hung
Salesforce must not hold the app's workers for ever) and never repeats a creation whose answer
was lost. Here only what the form needs on top: Salesforce's own words for the form, and whether
a failed creation may have been saved all the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sa_hygiene.source.salesforce import SalesforceClient, SalesforceError

# Seconds to connect and between bytes of an answer: well under the minutes a user waits on a
# modal saying "saving", and short enough that a hung org frees a worker soon.
APP_TIMEOUT = (3.05, 10.0)


class SalesforceRefused(RuntimeError):
    """Salesforce did not create the Task; the message is Salesforce's own, for the form.
    ``maybe_saved``: no answer came after the request was sent, so it may exist all the same."""

    def __init__(self, text: str, maybe_saved: bool = False):
        super().__init__(text)
        self.maybe_saved = maybe_saved


def salesforce_client(conn_id: str) -> SalesforceClient:
    """The shared client for the app: logs in on first use, one retry of what surely never left."""
    return SalesforceClient(conn_id, timeout=APP_TIMEOUT, retries=1, backoff_seconds=0.5, max_backoff_seconds=2.0)


def create_task(sf: SalesforceClient, fields: Mapping[str, Any]) -> str:
    """The new Task's Id; ``SalesforceRefused`` with Salesforce's message otherwise."""
    return create(sf, "Task", fields)


def create_contact(sf: SalesforceClient, fields: Mapping[str, Any], email_field: str, account_field: str) -> str:
    """The Id of the Contact a form creates: one already on that account with that e-mail (a form
    sent again after its Task failed must not make a second), else a new one."""
    if fields.get(email_field) and fields.get(account_field):
        where = f"{email_field} = {soql_literal(fields[email_field])} AND {account_field} = {soql_literal(fields[account_field])}"
        try:
            found = sf.query(f"SELECT Id FROM Contact WHERE {where} LIMIT 1", what="look up a contact before creating it")
        except SalesforceError:
            found = {}
        if found.get("records"):
            return found["records"][0]["Id"]
    return create(sf, "Contact", fields)


def create(sf: SalesforceClient, obj: str, fields: Mapping[str, Any]) -> str:
    """The new record's Id; ``SalesforceRefused`` with Salesforce's message otherwise."""
    try:
        return sf.create(obj, fields)
    except SalesforceError as exc:
        if exc.status is not None and exc.code:
            raise SalesforceRefused(f"{exc.code}: {exc.message}") from None
        # No answer from Salesforce (a timeout, a dropped connection, a 5xx): it may have saved it.
        raise SalesforceRefused(f"Salesforce could not be reached or did not answer ({exc.message[:200]})",
                                maybe_saved=True) from None  # fmt: skip


def soql_literal(value: Any, date: bool = False) -> str:
    """A SOQL literal: dates bare, text quoted with quotes and backslashes escaped."""
    text = str(value)
    return text if date else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_task(sf: SalesforceClient, fields: Mapping[str, Any], keys: list[str], date_field: str) -> str | None:
    """The Id of a Task with the same ``keys`` (owner, related to, contact, date, subject) as
    ``fields``: what a creation whose answer was lost left behind. None when there is none, or
    when Salesforce cannot say (the caller then keeps the meeting unsure)."""
    where = " AND ".join(f"{k} = {soql_literal(fields[k], k == date_field)}" for k in keys if fields.get(k) is not None)
    try:
        found = sf.query(f"SELECT Id FROM Task WHERE {where} LIMIT 1", what="look up a Task the app may have created")
    except SalesforceError:
        return None
    records = found.get("records") or []
    return records[0].get("Id") if records else None
