"""Issue 23's figure, on a small demo org: every meeting reminder of the demo day is logged
start to finish through the form (open, suggest, submit: signed requests to the app on
127.0.0.1, the fake Slack and Salesforce), one Task each. ``bench/log_form.py`` prints it for
the full demo org."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from slack_app_requests import SF_CONN

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[4]


def test_every_reminder_of_the_demo_day_can_be_logged_through_the_form(tmp_path, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", f"AIRFLOW_CONN_{SF_CONN.upper()}"):
        monkeypatch.setenv(name, "")  # the bench sets them; put back afterwards
    spec = importlib.util.spec_from_file_location("bench_log_form", ROOT / "bench" / "log_form.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.run(scale=0.05, tmp=tmp_path)
    assert figures["reminders"] >= 5, figures
    assert figures["failures"] == {} and figures["logged"] == figures["reminders"] == figures["tasks"], figures
    # Not only the easy ones: some had no suggestion to pre-select and were found by searching.
    assert figures["related_to"].get("searched", 0) >= 1, figures
