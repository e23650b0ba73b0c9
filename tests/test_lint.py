import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean_including_the_airflow_3_rules():
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "include", "dags", "plugins", "tests", "bench", "deploy"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
