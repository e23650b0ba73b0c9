"""The Slack app as a whole: its credentials, the Bolt ``App`` with its listeners and the
middleware that refuses foreign payloads, and the two ways Slack reaches it: an HTTP route
(mounted by the Airflow plugin beside the report) and Socket Mode (``python -m sa_hygiene
slack-app``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sa_hygiene.contract.config import Config
from sa_hygiene.web.slack_app.backends import Backends, LatestSnapshot, SlackAppError
from sa_hygiene.web.slack_app.items import problem
from sa_hygiene.web.slack_app.listeners import register
from sa_hygiene.web.slack_app.salesforce import salesforce_client
from sa_hygiene.web.slack_app.work import LazyWork

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0  # how long an app that could not be built answers 503 without trying again
SLACK_TIMEOUT = 5  # seconds per Slack Web API call: slack_sdk waits 30 by default
ACK_WORKERS = 8  # acknowledgements only: they do no I/O but the state database


@dataclass(frozen=True)
class Credentials:
    """The app's secrets; ``repr`` shows none of them, so logging the object leaks nothing."""

    token: str = field(repr=False)
    signing_secret: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    base_url: str | None = None


def credentials(conn_id: str | None) -> Credentials:
    """Secrets from the environment (``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``,
    ``SLACK_APP_TOKEN``), else from the Slack provider's connection ``conn_id``: the token in
    its password, ``signing_secret`` and ``app_token`` in its extra (``base_url`` too, as the
    provider's hook reads it)."""
    token, secret, app = (os.environ.get(k) or None for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"))
    base_url = None
    if conn_id and not (token and secret):
        from airflow.providers.slack.hooks.slack import SlackHook

        try:
            conn = SlackHook.get_connection(conn_id)
        except Exception as exc:  # AirflowNotFoundException, whatever its module in this Airflow
            raise SlackAppError(f"no usable Airflow connection {conn_id!r}: {type(exc).__name__}") from None
        extra = conn.extra_dejson or {}
        token = token or conn.password or None
        secret = secret or extra.get("signing_secret") or None
        app = app or extra.get("app_token") or None
        base_url = extra.get("base_url") or None
    if not token:
        raise SlackAppError(f"no bot token: set SLACK_BOT_TOKEN or the password of connection {conn_id!r}")
    if not secret:
        raise SlackAppError(f"no signing secret: set SLACK_SIGNING_SECRET or 'signing_secret' in the extra of {conn_id!r}")
    return Credentials(token, secret, app, base_url)


def ours_only_middleware():
    """A Bolt middleware: after the signature check, a payload this app did not make is refused
    (400), unanswered."""
    from slack_bolt import BoltResponse
    from slack_bolt.middleware import Middleware

    class OursOnly(Middleware):
        """A class, not a function middleware: Bolt's argument injection reads the payload
        before a function middleware runs and fails on some malformed ones."""

        def process(self, *, req, resp, next):  # noqa: A002 - Bolt's name for it
            if req.body.get("type") in ("block_actions", "view_submission", "view_closed", "block_suggestion"):
                why = problem(req.body)
                if why:
                    log.warning("refused a Slack request: %s", why)
                    return BoltResponse(status=400, body=why)
            return next()

    return OursOnly()


@dataclass
class SlackApp:
    """The Bolt app, what its listeners reach, the signature check of its HTTP route, the
    threads acknowledgements run in and the lanes of the work after the answer (``close`` stops
    both: waiting for what runs, dropping what is only queued, so no work outlives the app)."""

    bolt: Any  # slack_bolt.App
    backends: Backends
    verifier: Any = field(repr=False)  # slack_sdk's SignatureVerifier: holds the signing secret
    executor: ThreadPoolExecutor = field(repr=False)
    work: LazyWork = field(repr=False)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.work.shutdown(wait=True)
        self.backends.close()


def build_app(cfg: Config, *, creds: Credentials | None = None, client=None, snapshot: Callable[[], Any] | None = None,
              salesforce: Callable[[], Any] | None = None, state_url: str | None = None,
              ledger_url: str | None = None) -> SlackApp:  # fmt: skip
    """The app. Credentials default to ``credentials(cfg.slack.conn_id)``; ``client`` (a
    ``slack_sdk.WebClient``), ``snapshot`` and ``salesforce`` default to the real ones; the
    delivery ledger to ``state_url`` when that is given (one database), else ``slack.ledger_url``."""
    from slack_bolt import App
    from slack_sdk import WebClient
    from slack_sdk.signature import SignatureVerifier

    creds = creds or credentials(cfg.slack.conn_id)
    if client is None:
        client = WebClient(token=creds.token, timeout=SLACK_TIMEOUT, **({"base_url": creds.base_url} if creds.base_url else {}))
    client.timeout = min(client.timeout or SLACK_TIMEOUT, SLACK_TIMEOUT)
    backends = Backends(cfg, snapshot or LatestSnapshot(cfg), salesforce or salesforce_client(cfg.salesforce.conn_id),
                        state_url or cfg.state_url, ledger_url=ledger_url or state_url)  # fmt: skip
    # Acknowledgements run here; the work after the answer in bounded lanes of its own (work.py).
    executor = ThreadPoolExecutor(max_workers=ACK_WORKERS, thread_name_prefix="sa-hygiene-ack")
    bolt = App(client=client, signing_secret=creds.signing_secret, request_verification_enabled=True,
               token_verification_enabled=False, process_before_response=False,
               listener_executor=executor)  # fmt: skip
    work = LazyWork(bolt.logger)
    bolt.listener_runner.lazy_listener_runner = work  # Bolt's runner reads it per request
    bolt.use(ours_only_middleware())
    register(bolt, backends)
    return SlackApp(bolt, backends, SignatureVerifier(creds.signing_secret), executor, work)  # v0 HMAC, five-minute window


def create_asgi_app(slack_app: SlackApp | None = None, cfg: Config | None = None):
    """The HTTP endpoint: ``POST /events`` (Slack's Request URL for interactivity).

    The signature is checked first, before the body is parsed (401); a body that is no Slack
    payload is 400; Bolt then checks the signature again and dispatches. Bolt's sync ``App``
    runs in a worker thread, so a slow listener never blocks the api-server's event loop.
    """
    from fastapi import FastAPI
    from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response

    built: dict = {"app": slack_app}
    lock = threading.Lock()

    failed: dict = {"why": None, "at": 0.0}

    def the_app() -> SlackApp:
        """The app, built on first use. Without credentials every request is a 503 saying why; the
        reason is logged once, and the build is tried again only every ``RETRY_SECONDS`` (a
        connection lookup can take seconds: no request should wait for it each time)."""
        with lock:
            if built["app"] is None:
                from sa_hygiene.contract.config import load_config

                if failed["why"] and time.monotonic() - failed["at"] < RETRY_SECONDS:
                    raise SlackAppError(failed["why"])
                try:
                    built["app"] = build_app(cfg or load_config())
                except SlackAppError as exc:
                    if str(exc) != failed["why"]:
                        log.error("the Slack app cannot answer: %s", exc)
                    failed.update(why=str(exc), at=time.monotonic())
                    raise
            return built["app"]

    api = FastAPI(title="sa-hygiene Slack app", docs_url=None, redoc_url=None, openapi_url=None)

    async def events(request: Request) -> Response:
        try:
            app = await run_in_threadpool(the_app)
        except SlackAppError as exc:
            return Response(status_code=503, content=f"the Slack app is not configured: {exc}")
        raw = await request.body()
        try:
            body = raw.decode("utf-8")  # Slack signs UTF-8 text; anything else is no Slack request
        except UnicodeDecodeError:
            return Response(status_code=400, content="malformed payload")
        if not well_formed(request.headers):
            log.warning("refused a Slack request: malformed authentication headers")
            return Response(status_code=401, content="invalid signature")
        if not app.verifier.is_valid_request(body, dict(request.headers)):
            return Response(status_code=401, content="invalid signature")
        fresh = await run_in_threadpool(first_delivery, app, raw, request.headers)
        if fresh is not True:
            return fresh
        try:
            bolt_request = to_bolt_request(request, raw)
        except Exception:  # bad JSON, JSON nested too deep, "null" or "123" Bolt's parser trips on: no Slack payload
            return Response(status_code=400, content="malformed payload")
        if not isinstance(bolt_request.body, dict):
            return Response(status_code=400, content="malformed payload")
        why = problem(bolt_request.body)
        if why:  # before Bolt, which itself stumbles on some malformed payloads (a 500)
            return Response(status_code=400, content=why)
        response = await run_in_threadpool(app.bolt.dispatch, bolt_request)
        return to_starlette_response(response)

    # A plain Starlette route: the handler reads the raw body itself (the signature covers its bytes).
    api.router.add_route("/events", events, methods=["POST"])
    return api


SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def well_formed(headers) -> bool:
    """Slack's signature headers have Slack's shape: ASCII digits, ``v0=`` and 64 hex digits.
    slack_sdk's check raises on others (a 500 with a traceback) instead of saying no."""
    ts = headers.get("x-slack-request-timestamp") or ""
    return ts.isascii() and ts.isdigit() and len(ts) <= 12 and bool(SIGNATURE.fullmatch(headers.get("x-slack-signature") or ""))


def first_delivery(app: SlackApp, raw: bytes, headers) -> Any:
    """True for a request to handle; else the answer to a replay (409) or to a Slack retry of one
    already answered (200, nothing done again). Remembered in the state database, so every
    process serving the app agrees; with that database down, requests are handled (and the
    listeners say what they could not do)."""
    from starlette.responses import Response

    from sa_hygiene.state.db import DatabaseError

    body_key = "body:" + hashlib.sha256(raw).hexdigest()
    try:
        if headers.get("x-slack-retry-num"):
            if not app.backends.submissions.first_use(body_key):
                return Response(status_code=200)
            return True
        if not app.backends.submissions.first_use("sig:" + headers.get("x-slack-signature", "")):
            log.warning("refused a Slack request: a replay of a signature already used")
            return Response(status_code=409, content="replayed request")
        app.backends.submissions.first_use(body_key)
    except DatabaseError as exc:
        log.warning("Slack app: replays cannot be checked: %s", exc)
    return True


def run_socket_mode(cfg: Config) -> None:
    """Socket Mode: the same app over a WebSocket Slack opens to us (no public URL needed)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    creds = credentials(cfg.slack.conn_id)
    if not creds.app_token:
        raise SlackAppError("Socket Mode needs an app-level token: set SLACK_APP_TOKEN or 'app_token' in the connection's extra")
    from slack_sdk.errors import SlackApiError

    try:
        SocketModeHandler(build_app(cfg, creds=creds).bolt, creds.app_token).start()
    except SlackApiError as exc:  # a revoked or mistyped xapp- token: one line, not a traceback
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        raise SlackAppError(f"Slack refused the app-level token (apps.connections.open: {error or 'no answer'}): "
                            "check SLACK_APP_TOKEN or 'app_token' in the connection's extra") from None  # fmt: skip
