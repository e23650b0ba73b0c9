"""The project's command line in a fresh process, as a user types it: ``run("evaluate", ...)``."""

import subprocess
import sys


def run(*args, check_airflow=False):
    code = "import sys; from sa_hygiene.cli import main; rc = main(sys.argv[1:]);"
    if check_airflow:
        code += "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow imported';"
    code += "from sa_hygiene.cli import exit_now; exit_now(rc)"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def assert_refused(r, *words):
    """A command refused unusable input: exit 2, one line starting with 'error: ', no traceback."""
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for word in words:
        assert word in lines[0], lines[0]
