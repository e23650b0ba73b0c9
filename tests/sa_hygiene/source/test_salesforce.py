"""The Salesforce client against the fake org over HTTPS (the real SalesforceHook and simple-salesforce).

Reads are covered through the extraction (test_extract.py); here the writes the Slack app
makes, the errors it shows, and the timeout every request has.
"""

import json
import time

import pytest
from builders import sf_id, task
from fakes.salesforce import INSTANCE, LOGIN_HOSTS, serving
from salesforce_org import CONN, SAM, api

from sa_hygiene.source.salesforce import DEFAULT_TIMEOUT, SalesforceClient, SalesforceError, SaveResult

pytestmark = pytest.mark.integration

T1, T2, T3, GONE = sf_id("00T", 1), sf_id("00T", 2), sf_id("00T", 3), sf_id("00T", 4)
FUTURE = "Activity Date cannot be in the future"


@pytest.fixture
def fake(ca, monkeypatch):
    tasks = api("Task", [task(id=i, owner_id=SAM, subject=f"Call {n}", status="Open", activity_date="2026-11-20")
                         for n, i in enumerate([T1, T2, T3, GONE])])  # fmt: skip
    with serving(ca, monkeypatch, CONN, {"Task": tasks}) as sf:
        sf.delete("Task", [GONE], "2026-11-21T00:00:00Z")
        sf.rule("Task", lambda r: FUTURE if (r.get("ActivityDate") or "") > "2026-11-24" else None)
        yield sf


def client(**kw) -> SalesforceClient:
    return SalesforceClient(CONN, **{"backoff_seconds": 0, **kw})


def writes(fake) -> list:
    return [r for r in fake.data_requests() if r.method in ("POST", "PATCH")]


def subject(fake, record_id: str) -> str:
    return fake.record("Task", record_id)["Subject"]


# --------------------------------------------------------------------------- writes


def test_create_returns_the_new_id_and_logs_in_on_first_use(fake):
    sf = client()
    assert fake.logins == 0  # made, not yet connected

    new = sf.create("Task", {"Subject": "Logged from Slack", "OwnerId": SAM, "ActivityDate": "2026-11-24"})

    assert fake.logins == 1 and sf.logins == 1
    assert fake.record("Task", new)["Subject"] == "Logged from Slack"
    assert [json.loads(r.body) for r in writes(fake)] == [
        {"Subject": "Logged from Slack", "OwnerId": SAM, "ActivityDate": "2026-11-24"}]


def test_a_validation_rule_refuses_a_create_with_its_code_and_message(fake):
    with pytest.raises(SalesforceError) as refused:
        client().create("Task", {"Subject": "Tomorrow's call", "ActivityDate": "2026-11-25"})

    e = refused.value
    assert (e.code, e.message, e.status) == ("FIELD_CUSTOM_VALIDATION_EXCEPTION", FUTURE, 400)
    assert str(e) == f"create Task: HTTP 400 FIELD_CUSTOM_VALIDATION_EXCEPTION: {FUTURE}"
    assert fake.live("Task").num_rows == 3


def test_update_sets_fields_and_a_refusal_changes_nothing(fake):
    sf = client()
    sf.update("Task", T1, {"Subject": "Call, logged", "Status": "Completed"})
    assert (subject(fake, T1), fake.record("Task", T1)["Status"]) == ("Call, logged", "Completed")

    with pytest.raises(SalesforceError) as refused:
        sf.update("Task", T2, {"Subject": "Moved", "ActivityDate": "2026-12-01"})
    assert (refused.value.code, refused.value.message) == ("FIELD_CUSTOM_VALIDATION_EXCEPTION", FUTURE)
    assert subject(fake, T2) == "Call 1"

    with pytest.raises(SalesforceError) as missing:
        sf.update("Task", sf_id("00T", 99), {"Subject": "Nobody"})
    assert (missing.value.code, missing.value.status) == ("NOT_FOUND", 404)
    assert str(missing.value).startswith(f"update Task {sf_id('00T', 99)}: HTTP 404 NOT_FOUND")


