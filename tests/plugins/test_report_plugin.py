"""The Airflow UI plugin on a real api-server: the latest report behind Airflow's own login.

One api-server for the module, with its own AIRFLOW_HOME and SQLite database, the project's
plugins folder, and a configuration whose store holds a demo report. The simple auth manager
issues the token, as it does for the UI.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from browser import Chromium
from demo_report import write_demo_report

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "report-plugin-test"
SLACK_SECRET = "plugin-test-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    cfg_path, _ = write_demo_report(root / "data")
    home = root / "airflow"
    home.mkdir()
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": PASSWORD}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SA_HYGIENE"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API_AUTH__JWT_SECRET": "report-plugin-test-secret",
        "SA_HYGIENE_CONFIG": str(cfg_path),
        # The Slack app's endpoint beside the report (test_slack_endpoint_*).
        "SLACK_BOT_TOKEN": "xoxb-plugin-test",
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
    })  # fmt: skip
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    log = (root / "api-server.log").open("w")
    proc = subprocess.Popen([airflow, "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, (root / "api-server.log").read_text()[-3000:]
        try:
            if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, (root / "api-server.log").read_text()[-3000:]
        time.sleep(0.5)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def token(server) -> str:
    r = httpx.post(f"{server}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["access_token"]


def test_the_report_needs_an_airflow_login(server):
    assert httpx.get(f"{server}/sa-hygiene/", timeout=30).status_code == 401
    assert httpx.get(f"{server}/sa-hygiene/activity.html", timeout=30).status_code == 401
    forged = {"Authorization": "Bearer not-a-token"}
    assert httpx.get(f"{server}/sa-hygiene/", headers=forged, timeout=30).status_code == 403
    assert httpx.get(f"{server}/sa-hygiene/", cookies={"_token": "not-a-token"}, timeout=30).status_code == 403


def test_a_logged_in_user_reads_the_latest_report(server, token):
    auth = {"Authorization": f"Bearer {token}"}
    page = httpx.get(f"{server}/sa-hygiene/", headers=auth, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SA hygiene · Tuesday 24 November 2026" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for path in ("activity.html", "data_docs/index.html"):
        assert httpx.get(f"{server}/sa-hygiene/{path}", headers=auth, timeout=30).status_code == 200, path
    # The UI's session cookie is as good as the header.
    assert httpx.get(f"{server}/sa-hygiene/index.html", cookies={"_token": token}, timeout=30).status_code == 200
    # Nothing outside the report's folder, not even its neighbours.
    assert httpx.get(f"{server}/sa-hygiene/%2e%2e/latest.json", headers=auth, timeout=30).status_code == 404
    assert httpx.get(f"{server}/sa-hygiene/nothing.html", headers=auth, timeout=30).status_code == 404


def test_the_plugin_adds_the_page_to_the_navigation(server, token):
    r = httpx.get(f"{server}/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    plugin = next(p for p in r.json()["plugins"] if p["name"] == "sa_hygiene_report")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/sa-hygiene"
    view = plugin["external_views"][0]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == ("Hygiene", "sa-hygiene/", "sa-hygiene", "nav")


def test_the_page_inside_the_airflow_ui(server, token, tmp_path):
    b = Chromium(tmp_path / "profile", width=1500, height=1000)
    try:
        b.set_cookie("_token", token, server)
        frame = "document.querySelector('iframe')"
        load = b.load(f"{server}/plugin/sa-hygiene",
                      wait_for=f"{frame} && {frame}.contentDocument && {frame}.contentDocument.querySelectorAll('svg.chart').length === 3")  # fmt: skip
        assert load.failed == [] and load.errors == [], (load.failed, load.errors)
        # Only this server: the UI's own assets (and the blobs it makes of them), the report's page.
        foreign = [u for u in load.requests if not u.startswith((server, f"blob:{server}", "data:"))]
        assert foreign == []
        assert f"{server}/sa-hygiene/" in load.requests
        assert b.evaluate(f"{frame}.contentDocument.title").startswith("Hygiene report")
        # The entry of the navigation, beside Home, Dags and Assets.
        entry = "[...document.querySelectorAll('a')].find(a => a.textContent.trim() === 'Hygiene')"
        assert b.evaluate(f"{entry}.getAttribute('href')") == "/plugin/sa-hygiene"
    finally:
        b.close()


def test_slack_endpoint_is_mounted_and_checks_signatures_before_anything(server):
    """Slack's Request URL reaches the app through the plugin, without an Airflow login; the
    signature decides: forged 401, signed but not one of ours 400."""
    import hashlib
    import hmac
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": "U1"},
                                             "actions": [{"action_id": "not_ours"}]})})  # fmt: skip
    ts = str(int(time.time()))
    good = "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts}
    url = f"{server}/sa-hygiene-slack/events"
    assert httpx.post(url, content=body, headers={**headers, "X-Slack-Signature": "v0=" + "0" * 64}, timeout=30).status_code == 401
    stale = str(int(time.time()) - 600)
    old = "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{stale}:{body}".encode(), hashlib.sha256).hexdigest()
    answer = httpx.post(url, content=body, headers={**headers, "X-Slack-Request-Timestamp": stale, "X-Slack-Signature": old},
                        timeout=30)  # fmt: skip
    assert answer.status_code == 401
    assert httpx.post(url, content=body, headers={**headers, "X-Slack-Signature": good}, timeout=30).status_code == 400


def test_the_user_alerts_page_is_behind_the_same_login(server, token):
    assert httpx.get(f"{server}/sa-hygiene/user-alerts", timeout=30).status_code == 401
    page = httpx.get(f"{server}/sa-hygiene/user-alerts", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert page.status_code == 200 and "<h1>User alerts</h1>" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    r = httpx.get(f"{server}/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    plugin = next(p for p in r.json()["plugins"] if p["name"] == "sa_hygiene_report")
    assert ("Hygiene: user alerts", "sa-hygiene/user-alerts") in [(v["name"], v["href"]) for v in plugin["external_views"]]
