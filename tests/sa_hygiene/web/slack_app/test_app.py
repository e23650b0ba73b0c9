"""The app's HTTP route and credentials: only requests Slack signed, fresh and of a kind the app
makes, reach a listener; secrets come from the connection or the environment and never show."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from slack_app_requests import EVE, ITEM, OPP, SAM, eventually, menu_click, post_digest, signed, snoozes

from sa_hygiene.web.slack_app.app import credentials
from sa_hygiene.web.slack_app.items import Item

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("tamper", ["forged", "stale", "unsigned", "other_secret"])
def test_forged_or_replayed_requests_are_refused_and_change_nothing(http, slack, state_url, tamper):
    message = post_digest(slack, "DSAM", ITEM)
    payload = menu_click("USAM", "DSAM", message, ITEM)
    body = urlencode({"payload": json.dumps(payload)})
    headers = signed(body)
    if tamper == "forged":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif tamper == "stale":
        headers = signed(body, ts=int(time.time()) - 301)  # correctly signed, six seconds too old
    elif tamper == "unsigned":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        headers = signed(body, secret="not-the-signing-secret")
    answer = http.post("/events", content=body, headers=headers)
    assert answer.status_code == 401
    time.sleep(0.3)
    assert snoozes(state_url) == []
    assert [r.method for r in slack.requests] == []
    assert "edited" not in slack.posts("DSAM")[0]


def test_a_body_tampered_after_signing_is_refused(http, slack, state_url):
    message = post_digest(slack, "DSAM", ITEM)
    body = urlencode({"payload": json.dumps(menu_click("USAM", "DSAM", message, ITEM))})
    headers = signed(body)
    other = Item("snooze", "wf-07", OPP["id"], EVE["id"])
    forged = urlencode({"payload": json.dumps(menu_click("USAM", "DSAM", message, other))})
    assert http.post("/events", content=forged, headers=headers).status_code == 401
    assert snoozes(state_url) == []


@pytest.mark.parametrize("case", ["not_json", "unknown_action", "bad_value", "no_user", "unknown_type", "foreign_view", "not_a_payload"])
def test_malformed_or_unknown_requests_get_4xx_and_change_nothing(http, slack, state_url, case):
    message = post_digest(slack, "DSAM", ITEM)
    payload = menu_click("USAM", "DSAM", message, ITEM)
    if case == "unknown_action":
        payload["actions"][0]["action_id"] = "delete_everything"
    elif case == "bad_value":
        payload["actions"][0]["selected_option"]["value"] = "snooze|wf-07|<!channel>|005"
    elif case == "no_user":
        del payload["user"]
    elif case == "unknown_type":
        payload["type"] = "dialog_submission"
    elif case == "foreign_view":
        payload = {"type": "view_submission", "user": {"id": "USAM"}, "view": {"id": "V1", "callback_id": "other"}}
    body = urlencode({"payload": json.dumps(payload)})
    if case == "not_json":
        body = urlencode({"payload": "{not json"})
    elif case == "not_a_payload":
        body = "\xff\xfe"
    answer = http.post("/events", content=body.encode("latin-1"), headers=signed(body))
    assert 400 <= answer.status_code < 500, answer.text
    time.sleep(0.3)
    assert snoozes(state_url) == []
    assert not slack.calls("chat.update", "chat.postEphemeral", "chat.postMessage", "views.open")


def test_credentials_come_from_the_connection_and_never_show(monkeypatch):
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_APP_TEST", json.dumps(
        {"conn_type": "slack", "password": "xoxb-secret-token", "extra": {"signing_secret": "s3cret", "app_token": "xapp-1"}}))
    creds = credentials("slack_app_test")
    assert (creds.token, creds.signing_secret, creds.app_token) == ("xoxb-secret-token", "s3cret", "xapp-1")
    assert "secret" not in repr(creds) and "xapp" not in repr(creds)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "env-secret")
    assert credentials("slack_app_test").signing_secret == "env-secret"


def test_socket_mode_command_without_credentials_says_what_is_missing(monkeypatch, capsys):
    from sa_hygiene.cli import main

    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps({"conn_type": "slack", "password": "xoxb-t",
                                                                     "extra": {"signing_secret": "s"}}))  # fmt: skip
    assert main(["slack-app"]) == 2
    err = capsys.readouterr().err
    assert "app-level token" in err and "xoxb-t" not in err


def test_a_replay_is_refused_and_a_retry_answered_without_a_second_effect(http, slack, state_url):
    not_mine = Item("notmine", "wf-07", OPP["id"], SAM["id"])
    message = post_digest(slack, "DSAM", not_mine)
    body = urlencode({"payload": json.dumps(menu_click("USAM", "DSAM", message, not_mine))})
    headers = signed(body)
    assert http.post("/events", content=body, headers=headers).status_code == 200
    assert http.post("/events", content=body, headers=headers).status_code == 409  # the same signature again
    retry = {**signed(body, ts=int(time.time()) - 1), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert http.post("/events", content=body, headers=retry).status_code == 200
    eventually(lambda: [m for m in slack.posts("COPS") if "is not theirs" in m["text"]])
    time.sleep(1.0)
    assert len([m for m in slack.posts("COPS") if "is not theirs" in m["text"]]) == 1


@pytest.mark.parametrize(("timestamp", "signature"), [
    ("abc", None), ("1.7e9", None), ("", None), ("١٧٠٠٠٠٠٠٠٠", None), (None, "v0=é"), (None, "v0=" + "0" * 63),
])  # fmt: skip
def test_malformed_authentication_headers_are_401_with_one_log_line(http, timestamp, signature):
    import logging

    body = urlencode({"payload": json.dumps({"type": "block_actions"})})
    headers = signed(body)
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append
    logger = logging.getLogger("sa_hygiene")  # a handler of its own: Airflow's logging set-up may bypass caplog
    logger.addHandler(handler)
    try:
        answer = http.post("/events", content=body, headers=encoded)
    finally:
        logger.removeHandler(handler)
    assert answer.status_code == 401
    assert [r.getMessage() for r in seen] == ["refused a Slack request: malformed authentication headers"]
    assert not any(r.exc_info for r in seen)


def _malformed_payloads() -> list:
    click = {"type": "block_actions", "user": {"id": "USAM"}, "trigger_id": "1.2", "container": {"channel_id": "DSAM", "message_ts": "1.1"},
             "actions": [{"action_id": "sa_item_menu", "selected_option": {"value": ITEM.value()}}]}  # fmt: skip
    view = {"type": "view_submission", "user": {"id": "USAM"}, "view": {"id": "V1", "callback_id": "sa_log_form",
            "private_metadata": "{}", "state": {"values": {}}}}  # fmt: skip
    return [
        json.dumps({**click, "user": "USAM"}),
        json.dumps({**click, "actions": [{"action_id": "sa_item_menu", "selected_option": "x"}]}),
        json.dumps({**view, "view": {**view["view"], "id": ["V1"]}}),
        json.dumps({**view, "view": {**view["view"], "state": "x"}}),
        "null",
        "123",
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
    ]


@pytest.mark.parametrize("payload", range(8))
def test_signed_but_malformed_payloads_are_400(http, payload):
    body = urlencode({"payload": _malformed_payloads()[payload]})
    assert http.post("/events", content=body, headers=signed(body)).status_code == 400


def test_an_app_without_credentials_answers_503_fast_and_says_why_once(monkeypatch, cfg):
    import logging

    from fastapi.testclient import TestClient

    from sa_hygiene.web.slack_app.app import create_asgi_app

    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-only-a-token")  # no signing secret
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("sa_hygiene.web.slack_app.app").addHandler(handler)
    try:
        with TestClient(create_asgi_app(cfg=cfg)) as client:
            answers = []
            for _ in range(3):
                started = time.monotonic()
                answers.append((client.post("/events", content="payload=%7B%7D"), time.monotonic() - started))
    finally:
        logging.getLogger("sa_hygiene.web.slack_app.app").removeHandler(handler)
    assert [a.status_code for a, _ in answers] == [503, 503, 503]
    assert "no usable Airflow connection" in answers[0][0].text
    assert max(took for _, took in answers[1:]) < 0.5
    assert len([m for m in seen if "cannot answer" in m]) == 1


def test_slack_app_with_a_rejected_app_level_token_is_one_line(slack, monkeypatch):
    from commands import run

    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    extra = {"signing_secret": "s3cret", "app_token": "xapp-revoked", "base_url": slack.base_url}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps({"conn_type": "slack", "password": "xoxb-fake",
                                                                      "extra": extra}))  # fmt: skip
    r = run("slack-app")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "Slack refused the app-level token (apps.connections.open: invalid_auth)" in r.stderr
    assert "xapp-revoked" not in r.stderr
