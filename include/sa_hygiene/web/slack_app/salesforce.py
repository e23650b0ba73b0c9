"""Writing to Salesforce from Slack: the client (through the Salesforce provider's hook) and
creating a Task, with Salesforce's own message when it refuses one, for the form to show.

Kept apart and as it is: a shared Salesforce client for reads and writes is being built in
``source/``, and this module is what moves onto it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class SalesforceRefused(RuntimeError):
    """Salesforce did not create the Task; the message is Salesforce's own, for the form."""


def salesforce_client(conn_id: str) -> Callable[[], Any]:
    """A simple-salesforce client through the provider's hook, made on first use and kept
    (simple-salesforce logs in again by itself when a REST call finds the session expired)."""
    lock = threading.Lock()
    client: list = []

    def get():
        with lock:
            if not client:
                from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

                client.append(SalesforceHook(salesforce_conn_id=conn_id).get_conn())
            return client[0]

    return get


def create_task(sf, fields: dict) -> str:
    """The new Task's Id; ``SalesforceRefused`` with Salesforce's message otherwise."""
    from simple_salesforce.exceptions import SalesforceError

    try:
        result = sf.Task.create(fields)
    except SalesforceError as exc:
        content = exc.content
        if isinstance(content, list) and content and isinstance(content[0], dict):
            raise SalesforceRefused(f"{content[0].get('errorCode', '')}: {content[0].get('message', '')}") from None
        raise SalesforceRefused(f"{type(exc).__name__} ({getattr(exc, 'status', '')})") from None
    except Exception as exc:  # the network: the form stays open and may be sent again
        raise SalesforceRefused(f"Salesforce could not be reached ({type(exc).__name__})") from None
    if not isinstance(result, dict) or not result.get("id"):
        raise SalesforceRefused(f"unexpected answer: {str(result)[:200]}")
    return result["id"]
