"""The demo org's report and a headless Chromium, shared by the report's browser tests: one report
per test process (a report takes a while to write; the tests only read it), one browser per module."""

from pathlib import Path

import pytest
from browser import Chromium
from demo_report import write_demo_report


@pytest.fixture(scope="session")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    _, info = write_demo_report(root)
    return Path(info["report"]).parent


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.close()
