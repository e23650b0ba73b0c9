"""The Slack app's route as the api-server mounts it (the plugin's ``fastapi_apps`` entry), without
starting Airflow: with no credentials every request is a 503 that says why, fast, and the reason
is logged once (issue 20, item 10)."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_the_mounted_slack_route_answers_503_with_the_reason_when_the_app_has_no_credentials(monkeypatch, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "AIRFLOW_CONN_SLACK_API_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-only-a-token")  # and no signing secret anywhere
    spec = importlib.util.spec_from_file_location("sa_hygiene_report_plugin", ROOT / "plugins" / "sa_hygiene_report.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    [entry] = [a for a in plugin.SaHygieneReportPlugin.fastapi_apps if a["url_prefix"] == plugin.SLACK_URL_PREFIX]
    server = FastAPI()
    server.mount(entry["url_prefix"], entry["app"])
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("sa_hygiene.web.slack_app.app")  # Airflow's logging set-up bypasses caplog
    logger.addHandler(handler)
    try:
        with TestClient(server) as client:
            answers = []
            for _ in range(3):
                started = time.monotonic()
                answer = client.post(f"{plugin.SLACK_URL_PREFIX}/events", content="payload=%7B%7D")
                answers.append((answer, time.monotonic() - started))
    finally:
        logger.removeHandler(handler)
    assert [a.status_code for a, _ in answers] == [503, 503, 503]
    assert all(a.text.startswith("the Slack app is not configured: ") for a, _ in answers)
    assert "signing secret" in answers[0][0].text or "connection" in answers[0][0].text
    assert "xoxb-only-a-token" not in answers[0][0].text
    assert max(took for _, took in answers[1:]) < 0.5
    assert len([m for m in seen if "cannot answer" in m]) == 1
