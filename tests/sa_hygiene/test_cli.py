import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def run(*args, check_airflow=False):
    code = "import sys; from sa_hygiene.cli import main; rc = main(sys.argv[1:]);"
    if check_airflow:
        code += "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow imported';"
    code += "raise SystemExit(rc)"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_demo_org_command(tmp_path):
    r = run("demo-org", "--out", str(tmp_path), "--as-of", "2026-11-24", "--scale", "0.1", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert "Opportunity" in r.stdout
    assert (tmp_path / "current" / "Task.parquet").exists() and (tmp_path / "previous" / "Task.parquet").exists()
