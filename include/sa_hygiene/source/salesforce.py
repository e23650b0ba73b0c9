"""The one Salesforce client: reads for the extraction and the changes feed, writes for the Slack app.

Why it works the way it does:

- It is built from the Airflow Salesforce connection through the provider's ``SalesforceHook``
  (every login flow the hook knows, credentials kept in Airflow), and logs in on first use, so
  an app can hold one before Salesforce is needed.
- Every HTTP request has a timeout, the login included: requests waits for ever without one.
  The session is made here with an adapter that sets it (and given the connection's
  ``proxies``, which simple-salesforce then reads from the session).
- Network errors and 5xx are retried with exponential backoff, but a record creation only when
  the request surely never left (the connection could not be made): a creation whose answer was
  lost may have been saved, and a second one would duplicate it. Updates set values, so they
  are retried like reads.
- An expired session is logged in again once per call: simple-salesforce refreshes REST calls
  by itself, but its Bulk API 2.0 handler keeps the session id it was made with.
  ``REQUEST_LIMIT_EXCEEDED`` stops at once, since every retry spends more of the org's daily
  allowance; the API usage Salesforce reports on each answer is kept (``usage``) for the message.
- Every failure is a ``SalesforceError`` that says what was being done, with the API's own error
  code and message apart, for a form to show; per-record failures of a collection update are
  results (``SaveResult``), not errors, as Salesforce's all-or-none false makes them.

Airflow, simple-salesforce and requests are imported where they are used: DAG files import the
extraction at parse time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0  # seconds to connect, and seconds between bytes of an answer
COLLECTION_LIMIT = 200  # records per sObject Collections request (Salesforce's limit)
_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")
_LOGIN_URL = re.compile(r"/services/(Soap/u/|oauth2/token)")


class SalesforceError(RuntimeError):
    """A Salesforce call failed. ``str()`` says what was being done and why; ``code`` and
    ``message`` are the API's own (``code`` is empty when Salesforce did not answer, e.g. a
    network error), ``status`` the HTTP status when there was one."""

    def __init__(self, text: str, code: str = "", message: str = "", status: int | None = None):
        super().__init__(text)
        self.code, self.message, self.status = code, message or text, status


@dataclass(frozen=True)
class SaveResult:
    """One record of a collection update, in the order sent: saved, or Salesforce's reasons."""

    id: str
    success: bool
    code: str = ""  # the first error's statusCode
    message: str = ""  # every error's message, "; "-joined
    fields: tuple[str, ...] = ()  # the fields the errors name


@dataclass
class ApiUsage:
    """What the session's response hook saw: requests, logins, the org's API usage."""

    requests: int = 0
    logins: int = 0
    first: tuple[int, int] | None = None
    last: tuple[int, int] | None = None

    def observe(self, response, *args, **kwargs):
        self.requests += 1
        if _LOGIN_URL.search(response.url):
            self.logins += 1
        m = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if m:
            self.last = (int(m[1]), int(m[2]))
            self.first = self.first or self.last
        return response

    @property
    def calls(self) -> int | None:
        return self.last[0] - self.first[0] + 1 if self.first and self.last else None

    @property
    def seen(self) -> str:
        return f"{self.last[0]}/{self.last[1]}" if self.last else "none reported"


def _session(timeout: float | tuple[float, float], proxies: dict | None):
    """A requests session whose every request has ``timeout`` unless the caller gave one."""
    import requests
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["timeout"] = kwargs.get("timeout") or timeout
            return super().send(request, **kwargs)

    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, TimeoutAdapter())
    if proxies:
        session.proxies.update(proxies)
    return session