def test_many_records_are_updated_in_one_request_each_saved_or_refused_on_its_own(fake):
    results = client().update_many("Task", {
        T1: {"Status": "Completed"},
        T2: {"ActivityDate": "2026-12-01"},  # a validation rule refuses it
        GONE: {"Status": "Completed"},  # deleted
        "00Tnonsense": {"Status": "Completed"},
        T3: {"Subject": "Call 2, logged"},
    })  # fmt: skip

    assert results == [
        SaveResult(T1, True),
        SaveResult(T2, False, "FIELD_CUSTOM_VALIDATION_EXCEPTION", FUTURE),
        SaveResult(GONE, False, "ENTITY_IS_DELETED", "entity is deleted"),
        SaveResult("00Tnonsense", False, "MALFORMED_ID", "Task ID: id value of incorrect type: 00Tnonsense"),
        SaveResult(T3, True),
    ]
    [request] = writes(fake)
    assert (request.method, request.path) == ("PATCH", "/services/data/v59.0/composite/sobjects")
    body = json.loads(request.body)
    assert body["allOrNone"] is False
    assert body["records"][0] == {"attributes": {"type": "Task"}, "Status": "Completed", "id": T1}
    assert fake.record("Task", T1)["Status"] == "Completed" and subject(fake, T3) == "Call 2, logged"
    assert fake.record("Task", T2)["ActivityDate"] == "2026-11-20"


def test_a_collection_takes_at_most_200_records_and_none_costs_no_request(fake):
    sf = client()
    with pytest.raises(ValueError, match="201 records: a collection request takes at most 200"):
        sf.update_many("Task", {sf_id("00T", n): {"Status": "Completed"} for n in range(201)})
    assert sf.update_many("Task", {}) == []
    assert fake.requests == []


# --------------------------------------------------------------------------- sessions and limits


def test_an_expired_session_logs_in_again_and_the_record_is_created_once(fake):
    sf = client()
    sf.connect()
    fake.fail("expire_session", when=lambda r: r.method == "POST")

    sf.create("Task", {"Subject": "After a night"})

    assert fake.logins == 2 and sf.logins == 2
    assert [r.method for r in writes(fake)] == ["POST", "POST"]  # refused unauthenticated, then made
    assert fake.live("Task").num_rows == 4


def test_a_direct_session_that_expired_says_so(fake, monkeypatch):
    extra = {"instance_url": f"https://{INSTANCE}", "proxies": {"https": fake.proxy_url}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "salesforce", "extra": extra}))
    sf = client(session_id=fake.new_session())
    fake.fail("expire_session")

    with pytest.raises(SalesforceError) as expired:
        sf.update("Task", T1, {"Status": "Completed"})

    assert expired.value.code == "INVALID_SESSION_ID"
    assert str(expired.value) == (f"update Task {T1}: the session expired and connection {CONN!r} has a session id, "
                                  "not credentials to log in again")  # fmt: skip
    assert fake.logins == 0


def test_the_daily_request_limit_stops_at_once(fake):
    fake.fail("request_limit", times=5)

    with pytest.raises(SalesforceError) as refused:
        client(retries=3).update("Task", T1, {"Status": "Completed"})

    assert (refused.value.code, refused.value.status) == ("REQUEST_LIMIT_EXCEEDED", 403)
    assert len(writes(fake)) == 1


def test_a_missing_connection_is_a_clear_error():
    with pytest.raises(SalesforceError, match=r"^no Airflow connection 'nowhere' \(set AIRFLOW_CONN_NOWHERE\)$"):
        SalesforceClient("nowhere").connect()


# --------------------------------------------------------------------------- timeouts


def test_every_request_has_a_timeout_by_default():
    assert SalesforceClient(CONN).timeout == DEFAULT_TIMEOUT == 10.0


def test_a_late_answer_times_out_and_a_read_is_retried(fake):
    fake.fail("slow", when=lambda r: r.method == "PATCH")
    sf = client(timeout=0.5)

    started = time.monotonic()
    sf.update("Task", T1, {"Status": "Completed"})

    assert time.monotonic() - started < fake.slow_seconds
    assert sf.retries == 1 and len(writes(fake)) == 2
    assert fake.record("Task", T1)["Status"] == "Completed"


def test_a_login_that_does_not_answer_times_out_too(fake):
    fake.fail("slow", when=lambda r: r.host in LOGIN_HOSTS, times=2)

    with pytest.raises(SalesforceError, match=r"^log in to Salesforce: ReadTimeout: .* \(gave up after 2 attempts\)$"):
        client(timeout=0.5, retries=1).connect()


def test_a_create_whose_answer_is_late_is_not_sent_twice(fake):
    """The org may have saved it: a second creation would duplicate the record."""
    fake.fail("slow", when=lambda r: r.method == "POST" and "/sobjects/" in r.path)

    with pytest.raises(SalesforceError, match=r"^create Task: ReadTimeout: "):
        client(timeout=0.5, retries=3).create("Task", {"Subject": "Logged once"})

    assert len(writes(fake)) == 1
    deadline = time.monotonic() + 10
    while fake.live("Task").num_rows == 3 and time.monotonic() < deadline:  # the org carries it out meanwhile
        time.sleep(0.1)
    assert [r["Subject"] for r in fake.live("Task").to_pylist()].count("Logged once") == 1
