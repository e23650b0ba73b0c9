"""The Slack app served over HTTP for its tests: the real ASGI route on uvicorn, the fake Slack
Web API and the fake Salesforce org (``tests/fakes/``), the alert memory in SQLite. The org
and the requests are in ``tests/slack_app_requests.py``."""

from __future__ import annotations

import threading

import httpx
import pytest
import uvicorn
from builders import write_snapshot
from fakes.salesforce import serving
from fakes.slack import TOKEN, FakeSlack
from slack_app_requests import EVE, MIA, ORG, SAM, SECRET, SF_CONN, SNAPSHOT, STATE, TODAY, eventually
from slack_sdk import WebClient

from sa_hygiene.contract.config import load_config
from sa_hygiene.source.snapshot import read_snapshot
from sa_hygiene.web.slack_app.app import Credentials, build_app, create_asgi_app
from sa_hygiene.web.slack_app.salesforce import salesforce_client


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    for person, slack_id in ((SAM, "USAM"), (MIA, "UMIA"), (EVE, "UEVE")):
        fake.add_user(person["email"], slack_id)
    fake.add_channel("sa-hygiene-ops", "COPS")
    yield fake
    fake.stop()


@pytest.fixture
def salesforce(ca, monkeypatch):
    with serving(ca, monkeypatch, SF_CONN, {"Task": [], "Contact": []}) as sf:
        yield sf


@pytest.fixture
def cfg():
    return load_config()


@pytest.fixture
def snapshot(tmp_path, cfg):
    folder = write_snapshot(tmp_path / "snap", ORG)
    SNAPSHOT[:] = [read_snapshot(folder, cfg)]
    return SNAPSHOT[0]


@pytest.fixture
def state_url(tmp_path):
    STATE[:] = [f"sqlite:///{tmp_path}/state.sqlite"]
    return STATE[0]


@pytest.fixture
def app(cfg, slack, salesforce, snapshot, state_url):
    built = build_app(cfg, creds=Credentials(TOKEN, SECRET), client=WebClient(token=TOKEN, base_url=slack.base_url),
                      snapshot=lambda: snapshot, salesforce=salesforce_client(SF_CONN), state_url=state_url)  # fmt: skip
    built.backends.today = lambda zone: TODAY
    yield built
    built.close()


@pytest.fixture
def http(app):
    """The ASGI app served by uvicorn on 127.0.0.1, and an HTTP client for it."""
    server = uvicorn.Server(uvicorn.Config(create_asgi_app(app), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started and server.servers, timeout=10)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(10)