class _ProxiesOnTheSession(logging.Filter):
    """simple-salesforce warns that it ignores the hook's ``proxies`` when given a session: they
    are on the session already (``_session``), so the warning would mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Proxies must be defined on custom session object")


_PROXIES_FILTER = _ProxiesOnTheSession()


def _error_code(exc) -> tuple[str, str]:
    """(errorCode, message) of a simple-salesforce error, whatever shape its content has."""
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return "", str(content if content else exc)


def _transient(exc: Exception) -> bool:
    import requests
    from simple_salesforce.exceptions import SalesforceGeneralError

    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    if isinstance(exc, requests.exceptions.SSLError):
        return "CERTIFICATE_VERIFY_FAILED" not in str(exc)  # a broken stream, not an untrusted server
    return isinstance(exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


def _unsent(exc: Exception) -> bool:
    """The request never reached Salesforce: no connection was made."""
    import requests
    from urllib3.exceptions import NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


class SalesforceClient:
    """The Airflow connection ``conn_id`` as a Salesforce client (see the module's docstring).

    ``session_id`` is for connections that authenticate with an existing session (the hook's
    direct-session method). ``timeout``: seconds to connect and to wait for the answer's next
    bytes, per request (a number, or a (connect, read) pair). ``retries`` of network errors and
    5xx per call, after ``backoff_seconds``, doubled each time up to ``max_backoff_seconds``.
    """

    def __init__(self, conn_id: str, *, session_id: str | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, retries: int = 2,
                 backoff_seconds: float = 1.0, max_backoff_seconds: float = 30.0):  # fmt: skip
        self.conn_id, self.session_id, self.timeout = conn_id, session_id, timeout
        self.max_retries, self.backoff_seconds, self.max_backoff_seconds = retries, backoff_seconds, max_backoff_seconds
        self.usage = ApiUsage()
        self.retries = 0  # retries made so far, all calls together
        self.connects = 0
        self._sf = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------- the connection

    def connect(self) -> SalesforceClient:
        """Log in now (otherwise the first call does)."""
        self._client()
        return self

    @property
    def logins(self) -> int:
        return self.connects + self.usage.logins

    def counts(self) -> dict[str, Any]:
        """What a run reports of its calls: requests, API calls and usage, retries, logins."""
        return {"requests": self.usage.requests, "api_calls": self.usage.calls,
                "api_usage": self.usage.seen if self.usage.last else None, "retries": self.retries,
                "logins": self.logins}  # fmt: skip

    def _client(self):
        with self._lock:
            if self._sf is None:
                self._sf = self._retrying("log in to Salesforce", self._connect)
            return self._sf

    def _connect(self):
        from airflow.providers.common.compat.sdk import AirflowNotFoundException
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
        from simple_salesforce.exceptions import SalesforceAuthenticationFailed

        try:
            extras = SalesforceHook.get_connection(self.conn_id).extra_dejson
            proxies = extras.get("proxies") or extras.get("extra__salesforce__proxies") or None
            logging.getLogger("simple_salesforce.api").addFilter(_PROXIES_FILTER)
            session = _session(self.timeout, proxies)
            sf = SalesforceHook(salesforce_conn_id=self.conn_id, session_id=self.session_id, session=session).get_conn()
        except AirflowNotFoundException:
            raise SalesforceError(f"no Airflow connection {self.conn_id!r} (set AIRFLOW_CONN_{self.conn_id.upper()})") from None
        except SalesforceAuthenticationFailed as exc:
            raise SalesforceError(f"cannot log in with connection {self.conn_id!r}: {exc.code}: {exc.auth_message}",
                                  str(exc.code), str(exc.auth_message)) from None  # fmt: skip
        except TypeError as exc:  # simple-salesforce's word for "no usable credentials"
            raise SalesforceError(f"connection {self.conn_id!r} cannot be used: {exc}") from None
        self.connects += 1
        # Counted from here: the reports' requests are those after the first login.
        session.hooks["response"].append(self.usage.observe)
        return sf

    def _relogin(self, what: str, expired) -> None:
        with self._lock:
            if self._sf is not expired:  # another thread logged in again meanwhile
                return
            if expired.auth_type == "direct":
                raise SalesforceError(f"{what}: the session expired and connection {self.conn_id!r} has a "
                                      "session id, not credentials to log in again", "INVALID_SESSION_ID") from None  # fmt: skip
            log.warning("%s: the Salesforce session expired; logging in again", what)
            self._sf = self._retrying("log in to Salesforce again", self._connect)

    # ----------------------------------------------------------------------- calls

    def call(self, what: str, fn: Callable[[Any], T], *, idempotent: bool = True) -> T:
        """``fn(simple_salesforce.Salesforce)`` with the retries, the new login after an expired
        session and the errors of this client; ``what`` names the call in messages. A call that
        is not ``idempotent`` is retried only when it surely never reached Salesforce."""
        from simple_salesforce.exceptions import SalesforceExpiredSession

        relogged = False
        while True:
            sf = self._client()
            try:
                return self._retrying(what, lambda sf=sf: fn(sf), idempotent)
            except SalesforceExpiredSession:
                if relogged and sf.auth_type != "direct":
                    raise SalesforceError(f"{what}: the session expired again right after logging in",
                                          "INVALID_SESSION_ID") from None  # fmt: skip
                relogged = True
                self._relogin(what, sf)

    def query(self, soql: str, *, include_deleted: bool = False, what: str = "query") -> dict:
        """The first page of a SOQL query (``queryAll`` with ``include_deleted``)."""
        return self.call(what, lambda sf: sf.query(soql, include_deleted=include_deleted))

    def pages(self, soql: str, *, include_deleted: bool = False, what: str = "query") -> Iterator[list[dict]]:
        """The records of a SOQL query, a page (up to 2,000 records) at a time."""
        result = self.query(soql, include_deleted=include_deleted, what=what)
        while True:
            yield result.get("records", [])
            if result.get("done", True):
                return
            url = result["nextRecordsUrl"]
            result = self.call(what, lambda sf, url=url: sf.query_more(url, identifier_is_url=True))

    def describe(self, sobject: str, *, what: str | None = None) -> dict:
        """An object's ``describe`` (its fields); ``SalesforceError`` with status 404 when the org
        has no such object or does not show it to this user."""
        return self.call(what or f"describe {sobject}", lambda sf: getattr(sf, sobject).describe())

    def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Create one record; its new Id."""
        what = f"create {sobject}"
        result = self.call(what, lambda sf: getattr(sf, sobject).create(dict(fields)), idempotent=False)
        if not isinstance(result, dict) or not result.get("id"):
            raise SalesforceError(f"{what}: unexpected answer: {str(result)[:200]}")
        return result["id"]

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Set ``fields`` of one record."""
        self.call(f"update {sobject} {record_id}", lambda sf: getattr(sf, sobject).update(record_id, dict(fields)))

    def update_many(self, sobject: str, updates: Mapping[str, Mapping[str, Any]]) -> list[SaveResult]:
        """Set the fields of up to 200 records (Id -> fields) in one sObject Collections request,
        all-or-none false: each record is saved or not on its own, one result each, in order."""
        if len(updates) > COLLECTION_LIMIT:
            raise ValueError(f"{len(updates)} records: a collection request takes at most {COLLECTION_LIMIT}")
        if not updates:
            return []
        ids = list(updates)
        body = {"allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **updates[i], "id": i} for i in ids]}  # fmt: skip
        what = f"update {len(ids)} {sobject} records"
        answer = self.call(what, lambda sf: sf.restful("composite/sobjects", method="PATCH", json=body))
        if not isinstance(answer, list) or len(answer) != len(ids) or not all(isinstance(r, dict) for r in answer):
            raise SalesforceError(f"{what}: unexpected answer: {str(answer)[:200]}")
        return [_save_result(i, r) for i, r in zip(ids, answer, strict=True)]

    def _retrying(self, what: str, fn: Callable[[], T], idempotent: bool = True) -> T:
        from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

        attempt = 0
        while True:
            try:
                return fn()
            except (SalesforceError, SalesforceExpiredSession):
                raise
            except SalesforceRefusedRequest as exc:
                code, message = _error_code(exc)
                raise SalesforceError(self._refused(what, exc), code, message, exc.status) from None
            except Exception as exc:
                reason = self._reason(exc)
                code, message = _error_code(exc) if hasattr(exc, "status") else ("", reason)
                status = getattr(exc, "status", None)
                if not _transient(exc) or not (idempotent or _unsent(exc)):
                    raise SalesforceError(f"{what}: {reason}", code, message, status) from exc
                if attempt >= self.max_retries:
                    raise SalesforceError(f"{what}: {reason} (gave up after {attempt + 1} attempts)", code, message,
                                          status) from exc  # fmt: skip
                attempt += 1
                self.retries += 1
                delay = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
                log.warning("%s: %s; retry %d of %d in %.1fs", what, reason, attempt, self.max_retries, delay)
                time.sleep(delay)

    def _refused(self, what: str, exc) -> str:
        code, message = _error_code(exc)
        if code == "REQUEST_LIMIT_EXCEEDED":
            return (f"{what}: Salesforce refused the request: REQUEST_LIMIT_EXCEEDED ({message}); "
                    f"API usage seen: {self.usage.seen}, of which this run made {self.usage.calls}")  # fmt: skip
        return f"{what}: Salesforce refused the request: {code or exc.status}: {message}"

    @staticmethod
    def _reason(exc: Exception) -> str:
        from simple_salesforce.exceptions import SalesforceError as ClientError

        if isinstance(exc, ClientError):
            code, message = _error_code(exc)
            return f"HTTP {exc.status} {code}: {message}".replace("  ", " ")
        return f"{type(exc).__name__}: {exc}"


def _save_result(record_id: str, answer: dict) -> SaveResult:
    if answer.get("success"):
        return SaveResult(answer.get("id") or record_id, True)
    errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
    return SaveResult(
        record_id, False,
        code=str(errors[0].get("statusCode", "")) if errors else "",
        message="; ".join(str(e.get("message", "")) for e in errors) or "not saved, and no reason given",
        fields=tuple(f for e in errors for f in e.get("fields") or ()),
    )  # fmt: skip
